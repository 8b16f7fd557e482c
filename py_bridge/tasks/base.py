"""What every task implements, and the helpers tasks share.

A task owns one loaded model and turns a batch of decoded protocol items into
one result (or one :class:`~py_bridge.errors.BridgeError`) per item. Results
are plain Python values that encode to Bumblebee's output shapes: dicts keyed
by :class:`~py_bridge.etf.Atom`, lists, floats, binaries and
:class:`~py_bridge.tensor.Tensor`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from py_bridge.errors import BadInputError, BridgeError
from py_bridge.loading import LoadedModel


@dataclass
class BatchContext:
    """What a task may do while it runs one batch.

    ``emit`` sends a streamed chunk for one item; ``is_cancelled`` turns true
    when the shim cancelled the batch (the caller went away), so a long
    generation can stop early.
    """

    stream: bool = False
    emit: Callable[[int, Any], None] = field(default=lambda index, value: None)
    is_cancelled: Callable[[], bool] = field(default=lambda: False)


ItemResult = Any  # a result value, or a BridgeError for that item alone


class Task(abc.ABC):
    """One serving task hosted by a worker."""

    #: The task's protocol name, as the shim sends it in ``:hello``.
    name: ClassVar[str]

    def __init__(self, model: LoadedModel, options: dict[str, Any]) -> None:
        self.model = model
        self.options = options

    @abc.abstractmethod
    def run(self, items: list[Any], ctx: BatchContext) -> list[ItemResult]:
        """Run one batch; return one result or BridgeError per item, in order."""


def as_text(item: Any, what: str = "input") -> str:
    """Decode a binary from the shim as UTF-8 text, or raise BadInputError."""
    if isinstance(item, str):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInputError(f"expected {what} to be valid UTF-8 text, {exc.reason} at byte {exc.start}") from exc
    raise BadInputError(f"expected {what} to be a string, got: {type(item).__name__}")


def validate_each(items: list[Any], parse: Callable[[Any], Any]) -> tuple[list[int], list[Any], list[ItemResult]]:
    """Parse every item on its own so that one bad item fails alone.

    Returns the indices of the good items, their parsed values, and a result
    list pre-filled with the errors of the bad ones (None where good).
    """
    good: list[int] = []
    parsed: list[Any] = []
    results: list[ItemResult] = [None] * len(items)
    for index, item in enumerate(items):
        try:
            parsed.append(parse(item))
            good.append(index)
        except BridgeError as error:
            results[index] = error
    return good, parsed, results
