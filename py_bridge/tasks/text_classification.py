"""Text classification, mirroring ``Bumblebee.Text.text_classification/3``.

Each item is a text or a ``{text, text}`` pair (for NLI or paraphrase models);
its result is ``%{predictions: [%{label: String.t(), score: float}]}``, at most
``top_k`` predictions, highest score first. A label the model's config does not
name comes back as ``"LABEL_<index>"``.

Options (as Bumblebee's):

* ``top_k`` - how many predictions to return. Defaults to 5; capped at the
  number of labels. ``nil`` returns every label.
* ``scores_function`` - ``:softmax`` (the default), ``:sigmoid`` (multi-label
  models) or ``:none`` (raw logits).
* ``sequence_length`` - the compiled length(s), see :mod:`py_bridge.tasks._text`.

Requires a ``:for_sequence_classification`` model.
"""

from __future__ import annotations

from typing import Any

from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._text import TextTask, Tokenized, choice_option, int_option, parse_text_or_pair
from py_bridge.tasks.base import BatchContext, ItemResult

SCORES_FUNCTIONS = ("softmax", "sigmoid", "none")

_PREDICTIONS, _LABEL, _SCORE = Atom("predictions"), Atom("label"), Atom("score")


class TextClassification(TextTask):
    """Scores each text against the model's labels and keeps the top ``top_k``."""

    name = "text_classification"
    architectures = ("for_sequence_classification",)

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        self.top_k = int_option(options, "top_k", 5)
        self.scores_function = choice_option(options, "scores_function", SCORES_FUNCTIONS, "softmax")
        super().__init__(model, options)
        self.labels = labels_of(self.model, self.hf_model)

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return self.run_texts(items, parse_text_or_pair, lambda text: text, self._classify)

    def _classify(self, texts: list[Any], tokens: list[Tokenized], inputs: dict[str, Any]) -> list[ItemResult]:
        scores = apply_scores_function(self.forward(inputs).logits.float(), self.scores_function)
        return [{_PREDICTIONS: top_predictions(row, self.top_k, self.labels)} for row in scores]


def labels_of(model: LoadedModel, hf_model: Any) -> dict[int, str]:
    """Index -> label, from the model spec or else the loaded config."""
    labels = model.spec.get("id_to_label") or getattr(hf_model.config, "id2label", None) or {}
    return {int(k): str(v) for k, v in labels.items()}


def apply_scores_function(logits: Any, how: str | None) -> Any:
    """Bumblebee's ``scores_function``: softmax, sigmoid or the logits as they are."""
    if how == "softmax":
        return logits.softmax(dim=-1)
    if how == "sigmoid":
        return logits.sigmoid()
    return logits


def top_predictions(scores: Any, top_k: int | None, labels: dict[int, str]) -> list[dict[Atom, Any]]:
    """The ``top_k`` highest scores of a 1-D tensor as ``%{label, score}`` maps, highest first."""
    import torch

    k = scores.shape[-1] if top_k is None else min(top_k, scores.shape[-1])
    values, indices = torch.topk(scores, k)
    return [
        {_LABEL: labels.get(index, f"LABEL_{index}"), _SCORE: value}
        for value, index in zip(values.tolist(), indices.tolist(), strict=True)
    ]


TASK = TextClassification
