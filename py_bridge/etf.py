"""The Erlang External Term Format, with Elixir's conventions.

:func:`decode` reads one term (``binary_to_term``); :func:`encode` and
:func:`encode_parts` write one (``term_to_binary(T, [{minor_version, 2}])``).
Decoding a term the VM wrote and encoding the result again gives the VM's bytes
back exactly, so values can be passed through without drift.

=====================================  =====================================
Erlang / Elixir                        Python
=====================================  =====================================
integer (any size)                     ``int`` (``bool`` never encodes as int)
float                                  ``float``
``true`` / ``false`` / ``nil``         ``True`` / ``False`` / ``None``
other atom                             :class:`Atom` (a ``str`` subclass)
binary                                 ``bytes``; a read-only ``memoryview``
                                       into the input from 64 KiB up. ``str``
                                       encodes as its UTF-8 binary;
                                       ``bytearray``/``memoryview`` encode too
bitstring                              :class:`BitBinary`
list / charlist                        ``list`` (a charlist is a list of ints)
improper list ``[a | b]``              :class:`ImproperList`
tuple                                  ``tuple``
map                                    ``dict``, in wire order; a list or map
                                       key becomes :class:`HashableList` /
                                       :class:`FrozenMap`
pid, port, reference, fun              :class:`Opaque`, passed through as is
``%PyBridge.Tensor{}``                 encoded from ``py_bridge.tensor.Tensor``
=====================================  =====================================

NaN and infinities: the VM has no such floats, so ``float('nan')``, ``inf``
and ``-inf`` encode as the atoms ``nan``, ``infinity`` and ``neg_infinity``
(the names Nx uses). Decoding does not special-case them: those atoms come
back as :class:`Atom`.

Decoding is strict and bounded: anything malformed raises :class:`DecodeError`
(a :class:`~py_bridge.errors.ProtocolError`), nesting is limited by
``max_depth`` and a compressed term may expand to at most ``max_decompressed``
bytes. A map whose keys Python considers equal (``1`` and ``1.0``, ``1`` and
``true``) cannot be represented as a ``dict`` and is refused rather than
silently losing an entry.

Large binaries decoded as ``memoryview`` share the input buffer: a caller that
decodes from a ``bytearray`` must not reuse that buffer while the term lives.
"""

from __future__ import annotations

import math
import reprlib
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from py_bridge.errors import ProtocolError

__all__ = [
    "LARGE_BINARY",
    "Atom",
    "BitBinary",
    "DecodeError",
    "FrozenMap",
    "HashableList",
    "ImproperList",
    "Opaque",
    "decode",
    "encode",
    "encode_parts",
]

VERSION = 131

# Binaries from this size up are decoded as views into the frame and written
# as their own part by encode_parts, so a tensor's bytes are never copied.
LARGE_BINARY = 1 << 16

# Tags, named as in erts/emulator/beam/external.h.
NEW_FLOAT_EXT = 70
BIT_BINARY_EXT = 77
COMPRESSED = 80
NEW_PID_EXT = 88
NEW_PORT_EXT = 89
NEWER_REFERENCE_EXT = 90
SMALL_INTEGER_EXT = 97
INTEGER_EXT = 98
FLOAT_EXT = 99
ATOM_EXT = 100
REFERENCE_EXT = 101
PORT_EXT = 102
PID_EXT = 103
SMALL_TUPLE_EXT = 104
LARGE_TUPLE_EXT = 105
NIL_EXT = 106
STRING_EXT = 107
LIST_EXT = 108
BINARY_EXT = 109
SMALL_BIG_EXT = 110
LARGE_BIG_EXT = 111
NEW_FUN_EXT = 112
EXPORT_EXT = 113
NEW_REFERENCE_EXT = 114
SMALL_ATOM_EXT = 115
MAP_EXT = 116
FUN_EXT = 117
ATOM_UTF8_EXT = 118
SMALL_ATOM_UTF8_EXT = 119
V4_PORT_EXT = 120
LOCAL_EXT = 121

