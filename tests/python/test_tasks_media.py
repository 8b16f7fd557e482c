"""The image and audio tasks against ``transformers`` directly.

Reference values are computed here from the same model directories with
``AutoImageProcessor`` / ``AutoFeatureExtractor`` and the model classes, one
input at a time; nothing goes through ``py_bridge.tasks``. Image files are
written with Pillow and audio files with soundfile, then read back by the
tasks. The Whisper transcript rules (windows, merging, timestamps) are
checked against worked examples computed by hand, since a random model's
output cannot show them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiny_models import tiny_model

from py_bridge.errors import BadInputError, UnsupportedError
from py_bridge.etf import Atom
from py_bridge.featurizer import featurizer_config, featurizer_type
from py_bridge.loading import LoadedModel, ModelRef, model_spec
from py_bridge.tasks import BatchContext, task_class
from py_bridge.tasks._media import decode_audio, decode_image
from py_bridge.tasks._transcript import Chunk, TranscriptAssembler, Windowing, merge_overlapping, split_windows
from py_bridge.tensor import Tensor

TOL = 1e-5
RATE = 16_000


# -- helpers ------------------------------------------------------------------------------


def load(name: str) -> LoadedModel:
    path = tiny_model(name)
    return LoadedModel(ref=ModelRef(model=str(path)), path=path, spec=model_spec(path))


def make_task(name: str, model: LoadedModel, /, **options: Any) -> Any:
    """Build a task as the worker does: atom values arrive as Atom, strings as bytes."""
    wire = {k: Atom(v) if isinstance(v, str) else v for k, v in options.items()}
    return task_class(name)(model, wire)


def run(task: Any, items: list[Any], ctx: BatchContext | None = None) -> list[Any]:
    return task.run(items, ctx or BatchContext())


def tensor(array: np.ndarray) -> dict[Any, Any]:
    """What a tensor from Elixir looks like to a task."""
    return Tensor.from_numpy(array).to_term()


def file_item(path: Path) -> tuple[Atom, bytes]:
    return (Atom("file"), str(path).encode())


def pixels(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """A smooth gradient plus noise: resizing it is not trivially uniform."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 / width), (y * 255 / height), ((x + y) * 127 / (width + height))], axis=-1)
    base = np.concatenate([base, np.full((height, width, 1), 128.0)], axis=-1)[:, :, :channels]
    if channels == 1:
        base = base[:, :, :1]
    noisy = base + rng.integers(-40, 40, base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def reference_image(array: np.ndarray) -> Any:
    """The PIL image transformers is given: RGB, alpha dropped, grey repeated (Pillow's own conversion)."""
    from PIL import Image

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[2]]
    source = array[:, :, 0] if mode == "L" else array
    return Image.fromarray(source, mode).convert("RGB")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Any]]:
    """Items and the PIL images transformers should see for them: tensors and files."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    rgb, grey, rgba = pixels(48, 64, 3, 1), pixels(40, 30, 1, 2), pixels(36, 50, 4, 3)
    Image.fromarray(rgb, "RGB").save(folder / "rgb.png")
    Image.fromarray(rgb, "RGB").save(folder / "rgb.jpg", quality=90)
    Image.fromarray(grey[:, :, 0], "L").save(folder / "grey.png")
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    with Image.open(folder / "rgb.jpg") as jpeg:
        decoded_jpeg = np.asarray(jpeg.convert("RGB"))
    return {
        "rgb tensor": (tensor(rgb), reference_image(rgb)),
        "grey tensor": (tensor(grey), reference_image(grey)),
        "rgba tensor": (tensor(rgba), reference_image(rgba)),
        "rgb png": (file_item(folder / "rgb.png"), reference_image(rgb)),
        "rgb jpeg": (file_item(folder / "rgb.jpg"), reference_image(decoded_jpeg)),
        "grey png": (file_item(folder / "grey.png"), reference_image(grey)),
        "rgba png": (file_item(folder / "rgba.png"), reference_image(rgba)),
    }


class VisionReference:
    """A vision model and its image processor, straight from transformers."""

    def __init__(self, path: Path, model_class: str) -> None:
        import transformers

        self.processor = transformers.AutoImageProcessor.from_pretrained(path)
        self.model = getattr(transformers, model_class).from_pretrained(path).eval()

    def __call__(self, image: Any) -> Any:
        with torch.no_grad():
            return self.model(**self.processor(images=image, return_tensors="pt"))


# -- media decoding -------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_image_tensors_follow_bumblebees_channel_rules(channels: int) -> None:
    array = pixels(12, 10, channels, 0)
    got = np.asarray(decode_image(tensor(array)))
    assert got.shape == (12, 10, 3)
    expected = np.repeat(array, 3, axis=2) if channels == 1 else array[:, :, :3]
    assert (got == expected).all()


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (tensor(np.zeros((4, 4, 2), np.uint8)), "expected image with 3 channels, but got 2"),
        (tensor(np.zeros((4, 4, 3), np.float32)), "integer type"),
        (tensor(np.zeros((4, 4), np.uint8)), "{height, width, channels}"),
        (tensor(np.full((2, 2, 3), 300, np.int16)), "between 0 and 255"),
        ((Atom("file"), b"/nonexistent/cat.png"), "no file found at /nonexistent/cat.png"),
        (b"not an image", "expected an image"),
    ],
)
def test_bad_images_are_refused(item: Any, message: str) -> None:
    with pytest.raises(BadInputError, match=message.replace("{", r"\{").replace("}", r"\}")):
        decode_image(item)


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(BadInputError, match="could not decode the image file"):
        decode_image(file_item(tmp_path / "notes.png"))


@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_audio_files_decode_to_their_samples(tmp_path: Path, suffix: str) -> None:
    import soundfile

    samples = (0.5 * np.sin(np.arange(RATE) * 2 * np.pi * 440 / RATE)).astype(np.float32)
    path = tmp_path / f"tone.{suffix}"
    soundfile.write(path, samples, RATE, subtype="PCM_16")
    got = decode_audio(file_item(path), RATE)
    assert got.dtype == np.float32 and got.shape == samples.shape
    # 16-bit PCM keeps 1/32768 of precision.
    assert np.abs(got - samples).max() < 1e-4


def test_stereo_files_are_mixed_down_and_other_rates_resampled(tmp_path: Path) -> None:
    import soundfile

    rate, seconds, hz = 8_000, 1, 440
    t = np.arange(rate * seconds) / rate
    left, right = 0.6 * np.sin(2 * np.pi * hz * t), 0.2 * np.sin(2 * np.pi * hz * t)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), rate, subtype="FLOAT")
    got = decode_audio(file_item(tmp_path / "stereo.wav"), RATE)
    assert got.shape == (RATE * seconds,)
    # The mean of the channels, at the new rate: a 0.4-amplitude 440 Hz tone
    # sampled at 16 kHz (edges excluded, where the filter has no history).
    expected = 0.4 * np.sin(2 * np.pi * hz * np.arange(RATE * seconds) / RATE)
    assert np.abs(got[200:-200] - expected[200:-200]).max() < 0.01


def test_bad_audio_is_refused(tmp_path: Path) -> None:
    (tmp_path / "noise.wav").write_bytes(b"RIFF....not really")
    with pytest.raises(BadInputError, match="could not decode the audio file"):
        decode_audio(file_item(tmp_path / "noise.wav"), RATE)
    with pytest.raises(BadInputError, match="1-dimensional"):
        decode_audio(tensor(np.zeros((2, 3), np.float32)), RATE)
    with pytest.raises(BadInputError, match="float type"):
        decode_audio(tensor(np.zeros(3, np.int16)), RATE)
    with pytest.raises(BadInputError, match="finite"):
        decode_audio(tensor(np.array([0.0, np.nan], np.float32)), RATE)


def test_featurizer_config_reads_preprocessor_settings() -> None:
    path = tiny_model("whisper_speech_to_text")
    config = featurizer_config(path)
    assert config == json.loads((path / "preprocessor_config.json").read_text())
    assert featurizer_type(config) == "WhisperFeatureExtractor"
    assert featurizer_type(featurizer_config(tiny_model("vit_base"))) == "ViTImageProcessor"


# -- image_classification ------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier() -> tuple[Any, VisionReference]:
    model = load("vit_image_classification")
    task = make_task("image_classification", model, top_k=3)
    return task, VisionReference(model.path, "AutoModelForImageClassification")


def test_image_classification_matches_transformers(
    classifier: tuple[Any, VisionReference], images: dict[str, tuple[Any, Any]]
) -> None:
    task, ref = classifier
    names = list(images)
    results = run(task, [images[n][0] for n in names])
    labels = ref.model.config.id2label
    for name, result in zip(names, results, strict=True):
        scores = ref(images[name][1]).logits[0].softmax(-1).tolist()
        want = sorted(((labels[i], s) for i, s in enumerate(scores)), key=lambda p: -p[1])
        got = [(p["label"], p["score"]) for p in result["predictions"]]
        assert [label for label, _ in got] == [label for label, _ in want], name
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=TOL), name


def test_image_classification_results_differ_between_images(classifier: tuple[Any, VisionReference]) -> None:
    task, _ = classifier
    first, second = run(task, [tensor(pixels(32, 32, 3, 5)), tensor(pixels(32, 32, 3, 6))])
    assert first != second


def test_image_classification_top_k_and_scores_function() -> None:
    model = load("vit_image_classification")
    ref = VisionReference(model.path, "AutoModelForImageClassification")
    array = pixels(32, 32, 3, 7)
    [one] = run(make_task("image_classification", model, top_k=1, scores_function="sigmoid"), [tensor(array)])
    logits = ref(reference_image(array)).logits[0]
    best = int(logits.argmax())
    assert one["predictions"] == [
        {"label": ref.model.config.id2label[best], "score": pytest.approx(float(logits[best].sigmoid()), abs=TOL)}
    ]
    [capped] = run(make_task("image_classification", model, top_k=10), [tensor(array)])
    assert len(capped["predictions"]) == 3


def test_a_bad_image_fails_alone(classifier: tuple[Any, VisionReference]) -> None:
    task, _ = classifier
    good = tensor(pixels(32, 32, 3, 8))
    results = run(task, [good, tensor(np.zeros((4, 4, 2), np.uint8)), good])
    assert isinstance(results[1], BadInputError)
    [alone] = run(task, [good])
    for result in (results[0], results[2]):
        assert [p["label"] for p in result["predictions"]] == [p["label"] for p in alone["predictions"]]
        assert [p["score"] for p in result["predictions"]] == pytest.approx(
            [p["score"] for p in alone["predictions"]], abs=TOL
        )


def test_image_classification_needs_a_classifier() -> None:
    with pytest.raises(UnsupportedError, match="for_image_classification"):
        make_task("image_classification", load("vit_base"))


# -- image_embedding -----------------------------------------------------------------------


def test_vit_embeddings_match_transformers(images: dict[str, tuple[Any, Any]]) -> None:
    model = load("vit_base")
    ref = VisionReference(model.path, "AutoModel")
    items = [images["rgb tensor"], images["grey png"]]
    pooled = run(make_task("image_embedding", model), [item for item, _ in items])
    hidden = run(make_task("image_embedding", model, output_attribute="hidden_state"), [item for item, _ in items])
    for (_, image), p, h in zip(items, pooled, hidden, strict=True):
        out = ref(image)
        assert p["embedding"].shape == (32,) and p["embedding"].type == ("f", 32)
        assert torch.allclose(p["embedding"].to_torch(), out.pooler_output[0], atol=TOL)
        assert h["embedding"].shape == (17, 32)
        assert torch.allclose(h["embedding"].to_torch(), out.last_hidden_state[0], atol=TOL)


def test_clip_projected_embeddings_match_transformers(images: dict[str, tuple[Any, Any]]) -> None:
    model = load("clip_vision_embedding")
    assert model.spec["architecture"] == "for_embedding"
    ref = VisionReference(model.path, "CLIPVisionModelWithProjection")
    task = make_task("image_embedding", model, output_attribute="embedding", embedding_processor="l2_norm")
    [got] = run(task, [images["rgb jpeg"][0]])
    want = torch.nn.functional.normalize(ref(images["rgb jpeg"][1]).image_embeds[0], dim=-1)
    assert got["embedding"].shape == (16,)
    assert torch.allclose(got["embedding"].to_torch(), want, atol=TOL)


def test_an_unknown_output_attribute_fails_at_load() -> None:
    with pytest.raises(
        UnsupportedError, match=r"key :logits not found in the output map.*:hidden_state, :pooled_state"
    ):
        make_task("image_embedding", load("vit_base"), output_attribute="logits")


# -- image_to_text -------------------------------------------------------------------------


def blip_generation_config(max_new_tokens: int) -> dict[str, Any]:
    """Bumblebee's generation config for the tiny BLIP, as load_generation_config reads it."""
    text = json.loads((tiny_model("blip_image_captioning") / "config.json").read_text())["text_config"]
    return {
        "max_new_tokens": max_new_tokens,
        "bos_token_id": text["bos_token_id"],
        "eos_token_id": text["sep_token_id"],
        "pad_token_id": text["pad_token_id"],
        "strategy": {Atom("type"): Atom("greedy_search")},
    }


