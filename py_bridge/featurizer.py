"""A model repository's featurizer: where it lives, what it says, and loading it.

Bumblebee servings take a featurizer loaded on its own
(``Bumblebee.load_featurizer/2``), which may come from another repository than
the model. The shim reads it with ``bridge featurizer-config`` (no weights, no
``transformers`` import) and sends its local directory to the worker as the
``featurizer`` option; without that option a task uses the model's directory.

Transformers 5 saves a processor's settings either in
``preprocessor_config.json`` or nested inside ``processor_config.json``
(under ``feature_extractor`` or ``image_processor``); both are read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from py_bridge.errors import ModelLoadError, ModelNotFoundError, UnsupportedError
from py_bridge.loading import LoadedModel

_NESTED_KEYS = ("feature_extractor", "image_processor", "video_processor")
_TYPE_KEYS = ("feature_extractor_type", "image_processor_type")


def featurizer_config(path: Path) -> dict[str, Any]:
    """The featurizer settings saved in ``path``, or ModelNotFoundError when there are none."""
    preprocessor = path / "preprocessor_config.json"
    if preprocessor.is_file():
        return _read_object(preprocessor)
    processor = path / "processor_config.json"
    if processor.is_file():
        data = _read_object(processor)
        for key in _NESTED_KEYS:
            if isinstance(data.get(key), dict):
                return data[key]
    raise ModelNotFoundError(f"no featurizer found in {path} (no preprocessor_config.json)")


def featurizer_type(config: dict[str, Any]) -> str | None:
    """The featurizer's class name, as the config names it (``"WhisperFeatureExtractor"``)."""
    for key in _TYPE_KEYS:
        if isinstance(config.get(key), str):
            return config[key]
    return None


def _read_object(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {file}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"expected {file} to hold a JSON object")
    return data


def featurizer_dir(model: LoadedModel, options: dict[str, Any]) -> Path:
    """The directory a task loads its featurizer from: the ``featurizer`` option, else the model's."""
    value = options.get("featurizer")
    if value is None:
        if not model.spec.get("has_featurizer", True):
            raise UnsupportedError(
                f"this task needs a featurizer (preprocessor_config.json), and {model.path} has none"
            )
        return model.path
    path = Path(bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray, memoryview)) else str(value))
    if not path.is_dir():
        raise UnsupportedError(f"the featurizer directory {path} does not exist")
    return path


def load_processor(auto_class_name: str, path: Path, trust_remote_code: bool = False) -> Any:
    """Load a featurizer with a transformers Auto class (``AutoImageProcessor``, ...), or ModelLoadError."""
    import transformers

    cls = getattr(transformers, auto_class_name)
    try:
        return cls.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load a featurizer from {path}: {exc}", python_type=type(exc).__name__) from exc