_OPAQUE_KINDS = {
    NEW_PID_EXT: "pid",
    PID_EXT: "pid",
    NEW_PORT_EXT: "port",
    PORT_EXT: "port",
    V4_PORT_EXT: "port",
    NEWER_REFERENCE_EXT: "reference",
    NEW_REFERENCE_EXT: "reference",
    REFERENCE_EXT: "reference",
    NEW_FUN_EXT: "fun",
    EXPORT_EXT: "fun",
    FUN_EXT: "fun",
}


class DecodeError(ProtocolError):
    """The bytes are not one well-formed term within the decoder's limits."""


# -- Python types for Erlang values ----------------------------------------


class Atom(str):
    """An Erlang atom. Equal to, and hashes like, the plain ``str`` of its name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


class BitBinary(NamedTuple):
    """A bitstring whose length is not a whole number of bytes.

    ``bits`` is how many high bits of the last byte of ``data`` belong to it
    (1..8); the remaining low bits are zero, as the VM writes them.
    """

    data: bytes
    bits: int


class ImproperList:
    """A list whose tail is not ``[]``: ``[1, 2 | 3]`` is ``ImproperList([1, 2], 3)``."""

    __slots__ = ("items", "tail")

    def __init__(self, items: list[Any] | HashableList, tail: Any) -> None:
        self.items = items
        self.tail = tail

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImproperList):
            return NotImplemented
        return list(self.items) == list(other.items) and self.tail == other.tail

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        # Only hashable once frozen (items a HashableList), as for a map key.
        return hash((ImproperList, tuple(self.items), self.tail))

    def __repr__(self) -> str:
        return f"ImproperList({self.items!r}, {self.tail!r})"


class Opaque:
    """A pid, port, reference or fun: the VM's bytes after the tag, kept as they came.

    Python cannot do anything with these but hold them and send them back, so
    they re-encode byte for byte and compare equal when their bytes are equal.
    """

    __slots__ = ("payload", "tag")

    def __init__(self, tag: int, payload: bytes) -> None:
        if tag not in _OPAQUE_KINDS:
            raise ValueError(f"tag {tag} is not a pid, port, reference or fun tag")
        self.tag = tag
        self.payload = bytes(payload)

    @property
    def kind(self) -> str:
        """``"pid"``, ``"port"``, ``"reference"`` or ``"fun"``."""
        return _OPAQUE_KINDS[self.tag]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Opaque):
            return NotImplemented
        return self.tag == other.tag and self.payload == other.payload

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        return hash((Opaque, self.tag, self.payload))

    def __repr__(self) -> str:
        return f"Opaque({self.tag}, bytes.fromhex({self.payload.hex()!r}))"


class HashableList(tuple[Any, ...]):
    """An Erlang list used as a map key, where a Python ``list`` cannot be.

    It equals a ``list`` with the same items but never a ``tuple``, so the key
    ``[1, 2]`` and the key ``{1, 2}`` stay distinct in one dict.
    """

    __slots__ = ()

    def __new__(cls, items: Iterable[Any] = ()) -> HashableList:
        return super().__new__(cls, (_freeze(item) for item in items))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HashableList):
            return tuple.__eq__(self, other)
        if isinstance(other, list):
            return tuple.__eq__(self, tuple(other))
        return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((HashableList, tuple.__hash__(self)))

    def __repr__(self) -> str:
        return f"HashableList({list(self)!r})"


class FrozenMap(Mapping[Any, Any]):
    """An Erlang map used as a map key: hashable, read-only, in insertion order.

    Values that Python cannot hash (lists, dicts) are stored in their hashable
    form (:class:`HashableList`, :class:`FrozenMap`), which compares equal.
    """

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[Any, Any] = {key: _freeze(value) for key, value in pairs}
        self._hash: int | None = None

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((FrozenMap, frozenset(self._items.items())))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


def _freeze(term: Any) -> Any:
    """The hashable twin of a decoded term, for use as a dict key."""
    kind = type(term)
    if kind is list:
        return HashableList(term)
    if kind is dict:
        return FrozenMap(term)
    if kind is tuple:
        return tuple(_freeze(item) for item in term)
    if kind is ImproperList:
        return ImproperList(HashableList(term.items), _freeze(term.tail))
    if kind is memoryview:
        # A large binary key; its view may be over a (mutable) frame buffer.
        return bytes(term)
    return term


# -- decoding ----------------------------------------------------------------

_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_I32 = struct.Struct(">i").unpack_from
_F64 = struct.Struct(">d").unpack_from

# Atom names repeat in almost every message (map keys, tags), so decoded atoms
# are shared. The caches are bounded because atom names come from the wire.
_ATOM_CACHE_LIMIT = 1 << 14
# Keyed and looked up by bytes: slices of a bytearray-backed frame do not hash.
_SPECIAL_ATOMS: dict[Any, Any] = {b"true": True, b"false": False, b"nil": None}
_UTF8_ATOMS: dict[Any, Any] = dict(_SPECIAL_ATOMS)
_LATIN1_ATOMS: dict[Any, Any] = dict(_SPECIAL_ATOMS)
_MISSING = object()


def _truncated(pos: int) -> DecodeError:
    return DecodeError(f"truncated term: data ends inside the term starting at byte {pos}")


def _too_deep() -> DecodeError:
    return DecodeError("term nested deeper than max_depth")


def _atom(buf: memoryview, start: int, stop: int, utf8: bool) -> Any:
    if stop > len(buf):
        raise _truncated(start)
    raw = bytes(buf[start:stop])
    cache = _UTF8_ATOMS if utf8 else _LATIN1_ATOMS
    value = cache.get(raw)
    if value is not None or raw in cache:
        return value
    try:
        name = str(raw, "utf-8" if utf8 else "latin-1")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"atom at byte {start} is not valid UTF-8: {exc.reason}") from None
    if len(name) > 255:
        raise DecodeError(f"atom at byte {start} has {len(name)} characters; the VM allows 255")
    value = Atom(name)
    if len(cache) < _ATOM_CACHE_LIMIT:
        cache[raw] = value
    return value


def _skip_atom(buf: memoryview, pos: int) -> int:
    """The end of the node-name atom inside a pid, port or reference."""
    tag = buf[pos]
    if tag == SMALL_ATOM_UTF8_EXT or tag == SMALL_ATOM_EXT:
        return pos + 2 + buf[pos + 1]
    if tag == ATOM_UTF8_EXT or tag == ATOM_EXT:
        return pos + 3 + _U16(buf, pos + 1)[0]
    raise DecodeError(f"expected an atom at byte {pos}, found tag {tag}")


def _opaque(buf: memoryview, pos: int, tag: int, budget: int) -> tuple[Opaque, int]:
    body = pos + 1
    if tag == NEW_PID_EXT:
        stop = _skip_atom(buf, body) + 12
    elif tag == PID_EXT:
        stop = _skip_atom(buf, body) + 9
    elif tag == NEW_PORT_EXT:
        stop = _skip_atom(buf, body) + 8
    elif tag == V4_PORT_EXT:
        stop = _skip_atom(buf, body) + 12
    elif tag == PORT_EXT or tag == REFERENCE_EXT:
        stop = _skip_atom(buf, body) + 5
    elif tag == NEWER_REFERENCE_EXT:
        stop = _skip_atom(buf, body + 2) + 4 + 4 * _U16(buf, body)[0]
    elif tag == NEW_REFERENCE_EXT:
        stop = _skip_atom(buf, body + 2) + 1 + 4 * _U16(buf, body)[0]
    elif tag == NEW_FUN_EXT:
        # Size counts itself and everything after it up to the end of the fun.
        size = _U32(buf, body)[0]
        if size < 4:
            raise DecodeError(f"fun at byte {pos} declares an impossible size {size}")
        stop = body + size
    elif tag == EXPORT_EXT:
        stop = body
        for _ in range(3):  # module, function, arity
            _, stop = _dec(buf, stop, budget)
    else:  # FUN_EXT, from OTP releases before 23
        if budget <= 0:
            raise _too_deep()
        free = _U32(buf, body)[0]
        if free > len(buf):
            raise _truncated(pos)
        stop = body + 4
        for _ in range(4 + free):  # pid, module, index, uniq, free variables
            _, stop = _dec(buf, stop, budget - 1)
    if stop > len(buf):
        raise _truncated(pos)
    return Opaque(tag, bytes(buf[body:stop])), stop


def _old_float(buf: memoryview, pos: int) -> float:
    stop = pos + 32
    if stop > len(buf):
        raise _truncated(pos)
    text = bytes(buf[pos + 1 : stop]).rstrip(b"\x00")
    # float() also accepts "nan", "inf" and underscores, which the VM does not.
    if not text or text.translate(None, b"0123456789.eE+- "):
        raise DecodeError(f"FLOAT_EXT at byte {pos} is not a number: {text!r}")
    try:
        value = float(text)
    except ValueError:
        raise DecodeError(f"FLOAT_EXT at byte {pos} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise DecodeError(f"FLOAT_EXT at byte {pos} is out of range: {text!r}")
    return value


def _bitstring(buf: memoryview, pos: int) -> bytes | memoryview | BitBinary:
    size = _U32(buf, pos + 1)[0]
    bits = buf[pos + 5]
    start = pos + 6
    stop = start + size
    if stop > len(buf):
        raise _truncated(pos)
    if (bits == 0) != (size == 0) or bits > 8:
        raise DecodeError(f"bitstring at byte {pos} has {bits} bits in its last byte and {size} bytes")
    if bits == 8 or size == 0:
        # Whole bytes: the VM reads this as a binary and writes it back as one.
        return bytes(buf[start:stop]) if size < LARGE_BINARY else buf[start:stop]
    data = bytearray(buf[start:stop])
    data[-1] &= (0xFF << (8 - bits)) & 0xFF
    return BitBinary(bytes(data), bits)


def _dec(buf: memoryview, pos: int, budget: int) -> tuple[Any, int]:
    """Decode the term at ``pos``; return it and the offset just past it.

    ``budget`` is how many more containers may be nested here. The branches
    come in rough order of frequency in PyBridge's messages.
    """
    tag = buf[pos]
    if tag == SMALL_INTEGER_EXT:
        return buf[pos + 1], pos + 2
    if tag == SMALL_ATOM_UTF8_EXT:
        start = pos + 2
        stop = start + buf[pos + 1]
        if stop <= len(buf):
            # bytes(): a slice of a bytearray-backed frame is not hashable.
            value = _UTF8_ATOMS.get(bytes(buf[start:stop]), _MISSING)
            if value is not _MISSING:
                return value, stop
        return _atom(buf, start, stop, True), stop
    if tag == BINARY_EXT:
        size = _U32(buf, pos + 1)[0]
        start = pos + 5
        stop = start + size
        if stop > len(buf):
            raise _truncated(pos)
        if size < LARGE_BINARY:
            return bytes(buf[start:stop]), stop
        return buf[start:stop], stop
    if tag == MAP_EXT:
        if budget <= 0:
            raise _too_deep()
        count = _U32(buf, pos + 1)[0]
        pos += 5
        # Each pair takes at least two bytes; refuse absurd counts up front.
        if 2 * count > len(buf) - pos:
            raise _truncated(pos - 5)
        budget -= 1
        result: dict[Any, Any] = {}
        for _ in range(count):
            key, pos = _dec(buf, pos, budget)
            value, pos = _dec(buf, pos, budget)
            try:
                result[key] = value
            except TypeError:
                result[_freeze(key)] = value
        if len(result) != count:
            raise DecodeError(
                f"map with {count} keys has keys that are equal in Python (such as 1, 1.0 and true, or duplicates)"
            )
        return result, pos
    if tag == NIL_EXT:
        return [], pos + 1
    if tag == LIST_EXT:
        if budget <= 0:
            raise _too_deep()
        count = _U32(buf, pos + 1)[0]
        start = pos
        pos += 5
        if count > len(buf) - pos:
            raise _truncated(start)
        budget -= 1
        items: list[Any] = []
        append = items.append
        for _ in range(count):
            item, pos = _dec(buf, pos, budget)
            append(item)
        if buf[pos] == NIL_EXT:
            return items, pos + 1
        tail, pos = _dec(buf, pos, budget)
        # The VM never writes a list as a tail, but if one comes, the result
        # is the same list the VM would build: [a | [b]] is [a, b].
        if type(tail) is list:
            return items + tail, pos
        if type(tail) is ImproperList:
            return ImproperList(items + list(tail.items), tail.tail), pos
        if not items:
            return tail, pos
        return ImproperList(items, tail), pos
    if tag == SMALL_TUPLE_EXT or tag == LARGE_TUPLE_EXT:
        if budget <= 0:
            raise _too_deep()
        if tag == SMALL_TUPLE_EXT:
            count = buf[pos + 1]
            start = pos
            pos += 2
        else:
            count = _U32(buf, pos + 1)[0]
            start = pos
            pos += 5
            if count > len(buf) - pos:
                raise _truncated(start)
        budget -= 1
        items = []
        append = items.append
        for _ in range(count):
            item, pos = _dec(buf, pos, budget)
            append(item)
        return tuple(items), pos
    if tag == INTEGER_EXT:
        return _I32(buf, pos + 1)[0], pos + 5
    if tag == NEW_FLOAT_EXT:
        value = _F64(buf, pos + 1)[0]
        if value - value != 0.0:
            raise DecodeError(f"float at byte {pos} is NaN or infinite, which the VM never writes")
        return value, pos + 9
    if tag == STRING_EXT:
        start = pos + 3
        stop = start + _U16(buf, pos + 1)[0]
        if stop > len(buf):
            raise _truncated(pos)
        return list(buf[start:stop]), stop
    if tag == SMALL_BIG_EXT or tag == LARGE_BIG_EXT:
        if tag == SMALL_BIG_EXT:
            size = buf[pos + 1]
            start = pos + 3
        else:
            size = _U32(buf, pos + 1)[0]
            start = pos + 6
        stop = start + size
        if stop > len(buf):
            raise _truncated(pos)
        value = int.from_bytes(buf[start:stop], "little")
        # As in the VM, any non-zero sign byte means negative.
        return (-value if buf[start - 1] else value), stop
    if tag == ATOM_UTF8_EXT:
        start = pos + 3
        stop = start + _U16(buf, pos + 1)[0]
        return _atom(buf, start, stop, True), stop
    if tag == ATOM_EXT:
        start = pos + 3
        stop = start + _U16(buf, pos + 1)[0]
        return _atom(buf, start, stop, False), stop
    if tag == SMALL_ATOM_EXT:
        start = pos + 2
        stop = start + buf[pos + 1]
        return _atom(buf, start, stop, False), stop
    if tag == BIT_BINARY_EXT:
        return _bitstring(buf, pos), pos + 6 + _U32(buf, pos + 1)[0]
    if tag == FLOAT_EXT:
        return _old_float(buf, pos), pos + 32
    if tag in _OPAQUE_KINDS:
        return _opaque(buf, pos, tag, budget)
    if tag == COMPRESSED:
        raise DecodeError(f"compressed term at byte {pos}; compression is only allowed for the whole term")
    if tag == LOCAL_EXT:
        raise DecodeError("LOCAL_EXT terms are only meaningful to the VM that wrote them")
    raise DecodeError(f"unknown term tag {tag} at byte {pos}")


def _inflate(buf: memoryview, limit: int) -> memoryview:
    if len(buf) < 6:
        raise _truncated(1)
    size = _U32(buf, 2)[0]
    if size > limit:
        raise DecodeError(f"compressed term declares {size} bytes, over the limit of {limit}")
    inflater = zlib.decompressobj()
    try:
        # The header is only a claim: never let zlib produce more than it says
        # (plus one byte, to notice a lie), whatever the stream holds.
        data = inflater.decompress(buf[6:], size + 1)
    except zlib.error as exc:
        raise DecodeError(f"compressed term is corrupt: {exc}") from None
    if len(data) > size:
        raise DecodeError(f"compressed term expands beyond its declared {size} bytes")
    if not inflater.eof:
        raise DecodeError("compressed term is truncated")
    if inflater.unused_data:
        raise DecodeError(f"{len(inflater.unused_data)} trailing bytes after the compressed term")
    if len(data) != size:
        raise DecodeError(f"compressed term expands to {len(data)} bytes, not the declared {size}")
    return memoryview(data)


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_depth: int = 512,
    max_decompressed: int = 1 << 30,
) -> Any:
    """Decode one term written by ``term_to_binary`` (starting with the version byte 131).

    ``max_depth`` bounds how many lists, tuples and maps may nest;
    ``max_decompressed`` bounds what a compressed term may expand to. Raises
    :class:`DecodeError` when the bytes are not exactly one well-formed term.
    """
    if max_depth < 0:
        raise ValueError(f"max_depth must be >= 0, got {max_depth}")
    buf = memoryview(data)
    if buf.ndim != 1 or buf.format != "B":
        buf = buf.cast("B")
    if not buf.readonly:
        buf = buf.toreadonly()
    if not buf:
        raise DecodeError("empty frame: expected a term starting with the version byte 131")
    if buf[0] != VERSION:
        raise DecodeError(f"unsupported version byte {buf[0]}, expected {VERSION}")
    try:
        if len(buf) > 1 and buf[1] == COMPRESSED:
            buf = _inflate(buf, max_decompressed)
            start = 0
        else:
            start = 1
        term, stop = _dec(buf, start, max_depth)
    except (IndexError, struct.error):
        # Reading past the end shows up here rather than at every read.
        raise DecodeError("truncated term: data ends inside it") from None
    except RecursionError:
        raise DecodeError("term nested too deeply for the Python stack; lower max_depth") from None
    if stop != len(buf):
        raise DecodeError(f"{len(buf) - stop} trailing bytes after the term")
    return term


# -- encoding ----------------------------------------------------------------

_SMALL_INTS = [bytes((SMALL_INTEGER_EXT, n)) for n in range(256)]
_INT_HEAD = struct.Struct(">Bi").pack
_FLOAT_HEAD = struct.Struct(">Bd").pack
_U32_HEAD = struct.Struct(">BI").pack
_U16_HEAD = struct.Struct(">BH").pack
_BIG_HEAD = struct.Struct(">BIB").pack
_NIL = bytes((NIL_EXT,))
_TRUE = bytes((SMALL_ATOM_UTF8_EXT, 4)) + b"true"
_FALSE = bytes((SMALL_ATOM_UTF8_EXT, 5)) + b"false"
_NIL_ATOM = bytes((SMALL_ATOM_UTF8_EXT, 3)) + b"nil"
_NAN = bytes((SMALL_ATOM_UTF8_EXT, 3)) + b"nan"
_INFINITY = bytes((SMALL_ATOM_UTF8_EXT, 8)) + b"infinity"
_NEG_INFINITY = bytes((SMALL_ATOM_UTF8_EXT, 12)) + b"neg_infinity"
_MAX_STRING_EXT = 0xFFFF

_ENCODED_ATOMS: dict[str, bytes] = {}

# (offset in the encoded bytes, payload): a large binary left out of the buffer
_Large = list[tuple[int, "bytes | memoryview"]]


def _atom_bytes(name: str) -> bytes:
    encoded = _ENCODED_ATOMS.get(name)
    if encoded is not None:
        return encoded
    if len(name) > 255:
        raise ValueError(f"atom has {len(name)} characters; the VM allows 255: {reprlib.repr(name)}")
    utf8 = name.encode("utf-8")
    if len(utf8) < 256:
        encoded = bytes((SMALL_ATOM_UTF8_EXT, len(utf8))) + utf8
    else:
        encoded = _U16_HEAD(ATOM_UTF8_EXT, len(utf8)) + utf8
    if len(_ENCODED_ATOMS) < _ATOM_CACHE_LIMIT:
        _ENCODED_ATOMS[name] = encoded
    return encoded


def _enc_big(value: int, out: bytearray) -> None:
    sign = 1 if value < 0 else 0
    magnitude = -value if sign else value
    size = (magnitude.bit_length() + 7) // 8
    if size < 256:
        out += bytes((SMALL_BIG_EXT, size, sign))
    else:
        out += _BIG_HEAD(LARGE_BIG_EXT, size, sign)
    out += magnitude.to_bytes(size, "little")


def _enc_binary(data: bytes | bytearray | memoryview, out: bytearray, large: _Large) -> None:
    if type(data) is memoryview:
        if not data.c_contiguous:
            data = data.tobytes()
        elif data.ndim != 1 or data.format != "B":
            data = data.cast("B")
    size = len(data)
    out += _U32_HEAD(BINARY_EXT, size)
    if size >= LARGE_BINARY:
        large.append((len(out), memoryview(data) if isinstance(data, bytearray) else data))
    else:
        out += data


def _byte_string(items: list[Any] | tuple[Any, ...]) -> bytes | None:
    """The bytes of a list the VM would write as STRING_EXT, else None."""
    try:
        data = bytes(items)
    except (TypeError, ValueError):
        return None
    # bytes() also takes bools and anything with __index__; the VM would not.
    for item in items:
        if type(item) is not int and (isinstance(item, bool) or not isinstance(item, int)):
            return None
    return data


def _enc_list(items: list[Any] | tuple[Any, ...], out: bytearray, large: _Large) -> None:
    count = len(items)
    if count == 0:
        out += _NIL
        return
    head = items[0]
    if count <= _MAX_STRING_EXT and type(head) is int and 0 <= head <= 255:
        data = _byte_string(items)
        if data is not None:
            out += _U16_HEAD(STRING_EXT, count)
            out += data
            return
    out += _U32_HEAD(LIST_EXT, count)
    for item in items:
        _enc(item, out, large)
    out += _NIL


def _enc_improper(term: ImproperList, out: bytearray, large: _Large) -> None:
    items = list(term.items)
    tail = term.tail
    # Write what the VM would build from this value: a list tail extends the list.
    while isinstance(tail, ImproperList):
        items += tail.items
        tail = tail.tail
    if isinstance(tail, (list, HashableList)):
        _enc_list(items + list(tail), out, large)
        return
    if not items:
        _enc(tail, out, large)
        return
    out += _U32_HEAD(LIST_EXT, len(items))
    for item in items:
        _enc(item, out, large)
    _enc(tail, out, large)


def _enc_map(term: Mapping[Any, Any], out: bytearray, large: _Large) -> None:
    out += _U32_HEAD(MAP_EXT, len(term))
    for key, value in term.items():
        _enc(key, out, large)
        _enc(value, out, large)


def _enc_tuple(term: tuple[Any, ...], out: bytearray, large: _Large) -> None:
    count = len(term)
    if count < 256:
        out += bytes((SMALL_TUPLE_EXT, count))
    else:
        out += _U32_HEAD(LARGE_TUPLE_EXT, count)
    for item in term:
        _enc(item, out, large)


def _enc_float(value: float, out: bytearray) -> None:
    if value - value == 0.0:
        out += _FLOAT_HEAD(NEW_FLOAT_EXT, value)
    elif value != value:
        out += _NAN
    else:
        out += _INFINITY if value > 0 else _NEG_INFINITY


def _enc_bitstring(term: BitBinary, out: bytearray, large: _Large) -> None:
    data, bits = bytes(term.data), term.bits
    if not 1 <= bits <= 8 or not data:
        raise ValueError(f"BitBinary needs at least one byte and 1..8 bits, got {len(data)} bytes and {bits} bits")
    if bits == 8:
        _enc_binary(data, out, large)
        return
    out += _U32_HEAD(BIT_BINARY_EXT, len(data))
    out.append(bits)
    out += data[:-1]
    out.append(data[-1] & (0xFF << (8 - bits)) & 0xFF)


def _enc(term: Any, out: bytearray, large: _Large) -> None:
    kind = type(term)
    # Exact types first, the common ones first: subclasses take the slow path.
    if kind is int:
        if 0 <= term <= 255:
            out += _SMALL_INTS[term]
        elif -0x80000000 <= term <= 0x7FFFFFFF:
            out += _INT_HEAD(INTEGER_EXT, term)
        else:
            _enc_big(term, out)
    elif kind is Atom:
        out += _atom_bytes(term)
    elif kind is dict:
        out += _U32_HEAD(MAP_EXT, len(term))
        for key, value in term.items():
            _enc(key, out, large)
            _enc(value, out, large)
    elif kind is str:
        _enc_binary(term.encode("utf-8"), out, large)
    elif kind is bytes:
        size = len(term)
        out += _U32_HEAD(BINARY_EXT, size)
        if size < LARGE_BINARY:
            out += term
        else:
            large.append((len(out), term))
    elif kind is list:
        _enc_list(term, out, large)
    elif kind is tuple:
        _enc_tuple(term, out, large)
    elif kind is float:
        _enc_float(term, out)
    elif kind is bool:
        out += _TRUE if term else _FALSE
    elif term is None:
        out += _NIL_ATOM
    else:
        _enc_other(term, out, large)


def _enc_other(term: Any, out: bytearray, large: _Large) -> None:
    # Order matters: BitBinary and HashableList are tuples, Atom is a str,
    # bool is an int.
    if isinstance(term, (bytearray, memoryview)):
        _enc_binary(term, out, large)
    elif isinstance(term, Atom):
        out += _atom_bytes(str(term))
    elif isinstance(term, bool):
        out += _TRUE if term else _FALSE
    elif isinstance(term, int):
        _enc(int(term), out, large)
    elif isinstance(term, BitBinary):
        _enc_bitstring(term, out, large)
    elif isinstance(term, Opaque):
        out.append(term.tag)
        out += term.payload
    elif isinstance(term, ImproperList):
        _enc_improper(term, out, large)
    elif isinstance(term, HashableList):
        _enc_list(term, out, large)
    elif isinstance(term, Mapping):
        _enc_map(term, out, large)
    elif isinstance(term, float):
        _enc_float(float(term), out)
    elif isinstance(term, str):
        _enc_binary(str(term).encode("utf-8"), out, large)
    elif isinstance(term, bytes):
        _enc_binary(bytes(term), out, large)
    elif isinstance(term, tuple):
        _enc_tuple(term, out, large)
    elif isinstance(term, list):
        _enc_list(term, out, large)
    else:
        from py_bridge.tensor import Tensor

        if isinstance(term, Tensor):
            _enc_map(term.to_term(), out, large)
        else:
            raise TypeError(f"cannot encode {type(term).__qualname__} as an Erlang term: {reprlib.repr(term)}")


def _encode(term: Any) -> tuple[bytearray, _Large]:
    out = bytearray((VERSION,))
    large: _Large = []
    try:
        _enc(term, out, large)
    except RecursionError:
        raise ValueError("term is nested too deeply to encode (or contains itself)") from None
    return out, large


def _split(out: bytearray, large: _Large) -> list[bytes | memoryview]:
    view = memoryview(out)
    parts: list[bytes | memoryview] = []
    done = 0
    for offset, payload in large:
        if offset > done:
            parts.append(view[done:offset])
        parts.append(payload)
        done = offset
    if done < len(out):
        parts.append(view[done:])
    return parts


def encode(term: Any) -> bytes:
    """Encode ``term`` as ``term_to_binary(T, [{minor_version, 2}])`` would.

    Raises ``TypeError`` for a value with no Erlang counterpart and
    ``ValueError`` for one the VM cannot hold (an atom over 255 characters).
    """
    out, large = _encode(term)
    if not large:
        return bytes(out)
    return b"".join(_split(out, large))


def encode_parts(term: Any) -> list[bytes | memoryview]:
    """The bytes of :func:`encode`, in pieces, for ``os.writev``.

    Binaries of 64 KiB and more are their own pieces, the caller's own buffers
    rather than copies, so they must not change until the pieces are written.
    """
    out, large = _encode(term)
    return _split(out, large)
