"""py_bridge.etf against the golden vectors, two oracles, and hostile input.

The oracles are erlang-py (an independent Python codec) and the Erlang VM
itself, reached through ``tests/python/erlang/etf_oracle.escript``: one VM for
the whole session, spoken to a line at a time.
"""

from __future__ import annotations

import array
import enum
import math
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import erlang as _erlang
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from py_bridge.errors import ProtocolError
from py_bridge.etf import (
    LARGE_BINARY,
    Atom,
    BitBinary,
    DecodeError,
    FrozenMap,
    HashableList,
    ImproperList,
    Opaque,
    decode,
    encode,
    encode_parts,
)
from py_bridge.tensor import Tensor

ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = ROOT / "protocols" / "golden" / "vectors.tsv"
ORACLE_SCRIPT = Path(__file__).resolve().parent / "erlang" / "etf_oracle.escript"

NAMESPACE = {
    "Atom": Atom,
    "BitBinary": BitBinary,
    "ImproperList": ImproperList,
    "Opaque": Opaque,
    "HashableList": HashableList,
    "FrozenMap": FrozenMap,
}

# erlang-py ships no type hints.
erlang: Any = _erlang

HAS_VM = shutil.which("erl") is not None and shutil.which("escript") is not None
needs_vm = pytest.mark.skipif(not HAS_VM, reason="needs the Erlang VM (erl, escript) on the PATH")


# -- helpers -------------------------------------------------------------------


def same(actual: Any, expected: Any) -> bool:
    """Equality that also tells apart what ``==`` does not: 1/1.0/True, 0.0/-0.0, Atom/str, list/tuple.

    A ``memoryview`` counts as ``bytes``, since the decoder returns one for large binaries.
    """
    if type(actual) is memoryview:
        actual = actual.tobytes()
    if type(expected) is memoryview:
        expected = expected.tobytes()
    kind = type(actual)
    if kind is not type(expected):
        return False
    if kind is float:
        return struct.pack(">d", actual) == struct.pack(">d", expected)
    if kind in (list, tuple, HashableList):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if kind in (dict, FrozenMap):
        if len(actual) != len(expected):
            return False
        expected_keys = {key: key for key in expected}
        for key, value in actual.items():
            if key not in expected_keys or not same(key, expected_keys[key]):
                return False
            if not same(value, expected[key]):
                return False
        return True
    if kind is ImproperList:
        return same(list(actual.items), list(expected.items)) and same(actual.tail, expected.tail)
    if kind is BitBinary:
        return actual.bits == expected.bits and same(bytes(actual.data), bytes(expected.data))
    return bool(actual == expected)


def assert_same(actual: Any, expected: Any) -> None:
    assert same(actual, expected), f"\n  got:      {actual!r:.2000}\n  expected: {expected!r:.2000}"


def decode_or_protocol_error(data: bytes, **limits: int) -> None:
    """Decoding must return a value or raise ProtocolError; any other exception fails the test."""
    try:
        decode(data, **limits)
    except ProtocolError:
        pass


def joined(parts: list[bytes | memoryview]) -> bytes:
    return b"".join(parts)


# -- golden vectors ------------------------------------------------------------


@dataclass(frozen=True)
class Vector:
    name: str
    flags: frozenset[str]
    data: bytes
    elixir_expr: str
    python_expr: str

    @property
    def expected(self) -> Any:
        return eval(self.python_expr, dict(NAMESPACE))


def load_vectors() -> list[Vector]:
    vectors = []
    for line in VECTORS_PATH.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, hex_data, elixir_expr, python_expr = line.split("\t")
        base, *flags = name.split("@")
        vectors.append(Vector(base, frozenset(flags), bytes.fromhex(hex_data), elixir_expr, python_expr))
    return vectors


VECTORS = load_vectors()
ENCODABLE = [v for v in VECTORS if "decode_only" not in v.flags]


