"""Image embeddings, mirroring ``Bumblebee.Vision.image_embedding/3``.

Each item is an image; its result is ``%{embedding: tensor}``, an f32 tensor
of rank 1 ``{hidden}`` for a pooled output, or the rank the chosen output has
for one image otherwise (``{patches + 1, hidden}`` for ``:hidden_state``).

Options (as Bumblebee's; there is no ``output_pool``):

* ``output_attribute`` - which model output to embed: ``:pooled_state``
  (the default; the pooler output), ``:hidden_state`` (the last hidden
  state), ``:embedding`` (the projected embedding of a
  ``*ModelWithProjection`` model such as CLIP's vision tower), or any other
  name of the transformers output. A name the output lacks fails at load time.
* ``embedding_processor`` - ``nil`` (the default) or ``:l2_norm``.
* ``featurizer`` - the directory of the image processor to use.

Any architecture works. ``:for_embedding`` (Bumblebee's name for
``CLIPVisionModelWithProjection``) loads the class named in ``config.json``,
since no transformers Auto class maps to the projection head.
"""

from __future__ import annotations

from typing import Any

from py_bridge.errors import UnsupportedError
from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._auto import architecture, load_model
from py_bridge.tasks._media import decode_image
from py_bridge.tasks._text import choice_option
from py_bridge.tasks._vision import ImageTask
from py_bridge.tasks.base import BatchContext, ItemResult
from py_bridge.tensor import Tensor

#: Bumblebee output names -> transformers output names.
ATTRIBUTE_ALIASES = {
    "hidden_state": "last_hidden_state",
    "pooled_state": "pooler_output",
    "embedding": "image_embeds",
}

#: model_type -> the class Bumblebee's ``:for_embedding`` corresponds to.
EMBEDDING_CLASSES = {
    "clip": "CLIPVisionModelWithProjection",
    "clip_vision_model": "CLIPVisionModelWithProjection",
}

PROCESSORS = (None, "l2_norm")

_EMBEDDING = Atom("embedding")


class ImageEmbedding(ImageTask):
    """Embeds images with one of the model's outputs, optionally L2-normalized."""

    name = "image_embedding"

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        attribute = options.get("output_attribute")
        self.output_attribute = "pooled_state" if attribute is None else _name(attribute)
        self.embedding_processor = choice_option(options, "embedding_processor", PROCESSORS, None)
        super().__init__(model, options)
        self.hf_model = _load(model)
        # A wrong output_attribute fails the load rather than every batch.
        self._check_output_attribute()

    def _check_output_attribute(self) -> None:
        from PIL import Image

        self._embed([None], self.pixel_values([Image.new("RGB", (8, 8))]))

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return self.run_images(items, decode_image, lambda image: image, self._embed)

    def _embed(self, images: list[Any], pixels: Any) -> list[ItemResult]:
        import torch

        output = self._select(self.forward(pixel_values=pixels)).float()
        if self.embedding_processor == "l2_norm":
            output = torch.nn.functional.normalize(output, p=2.0, dim=-1)
        return [{_EMBEDDING: Tensor.from_torch(row.contiguous())} for row in output]

    def _select(self, output: Any) -> Any:
        import torch

        key = ATTRIBUTE_ALIASES.get(self.output_attribute, self.output_attribute)
        value = output.get(key) if hasattr(output, "get") else None
        if not torch.is_tensor(value):
            reverse = {v: k for k, v in ATTRIBUTE_ALIASES.items()}
            keys = sorted(reverse.get(k, k) for k, v in output.items() if torch.is_tensor(v))
            raise UnsupportedError(
                f"key :{self.output_attribute} not found in the output map, you may want to set "
                f":output_attribute to one of the map keys: {', '.join(':' + k for k in keys)}"
            )
        return value


def _load(model: LoadedModel) -> Any:
    if architecture(model) != "for_embedding":
        return load_model(model)
    import transformers

    declared = model.spec.get("hf_architecture") or ""
    name = (
        declared if declared.endswith("WithProjection") else EMBEDDING_CLASSES.get(model.spec.get("model_type") or "")
    )
    if name is None or not hasattr(transformers, name):
        raise UnsupportedError(
            f"no transformers class gives :for_embedding for model type {model.spec.get('model_type')!r}; "
            "load the model with another :architecture"
        )
    return model.load(getattr(transformers, name))


def _name(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


TASK = ImageEmbedding
