"""What the image tasks share: the image processor, item decoding and batching.

Each image task loads the repository's image processor with
``AutoImageProcessor`` (from the featurizer's directory when the serving names
one, else the model's), decodes every item on its own with
:mod:`py_bridge.tasks._media` so that one bad image fails alone, and runs the
model once on the pixel values of the items that decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from py_bridge.featurizer import featurizer_dir, load_processor
from py_bridge.loading import LoadedModel
from py_bridge.tasks.base import ItemResult, Task, validate_each

log = logging.getLogger(__name__)


class ImageTask(Task):
    """A task over one vision model and its image processor.

    Subclasses load ``self.hf_model`` and implement ``run``, usually as one
    call to :meth:`run_images`.
    """

    hf_model: Any

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        super().__init__(model, options)
        self.processor = load_processor(
            "AutoImageProcessor", featurizer_dir(model, options), model.ref.trust_remote_code
        )

    def pixel_values(self, images: list[Any]) -> Any:
        """The processor's ``pixel_values`` for RGB images, on the model's device and dtype."""
        inputs = self.processor(images=images, return_tensors="pt")
        return inputs["pixel_values"].to(self.hf_model.device, self.hf_model.dtype)

    def forward(self, **inputs: Any) -> Any:
        """Run the model without autograd."""
        import torch

        with torch.inference_mode():
            return self.hf_model(**inputs)

    def run_images(
        self,
        items: list[Any],
        parse: Callable[[Any], Any],
        image_of: Callable[[Any], Any],
        predict: Callable[[list[Any], Any], list[ItemResult]],
    ) -> list[ItemResult]:
        """Parse each item, batch the images of those that parsed, and predict.

        ``predict`` gets the parsed items and their pixel values and returns
        one result per item; items that fail to parse keep their error.
        """
        good, parsed, results = validate_each(items, parse)
        if parsed:
            pixels = self.pixel_values([image_of(p) for p in parsed])
            for index, result in zip(good, predict(parsed, pixels), strict=True):
                results[index] = result
        return results