class TestGoldenVectors:
    @pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
    def test_decodes_to_the_python_value(self, vector: Vector) -> None:
        assert_same(decode(vector.data), vector.expected)

    @pytest.mark.parametrize("vector", ENCODABLE, ids=lambda v: v.name)
    def test_encodes_to_the_vm_bytes(self, vector: Vector) -> None:
        assert encode(vector.expected) == vector.data
        assert joined(encode_parts(vector.expected)) == vector.data

    def test_cover_every_tag_the_vm_writes(self) -> None:
        top_level_tags = {v.data[1] for v in VECTORS}
        # SMALL_INTEGER .. MAP, the old float and atom forms, pid/port/ref/fun, compressed
        wanted = {97, 98, 110, 111, 70, 99, 119, 118, 100, 109, 77, 106, 107, 108, 104, 105, 116}
        wanted |= {88, 89, 90, 113, 80}
        assert wanted <= top_level_tags, sorted(wanted - top_level_tags)

    @pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
    def test_every_truncation_is_a_protocol_error(self, vector: Vector) -> None:
        for end in range(len(vector.data) - 1, 0, -max(1, len(vector.data) // 64)):
            with pytest.raises(ProtocolError):
                decode(vector.data[:end])

    def test_tensor_encodes_as_the_struct_map(self) -> None:
        (vector,) = [v for v in VECTORS if v.name == "map_tensor_struct"]
        tensor = Tensor(("f", 32), (1,), struct.pack("<f", 1.0))
        assert encode(tensor) == vector.data


# -- decoding ------------------------------------------------------------------


class TestDecode:
    def test_large_binary_is_a_read_only_view_of_the_input(self) -> None:
        payload = bytes(range(256)) * (LARGE_BINARY // 256)
        data = encode(payload)
        value = decode(data)
        assert isinstance(value, memoryview)
        assert value.readonly
        assert value.obj is data
        assert value == payload

    def test_binary_below_64_kib_is_bytes(self) -> None:
        value = decode(encode(b"x" * (LARGE_BINARY - 1)))
        assert type(value) is bytes

    def test_view_from_a_bytearray_is_read_only(self) -> None:
        data = bytearray(encode([b"y" * LARGE_BINARY]))
        (value,) = decode(data)
        assert value.readonly
        with pytest.raises(TypeError):
            value[0] = 1

    def test_accepts_memoryview_input(self) -> None:
        data = encode({Atom("a"): [1, 2.5]})
        assert decode(memoryview(data)) == {"a": [1, 2.5]}

    def test_atoms_are_str_subclasses_that_match_plain_keys(self) -> None:
        term = decode(encode({Atom("type"): Atom("bad_input")}))
        assert term["type"] == "bad_input"
        assert type(term["type"]) is Atom

    def test_old_small_atom_ext_is_latin1(self) -> None:
        assert_same(decode(b"\x83s\x04caf\xe9"), Atom("café"))
        assert decode(b"\x83s\x04true") is True

    def test_bit_binary_with_whole_last_byte_is_a_binary(self) -> None:
        # The VM accepts 8 bits in the last byte and reads it as a binary.
        assert_same(decode(b"\x83M\x00\x00\x00\x01\x08\xff"), b"\xff")
        assert_same(decode(b"\x83M\x00\x00\x00\x00\x00"), b"")

    def test_bit_binary_padding_is_cleared(self) -> None:
        assert_same(decode(b"\x83M\x00\x00\x00\x01\x03\xff"), BitBinary(b"\xe0", 3))

    def test_list_tail_that_is_a_list_is_flattened(self) -> None:
        # [1 | [2]] written without folding the tail: the VM reads it as [1, 2].
        data = b"\x83l\x00\x00\x00\x01a\x01l\x00\x00\x00\x01a\x02j"
        assert_same(decode(data), [1, 2])

    def test_empty_list_ext_is_its_tail(self) -> None:
        assert_same(decode(b"\x83l\x00\x00\x00\x00a\x01"), 1)

    def test_map_key_that_is_a_map_holding_a_list(self) -> None:
        term = decode(encode({FrozenMap({Atom("k"): [1, [2]]}): 1}))
        (key,) = term
        assert isinstance(key, FrozenMap)
        assert key == {"k": [1, [2]]}
        assert hash(key) == hash(FrozenMap({Atom("k"): [1, [2]]}))

    def test_list_key_and_tuple_key_stay_distinct(self) -> None:
        term = {HashableList([1, 2]): Atom("list"), (1, 2): Atom("tuple")}
        assert_same(decode(encode(term)), term)

    @pytest.mark.parametrize(
        ("tag", "payload"),
        [
            # PID_EXT: node, id, serial, one-byte creation
            (103, b"w\x0dnonode@nohost" + bytes(8) + b"\x00"),
            # PORT_EXT, REFERENCE_EXT: node, id, one-byte creation
            (102, b"d\x00\x0dnonode@nohost" + bytes(5)),
            (101, b"w\x0dnonode@nohost" + bytes(5)),
            # NEW_REFERENCE_EXT: length, node, one-byte creation, ids
            (114, b"\x00\x03w\x0dnonode@nohost\x00" + bytes(12)),
            # V4_PORT_EXT: node, 8-byte id, creation
            (120, b"w\x0dnonode@nohost" + bytes(12)),
        ],
    )
    def test_older_opaque_forms_pass_through(self, tag: int, payload: bytes) -> None:
        data = bytes([131, tag]) + payload
        term = decode(data)
        assert term == Opaque(tag, payload)
        assert encode(term) == data
        assert encode([term, 1]) == b"\x83l\x00\x00\x00\x02" + data[1:] + b"a\x01j"

    def test_old_fun_ext_passes_through(self) -> None:
        pid = b"gw\x0dnonode@nohost" + bytes(9)
        payload = b"\x00\x00\x00\x01" + pid + b"w\x01m" + b"a\x00" + b"a\x07" + b"a\x2a"
        data = b"\x83u" + payload
        assert decode(data) == Opaque(117, payload)
        assert decode(data).kind == "fun"

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"", "empty"),
            (b"\x84a\x01", "version byte"),
            (b"\x83", "truncated"),
            (b"\x83a\x01\x00", "trailing"),
            (b"\x83\xff", "unknown term tag 255"),
            (b"\x83y\x00", "LOCAL_EXT"),
            (b"\x83h\x01P\x00\x00\x00\x01\x00", "compressed term at byte 3"),
            (b"\x83w\x02\xc3\x28", "not valid UTF-8"),
            (b"\x83F\x7f\xf8\x00\x00\x00\x00\x00\x00", "NaN or infinite"),
            (b"\x83c" + b"nan".ljust(31, b"\x00"), "not a number"),
            (b"\x83c" + b"1e999".ljust(31, b"\x00"), "out of range"),
            (b"\x83t\x00\x00\x00\x02a\x01a\x01a\x01a\x02", "equal in Python"),
            (b"\x83t\x00\x00\x00\x02a\x01a\x01F?\xf0\x00\x00\x00\x00\x00\x00a\x02", "equal in Python"),
            (b"\x83t\x00\x00\x00\x02w\x04truea\x01a\x01a\x02", "equal in Python"),
            (b"\x83l\xff\xff\xff\xffa\x01", "truncated"),
            (b"\x83t\xff\xff\xff\xff", "truncated"),
            (b"\x83m\xff\xff\xff\xff", "truncated"),
            (b"\x83o\xff\xff\xff\xff\x00", "truncated"),
            (b"\x83M\x00\x00\x00\x01\x00\xff", "bits"),
            (b"\x83M\x00\x00\x00\x01\x09\xff", "bits"),
            (b"\x83v\x02\x00" + "é".encode() * 256, "256 characters"),
            (b"\x83Xa\x01" + bytes(12), "expected an atom"),
            (b"\x83p\x00\x00\x00\x02", "impossible size"),
        ],
    )
    def test_malformed_input_has_a_clear_error(self, data: bytes, message: str) -> None:
        with pytest.raises(DecodeError, match=message):
            decode(data)

    def test_decode_errors_are_protocol_errors(self) -> None:
        assert issubclass(DecodeError, ProtocolError)
        assert DecodeError("x").type == "protocol_error"