def test_captions_match_transformers(images: dict[str, tuple[Any, Any]]) -> None:
    import transformers

    model = load("blip_image_captioning")
    task = make_task("image_to_text", model, generation_config=blip_generation_config(8))
    names = ["rgb tensor", "grey png", "rgba tensor"]
    items = [images[names[0]][0], {Atom("image"): images[names[1]][0], Atom("seed"): 7}, images[names[2]][0]]
    results = run(task, items)

    processor = transformers.AutoImageProcessor.from_pretrained(model.path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model.path)
    blip = transformers.BlipForConditionalGeneration.from_pretrained(model.path).eval()
    texts = []
    for name in names:
        with torch.no_grad():
            ids = blip.generate(**processor(images=images[name][1], return_tensors="pt"), max_new_tokens=8)
        texts.append(tokenizer.decode(ids[0], skip_special_tokens=True, clean_up_tokenization_spaces=False))
    assert [r["results"] for r in results] == [[{"text": t}] for t in texts]
    # A random decoder still reads the image: different pictures, different captions.
    assert len(set(texts)) > 1


def test_image_to_text_refuses_a_map_without_image() -> None:
    task = make_task("image_to_text", load("blip_image_captioning"), generation_config=blip_generation_config(4))
    [result] = run(task, [{Atom("picture"): 1}])
    assert isinstance(result, BadInputError) and ":image" in result.message


