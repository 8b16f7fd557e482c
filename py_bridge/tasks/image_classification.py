"""Image classification, mirroring ``Bumblebee.Vision.image_classification/3``.

Each item is an image (see :mod:`py_bridge.tasks._media`); its result is
``%{predictions: [%{label: String.t(), score: float}]}``, at most ``top_k``
predictions, highest score first. A label the model's config does not name
comes back as ``"LABEL_<index>"``.

Options (as Bumblebee's):

* ``top_k`` - how many predictions to return. Defaults to 5; capped at the
  number of labels.
* ``scores_function`` - ``:softmax`` (the default), ``:sigmoid`` or ``:none``.
* ``featurizer`` - the directory of the image processor to use (the model's
  when absent).

Requires a ``:for_image_classification`` (or ``_with_teacher``) model.
"""

from __future__ import annotations

from typing import Any

from py_bridge.etf import Atom
from py_bridge.loading import LoadedModel
from py_bridge.tasks._auto import load_model
from py_bridge.tasks._media import decode_image
from py_bridge.tasks._text import choice_option, int_option
from py_bridge.tasks._vision import ImageTask
from py_bridge.tasks.base import BatchContext, ItemResult
from py_bridge.tasks.text_classification import SCORES_FUNCTIONS, apply_scores_function, labels_of, top_predictions

_PREDICTIONS = Atom("predictions")


class ImageClassification(ImageTask):
    """Scores each image against the model's labels and keeps the top ``top_k``."""

    name = "image_classification"

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        self.top_k = int_option(options, "top_k", 5)
        self.scores_function = choice_option(options, "scores_function", SCORES_FUNCTIONS, "softmax")
        super().__init__(model, options)
        self.hf_model = load_model(model, "for_image_classification", "for_image_classification_with_teacher")
        self.labels = labels_of(model, self.hf_model)

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return self.run_images(items, decode_image, lambda image: image, self._classify)

    def _classify(self, images: list[Any], pixels: Any) -> list[ItemResult]:
        logits = self.forward(pixel_values=pixels).logits.float()
        scores = apply_scores_function(logits, self.scores_function)
        return [{_PREDICTIONS: top_predictions(row, self.top_k, self.labels)} for row in scores]


TASK = ImageClassification