class TestLimits:
    @staticmethod
    def nested(depth: int, opener: bytes, closer: bytes = b"") -> bytes:
        return b"\x83" + opener * depth + b"j" + closer * depth

    @pytest.mark.parametrize(
        ("opener", "closer"),
        [(b"l\x00\x00\x00\x01", b"j"), (b"h\x01", b""), (b"t\x00\x00\x00\x01a\x01", b"")],
        ids=["list", "tuple", "map"],
    )
    def test_depth_up_to_max_depth_decodes(self, opener: bytes, closer: bytes) -> None:
        decode(self.nested(512, opener, closer))
        decode(self.nested(10, opener, closer), max_depth=10)

    @pytest.mark.parametrize(
        ("opener", "closer"),
        [(b"l\x00\x00\x00\x01", b"j"), (b"h\x01", b""), (b"t\x00\x00\x00\x01a\x01", b"")],
        ids=["list", "tuple", "map"],
    )
    def test_depth_beyond_max_depth_is_refused(self, opener: bytes, closer: bytes) -> None:
        with pytest.raises(DecodeError, match="max_depth"):
            decode(self.nested(513, opener, closer))
        with pytest.raises(DecodeError, match="max_depth"):
            decode(self.nested(11, opener, closer), max_depth=10)

    def test_depth_beyond_the_python_stack_is_a_protocol_error(self) -> None:
        deep = self.nested(sys.getrecursionlimit() + 100, b"h\x01")
        with pytest.raises(ProtocolError):
            decode(deep, max_depth=10**9)

    @staticmethod
    def compressed(declared: int, raw: bytes) -> bytes:
        return b"\x83P" + struct.pack(">I", declared) + zlib.compress(raw)

    def test_compressed_term_decodes(self) -> None:
        inner = encode([b"abc" * 1000])[1:]
        assert decode(self.compressed(len(inner), inner)) == [b"abc" * 1000]

    def test_compressed_bomb_declaring_a_small_size_stops_at_that_size(self) -> None:
        bomb = self.compressed(100, b"m\x05\xf5\xe1\x00" + bytes(10_000_000))
        with pytest.raises(DecodeError, match="beyond its declared 100 bytes"):
            decode(bomb)

    def test_compressed_term_declaring_more_than_the_limit_is_refused_unread(self) -> None:
        with pytest.raises(DecodeError, match="over the limit"):
            decode(b"\x83P\xff\xff\xff\xff" + b"garbage")
        inner = encode(b"x" * 5000)[1:]
        with pytest.raises(DecodeError, match="over the limit"):
            decode(self.compressed(len(inner), inner), max_decompressed=1000)

    @pytest.mark.parametrize(
        ("mangle", "message"),
        [
            (lambda data: data[:-3], "truncated"),
            (lambda data: data + b"\x00", "trailing"),
            (lambda data: data[:8] + bytes(len(data) - 8), "corrupt"),
            (
                lambda data: data[:2] + struct.pack(">I", struct.unpack(">I", data[2:6])[0] + 10) + data[6:],
                "expands to",
            ),
        ],
        ids=["truncated", "trailing", "corrupt", "shorter-than-declared"],
    )
    def test_damaged_compressed_term_is_refused(self, mangle: Callable[[bytes], bytes], message: str) -> None:
        inner = encode(b"abc" * 1000)[1:]
        with pytest.raises(DecodeError, match=message):
            decode(mangle(self.compressed(len(inner), inner)))

    def test_compressed_term_with_trailing_bytes_inside_is_refused(self) -> None:
        inner = encode(1)[1:] + b"\x00"
        with pytest.raises(DecodeError, match="trailing"):
            decode(self.compressed(len(inner), inner))