# -- Whisper: the transcript rules, on worked examples ---------------------------------------


def test_split_windows_cuts_like_bumblebee() -> None:
    # One "sample" per second keeps the arithmetic visible: 30 s windows with
    # 5 s of context start every 20 s; the rest becomes one last window.
    windows = split_windows(np.arange(46), 1, 30, 5)
    assert [(w[0], w[-1]) for w in windows] == [(0, 29), (20, 45)]
    # Exactly one window long: the right context is left over and sent again.
    assert [(w[0], w[-1]) for w in split_windows(np.arange(30), 1, 30, 5)] == [(0, 29), (20, 29)]
    assert [(w[0], w[-1]) for w in split_windows(np.arange(60), 1, 30, 0)] == [(0, 29), (30, 59)]
    assert [len(w) for w in split_windows(np.arange(7), 1, 30, 5)] == [7]
    assert [len(w) for w in split_windows(np.arange(70), 1, None, 0)] == [70]
    with pytest.raises(BadInputError, match="more than double"):
        split_windows(np.arange(10), 1, 10, 5)


def test_merge_overlapping_cuts_in_the_middle_of_the_best_overlap() -> None:
    # [4, 5] is the overlap: the left keeps up to its middle, the right goes on from there.
    assert merge_overlapping([[1, 2, 3, 4, 5], [4, 5, 6, 7]]) == ([1, 2, 3, 4], [5, 6, 7])
    assert merge_overlapping([[1, 2, 3, 4, 5], [4, 5, 6, 7, 8], [7, 8, 9]]) == ([1, 2, 3, 4, 5, 6, 7], [8, 9])
    # Nothing matches twice: the sequences are simply put end to end.
    assert merge_overlapping([[1, 2], [3, 4]]) == ([1, 2], [3, 4])
    assert merge_overlapping([[1, 2]]) == ([1, 2], [])


