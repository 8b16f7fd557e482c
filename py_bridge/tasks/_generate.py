"""Bumblebee's generation config, carried out with ``transformers``' ``generate``.

The shim sends the serving's ``%PyBridge.Text.GenerationConfig{}`` as a map
with Bumblebee's field names. :class:`GenerationSettings` reads it, and
:meth:`GenerationSettings.generate_kwargs` turns it into ``generate``
arguments with Bumblebee's meaning:

* **Lengths.** For a decoder-only model ``max_new_tokens`` counts tokens after
  the (padded) prompt, as in both libraries. For an encoder-decoder model
  Bumblebee bounds the whole decoder sequence by ``1 + max_new_tokens``, so a
  translation, whose decoder starts with two tokens (start and target
  language), gets one token fewer; the same bound is passed here as
  ``max_length``. An absolute ``max_length``/``min_length`` counts the prompt
  as padded when the item is alone, so a prompt gives the same text whatever
  it is batched with.
* **Strategies.** ``greedy_search`` is ``do_sample=False``;
  ``multinomial_sampling`` is ``do_sample=True`` with ``top_k``/``top_p`` only
  when given (``transformers`` would otherwise apply its own top-k of 50).
  ``contrastive_search`` left ``transformers`` 5 for a hub download, so it
  runs in :mod:`py_bridge.tasks._contrastive`.
* **Token rules.** ``suppressed_token_ids``, ``forced_bos_token_id``,
  ``forced_eos_token_id``, ``no_repeat_ngram_length`` and the EOS/pad ids map
  to their ``generate`` namesakes; ``forced_token_ids`` (``{index, id}``
  pairs, gone from ``transformers`` 5) is :class:`ForcedTokensProcessor`.

Only the serving's config counts: the model's own ``generation_config.json``
is replaced by a blank one at load time, because ``generate`` fills every
unset field from it and Bumblebee does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from py_bridge.errors import BadInputError, UnsupportedError

STRATEGIES = ("greedy_search", "multinomial_sampling", "contrastive_search")


def _int_or_none(config: dict[str, Any], name: str) -> int | None:
    value = config.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInputError(f"expected :{name} in the generation config to be an integer, got: {value!r}")
    return value


def _int_list(config: dict[str, Any], name: str) -> list[int]:
    value = config.get(name)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise BadInputError(f"expected :{name} in the generation config to be a list of integers, got: {value!r}")
    return values


@dataclass
class GenerationSettings:
    """The fields of Bumblebee's ``GenerationConfig`` that drive generation."""

    max_new_tokens: int | None = 20
    min_new_tokens: int | None = None
    max_length: int | None = None
    min_length: int | None = None
    strategy: str = "greedy_search"
    top_k: int | None = None
    top_p: float | None = None
    alpha: float | None = None
    decoder_start_token_id: int | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | None = None
    forced_token_ids: list[tuple[int, int]] = field(default_factory=list)
    suppressed_token_ids: list[int] = field(default_factory=list)
    no_repeat_ngram_length: int | None = None
    temperature: float | None = None
    bos_token_id: int | None = None
    eos_token_ids: list[int] = field(default_factory=list)
    pad_token_id: int | None = None

    @classmethod
    def from_term(cls, term: Any) -> GenerationSettings:
        """Read the generation config map the shim sends (atom keys)."""
        if not isinstance(term, dict):
            raise BadInputError(f"expected :generation_config to be a map, got: {type(term).__name__}")
        config = {str(k): v for k, v in term.items()}
        strategy = {str(k): v for k, v in (config.get("strategy") or {"type": "greedy_search"}).items()}
        kind = str(strategy.get("type"))
        if kind not in STRATEGIES:
            raise BadInputError(f"expected the strategy type to be one of {', '.join(STRATEGIES)}, got: {kind!r}")
        forced = config.get("forced_token_ids") or []
        if not all(isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(x, int) for x in p) for p in forced):
            raise BadInputError(
                f"expected :forced_token_ids to be a list of {{index, token_id}} pairs, got: {forced!r}"
            )
        settings = cls(
            max_new_tokens=_int_or_none(config, "max_new_tokens"),
            min_new_tokens=_int_or_none(config, "min_new_tokens"),
            max_length=_int_or_none(config, "max_length"),
            min_length=_int_or_none(config, "min_length"),
            strategy=kind,
            top_k=_int_or_none(strategy, "top_k"),
            top_p=_float_or_none(strategy, "top_p"),
            alpha=_float_or_none(strategy, "alpha"),
            decoder_start_token_id=_int_or_none(config, "decoder_start_token_id"),
            forced_bos_token_id=_int_or_none(config, "forced_bos_token_id"),
            forced_eos_token_id=_int_or_none(config, "forced_eos_token_id"),
            forced_token_ids=[(int(i), int(t)) for i, t in forced],
            suppressed_token_ids=_int_list(config, "suppressed_token_ids"),
            no_repeat_ngram_length=_int_or_none(config, "no_repeat_ngram_length"),
            temperature=_float_or_none(config, "temperature"),
            bos_token_id=_int_or_none(config, "bos_token_id"),
            eos_token_ids=_int_list(config, "eos_token_id"),
            pad_token_id=_int_or_none(config, "pad_token_id"),
        )
        if settings.max_new_tokens is None and settings.max_length is None:
            raise BadInputError("expected either :max_new_tokens or :max_length option, but neither was given")
        if settings.strategy == "contrastive_search" and (settings.top_k is None or settings.alpha is None):
            raise BadInputError("missing keys [:alpha, :top_k] for strategy :contrastive_search")
        if settings.pad_id() is None:
            raise UnsupportedError(
                "expected :pad_token_id (or :eos_token_id as a fallback) to be present in generation config"
            )
        return settings

    def pad_id(self) -> int | None:
        """The pad id, falling back to the first EOS id as Bumblebee does."""
        if self.pad_token_id is not None:
            return self.pad_token_id
        return self.eos_token_ids[0] if self.eos_token_ids else None

    def decoder_start_id(self) -> int | None:
        """The first decoder token of an encoder-decoder model."""
        return self.decoder_start_token_id if self.decoder_start_token_id is not None else self.bos_token_id

    @property
    def sampling(self) -> bool:
        return self.strategy == "multinomial_sampling"

    def prompt_reserve(self) -> int:
        """Positions a decoder-only prompt must leave free for the new tokens."""
        return self.max_new_tokens or 0

    def new_token_bounds(self, *, encoder_decoder: bool, prefix_length: int) -> tuple[int, int | None]:
        """How many tokens to generate at most and at least, as Bumblebee counts them.

        ``prefix_length`` is the decoder input's length: the prompt padded as
        if alone (decoder-only), or the decoder prefix (encoder-decoder).
        Raises BadInputError when the prefix leaves no room, with Bumblebee's words.
        """
        if self.max_new_tokens is not None:
            maximum = (1 if encoder_decoder else prefix_length) + self.max_new_tokens
        else:
            maximum = self.max_length  # type: ignore[assignment]  # from_term checked one is set
        if prefix_length >= maximum:
            raise BadInputError(
                f"the input sequence has {prefix_length} tokens, but max_length is set to {maximum}."
                " Consider increasing :max_new_tokens (or :max_length), or padding the input to a shorter length"
            )
        if self.min_new_tokens is not None:
            minimum: int | None = self.min_new_tokens
        elif self.min_length is not None:
            minimum = max(self.min_length - prefix_length, 0)
        else:
            minimum = None
        return maximum - prefix_length, minimum

    def generate_kwargs(self, *, max_new: int, min_new: int | None) -> dict[str, Any]:
        """``GenerationConfig`` fields for one ``generate`` call."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "min_new_tokens": min_new or None,
            "do_sample": self.sampling,
            "num_beams": 1,
            "pad_token_id": self.pad_id(),
            "eos_token_id": self.eos_token_ids or None,
            "bos_token_id": self.bos_token_id,
            "decoder_start_token_id": self.decoder_start_id(),
            "suppress_tokens": self.suppressed_token_ids or None,
            "forced_bos_token_id": self.forced_bos_token_id,
            "forced_eos_token_id": self.forced_eos_token_id,
            "no_repeat_ngram_size": self.no_repeat_ngram_length if (self.no_repeat_ngram_length or 0) > 0 else None,
        }
        if self.sampling:
            # 0 and 1.0 switch the warpers off; None would let generate's defaults (top_k=50) in.
            kwargs["top_k"] = self.top_k or 0
            kwargs["top_p"] = self.top_p if self.top_p is not None else 1.0
            kwargs["temperature"] = self.temperature if self.temperature is not None else 1.0
        return {k: v for k, v in kwargs.items() if v is not None}


def _float_or_none(config: dict[str, Any], name: str) -> float | None:
    value = config.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"expected :{name} in the generation config to be a number, got: {value!r}")
    return float(value)


def forced_tokens_processor(forced: list[tuple[int, int]]) -> Any:
    """A logits processor forcing ``token_id`` at sequence position ``index``.

    The position counts every token of the sequence, prompt (and padding)
    included, as Bumblebee's ``forced_token_ids`` does.
    """
    import torch
    from transformers import LogitsProcessor

    by_position = dict(forced)

    class ForcedTokensProcessor(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
            token = by_position.get(input_ids.shape[-1])
            if token is None:
                return scores
            forced_scores = torch.full_like(scores, -float("inf"))
            forced_scores[:, token] = 0
            return forced_scores

    return ForcedTokensProcessor()


def cancel_criteria(is_cancelled: Callable[[], bool]) -> Any:
    """A stopping criterion that ends generation once the batch is cancelled."""
    import torch
    from transformers import StoppingCriteria

    class CancelCriteria(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), is_cancelled(), dtype=torch.bool, device=input_ids.device)

    return CancelCriteria()


def generated_length(row: list[int], eos_ids: list[int]) -> int:
    """How many tokens were generated: up to and including the first EOS."""
    for position, token in enumerate(row):
        if token in eos_ids:
            return position + 1
    return len(row)