# -- encoding ------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class TestEncode:
    def test_bool_is_an_atom_not_an_int(self) -> None:
        assert encode(True) == b"\x83w\x04true"
        assert encode([True, 1]) == b"\x83l\x00\x00\x00\x02w\x04truea\x01j"

    def test_non_finite_floats_are_nx_atoms(self) -> None:
        assert decode(encode([math.nan, math.inf, -math.inf])) == ["nan", "infinity", "neg_infinity"]

    def test_str_is_a_utf8_binary(self) -> None:
        assert encode("é") == b"\x83m\x00\x00\x00\x02\xc3\xa9"

    def test_int_subclass_is_an_int(self) -> None:
        assert encode(Color.RED) == encode(1)

    def test_buffers_are_binaries(self) -> None:
        floats = array.array("f", [1.0, 2.0])
        assert encode(memoryview(floats)) == encode(floats.tobytes())
        assert encode(bytearray(b"ab")) == encode(b"ab")

    def test_string_ext_only_below_65536_elements(self) -> None:
        assert encode([7] * 65535)[1] == 107
        assert encode([7] * 65536)[1] == 108
        assert encode([7, True])[1] == 108

    def test_improper_list_with_a_list_tail_is_the_flat_list(self) -> None:
        assert encode(ImproperList([1], [2])) == encode([1, 2])
        assert encode(ImproperList([1], ImproperList([2], 3))) == encode(ImproperList([1, 2], 3))
        assert encode(ImproperList([], 3)) == encode(3)

    @pytest.mark.parametrize("value", [object(), {1, 2}, 1j, Tensor, print])
    def test_unknown_types_are_a_type_error_naming_the_type(self, value: Any) -> None:
        with pytest.raises(TypeError, match=type(value).__qualname__):
            encode({Atom("x"): [value]})

    def test_atom_over_255_characters_is_refused(self) -> None:
        encode(Atom("a" * 255))
        with pytest.raises(ValueError, match="256 characters"):
            encode(Atom("a" * 256))

    def test_bit_binary_needs_bits_between_1_and_8(self) -> None:
        with pytest.raises(ValueError):
            encode(BitBinary(b"\x01", 0))
        with pytest.raises(ValueError):
            encode(BitBinary(b"", 3))
        assert encode(BitBinary(b"\x01", 8)) == encode(b"\x01")

    def test_self_containing_list_is_a_value_error(self) -> None:
        loop: list[Any] = []
        loop.append(loop)
        with pytest.raises(ValueError, match="nested too deeply"):
            encode(loop)

    def test_parts_keep_large_binaries_uncopied(self) -> None:
        big = bytes(LARGE_BINARY)
        view = memoryview(bytearray(LARGE_BINARY * 2))
        term = (Atom("reply"), 1, [big, b"small", view, "text"])
        parts = encode_parts(term)
        assert joined(parts) == encode(term)
        assert any(part is big for part in parts)
        assert any(part is view for part in parts)
        assert all(len(part) < LARGE_BINARY for part in parts if part is not big and part is not view)

    def test_parts_of_a_small_term_is_one_piece(self) -> None:
        assert len(encode_parts({Atom("a"): 1})) == 1