BEGIN = 100  # the first timestamp token: <|0.00|>; token BEGIN + k is k * 0.02 s
SPECIAL = {50, 51}


def assembler(*, timestamps: bool, chunk: float | None = None, context: float | None = None) -> TranscriptAssembler:
    return TranscriptAssembler(
        decode=lambda ids: ",".join(map(str, ids)),
        special_ids=SPECIAL,
        timestamp_begin=BEGIN,
        time_precision=0.02,
        windowing=Windowing.of(chunk, context, RATE),
        timestamps=timestamps,
    )


def at(seconds: float) -> int:
    return BEGIN + round(seconds / 0.02)


def test_segments_become_chunks_and_an_open_segment_has_no_times() -> None:
    asm = assembler(timestamps=True)
    sequence = [50, at(0), 1, 2, at(1), at(1), 3, 51, at(2), 4, 5]
    assert asm.update([sequence]) == [Chunk("1,2", 0.0, 1.0), Chunk("3", 1.0, 2.0)]
    assert asm.finish() == [Chunk("4,5", None, None)]


def test_without_timestamps_windows_are_merged_once_two_overlap() -> None:
    # Fed together or one by one, two overlapping windows give the same chunks.
    together = assembler(timestamps=False, chunk=30, context=5)
    assert together.update([[1, 2, 3, 4, 5], [4, 5, 6, 7]]) == [Chunk("1,2,3,4")]
    assert together.finish() == [Chunk("5,6,7")]
    apart = assembler(timestamps=False, chunk=30, context=5)
    assert apart.update([[1, 2, 3, 4, 5]]) == []
    assert apart.update([[4, 5, 6, 7]]) == [Chunk("1,2,3,4")]
    assert apart.finish() == [Chunk("5,6,7")]
    # Without context every window is a chunk of its own.
    alone = assembler(timestamps=False, chunk=30, context=0)
    assert alone.update([[50, 1, 2, 51]]) == [Chunk("1,2")]
    assert alone.update([[3]]) == [Chunk("3")]
    assert alone.finish() == []


