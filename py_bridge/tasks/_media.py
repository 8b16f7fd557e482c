"""Decoding the images and audio that task items carry.

An image item is a ``%PyBridge.Tensor{}`` of shape ``{height, width,
channels}`` (integer values 0..255, RGB order) or ``{:file, path}``; an audio
item is a rank-1 float ``%PyBridge.Tensor{}`` of samples, or ``{:file, path}``.

Images follow Bumblebee's channel rules whatever their source: one channel is
repeated into three (grey), a fourth channel (alpha) is dropped without
blending, and two channels are refused. Files are decoded here, in the
worker: images with Pillow (any format it opens: PNG, JPEG, GIF, BMP, TIFF,
WebP, ...), audio with soundfile/libsndfile (WAV, FLAC, OGG/Vorbis and Opus,
AIFF, ...; MP3 needs libsndfile 1.1 or newer). Audio files are mixed down to
mono and resampled to the featurizer's rate; tensors must already be at that
rate, as in Bumblebee.
"""

from __future__ import annotations

import logging
from math import gcd
from pathlib import Path
from typing import Any

from py_bridge.errors import BadInputError
from py_bridge.tensor import Tensor, is_tensor_term

log = logging.getLogger(__name__)

_INTEGER_KINDS = ("u", "s")
_FLOAT_KINDS = ("f", "bf")


def file_path(term: Any) -> Path | None:
    """The path of a ``{:file, path}`` item, or None for anything else."""
    if not (isinstance(term, tuple) and len(term) == 2 and term[0] == "file"):
        return None
    raw = term[1]
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            return Path(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadInputError("expected the file path to be valid UTF-8") from exc
    if isinstance(raw, str):
        return Path(raw)
    raise BadInputError(f"expected {{:file, path}} to hold a string path, got: {type(raw).__name__}")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise BadInputError(f"no file found at {path}")
    return path


def describe(term: Any) -> str:
    """A short description of an unexpected item, for error messages."""
    if is_tensor_term(term):
        return f"a tensor of type {term.get('type')!r} and shape {term.get('shape')!r}"
    if isinstance(term, tuple):
        return f"a tuple of {len(term)} elements"
    return type(term).__name__


# -- images ---------------------------------------------------------------------


def decode_image(term: Any) -> Any:
    """An RGB ``PIL.Image`` from an image tensor or ``{:file, path}``."""
    path = file_path(term)
    if path is not None:
        return _read_image(_existing(path))
    if not is_tensor_term(term):
        raise BadInputError(f"expected an image, got: {describe(term)}")
    return _image_from_tensor(Tensor.from_term(term))


def _image_from_tensor(tensor: Tensor) -> Any:
    import numpy as np
    from PIL import Image

    if len(tensor.shape) != 3 or not 1 <= tensor.shape[2] <= 4:
        raise BadInputError(f"expected an image tensor of shape {{height, width, channels}}, got: {tensor.shape}")
    if tensor.type[0] not in _INTEGER_KINDS:
        raise BadInputError(f"expected an image tensor of an integer type, got: {tensor.type}")
    pixels = tensor.to_numpy()
    if pixels.dtype != np.uint8:
        if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
            raise BadInputError("expected image values between 0 and 255")
        pixels = pixels.astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(to_rgb(pixels)), "RGB")


def to_rgb(pixels: Any) -> Any:
    """``{h, w, c}`` pixels as three channels, by Bumblebee's rules."""
    import numpy as np

    channels = pixels.shape[2]
    if channels == 3:
        return pixels
    if channels == 4:
        return pixels[:, :, :3]
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    raise BadInputError(f"expected image with 3 channels, but got {channels} and no automatic conversion applies")


def _read_image(path: Path) -> Any:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            # A camera's EXIF orientation says how the pixels should stand.
            upright = ImageOps.exif_transpose(image)
            # Pillow's RGB conversion drops alpha and repeats grey, as the tensor rules do.
            return upright.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInputError(f"could not decode the image file {path}: {exc}", python_type=type(exc).__name__) from exc


# -- audio ----------------------------------------------------------------------


def decode_audio(term: Any, sampling_rate: int) -> Any:
    """Mono float32 samples at ``sampling_rate`` from an audio tensor or ``{:file, path}``."""
    import numpy as np

    path = file_path(term)
    if path is not None:
        samples = _read_audio(_existing(path), sampling_rate)
    elif is_tensor_term(term):
        tensor = Tensor.from_term(term)
        if len(tensor.shape) != 1:
            raise BadInputError(f"expected audio to be a 1-dimensional tensor, got shape: {tensor.shape}")
        if tensor.type[0] not in _FLOAT_KINDS:
            raise BadInputError(f"expected audio samples of a float type, got: {tensor.type}")
        samples = np.asarray(tensor.to_numpy(), dtype=np.float32)
    else:
        raise BadInputError(f"expected audio to be a 1-dimensional tensor or {{:file, path}}, got: {describe(term)}")
    if samples.size and not np.isfinite(samples).all():
        raise BadInputError("expected finite audio samples, got NaN or infinity")
    return samples


def _read_audio(path: Path, sampling_rate: int) -> Any:
    import numpy as np
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise BadInputError(
            f"could not decode the audio file {path} ({exc}); soundfile reads WAV, FLAC, OGG and AIFF, "
            f"and MP3 with libsndfile >= 1.1 (this one is {soundfile.__libsndfile_version__})",
            python_type=type(exc).__name__,
        ) from exc
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    return resample(mono, rate, sampling_rate)


def resample(samples: Any, rate: int, target: int) -> Any:
    """Polyphase resampling from ``rate`` to ``target`` Hz (a no-op when they agree)."""
    import numpy as np

    if rate == target or samples.size == 0:
        return samples
    from scipy.signal import resample_poly

    common = gcd(rate, target)
    log.debug("resampling audio from %d Hz to %d Hz", rate, target)
    return resample_poly(samples, target // common, rate // common).astype(np.float32)