# -- property tests --------------------------------------------------------------

RESERVED_ATOMS = {"true", "false", "nil", "nan", "infinity", "neg_infinity"}

atom_names = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.text(st.characters(codec="utf-8", min_codepoint=0x80), min_size=200, max_size=255),
).filter(lambda name: name not in RESERVED_ATOMS)
atoms = atom_names.map(Atom)
ints = st.one_of(
    st.integers(0, 255),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**2100), 2**2100),
    st.sampled_from([256, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**64, -(2**2040)]),
)
bit_binaries = st.builds(
    lambda data, bits: BitBinary(data[:-1] + bytes([data[-1] & (0xFF << (8 - bits)) & 0xFF]), bits),
    st.binary(min_size=1, max_size=8),
    st.integers(1, 7),
)
leaves = st.one_of(
    ints,
    st.floats(),
    atoms,
    st.binary(max_size=40),
    st.text(max_size=12),
    st.booleans(),
    st.none(),
    bit_binaries,
)
# Keys that stay distinct in Erlang when distinct in Python (no str beside
# bytes, no NaN, no atoms named like the floats or booleans they would meet).
keys = st.recursive(
    st.one_of(ints, atoms, st.binary(max_size=8), st.floats(allow_nan=False, allow_infinity=False), st.booleans()),
    lambda inner: st.tuples(inner, inner),
    max_leaves=4,
)
terms = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(keys, children, max_size=5),
        st.builds(ImproperList, st.lists(children, min_size=1, max_size=4), leaves),
        st.lists(st.integers(0, 255), max_size=20),
    ),
    max_leaves=30,
)