def test_timestamps_in_the_context_of_a_window_are_left_to_its_neighbour() -> None:
    # 10 s windows with 2 s of context: the first covers 0-10 s (its right
    # context starts at 8 s), the second starts at 6 s (its left context is 6-8 s).
    asm = assembler(timestamps=True, chunk=10, context=2)
    first = [at(0), 1, 2, at(3), at(3), 3, 4, at(8.5), at(8.5), 5, at(9.5)]
    # The segment opened at 3 s stays open: the 8.5 s timestamps are in the right context.
    assert asm.update([first]) == [Chunk("1,2", 0.0, 3.0)]
    # In the second window, 2 s is 8 s of audio: it closes the open segment.
    second = [at(2), at(2), 5, 6, at(4), at(4), 7, at(5)]
    assert asm.update([second]) == [Chunk("3,4,5", 3.0, 8.0), Chunk("5,6", 8.0, 10.0)]
    # The last segment ends at the last timestamp of the right context (11 s).
    assert asm.finish() == [Chunk("7", 10.0, 11.0)]


# -- Whisper through transformers ------------------------------------------------------------


@pytest.fixture(scope="module")
def whisper() -> dict[str, Any]:
    """The tiny Whisper loaded straight from transformers, and Bumblebee's view of its generation config."""
    import transformers

    model = load("whisper_speech_to_text")
    config = json.loads((model.path / "generation_config.json").read_text())
    hf = transformers.WhisperForConditionalGeneration.from_pretrained(model.path).eval()
    # Bumblebee reads no begin_suppress_tokens; neither do the tasks.
    hf.generation_config.begin_suppress_tokens = None
    return {
        "model": model,
        "hf": hf,
        "featurizer": transformers.AutoFeatureExtractor.from_pretrained(model.path),
        "tokenizer": transformers.AutoTokenizer.from_pretrained(model.path),
        "config": config,
    }


