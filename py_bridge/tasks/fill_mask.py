"""Masked-token prediction, mirroring ``Bumblebee.Text.fill_mask/3``.

Each item is a text holding exactly one literal ``"[MASK]"``, which is
replaced by the tokenizer's own mask token (``"<mask>"`` for RoBERTa, for
instance); its result is ``%{predictions: [%{token: String.t(), score: float}]}``,
the ``top_k`` most likely tokens at the mask, highest first. Each token is
decoded on its own and has leading whitespace trimmed, so "Ġparis" and "paris"
both come back as "paris".

Options (as Bumblebee's):

* ``top_k`` - how many tokens to return. Defaults to 5.
* ``sequence_length`` - the compiled length(s), see :mod:`py_bridge.tasks._text`.

Requires a ``:for_masked_language_modeling`` model. A text whose mask is cut
off by truncation fails alone with ``:bad_input``.
"""

from __future__ import annotations

from typing import Any

from py_bridge.errors import BadInputError, UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._text import TextTask, Tokenized, int_option, parse_text
from py_bridge.tasks.base import BatchContext, ItemResult

MASK = "[MASK]"

_PREDICTIONS, _TOKEN, _SCORE = Atom("predictions"), Atom("token"), Atom("score")


class FillMask(TextTask):
    """Predicts the token behind the one ``[MASK]`` of each text."""

    name = "fill_mask"
    architectures = ("for_masked_language_modeling",)

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        self.top_k = int_option(options, "top_k", 5)
        super().__init__(model, options)
        if self.tokenizer.mask_token_id is None:
            raise UnsupportedError(f"the tokenizer of {model.path} has no mask token")

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return self.run_texts(items, self._parse, lambda text: text, self._fill)

    def _parse(self, item: Any) -> str:
        text = parse_text(item)
        count = text.count(MASK)
        if count != 1:
            raise BadInputError(f"expected exactly one occurrence of {MASK}, got: {count} in {text!r}")
        return text.replace(MASK, self.tokenizer.mask_token)

    def _fill(self, texts: list[str], tokens: list[Tokenized], inputs: dict[str, Any]) -> list[ItemResult]:
        import torch

        mask_id = self.tokenizer.mask_token_id
        logits = self.forward(inputs).logits
        at_mask = inputs["input_ids"] == mask_id
        results: list[ItemResult] = []
        for row in range(logits.shape[0]):
            positions = at_mask[row].nonzero()
            if positions.numel() == 0:
                results.append(BadInputError("the [MASK] token was cut off: the text is longer than the model takes"))
                continue
            scores = logits[row, int(positions[0])].float().softmax(dim=-1)
            k = scores.shape[-1] if self.top_k is None else min(self.top_k, scores.shape[-1])
            values, indices = torch.topk(scores, k)
            results.append(
                {
                    _PREDICTIONS: [
                        {_TOKEN: self.tokenizer.decode([index]).lstrip(), _SCORE: value}
                        for value, index in zip(values.tolist(), indices.tolist(), strict=True)
                    ]
                }
            )
        return results


TASK = FillMask
