"""Cross-encoder scoring, mirroring ``Bumblebee.Text.cross_encoding/3``.

Each item is a ``{text, text}`` pair (a query and a passage, say); the model
reads both together and its single logit is the result, ``%{score: float}``,
raw: no sigmoid or softmax is applied, as in Bumblebee. Rank passages by it,
or apply a sigmoid yourself where the model was trained for one.

Options: ``sequence_length`` (see :mod:`py_bridge.tasks._text`). Requires a
``:for_sequence_classification`` model with exactly one label, like the
ms-marco cross-encoders.
"""

from __future__ import annotations

from typing import Any

from py_bridge.errors import UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._text import TextTask, Tokenized, parse_pair
from py_bridge.tasks.base import BatchContext, ItemResult

_SCORE = Atom("score")


class CrossEncoding(TextTask):
    """Scores text pairs with a one-logit sequence classifier."""

    name = "cross_encoding"
    architectures = ("for_sequence_classification",)

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        super().__init__(model, options)
        num_labels = getattr(self.hf_model.config, "num_labels", None)
        if num_labels != 1:
            raise UnsupportedError(
                f"expected a cross-encoder with exactly one output logit, got a model with {num_labels}"
            )

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return self.run_texts(items, parse_pair, lambda pair: pair, self._score)

    def _score(self, pairs: list[tuple[str, str]], tokens: list[Tokenized], inputs: dict[str, Any]) -> list[ItemResult]:
        logits = self.forward(inputs).logits.float()[:, 0]
        return [{_SCORE: value} for value in logits.tolist()]


TASK = CrossEncoding