def whisper_generation_config(whisper: dict[str, Any], max_new_tokens: int) -> dict[str, Any]:
    config = whisper["config"]
    return {
        "max_new_tokens": max_new_tokens,
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": config["eos_token_id"],
        "pad_token_id": config["pad_token_id"],
        "decoder_start_token_id": config["decoder_start_token_id"],
        "suppressed_token_ids": config["suppress_tokens"],
        "forced_token_ids": [],
        "strategy": {Atom("type"): Atom("greedy_search")},
    }


def whisper_task(whisper: dict[str, Any], max_new_tokens: int = 10, **options: Any) -> Any:
    options.setdefault("generation_config", whisper_generation_config(whisper, max_new_tokens))
    return make_task("speech_to_text_whisper", whisper["model"], **options)


def transcribe(
    whisper: dict[str, Any],
    audio: np.ndarray,
    max_new_tokens: int,
    *,
    language: str | None = None,
    task: str | None = "transcribe",
    timestamps: bool = False,
) -> list[int]:
    """transformers' own greedy transcription of one window; the token ids."""
    features = whisper["featurizer"](audio, sampling_rate=RATE, return_tensors="pt").input_features
    # Bumblebee counts the decoder prompt (start, language, task, no-timestamps)
    # in max_new_tokens + 1; transformers counts what follows the prompt.
    prompt = 1 + 1 + (1 if task else 0) + (0 if timestamps else 1)
    with torch.no_grad():
        ids = whisper["hf"].generate(
            features,
            language=language,
            task=task,
            return_timestamps=timestamps,
            max_new_tokens=max_new_tokens + 1 - prompt,
            num_beams=1,
            do_sample=False,
            force_unique_generate_call=True,
        )
    return ids[0].tolist()