def wire_form(term: Any) -> Any:
    """What decoding the encoding of a Python term gives back."""
    kind = type(term)
    if kind is float and not math.isfinite(term):
        return Atom("nan" if term != term else "infinity" if term > 0 else "neg_infinity")
    if kind is str:
        return term.encode()
    if kind is list:
        return [wire_form(item) for item in term]
    if kind is tuple:
        return tuple(wire_form(item) for item in term)
    if kind is dict:
        return {wire_form(key): wire_form(value) for key, value in term.items()}
    if kind is ImproperList:
        return ImproperList([wire_form(item) for item in term.items], wire_form(term.tail))
    return term


def has_map_order(term: Any) -> bool:
    """Whether the term holds a map whose key order the VM may choose differently."""
    if isinstance(term, dict):
        return len(term) > 1 or any(has_map_order(k) or has_map_order(v) for k, v in term.items())
    if isinstance(term, (list, tuple)):
        return any(has_map_order(item) for item in term)
    if isinstance(term, ImproperList):
        return has_map_order(term.items) or has_map_order(term.tail)
    return False


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(terms)
    def test_decode_inverts_encode(self, term: Any) -> None:
        data = encode(term)
        assert_same(decode(data), wire_form(term))
        assert joined(encode_parts(term)) == data
        assert encode(decode(data)) == data


# -- erlang-py as an independent oracle --------------------------------------------


def to_erlang_py(term: Any) -> Any:
    """The same value in erlang-py's types, where its encoding matches the VM's."""
    kind = type(term)
    if kind is Atom:
        return erlang.OtpErlangAtom(str(term))
    if kind is bytes:
        return erlang.OtpErlangBinary(term)
    if kind is str:
        return erlang.OtpErlangBinary(term.encode())
    if kind is BitBinary:
        return erlang.OtpErlangBinary(term.data, bits=term.bits)
    if kind is list:
        if term and len(term) < 65536 and all(type(item) is int and 0 <= item <= 255 for item in term):
            return bytes(term)  # erlang-py writes bytes as STRING_EXT
        return [to_erlang_py(item) for item in term]
    if kind is tuple:
        return tuple(to_erlang_py(item) for item in term)
    if kind is dict:
        return {to_erlang_py(key): to_erlang_py(value) for key, value in term.items()}
    if kind is ImproperList:
        return erlang.OtpErlangList([to_erlang_py(item) for item in [*term.items, term.tail]], improper=True)
    return term


def from_erlang_py(term: Any) -> Any:
    """erlang-py's decoded value in our types."""
    if term is None:
        return Atom("undefined")
    if isinstance(term, erlang.OtpErlangAtom):
        name = term.value if isinstance(term.value, str) else term.value.decode("latin-1")
        return None if name == "nil" else Atom(name)
    if isinstance(term, erlang.OtpErlangBinary):
        return term.value if term.bits == 8 else BitBinary(term.value, term.bits)
    if isinstance(term, bytes):
        return list(term)
    if isinstance(term, erlang.OtpErlangList):
        items = [from_erlang_py(item) for item in term.value]
        return ImproperList(items[:-1], items[-1]) if term.improper else items
    if isinstance(term, list):
        return [from_erlang_py(item) for item in term]
    if isinstance(term, tuple):
        return tuple(from_erlang_py(item) for item in term)
    if isinstance(term, dict):
        return {from_erlang_py(key): from_erlang_py(value) for key, value in term.items()}
    if isinstance(term, (erlang.OtpErlangPid, erlang.OtpErlangPort, erlang.OtpErlangReference)):
        raw = term.binary()
        return Opaque(raw[0], raw[1:])
    if isinstance(term, erlang.OtpErlangFunction):
        return Opaque(term.tag, term.value)
    return term


