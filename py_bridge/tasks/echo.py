"""``echo``: answers every item with itself, without touching a model.

It measures and checks the transport on its own: the frame channels, the
codec in both directions and the shim's batching. ``bench/`` uses it for the
round-trip baselines, and an operator can start ``bridge serve --task echo``
to check that a deployment's worker starts and answers.
"""

from __future__ import annotations

from typing import Any

from py_bridge.loading import LoadedModel
from py_bridge.tasks.base import BatchContext, ItemResult, Task


class Echo(Task):
    """Returns each decoded item unchanged (tensors stay zero-copy views)."""

    name = "echo"

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        super().__init__(model, options)

    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        return list(items)


TASK = Echo
