"""Image captioning, mirroring ``Bumblebee.Vision.image_to_text/5``.

Each item is an image, or ``%{image: image, seed: integer | nil}``; its result
is ``%{results: [%{text: String.t()}]}`` (one result, no token summary).

Options:

* ``generation_config`` - Bumblebee's generation config as a map (see
  :mod:`py_bridge.tasks._generate`). Required.
* ``featurizer`` - the directory of the image processor to use.

Requires a ``:for_conditional_generation`` model that ``transformers`` loads
with ``AutoModelForImageTextToText`` (BLIP, Bumblebee's only image-to-text
model). BLIP's ``generate`` starts the caption with the text model's BOS token
and stops at its SEP token whatever the generation config says; Bumblebee's
loader reads the same two ids from the same config, so they agree unless the
config was changed by hand. Seeded sampling items run alone right after
``torch.manual_seed(seed)``, as in :mod:`py_bridge.tasks.generation`.
"""

from __future__ import annotations

from typing import Any

from py_bridge.errors import BadInputError, CancelledError, UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._auto import require_architecture
from py_bridge.tasks._generate import GenerationSettings, cancel_criteria
from py_bridge.tasks._media import decode_image
from py_bridge.tasks._vision import ImageTask
from py_bridge.tasks.base import BatchContext, ItemResult, validate_each
from py_bridge.tasks.generation import parse_seed

_RESULTS, _TEXT = Atom("results"), Atom("text")


class ImageToText(ImageTask):
    """Generates a caption for each image."""

    name = "image_to_text"

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        self.settings = GenerationSettings.from_term(options.get("generation_config"))
        require_architecture(model, "for_conditional_generation")
        if not model.spec.get("has_tokenizer", True):
            raise UnsupportedError(f"the image_to_text task needs a tokenizer, and {model.path} has none")
        super().__init__(model, options)
        import transformers

        self.hf_model = model.load(transformers.AutoModelForImageTextToText)
        # generate fills unset fields from the model's own config; only the
        # serving's config may count, as in Bumblebee.
        self.hf_model.generation_config = transformers.GenerationConfig()
        decoder = getattr(self.hf_model, "text_decoder", None)
        if decoder is not None:
            # BLIP hands generation to its text decoder, which has a config of its own.
            decoder.generation_config = transformers.GenerationConfig()
        self.tokenizer = model.load_tokenizer()
        self._backend = getattr(self.tokenizer, "backend_tokenizer", None)
        # The caption starts with one decoder token.
        self.max_new, self.min_new = self.settings.new_token_bounds(encoder_decoder=True, prefix_length=1)

    def parse(self, item: Any) -> tuple[Any, int | None]:
        """An item: an image, or a map with ``:image`` and an optional ``:seed``."""
        if isinstance(item, dict) and "__struct__" not in item:
            fields = {str(k): v for k, v in item.items()}
            if "image" not in fields:
                raise BadInputError(f"expected the input map to have :image key, got keys: {sorted(fields)}")
            return decode_image(fields["image"]), parse_seed(fields)
        return decode_image(item), None

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        good, parsed, results = validate_each(items, self.parse)
        groups = [[i] for i in range(len(parsed))] if self.settings.sampling else [list(range(len(parsed)))]
        for group in groups:
            if not group:
                continue
            if ctx.is_cancelled():
                texts: list[Any] = [CancelledError("cancelled before it ran")] * len(group)
            else:
                texts = self.caption([parsed[i][0] for i in group], parsed[group[0]][1], ctx)
            for i, text in zip(group, texts, strict=True):
                results[good[i]] = text if isinstance(text, CancelledError) else {_RESULTS: [{_TEXT: text}]}
        return results

    def caption(self, images: list[Any], seed: int | None, ctx: BatchContext) -> list[Any]:
        """One ``generate`` call for ``images``; the decoded captions, in order."""
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        kwargs = self.settings.generate_kwargs(max_new=self.max_new, min_new=self.min_new)
        # BLIP's generate passes its own EOS and pad ids; giving them twice is an error.
        for name in ("eos_token_id", "pad_token_id", "bos_token_id", "decoder_start_token_id"):
            kwargs.pop(name, None)
        if seed is not None and self.settings.sampling:
            torch.manual_seed(seed % (1 << 64))
        pixels = self.pixel_values(images)
        with torch.inference_mode():
            sequences = self.hf_model.generate(
                pixel_values=pixels,
                generation_config=GenerationConfig(**kwargs),
                stopping_criteria=StoppingCriteriaList([cancel_criteria(ctx.is_cancelled)]),
            )
        if ctx.is_cancelled():
            return [CancelledError("the request was cancelled while generating")] * len(images)
        return [self.decode(row) for row in sequences.tolist()]

    def decode(self, ids: list[int]) -> str:
        """Decode without special tokens and without clean-up, as Bumblebee's Rust tokenizer does."""
        if self._backend is not None:
            return self._backend.decode(ids, skip_special_tokens=True)
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


TASK = ImageToText