# erlang-py hashes and compares its atoms through their bytes, so a dict of
# atoms beside ints could compare an int to an atom: keep its keys to atoms.
erlang_py_terms = st.recursive(
    st.one_of(ints, st.floats(allow_nan=False, allow_infinity=False), atoms, st.binary(max_size=20), bit_binaries),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(atoms, children, max_size=4),
        st.builds(ImproperList, st.lists(children, min_size=1, max_size=3), st.one_of(ints, atoms)),
    ),
    max_leaves=20,
)


class TestErlangPyOracle:
    @settings(max_examples=200, deadline=None)
    @given(erlang_py_terms)
    def test_same_bytes_as_erlang_py(self, term: Any) -> None:
        ours = encode(term)
        assert ours == erlang.term_to_binary(to_erlang_py(term))
        assert_same(from_erlang_py(erlang.binary_to_term(ours)), wire_form(term))

    @pytest.mark.parametrize(
        "vector",
        # erlang-py reads list and map keys as its own unhashable types
        [v for v in VECTORS if v.name not in {"map_list_key", "map_map_key"}],
        ids=lambda v: v.name,
    )
    def test_erlang_py_reads_the_golden_vectors_as_we_do(self, vector: Vector) -> None:
        assert_same(from_erlang_py(erlang.binary_to_term(vector.data)), decode(vector.data))


# -- the Erlang VM as the final oracle ------------------------------------------------


class VmRefused(Exception):
    pass