def text_of(whisper: dict[str, Any], ids: list[int]) -> str:
    return whisper["tokenizer"].decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def speech(seconds: float, seed: int) -> np.ndarray:
    """Audio whose content changes over time: tones that glide, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = np.sin(2 * np.pi * (200 + 150 * seed + 80 * t) * t) * (0.3 + 0.2 * np.sin(2 * np.pi * 0.5 * t))
    return (tone + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def texts(result: dict[Any, Any]) -> list[str]:
    return [chunk["text"] for chunk in result["chunks"]]


def test_transcripts_match_transformers(whisper: dict[str, Any]) -> None:
    audios = [speech(2, 1), speech(3, 2)]
    task = whisper_task(whisper, language="en")
    results = run(task, [{Atom("audio"): tensor(a), Atom("seed"): None} for a in audios])
    for audio, result in zip(audios, results, strict=True):
        want = text_of(whisper, transcribe(whisper, audio, 10, language="en"))
        assert result == {"chunks": [{"text": want, "start_timestamp_seconds": None, "end_timestamp_seconds": None}]}
        assert all(isinstance(k, Atom) for k in result["chunks"][0])
    # A random model still listens: different audio, different text.
    assert texts(results[0]) != texts(results[1])


def test_language_detection_and_translation_match_transformers(whisper: dict[str, Any]) -> None:
    audio = speech(2, 3)
    [detected] = run(whisper_task(whisper), [tensor(audio)])
    assert texts(detected) == [text_of(whisper, transcribe(whisper, audio, 10))]
    [translated] = run(whisper_task(whisper, language="fr", task="translate"), [tensor(audio)])
    assert texts(translated) == [text_of(whisper, transcribe(whisper, audio, 10, language="fr", task="translate"))]


def test_files_transcribe_like_their_samples(whisper: dict[str, Any], tmp_path: Path) -> None:
    import soundfile

    audio = speech(2, 4)
    soundfile.write(tmp_path / "speech.wav", audio, RATE, subtype="FLOAT")
    soundfile.write(tmp_path / "speech.flac", audio, RATE, subtype="PCM_24")
    task = whisper_task(whisper, language="en")
    from_wav, from_flac = run(task, [file_item(tmp_path / "speech.wav"), file_item(tmp_path / "speech.flac")])
    want = text_of(whisper, transcribe(whisper, audio, 10, language="en"))
    assert texts(from_wav) == [want]
    flac_samples, _ = soundfile.read(tmp_path / "speech.flac", dtype="float32")
    assert texts(from_flac) == [text_of(whisper, transcribe(whisper, flac_samples, 10, language="en"))]


def test_without_chunking_a_file_is_read_in_30_second_pieces_and_a_tensor_is_cut(
    whisper: dict[str, Any], tmp_path: Path
) -> None:
    import soundfile

    # As Bumblebee reads files 30 s at a time and transcribes each piece, while
    # the featurizer keeps the first 30 s of a tensor.
    audio = speech(31, 8)
    soundfile.write(tmp_path / "long.wav", audio, RATE, subtype="FLOAT")
    task = whisper_task(whisper, language="en")
    from_file, from_tensor = run(task, [file_item(tmp_path / "long.wav"), tensor(audio)])
    pieces = [audio[: 30 * RATE], audio[30 * RATE :]]
    assert texts(from_file) == [text_of(whisper, transcribe(whisper, p, 10, language="en")) for p in pieces]
    assert texts(from_tensor) == [text_of(whisper, transcribe(whisper, audio, 10, language="en"))]


def test_windows_without_context_are_transcribed_one_by_one(whisper: dict[str, Any]) -> None:
    # 2.5 s in 1 s windows and no context: windows 0-1 s, 1-2 s and 2-2.5 s,
    # each its own chunk, in order. (With a larger client_batch_size the
    # windows of a group would be merged, as Bumblebee merges them.)
    audio = speech(2.5, 5)
    task = whisper_task(whisper, language="en", chunk_num_seconds=1, context_num_seconds=0)
    [result] = run(task, [tensor(audio)])
    windows = [audio[:RATE], audio[RATE : 2 * RATE], audio[2 * RATE :]]
    assert texts(result) == [text_of(whisper, transcribe(whisper, w, 10, language="en")) for w in windows]


def test_timestamps_come_from_the_models_timestamp_tokens(whisper: dict[str, Any]) -> None:
    audio = speech(3, 6)
    [result] = run(whisper_task(whisper, 24, language="en", timestamps="segments"), [tensor(audio)])
    ids = transcribe(whisper, audio, 24, language="en", timestamps=True)
    begin = whisper["tokenizer"].convert_tokens_to_ids("<|notimestamps|>") + 1
    stamps = [round((t - begin) * 0.02, 2) for t in ids if t >= begin]
    chunks = result["chunks"]
    assert chunks, "the tiny model closes segments; see tests/tiny_models.py"
    # Every segment starts and ends at a timestamp the model produced, in order,
    # and the text of all chunks is the text of the whole sequence.
    for chunk in chunks:
        assert chunk["start_timestamp_seconds"] in [*stamps, None]
        assert chunk["end_timestamp_seconds"] in [*stamps, None]
    closed = [(c["start_timestamp_seconds"], c["end_timestamp_seconds"]) for c in chunks if c["end_timestamp_seconds"]]
    assert closed == sorted(closed) and len(closed) >= 1
    assert "".join(texts(result)) == text_of(whisper, ids)


def test_streaming_sends_every_chunk_in_order_and_the_reply_repeats_them(whisper: dict[str, Any]) -> None:
    audio = speech(3, 7)
    sent: list[tuple[int, Any]] = []
    ctx = BatchContext(stream=True, emit=lambda index, value: sent.append((index, value)))
    task = whisper_task(whisper, language="en", chunk_num_seconds=1, context_num_seconds=0.1)
    [streamed] = run(task, [tensor(audio)], ctx)
    [plain] = run(task, [tensor(audio)])
    assert len(sent) >= 2
    assert [index for index, _ in sent] == [0] * len(sent)
    assert [value for _, value in sent] == streamed["chunks"] == plain["chunks"]


def test_bad_options_and_items(whisper: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedError, match='invalid language "xx", expected one of: "af", "am"'):
        whisper_task(whisper, language=b"xx")
    with pytest.raises(BadInputError, match="more than double"):
        whisper_task(whisper, chunk_num_seconds=2, context_num_seconds=1)
    task = whisper_task(whisper, language="en")
    bad = run(task, [tensor(np.zeros((2, 2), np.float32)), {Atom("sound"): 1}, tensor(np.zeros(0, np.float32))])
    assert [type(r) for r in bad] == [BadInputError] * 3
    assert ":audio key" in bad[1].message
