"""Choosing the ``transformers`` Auto class from a Bumblebee architecture name.

Bumblebee picks a model's head from ``spec.architecture`` (``:base``,
``:for_sequence_classification``, ...), which comes from ``config.json`` or
from the user's ``architecture:`` override. Loading goes the same way here: the
architecture in the model spec names an Auto class, so a
``BertForSequenceClassification`` checkpoint loaded with ``architecture:
:base`` gives its encoder alone, as in Bumblebee.

Tasks also check the architecture they need, and refuse the wrong one with
Bumblebee's wording, before loading any weights.
"""

from __future__ import annotations

import logging
from typing import Any

from py_bridge.errors import UnsupportedError
from py_bridge.loading import LoadedModel

log = logging.getLogger(__name__)

#: Bumblebee architecture name -> transformers Auto class name.
AUTO_CLASSES: dict[str, str] = {
    "base": "AutoModel",
    "encoder": "AutoModel",
    "for_sequence_classification": "AutoModelForSequenceClassification",
    "for_token_classification": "AutoModelForTokenClassification",
    "for_question_answering": "AutoModelForQuestionAnswering",
    "for_masked_language_modeling": "AutoModelForMaskedLM",
    "for_causal_language_modeling": "AutoModelForCausalLM",
    "for_conditional_generation": "AutoModelForSeq2SeqLM",
    "for_multiple_choice": "AutoModelForMultipleChoice",
    "for_next_sentence_prediction": "AutoModelForNextSentencePrediction",
    "for_pre_training": "AutoModelForPreTraining",
    "for_image_classification": "AutoModelForImageClassification",
    "for_image_classification_with_teacher": "AutoModelForImageClassification",
    "for_masked_image_modeling": "AutoModelForMaskedImageModeling",
    "backbone": "AutoBackbone",
}


def architecture(model: LoadedModel) -> str:
    """The model's architecture name, as a plain string (``"base"`` when unknown)."""
    return str(model.spec.get("architecture") or "base")


def require_architecture(model: LoadedModel, *allowed: str) -> None:
    """Raise UnsupportedError unless the model's architecture is one of ``allowed``."""
    actual = architecture(model)
    if actual in allowed:
        return
    if len(allowed) == 1:
        expected = f"a model with architecture :{allowed[0]}"
    else:
        expected = f"a model architecture to be either of {', '.join(':' + a for a in allowed)}"
    raise UnsupportedError(
        f"expected {expected}, got :{actual} (model {model.spec.get('hf_architecture') or model.path})"
    )


def auto_class(name: str) -> Any:
    """The transformers Auto class for architecture ``name``, or UnsupportedError."""
    import transformers

    try:
        return getattr(transformers, AUTO_CLASSES[name])
    except (KeyError, AttributeError) as exc:
        raise UnsupportedError(
            f"no transformers Auto class for architecture :{name}; known: {', '.join(sorted(AUTO_CLASSES))}"
        ) from exc


def load_model(model: LoadedModel, *allowed: str) -> Any:
    """Check the architecture (when ``allowed`` is given), then load with its Auto class.

    The model comes back on its device, in eval mode.
    """
    if allowed:
        require_architecture(model, *allowed)
    name = architecture(model)
    cls = auto_class(name)
    log.debug("loading %s with %s", model.path, cls.__name__)
    return model.load(cls)