class ErlangVM:
    """One escript process answering hex lines; see etf_oracle.escript."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            ["escript", str(ORACLE_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def _ask(self, command: bytes) -> Iterator[bytes]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + b"\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the oracle VM exited with status {self.process.wait()}")
            yield line.rstrip(b"\n")

    def roundtrip(self, data: bytes) -> bytes:
        """term_to_binary(binary_to_term(data), [{minor_version, 2}]) in the VM."""
        line = next(self._ask(b"rt " + data.hex().encode()))
        if not line.startswith(b"ok "):
            raise VmRefused(line.decode())
        return bytes.fromhex(line[3:].decode())

    def generate(self, seed: int, count: int) -> list[bytes]:
        """``count`` pseudo-random terms from ``seed``, as the VM encodes them."""
        lines: list[bytes] = []
        for line in self._ask(f"gen {seed} {count}".encode()):
            if line == b"done":
                return lines
            lines.append(bytes.fromhex(line.decode()))
        raise AssertionError("unreachable")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def vm() -> Iterator[ErlangVM]:
    if not HAS_VM:
        pytest.skip("needs the Erlang VM (erl, escript) on the PATH")
    oracle = ErlangVM()
    try:
        yield oracle
    finally:
        oracle.close()


@needs_vm
@pytest.mark.elixir
class TestErlangVM:
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(term=terms)
    def test_vm_reads_and_rewrites_our_bytes_unchanged(self, vm: ErlangVM, term: Any) -> None:
        ours = encode(term)
        theirs = vm.roundtrip(ours)
        if has_map_order(term):
            # The VM may order map keys its own way; the sizes still match and
            # its bytes must survive our round trip untouched.
            assert len(theirs) == len(ours)
            assert encode(decode(theirs)) == theirs
        else:
            assert theirs == ours
        assert_same(decode(theirs), wire_form(term))

    @pytest.mark.parametrize("seed", range(1, 9))
    def test_vm_terms_survive_our_round_trip(self, vm: ErlangVM, seed: int) -> None:
        for data in vm.generate(seed, 120):
            term = decode(data)
            assert encode(term) == data, f"{term!r:.500}"
            assert joined(encode_parts(term)) == data

    @pytest.mark.parametrize(
        "term",
        [
            [7] * 65535,
            [7] * 65536,
            bytes(LARGE_BINARY),
            "é" * 40000,
            Atom("é" * 255),
            Atom(""),
            tuple(range(256)),
            [2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2 ** (8 * 255) - 1, 2 ** (8 * 255)],
            [-0.0, 5e-324, 1.7976931348623157e308],
            ImproperList([1, ImproperList([2], 3)], BitBinary(b"\x80", 1)),
        ],
        ids=lambda term: f"{type(term).__name__}-{len(encode(term))}",
    )
    def test_vm_agrees_at_the_thresholds(self, vm: ErlangVM, term: Any) -> None:
        ours = encode(term)
        assert vm.roundtrip(ours) == ours

    @pytest.mark.parametrize(
        "data",
        [
            b"\x83s\x02ok",
            b"\x83gw\x0dnonode@nohost" + bytes(9),
            b"\x83fw\x0dnonode@nohost" + bytes(5),
            b"\x83ew\x0dnonode@nohost" + bytes(5),
            b"\x83r\x00\x03w\x0dnonode@nohost\x00" + bytes(12),
            b"\x83xw\x0dnonode@nohost" + bytes(12),
        ],
        ids=["SMALL_ATOM_EXT", "PID_EXT", "PORT_EXT", "REFERENCE_EXT", "NEW_REFERENCE_EXT", "V4_PORT_EXT"],
    )
    def test_handmade_old_forms_are_valid_for_the_vm(self, vm: ErlangVM, data: bytes) -> None:
        # The decoder tests above rely on these bytes; the VM confirms their layout.
        vm.roundtrip(data)
        decode(data)

    @pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
    def test_vm_still_writes_the_golden_bytes(self, vm: ErlangVM, vector: Vector) -> None:
        if vector.flags & {"decode_only", "per_run"}:
            vm.roundtrip(vector.data)
        elif "map_order" in vector.flags:
            assert len(vm.roundtrip(vector.data)) == len(vector.data)
        else:
            assert vm.roundtrip(vector.data) == vector.data


# -- fuzzing -----------------------------------------------------------------------


class TestFuzz:
    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=64))
    def test_random_bytes(self, data: bytes) -> None:
        decode_or_protocol_error(b"\x83" + data)
        decode_or_protocol_error(data)

    @settings(max_examples=400, deadline=None)
    @given(st.data())
    def test_mutated_encodings(self, data: st.DataObject) -> None:
        source = data.draw(
            st.one_of(st.sampled_from([v.data for v in VECTORS]), terms.map(encode)),
            label="source",
        )
        mutated = bytearray(source)
        for _ in range(data.draw(st.integers(1, 4), label="mutations")):
            position = data.draw(st.integers(0, max(0, len(mutated) - 1)), label="position")
            action = data.draw(st.sampled_from(["set", "insert", "delete", "truncate"]), label="action")
            if action == "set" and mutated:
                mutated[position] = data.draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, *range(70, 122)]))
            elif action == "insert":
                mutated[position:position] = data.draw(st.binary(min_size=1, max_size=4))
            elif action == "delete":
                del mutated[position : position + data.draw(st.integers(1, 4))]
            else:
                del mutated[position:]
        decode_or_protocol_error(bytes(mutated), max_decompressed=1 << 20)


def test_decodes_from_a_bytearray_backed_frame() -> None:
    # The frame reader hands the decoder a memoryview over a bytearray; slices
    # of it are not hashable, which atoms and map keys must not trip over.
    big_key = b"k" * (LARGE_BINARY + 1)
    term = (Atom("run"), 7, [{Atom("text"): b"hi", big_key: [1, 2]}], {Atom("stream"): False})
    frame = memoryview(bytearray(encode(term)))
    decoded = decode(frame)
    assert decoded[0] == "run" and type(decoded[0]) is Atom
    assert decoded[2][0][big_key] == [1, 2]
    assert encode(decoded) == encode(term)
