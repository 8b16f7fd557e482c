"""Tensors on the wire: Nx type names, shape and little-endian bytes.

A :class:`Tensor` encodes as the map of the Elixir struct ``%PyBridge.Tensor{}``
(see ``protocols/PROTOCOL.md`` §3), so the shim receives a ready struct from
``binary_to_term`` with no conversion. Converting to and from torch shares the
buffer where the layout allows it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from math import prod
from typing import Any

from py_bridge.errors import BadInputError

STRUCT_NAME = "Elixir.PyBridge.Tensor"

# Nx type name -> (torch dtype name, numpy dtype name)
_TYPES: dict[tuple[str, int], tuple[str, str | None]] = {
    ("u", 8): ("uint8", "uint8"),
    ("u", 16): ("uint16", "uint16"),
    ("u", 32): ("uint32", "uint32"),
    ("u", 64): ("uint64", "uint64"),
    ("s", 8): ("int8", "int8"),
    ("s", 16): ("int16", "int16"),
    ("s", 32): ("int32", "int32"),
    ("s", 64): ("int64", "int64"),
    ("f", 16): ("float16", "float16"),
    ("bf", 16): ("bfloat16", None),
    ("f", 32): ("float32", "float32"),
    ("f", 64): ("float64", "float64"),
}
_FROM_TORCH = {torch_name: nx for nx, (torch_name, _) in _TYPES.items()}
_FROM_TORCH["bool"] = ("u", 8)


@dataclass(frozen=True)
class Tensor:
    """A row-major tensor: Nx type, shape and raw little-endian bytes."""

    type: tuple[str, int]
    shape: tuple[int, ...]
    data: bytes | bytearray | memoryview

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise BadInputError(f"unsupported tensor type {self.type!r}; expected one of {sorted(_TYPES)}")
        if any(not isinstance(d, int) or d < 0 for d in self.shape):
            raise BadInputError(f"tensor shape must be a tuple of non-negative integers, got: {self.shape!r}")
        expected = prod(self.shape) * self.type[1] // 8
        if memoryview(self.data).nbytes != expected:
            got = memoryview(self.data).nbytes
            raise BadInputError(f"tensor of type {self.type} and shape {self.shape} needs {expected} bytes, got {got}")

    @property
    def nbytes(self) -> int:
        return memoryview(self.data).nbytes

    # -- torch ---------------------------------------------------------------

    @classmethod
    def from_torch(cls, tensor: Any) -> Tensor:
        """Copy a torch tensor to host memory once and wrap its bytes."""
        import torch

        t = tensor.detach()
        if t.dtype == torch.bool:
            t = t.to(torch.uint8)
        name = str(t.dtype).removeprefix("torch.")
        if name not in _FROM_TORCH:
            raise BadInputError(f"cannot send a tensor of dtype {t.dtype}")
        t = t.to("cpu").contiguous()
        if sys.byteorder != "little":  # pragma: no cover - no big-endian CI
            raise BadInputError("big-endian hosts are not supported")
        data = t.view(torch.uint8).numpy().data if t.numel() else b""
        return cls(_FROM_TORCH[name], tuple(t.shape), data)

    def to_torch(self) -> Any:
        """A torch tensor over these bytes (no copy when the buffer is writable)."""
        import torch

        dtype = getattr(torch, _TYPES[self.type][0])
        if self.nbytes == 0:
            return torch.empty(self.shape, dtype=dtype)
        buffer = self.data if not isinstance(self.data, bytes) else bytearray(self.data)
        return torch.frombuffer(buffer, dtype=dtype).reshape(self.shape)

    def to_numpy(self) -> Any:
        import numpy as np

        np_name = _TYPES[self.type][1]
        if np_name is None:
            return self.to_torch().float().numpy()
        return np.frombuffer(self.data, dtype=np.dtype(np_name).newbyteorder("<")).reshape(self.shape)

    @classmethod
    def from_numpy(cls, array: Any) -> Tensor:
        import numpy as np

        a = np.ascontiguousarray(array)
        name = a.dtype.name if a.dtype != np.bool_ else "uint8"
        if name not in _FROM_TORCH:
            raise BadInputError(f"cannot send an array of dtype {a.dtype}")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        return cls(_FROM_TORCH[name], tuple(a.shape), a.tobytes())

    # -- the wire ------------------------------------------------------------

    def to_term(self) -> dict[Any, Any]:
        from py_bridge.etf import Atom

        return {
            Atom("__struct__"): Atom(STRUCT_NAME),
            Atom("data"): self.data,
            Atom("shape"): tuple(self.shape),
            Atom("type"): (Atom(self.type[0]), self.type[1]),
        }

    @classmethod
    def from_term(cls, term: Any) -> Tensor:
        """Build a Tensor from a decoded ``%PyBridge.Tensor{}`` map, or raise BadInputError."""
        if not is_tensor_term(term):
            raise BadInputError("expected a tensor")
        try:
            kind, bits = term["type"]
            shape = tuple(term["shape"])
            data = term["data"]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInputError(f"malformed tensor: {exc}") from exc
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BadInputError("tensor data must be a binary")
        return cls((str(kind), int(bits)), shape, data)


def is_tensor_term(term: Any) -> bool:
    return isinstance(term, dict) and term.get("__struct__") == STRUCT_NAME
