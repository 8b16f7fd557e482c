"""The one exception hierarchy of the worker.

Every class maps to one error ``type`` of the wire protocol
(``protocols/errors.md``), and from there to the ``:type`` of the Elixir
``%PyBridge.Error{}``::

    BridgeError
    ├── ModelNotFoundError      model_not_found
    ├── ModelLoadError          model_load_failed
    ├── UnsafeModelError        unsafe_model
    ├── UnsupportedError        unsupported
    ├── BadInputError           bad_input
    ├── OutOfMemoryError        out_of_memory       (retryable)
    ├── CancelledError          cancelled
    ├── BridgeTimeoutError      timeout             (retryable)
    ├── OverloadedError         overloaded          (retryable)
    ├── WorkerCrashedError      worker_crashed      (retryable)
    ├── ProtocolError           protocol_error
    │   ├── FrameTooLargeError  frame_too_large
    │   └── ProtocolMismatchError protocol_mismatch
    └── InternalError           internal

Any other exception raised while serving is translated once, by
:func:`from_exception`, so the shim only ever sees these types.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BridgeError(Exception):
    """Base class: a failure with a protocol error type."""

    type: ClassVar[str] = "internal"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, python_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.python_type = python_type

    def to_term(self) -> dict[Any, Any]:
        """The error as the protocol's error map (keys are atoms)."""
        from py_bridge.etf import Atom

        term: dict[Any, Any] = {
            Atom("type"): Atom(self.type),
            Atom("message"): self.message,
            Atom("retryable"): self.retryable,
        }
        if self.python_type is not None:
            term[Atom("python_type")] = self.python_type
        return term


class ModelNotFoundError(BridgeError):
    type = "model_not_found"


class ModelLoadError(BridgeError):
    type = "model_load_failed"


class UnsafeModelError(BridgeError):
    type = "unsafe_model"


class UnsupportedError(BridgeError):
    type = "unsupported"


class BadInputError(BridgeError):
    type = "bad_input"


class OutOfMemoryError(BridgeError):
    type = "out_of_memory"
    retryable = True


class CancelledError(BridgeError):
    type = "cancelled"


class BridgeTimeoutError(BridgeError):
    type = "timeout"
    retryable = True


class OverloadedError(BridgeError):
    type = "overloaded"
    retryable = True


class WorkerCrashedError(BridgeError):
    type = "worker_crashed"
    retryable = True


class ProtocolError(BridgeError):
    type = "protocol_error"


class FrameTooLargeError(ProtocolError):
    type = "frame_too_large"


class ProtocolMismatchError(ProtocolError):
    type = "protocol_mismatch"


class InternalError(BridgeError):
    type = "internal"


ERROR_CLASSES: dict[str, type[BridgeError]] = {
    cls.type: cls
    for cls in (
        ModelNotFoundError,
        ModelLoadError,
        UnsafeModelError,
        UnsupportedError,
        BadInputError,
        OutOfMemoryError,
        CancelledError,
        BridgeTimeoutError,
        OverloadedError,
        WorkerCrashedError,
        ProtocolError,
        FrameTooLargeError,
        ProtocolMismatchError,
        InternalError,
    )
}


def from_exception(exc: BaseException) -> BridgeError:
    """Translate any exception raised while serving into a BridgeError.

    This is the one place where lower-level failures get a protocol type.
    """
    if isinstance(exc, BridgeError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return OutOfMemoryError(str(exc) or "out of memory", python_type=name)
    if isinstance(exc, FileNotFoundError):
        return ModelNotFoundError(str(exc), python_type=name)
    return InternalError(f"{name}: {exc}", python_type=name)
