"""Translation, mirroring ``Bumblebee.Text.translation/4``.

Each item is ``%{text:, source_language_token:, target_language_token:,
seed:}``, with language tokens as the tokenizer spells them (``"eng_Latn"``);
the result has the shape of :mod:`py_bridge.tasks.generation`'s.

As in Bumblebee, the source language token goes first in the encoder input
(through the tokenizer's ``src_lang``, for tokenizers that have one, such as
NLLB's), and the decoder starts from ``[decoder_start_token_id,
target_language_token]``, so the first generated token already follows the
target language. A language token that is not in the vocabulary fails its
item with ``:bad_input``.

Requires a ``:for_conditional_generation`` model. The shim refuses a list of
items with different source languages, as Bumblebee does; items of several
callers that meet in one batch are tokenized per source language.
"""

from __future__ import annotations

from typing import Any

from py_bridge.errors import BadInputError, BridgeError
from py_bridge.loading import LoadedModel
from py_bridge.tasks.base import ItemResult, as_text, validate_each
from py_bridge.tasks.generation import Generation, Prompt, parse_seed


class Translation(Generation):
    """Generates a translation of each text into its target language."""

    name = "translation"
    architectures = ("for_conditional_generation",)

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        super().__init__(model, options)
        self.vocab: dict[str, int] = self.tokenizer.get_vocab()

    def parse(self, item: Any) -> tuple[str, str, str, int | None]:  # type: ignore[override]
        if not isinstance(item, dict):
            raise BadInputError(f"expected a map, got: {type(item).__name__}")
        fields = {str(k): v for k, v in item.items()}
        missing = [k for k in ("text", "source_language_token", "target_language_token") if k not in fields]
        if missing:
            raise BadInputError(
                "expected the input map to have :text, :source_language_token and :target_language_token keys, "
                f"missing: {', '.join(':' + k for k in missing)}"
            )
        source = self._language_token(fields["source_language_token"], ":source_language_token")
        target = self._language_token(fields["target_language_token"], ":target_language_token")
        return as_text(fields["text"], ":text"), source, target, parse_seed(fields)

    def _language_token(self, value: Any, what: str) -> str:
        token = as_text(value, what)
        if token not in self.vocab:
            raise BadInputError(f"the specified language token {token!r} is not a valid token for this tokenizer")
        return token

    def prepare(self, items: list[Any]) -> tuple[list[Prompt], list[ItemResult]]:
        good, parsed, results = validate_each(items, self.parse)
        start = self.settings.decoder_start_id()
        prompts = []
        for source in dict.fromkeys(p[1] for p in parsed):
            members = [(i, p) for i, p in zip(good, parsed, strict=True) if p[1] == source]
            self._use_source_language(source)
            tokenized = self.encoder.tokenize([p[0] for _, p in members])
            for (index, (_, _, target, seed)), tokens in zip(members, tokenized, strict=True):
                if isinstance(tokens, BridgeError):
                    results[index] = tokens
                else:
                    prompts.append(Prompt(index, tokens, seed, [start, self.vocab[target]]))  # type: ignore[list-item]
        prompts.sort(key=lambda p: p.index)
        return self.bound(prompts, results), results

    def _use_source_language(self, token: str) -> None:
        # NLLB-style tokenizers put src_lang in front of the text (and rebuild
        # their post-processor when it is set); others have no source template.
        if hasattr(self.tokenizer, "src_lang"):
            self.tokenizer.src_lang = token


TASK = Translation
