"""What the text tasks share: item parsing, options, tokenizing and padding.

Bumblebee's text servings all tokenize the same way, and so do these tasks:

* **Truncation, never an error.** Without ``:compile`` a text longer than the
  model takes is cut to the model's limit (special tokens kept); with
  ``sequence_length`` it is cut to the largest compiled length.
* **Padding to a compiled length.** ``sequence_length`` is one length or a
  list of them. A batch is padded to the smallest length that fits its longest
  item, as Bumblebee pads each input to the smallest compiled shape that fits.
  Without it a batch is padded to its longest item.
* **Per-item failures.** A text that cannot be tokenized (for instance a
  question too long to leave room for any context) fails alone with
  :class:`~py_bridge.errors.BadInputError`; its neighbours still run.

Offsets from the fast tokenizers count Unicode code points; Bumblebee reports
UTF-8 byte offsets, so :func:`byte_offsets` converts them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, ClassVar

from py_bridge.errors import BadInputError, BridgeError, UnsupportedError
from py_bridge.loading import LoadedModel
from py_bridge.tasks._auto import load_model
from py_bridge.tasks.base import ItemResult, Task, as_text, validate_each

log = logging.getLogger(__name__)

#: One text, or a ``{text, text}`` pair.
TextInput = str | tuple[str, str]

# Tokenizers that do not set a limit report this huge sentinel (int(1e30)).
_NO_LIMIT = 10**12


# -- items ------------------------------------------------------------------------


def parse_text(item: Any) -> str:
    """An item that must be one string."""
    return as_text(item, "input")


def parse_pair(item: Any) -> tuple[str, str]:
    """An item that must be a ``{string, string}`` tuple."""
    if not isinstance(item, tuple) or len(item) != 2:
        raise BadInputError(f"expected a {{string, string}} pair, got: {_describe(item)}")
    return as_text(item[0], "the first text of the pair"), as_text(item[1], "the second text of the pair")


def parse_text_or_pair(item: Any) -> TextInput:
    """An item that is a string or a ``{string, string}`` pair."""
    if isinstance(item, tuple):
        return parse_pair(item)
    return as_text(item, "input")


def _describe(item: Any) -> str:
    if isinstance(item, tuple):
        return f"a tuple of {len(item)} elements"
    return type(item).__name__


# -- options ------------------------------------------------------------------------


def choice_option(options: dict[str, Any], name: str, allowed: Sequence[str | None], default: str | None) -> str | None:
    """An option whose value is one of a few atoms (or nil), as a plain string."""
    value = options.get(name, default)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is not None:
        value = str(value)
    if value not in allowed:
        shown = ", ".join("nil" if a is None else f":{a}" for a in allowed)
        raise BadInputError(f"expected :{name} to be one of {shown}, got: {value!r}")
    return value


def int_option(options: dict[str, Any], name: str, default: int | None, *, minimum: int = 1) -> int | None:
    """A non-negative integer option; nil stays None (meaning "no limit" for top_k)."""
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInputError(f"expected :{name} to be an integer >= {minimum}, got: {value!r}")
    return value


def string_list_option(options: dict[str, Any], name: str, default: list[str] | None) -> list[str] | None:
    """A list of strings (binaries from Elixir, decoded as UTF-8)."""
    value = options.get(name, default)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise BadInputError(f"expected :{name} to be a list of strings, got: {type(value).__name__}")
    return [as_text(v, f"each element of :{name}") for v in value]


def text_option(options: dict[str, Any], name: str, default: str | None) -> str | None:
    """A string option; nil gives the default."""
    value = options.get(name)
    return default if value is None else as_text(value, f":{name}")


def sequence_lengths(options: dict[str, Any]) -> list[int] | None:
    """The compiled sequence lengths, ascending, or None when not compiled.

    Accepts ``sequence_length`` directly, or inside ``compile`` (a keyword list
    of ``{key, value}`` tuples or a map), so either shape of the shim's options works.
    """
    value = options.get("sequence_length")
    compile_opts = options.get("compile")
    if value is None and compile_opts is not None:
        pairs = compile_opts.items() if isinstance(compile_opts, dict) else compile_opts
        for entry in pairs:
            if isinstance(entry, tuple) and len(entry) == 2 and str(entry[0]) == "sequence_length":
                value = entry[1]
    if value is None:
        return None
    lengths = value if isinstance(value, (list, tuple)) else [value]
    if not lengths or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths):
        raise BadInputError(f"expected :sequence_length to be a positive integer or a list of them, got: {value!r}")
    return sorted(set(lengths))


# -- tokenizing ------------------------------------------------------------------------


@dataclass
class Tokenized:
    """One tokenized item, before padding.

    ``offsets`` are code-point offsets into the text they belong to (the
    first or second text of a pair, see ``sequence_ids``); special tokens have
    ``(0, 0)``.
    """

    input_ids: list[int]
    token_type_ids: list[int] | None = None
    offsets: list[tuple[int, int]] | None = None
    special_tokens_mask: list[int] | None = None
    word_ids: list[int | None] | None = None
    sequence_ids: list[int | None] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


class TextEncoder:
    """Tokenizes batches with one tokenizer and pads them to one length."""

    def __init__(self, tokenizer: Any, *, max_positions: int | None, lengths: list[int] | None) -> None:
        self.tokenizer = tokenizer
        self.lengths = lengths
        self.model_limit = model_limit(tokenizer, max_positions)
        if lengths and self.model_limit is not None and lengths[-1] > self.model_limit:
            raise BadInputError(
                f"expected :sequence_length to be at most {self.model_limit} (the longest input this model "
                f"takes), got: {lengths[-1]}"
            )
        self.max_length = lengths[-1] if lengths else self.model_limit

    def tokenize(
        self, texts: Sequence[TextInput], *, truncation: str = "longest_first", details: bool = False
    ) -> list[Tokenized | BridgeError]:
        """Tokenize every text (or pair), truncated to the limit.

        Singles and pairs are tokenized in one call each; if a call fails, its
        items are retried one by one so that only the culprit fails. With
        ``details`` the offsets, special-token mask, word ids and sequence ids
        are kept too.
        """
        results: list[Tokenized | BridgeError] = [BadInputError("not tokenized")] * len(texts)
        singles = [i for i, t in enumerate(texts) if isinstance(t, str)]
        pairs = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        for group in (singles, pairs):
            if not group:
                continue
            try:
                encoded = self._encode([texts[i] for i in group], truncation, details)
            except Exception as exc:  # tokenizers raise plain Exception subclasses
                if len(group) == 1:
                    results[group[0]] = BadInputError(
                        f"cannot tokenize the input: {exc}", python_type=type(exc).__name__
                    )
                    continue
                log.debug("tokenizing %d items failed (%s); retrying one by one", len(group), exc)
                for i in group:
                    results[i] = self.tokenize([texts[i]], truncation=truncation, details=details)[0]
                continue
            for i, item in zip(group, encoded, strict=True):
                results[i] = item if len(item) else BadInputError("the input has no tokens after tokenization")
        return results

    def _encode(self, texts: list[TextInput], truncation: str, details: bool) -> list[Tokenized]:
        firsts = [t if isinstance(t, str) else t[0] for t in texts]
        seconds = None if isinstance(texts[0], str) else [t[1] for t in texts]
        enc = self.tokenizer(
            firsts,
            seconds,
            padding=False,
            truncation=truncation if self.max_length is not None else False,
            max_length=self.max_length,
            return_offsets_mapping=details,
            return_special_tokens_mask=details,
            return_attention_mask=False,
        )
        out = []
        for i, ids in enumerate(enc["input_ids"]):
            item = Tokenized(
                input_ids=ids, token_type_ids=enc["token_type_ids"][i] if "token_type_ids" in enc else None
            )
            if details:
                item.offsets = [tuple(o) for o in enc["offset_mapping"][i]]
                item.special_tokens_mask = enc["special_tokens_mask"][i]
                item.word_ids = enc.word_ids(i)
                item.sequence_ids = enc.sequence_ids(i)
            out.append(item)
        return out

    def padded_length(self, longest: int) -> int:
        """The length a batch whose longest item has ``longest`` tokens is padded to."""
        if not self.lengths:
            return longest
        return next((n for n in self.lengths if n >= longest), self.lengths[-1])

    def collate(self, items: Sequence[Tokenized], device: Any = "cpu") -> dict[str, Any]:
        """Pad items into model inputs: ``input_ids``, ``attention_mask`` and, if
        the tokenizer makes them, ``token_type_ids``. Padding goes on the
        tokenizer's side (left for decoder-only models saved that way)."""
        import torch

        length = self.padded_length(max(len(item) for item in items))
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            # Any id will do: the attention mask hides padding.
            pad_id = self.tokenizer.eos_token_id or 0
        ids = torch.full((len(items), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), length), dtype=torch.long)
        with_types = items[0].token_type_ids is not None
        types = torch.full((len(items), length), self.tokenizer.pad_token_type_id, dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for row, item in enumerate(items):
            n = len(item)
            span = slice(length - n, length) if left else slice(0, n)
            ids[row, span] = torch.tensor(item.input_ids, dtype=torch.long)
            mask[row, span] = 1
            if with_types and item.token_type_ids is not None:
                types[row, span] = torch.tensor(item.token_type_ids, dtype=torch.long)
        inputs = {"input_ids": ids, "attention_mask": mask}
        if with_types:
            inputs["token_type_ids"] = types
        return {k: v.to(device) for k, v in inputs.items()}


def model_limit(tokenizer: Any, max_positions: int | None) -> int | None:
    """The longest input the model takes: the tokenizer's limit and the
    position table's, whichever is smaller (None when neither is known)."""
    limits = [n for n in (getattr(tokenizer, "model_max_length", None), max_positions) if isinstance(n, int)]
    limits = [n for n in limits if 0 < n < _NO_LIMIT]
    return min(limits) if limits else None


def byte_offsets(text: str, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Turn code-point offsets into UTF-8 byte offsets into ``text``."""
    if text.isascii():
        return list(offsets)
    starts = [0, *accumulate(len(ch.encode("utf-8")) for ch in text)]
    return [(starts[a], starts[b]) for a, b in offsets]


# -- the task base ------------------------------------------------------------------------


class TextTask(Task):
    """A task over one text model and its tokenizer.

    Subclasses set ``architectures`` (empty: any) and implement ``run``,
    usually as one call to :meth:`run_texts`.
    """

    architectures: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        super().__init__(model, options)
        if not model.spec.get("has_tokenizer", True):
            raise UnsupportedError(f"the {self.name} task needs a tokenizer, and {model.path} has none")
        self.tokenizer = model.load_tokenizer()
        self.encoder = TextEncoder(
            self.tokenizer, max_positions=self.max_positions(), lengths=sequence_lengths(options)
        )
        self.hf_model = load_model(model, *self.architectures)

    def max_positions(self) -> int | None:
        """The longest input the model takes, from its spec; tasks may lower it."""
        return self.model.spec.get("max_positions")

    @property
    def device(self) -> Any:
        return self.hf_model.device

    def forward(self, inputs: dict[str, Any]) -> Any:
        """Run the model on padded inputs, without autograd."""
        import torch

        with torch.inference_mode():
            return self.hf_model(**inputs)

    def run_texts(
        self,
        items: list[Any],
        parse: Callable[[Any], Any],
        to_text: Callable[[Any], TextInput],
        predict: Callable[[list[Any], list[Tokenized], dict[str, Any]], list[ItemResult]],
        *,
        truncation: str = "longest_first",
        details: bool = False,
    ) -> list[ItemResult]:
        """The batch skeleton every text task shares.

        Parse each item (``parse``), tokenize what ``to_text`` makes of it,
        pad the items that tokenized, and hand them to ``predict`` together
        with their parsed values and tokens. Items that fail to parse or to
        tokenize get their error in place; the others are predicted together.
        """
        good, parsed, results = validate_each(items, parse)
        tokenized = self.encoder.tokenize([to_text(p) for p in parsed], truncation=truncation, details=details)
        ready = [(i, p, t) for i, p, t in zip(good, parsed, tokenized, strict=True) if not isinstance(t, BridgeError)]
        for i, t in zip(good, tokenized, strict=True):
            if isinstance(t, BridgeError):
                results[i] = t
        if ready:
            inputs = self.encoder.collate([t for _, _, t in ready], self.device)
            predictions = predict([p for _, p, _ in ready], [t for _, _, t in ready], inputs)
            for (i, _, _), result in zip(ready, predictions, strict=True):
                results[i] = result
        return results
