"""Text generation, mirroring ``Bumblebee.Text.generation/4``.

Each item is ``%{text: String.t(), seed: integer | nil}`` (a bare string is
taken as the text); its result is
``%{results: [%{text: new_text, token_summary: %{input:, output:, padding:}}]}``
where ``text`` holds only the generated text, ``input`` counts the prompt's
tokens, ``output`` the generated ones (EOS included) and ``padding`` the pad
tokens added to the prompt.

Options:

* ``generation_config`` - Bumblebee's generation config as a map (see
  :mod:`py_bridge.tasks._generate`). Required.
* ``sequence_length`` - the compiled length(s), see :mod:`py_bridge.tasks._text`.

Works on ``:for_causal_language_modeling`` and ``:for_conditional_generation``
models. Prompts are padded on the left, as Bumblebee pads them, so a prompt
gives the same greedy text alone or in a batch; a prompt longer than the
model takes is truncated (special tokens kept), leaving room for
``max_new_tokens`` on decoder-only models.

Items that must not share a ``generate`` call run apart: a seeded sampling
item runs alone right after ``torch.manual_seed(seed)``, so its text depends
on its seed only; items whose absolute ``max_length`` leaves them different
numbers of new tokens run in separate groups. With ``stream`` (a streaming
request) each item runs alone and its text goes out in Bumblebee's chunks
(:mod:`py_bridge.tasks._text_stream`). A cancelled batch stops between two
tokens and its unfinished items answer ``:cancelled``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from py_bridge.errors import BadInputError, BridgeError, CancelledError, UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._auto import architecture
from py_bridge.tasks._generate import GenerationSettings, cancel_criteria, forced_tokens_processor, generated_length
from py_bridge.tasks._text import TextTask, Tokenized
from py_bridge.tasks._text_stream import streamer_class
from py_bridge.tasks.base import BatchContext, ItemResult, as_text, validate_each

log = logging.getLogger(__name__)

_RESULTS, _TEXT, _SUMMARY = Atom("results"), Atom("text"), Atom("token_summary")
_INPUT, _OUTPUT, _PADDING = Atom("input"), Atom("output"), Atom("padding")


@dataclass
class Prompt:
    """One item ready to generate from."""

    index: int
    tokens: Tokenized
    seed: int | None
    #: The decoder's first tokens (encoder-decoder models only).
    decoder_prefix: list[int] | None = None
    max_new: int = 0
    min_new: int | None = None


def parse_seed(item: dict[str, Any]) -> int | None:
    seed = item.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadInputError(f"expected :seed to be an integer or nil, got: {seed!r}")
    return seed


class Generation(TextTask):
    """Generates a continuation of each prompt with the model's ``generate``."""

    name = "generation"
    architectures: ClassVar[tuple[str, ...]] = ("for_causal_language_modeling", "for_conditional_generation")

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        self.settings = GenerationSettings.from_term(options.get("generation_config"))
        self.decoder_only = architecture(model) == "for_causal_language_modeling"
        super().__init__(model, options)
        from transformers import GenerationConfig

        # generate fills unset fields from the model's own config; only the
        # serving's config may count, as in Bumblebee.
        self.hf_model.generation_config = GenerationConfig()
        self.encoder_decoder = bool(getattr(self.hf_model.config, "is_encoder_decoder", False))
        self.tokenizer.padding_side = "left"
        if self.encoder_decoder and self.settings.decoder_start_id() is None:
            raise UnsupportedError(
                "expected :decoder_start_token_id (or :bos_token_id) in the generation config of an "
                "encoder-decoder model"
            )
        self._backend = getattr(self.tokenizer, "backend_tokenizer", None)

    def max_positions(self) -> int | None:
        limit = super().max_positions()
        if limit is None or not self.decoder_only:
            return limit
        # The prompt and the new tokens share the position table.
        reserve = self.settings.prompt_reserve()
        return limit - reserve if limit > reserve else limit

    # -- items ----------------------------------------------------------------------

    def parse(self, item: Any) -> tuple[str, int | None]:
        """An item: a string, or a map with ``:text`` and an optional ``:seed``."""
        if isinstance(item, dict):
            fields = {str(k): v for k, v in item.items()}
            if "text" not in fields:
                raise BadInputError(f"expected the input map to have :text key, got keys: {sorted(fields)}")
            return as_text(fields["text"], ":text"), parse_seed(fields)
        return as_text(item, "input"), None

    def prepare(self, items: list[Any]) -> tuple[list[Prompt], list[ItemResult]]:
        """Parse and tokenize every item; bad ones get their error in place."""
        good, parsed, results = validate_each(items, self.parse)
        tokenized = self.encoder.tokenize([text for text, _ in parsed])
        prompts = []
        for index, (_, seed), tokens in zip(good, parsed, tokenized, strict=True):
            if isinstance(tokens, BridgeError):
                results[index] = tokens
                continue
            prefix = [self.settings.decoder_start_id()] if self.encoder_decoder else None
            prompts.append(Prompt(index, tokens, seed, prefix))  # type: ignore[arg-type]
        return self.bound(prompts, results), results

    def bound(self, prompts: list[Prompt], results: list[ItemResult]) -> list[Prompt]:
        """Work out each prompt's new-token bounds; a prompt with no room fails alone."""
        kept = []
        for prompt in prompts:
            if self.encoder_decoder:
                prefix_length = len(prompt.decoder_prefix or [])
            else:
                prefix_length = self.encoder.padded_length(len(prompt.tokens))
            try:
                prompt.max_new, prompt.min_new = self.settings.new_token_bounds(
                    encoder_decoder=self.encoder_decoder, prefix_length=prefix_length
                )
            except BridgeError as error:
                results[prompt.index] = error
                continue
            limit = TextTask.max_positions(self)
            if self.decoder_only and limit is not None and len(prompt.tokens) + prompt.max_new > limit:
                # Past its position table a model fails deep inside torch.
                results[prompt.index] = BadInputError(
                    f"the prompt ({len(prompt.tokens)} tokens) and max_new_tokens ({prompt.max_new}) "
                    f"exceed the model's maximum of {limit} positions; lower :max_new_tokens"
                )
                continue
            kept.append(prompt)
        return kept

    # -- running ----------------------------------------------------------------------

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        prompts, results = self.prepare(items)
        if ctx.stream:
            groups = [[p] for p in prompts]
        else:
            groups = self.groups(prompts)
        for group in groups:
            if ctx.is_cancelled():
                outcomes: list[ItemResult] = [CancelledError("cancelled before it ran")] * len(group)
            else:
                emit = self._emitter(ctx, group[0].index) if ctx.stream else None
                outcomes = self.generate(group, ctx.is_cancelled, emit)
            for prompt, outcome in zip(group, outcomes, strict=True):
                results[prompt.index] = outcome
        return results

    def groups(self, prompts: list[Prompt]) -> list[list[Prompt]]:
        """Prompts that can share one ``generate`` call, in order of first appearance."""
        groups: dict[Any, list[Prompt]] = {}
        for prompt in prompts:
            if self.settings.sampling:
                key: Any = ("alone", prompt.index)
            else:
                key = (prompt.max_new, prompt.min_new, len(prompt.decoder_prefix or []))
            groups.setdefault(key, []).append(prompt)
        return list(groups.values())

    def _emitter(self, ctx: BatchContext, index: int) -> Callable[[str], None]:
        def emit(chunk: str) -> None:
            # Chunks still flushing after a cancel would go to nobody.
            if not ctx.is_cancelled():
                ctx.emit(index, chunk)

        return emit

    def generate(
        self, group: list[Prompt], is_cancelled: Callable[[], bool], emit: Callable[[str], None] | None
    ) -> list[ItemResult]:
        """Run one ``generate`` call for prompts that share their bounds."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        inputs = self.encoder.collate([p.tokens for p in group], self.device)
        inputs.pop("token_type_ids", None)
        padded = inputs["input_ids"].shape[1]
        if self.encoder_decoder:
            prefix = torch.tensor([p.decoder_prefix for p in group], dtype=torch.long, device=self.device)
            inputs["decoder_input_ids"] = prefix
            skip = prefix.shape[1]
        else:
            skip = padded
        first = group[0]
        kwargs = self.settings.generate_kwargs(max_new=first.max_new, min_new=first.min_new)
        if first.seed is not None and self.settings.sampling:
            torch.manual_seed(first.seed % (1 << 64))
        processors = LogitsProcessorList()
        if self.settings.forced_token_ids:
            processors.append(forced_tokens_processor(self.settings.forced_token_ids))
        stopping = StoppingCriteriaList([cancel_criteria(is_cancelled)])
        streamer = streamer_class()(self.decode, emit) if emit is not None else None
        with torch.inference_mode():
            if self.settings.strategy == "contrastive_search":
                from py_bridge.tasks._contrastive import contrastive_search

                sequences = contrastive_search(
                    self.hf_model, inputs, self.settings, kwargs, processors, is_cancelled, streamer
                )
            else:
                sequences = self.hf_model.generate(
                    **inputs,
                    generation_config=GenerationConfig(**kwargs),
                    logits_processor=processors,
                    stopping_criteria=stopping,
                    streamer=streamer,
                )
        if is_cancelled():
            log.info("generation cancelled after %d of %d new tokens", sequences.shape[1] - skip, first.max_new)
            return [CancelledError("the request was cancelled while generating")] * len(group)
        outcomes: list[ItemResult] = []
        for prompt, row in zip(group, sequences[:, skip:].tolist(), strict=True):
            count = generated_length(row, self.settings.eos_token_ids)
            outcomes.append(self.result(self.decode(row[:count]), len(prompt.tokens), count, padded))
        return outcomes

    def decode(self, ids: list[int]) -> str:
        """Decode without special tokens and without clean-up, as Bumblebee's Rust tokenizer does."""
        if self._backend is not None:
            return self._backend.decode(ids, skip_special_tokens=True)
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    @staticmethod
    def result(text: str, input_length: int, output_length: int, padded_length: int) -> dict[Atom, Any]:
        summary = {_INPUT: input_length, _OUTPUT: output_length, _PADDING: padded_length - input_length}
        return {_RESULTS: [{_TEXT: text, _SUMMARY: summary}]}


TASK = Generation
