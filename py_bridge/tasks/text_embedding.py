"""Text embeddings, mirroring ``Bumblebee.Text.text_embedding/3``.

Each item is one text; its result is ``%{embedding: tensor}``, an f32 tensor
of rank 1 ``{hidden}`` when the output is pooled, otherwise the rank of the
chosen output (``{sequence, hidden}`` for ``:hidden_state``).

For example, sentence-transformers' all-MiniLM-L6-v2 embeds with::

    %{output_attribute: :hidden_state, output_pool: :mean_pooling, embedding_processor: :l2_norm}

Options (as Bumblebee's):

* ``output_attribute`` - which model output to embed. ``:pooled_state`` (the
  default) is the pooler output, ``:hidden_state`` the last hidden state; any
  other name is looked up on the transformers output (``:logits``,
  ``:text_embeds``, ...). A name the output lacks fails at load time.
* ``output_pool`` - ``nil`` (the default), ``:mean_pooling``,
  ``:cls_token_pooling`` or ``:last_token_pooling``; it pools a
  ``{batch, sequence, hidden}`` output over the tokens the attention mask keeps.
* ``embedding_processor`` - ``nil`` (the default) or ``:l2_norm``.
* ``sequence_length`` - the compiled length(s), see :mod:`py_bridge.tasks._text`.

Texts longer than the model takes are truncated, never refused. A
sentence-transformers model directory declares the length it was trained for
(``max_seq_length`` in ``sentence_bert_config.json``, 256 for all-MiniLM-L6-v2);
that limit is kept, so long texts embed exactly as sentence-transformers
embeds them. (Bumblebee reads no such file and has no limit of its own without
``:compile``.) Unpooled
outputs keep one row per token of the item (or per position of its compiled
length): Bumblebee's would also carry the padding of whatever it was batched
with, which depends on the other callers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from py_bridge.errors import UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._text import TextTask, Tokenized, choice_option, parse_text
from py_bridge.tasks.base import BatchContext, ItemResult
from py_bridge.tensor import Tensor

log = logging.getLogger(__name__)

#: Bumblebee output names -> transformers output names.
ATTRIBUTE_ALIASES = {"hidden_state": "last_hidden_state", "pooled_state": "pooler_output"}

POOLS = (None, "mean_pooling", "cls_token_pooling", "last_token_pooling")
PROCESSORS = (None, "l2_norm")

_EMBEDDING = Atom("embedding")


class TextEmbedding(TextTask):
    """Embeds texts with one of the model's outputs, optionally pooled and normalized."""

    name = "text_embedding"

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        attribute = options.get("output_attribute")
        self.output_attribute = "pooled_state" if attribute is None else _name(attribute)
        self.output_pool = choice_option(options, "output_pool", POOLS, None)
        self.embedding_processor = choice_option(options, "embedding_processor", PROCESSORS, None)
        super().__init__(model, options)
        # Find a wrong output_attribute or output_pool now, when the worker
        # reports a load failure, rather than in every batch.
        self.run_texts(["hello world"], lambda t: t, lambda t: t, self._embed)

    def max_positions(self) -> int | None:
        limit = super().max_positions()
        declared = _sentence_transformers_max_length(self.model.path)
        if declared is not None and (limit is None or declared < limit):
            log.debug("truncating at max_seq_length %d from sentence_bert_config.json", declared)
            return declared
        return limit

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return self.run_texts(items, parse_text, lambda text: text, self._embed)

    def _embed(self, texts: list[str], tokens: list[Tokenized], inputs: dict[str, Any]) -> list[ItemResult]:
        import torch

        output = self._select(self.forward(inputs)).float()
        mask = inputs["attention_mask"]
        if self.output_pool is not None:
            if output.dim() != 3:
                raise UnsupportedError(
                    f"expected the output tensor to have rank 3 to apply :output_pool, got: {output.dim()}. "
                    "You should either disable pooling or pick a different output using :output_attribute"
                )
            output = _pool(output, mask, self.output_pool)
        if self.embedding_processor == "l2_norm":
            output = torch.nn.functional.normalize(output, p=2.0, dim=-1)
        if output.dim() >= 3:
            # One row per position: keep the item's own positions, not the padding
            # its batch neighbours forced on it.
            left = self.tokenizer.padding_side == "left"
            lengths = [self.encoder.padded_length(len(t)) for t in tokens]
            rows = [output[i, -n:] if left else output[i, :n] for i, n in enumerate(lengths)]
        else:
            rows = list(output)
        return [{_EMBEDDING: Tensor.from_torch(row.contiguous())} for row in rows]

    def _select(self, output: Any) -> Any:
        import torch

        key = ATTRIBUTE_ALIASES.get(self.output_attribute, self.output_attribute)
        value = output.get(key) if hasattr(output, "get") else None
        if value is None:
            reverse = {v: k for k, v in ATTRIBUTE_ALIASES.items()}
            keys = sorted(reverse.get(k, k) for k, v in output.items() if torch.is_tensor(v))
            raise UnsupportedError(
                f"key :{self.output_attribute} not found in the output map, you may want to set "
                f":output_attribute to one of the map keys: {', '.join(':' + k for k in keys)}"
            )
        if not torch.is_tensor(value):
            raise UnsupportedError(f"expected :{self.output_attribute} to be a tensor, got: {type(value).__name__}")
        return value


def _pool(hidden: Any, mask: Any, how: str) -> Any:
    """Pool ``{batch, sequence, hidden}`` into ``{batch, hidden}`` over unmasked tokens.

    CLS and last-token pooling look for the first and last unmasked position
    rather than assuming right padding (Bumblebee assumes it; its tokenizers
    pad right), so left-padded decoder tokenizers pool the right token.
    """
    import torch

    if how == "mean_pooling":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    if how == "cls_token_pooling":
        index = torch.where(mask.bool(), positions, mask.shape[1]).min(dim=1).values
    else:
        index = torch.where(mask.bool(), positions, -1).max(dim=1).values
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def _sentence_transformers_max_length(path: Path) -> int | None:
    try:
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("max_seq_length") if isinstance(config, dict) else None
    return value if isinstance(value, int) and value > 0 else None


def _name(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


TASK = TextEmbedding
