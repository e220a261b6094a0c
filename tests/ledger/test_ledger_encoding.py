"""Canonical encoding: round trips, strict rejections and codec construction.

Models are defined here without `from __future__ import annotations`, so the
annotations are real objects and resolve wherever pytest imports this module.
"""

import dataclasses
import enum
import threading
from dataclasses import dataclass
from typing import Annotated, Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.block import Block, BlockHeader, transactions_root
from ledger.checkpoint import (
    Checkpoint,
    CheckpointCertificate,
    sign_checkpoint,
)
from ledger.encoding import (
    INT_MAX,
    INT_MIN,
    Length,
    MaxLength,
    _checked_decoders,
    _model_codec,
    decode,
    encode,
    from_wire,
    pack,
    to_wire,
    unpack_document,
)
from ledger.errors import DecodeError
from ledger.keys import PrivateKey
from ledger.tx import TX_BYTES_MAX, Transaction, TransactionBody, sign_transaction
from ledger.validators import ValidatorSet

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --- models used only by these tests -------------------------------------------------


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2
    BLUE = 300  # not a fixint: the enum's wire form needs a uint16


@dataclass(frozen=True)
class Inner:
    n: int
    flag: bool


@dataclass(frozen=True)
class Everything:
    """One field of every supported kind."""

    count: int
    flag: bool
    blob: bytes
    text: str
    color: Color
    inner: Inner
    items: tuple[int, ...]
    inners: tuple[Inner, ...]
    maybe: int | None
    maybe_inner: Inner | None
    digest: Annotated[bytes, Length(4)]
    code: Annotated[str, Length(3)]
    short_blob: Annotated[bytes, MaxLength(5)]
    short_text: Annotated[str, MaxLength(5)]
    few: Annotated[tuple[int, ...], MaxLength(3)]
    maybe_digest: Annotated[bytes, Length(4)] | None


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Everything))


@dataclass(frozen=True)
class Pair:
    """A small model for hand-built msgpack bytes: [int, str, bytes]."""

    n: int
    s: str
    b: bytes


@dataclass(frozen=True)
class BoundedOptional:
    """`X | None` wrapped in Annotated[..., MaxLength]: a form the encoding docs allow."""

    note: Annotated[str | None, MaxLength(5)]


@dataclass(frozen=True)
class Ints:
    values: tuple[int, ...]


SAMPLE = Everything(
    count=-7,
    flag=True,
    blob=b"\x00\xffblob",
    text="h\u00e9llo",
    color=Color.BLUE,
    inner=Inner(n=2**40, flag=False),
    items=(0, -1, 127, 128, -33, 2**63),
    inners=(Inner(1, True), Inner(-1, False)),
    maybe=None,
    maybe_inner=Inner(5, True),
    digest=b"\x01\x02\x03\x04",
    code="abc",
    short_blob=b"12345",
    short_text="",
    few=(1, 2),
    maybe_digest=b"wxyz",
)


def mutable_wire(value: Any) -> Any:
    """`to_wire` may build tuples; the tests edit the wire form, so make it lists."""
    wire = to_wire(value)

    def as_lists(item: Any) -> Any:
        return [as_lists(i) for i in item] if isinstance(item, tuple | list) else item

    return as_lists(wire)


def wire_with(value: Any, field: str, replacement: Any) -> bytes:
    """The encoding of `value` with one field's wire value replaced (may be invalid)."""
    wire = mutable_wire(value)
    wire[FIELD_NAMES.index(field)] = replacement
    data: bytes = msgpack.packb(wire, use_bin_type=True)
    return data


def decode_error(cls: type, data: Any, **kwargs: Any) -> str:
    """Decode, expecting a DecodeError (pytest fails on any other exception); return reason."""
    with pytest.raises(DecodeError) as info:
        decode(cls, data, **kwargs)
    return info.value.reason


# --- real models ------------------------------------------------------------------


def _key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


def _transaction(i: int = 1, payload: bytes = b"payload") -> Transaction:
    key = _key(i)
    body = TransactionBody(
        chain_id="notary-test",
        sender=key.public_key,
        family="evidence",
        operation="register",
        payload=payload,
        nonce=bytes(range(16)),
        expires_at_ms=1_700_000_000_000 + i,
    )
    return sign_transaction(body, key)


def _header(txs: tuple[Transaction, ...]) -> BlockHeader:
    return BlockHeader(
        chain_id="notary-test",
        height=12,
        view=3,
        time_ms=1_700_000_000_123,
        previous_hash=bytes(range(32)),
        tx_root=transactions_root(txs),
        proposer=_key(9).public_key,
    )


def _checkpoint() -> Checkpoint:
    return Checkpoint(
        chain_id="notary-test",
        height=12,
        block_hash=b"\x11" * 32,
        state_root=b"\x22" * 32,
        log_size=40,
        log_root=b"\x33" * 32,
        time_ms=1_700_000_000_456,
    )


def _real_values() -> list[object]:
    txs = (_transaction(1), _transaction(2, payload=b""), _transaction(3, payload=b"x" * 300))
    checkpoint = _checkpoint()
    certificate = CheckpointCertificate(
        checkpoint, tuple(sign_checkpoint(checkpoint, _key(i)) for i in (4, 5, 6))
    )
    return [
        txs[0].body,
        txs[0],
        _header(txs),
        Block(_header(txs), txs),
        Block(_header(()), ()),
        checkpoint,
        certificate,
        certificate.endorsements[0],
    ]


REAL_VALUES = _real_values()


# --- round trips --------------------------------------------------------------------


def test_model_with_every_field_kind_round_trips() -> None:
    data = encode(SAMPLE)
    assert decode(Everything, data) == SAMPLE
    assert encode(decode(Everything, data)) == data


def test_decoded_enum_field_is_the_enum_member() -> None:
    decoded = decode(Everything, encode(SAMPLE))
    assert decoded.color is Color.BLUE


def test_decoded_sequences_are_tuples() -> None:
    decoded = decode(Everything, encode(SAMPLE))
    assert type(decoded.items) is tuple
    assert type(decoded.inners) is tuple
    assert decoded.inners[0] == Inner(1, True)


def test_optional_fields_round_trip_both_ways() -> None:
    for maybe, maybe_inner, maybe_digest in [(None, None, None), (0, Inner(0, False), b"abcd")]:
        value = dataclasses.replace(
            SAMPLE, maybe=maybe, maybe_inner=maybe_inner, maybe_digest=maybe_digest
        )
        assert decode(Everything, encode(value)) == value


def test_encoding_is_a_msgpack_array_in_declaration_order() -> None:
    value = Pair(5, "ab", b"xy")
    assert encode(value) == b"\x93\x05\xa2ab\xc4\x02xy"


def test_integer_bounds_round_trip() -> None:
    for n in (INT_MIN, -(2**31), -33, -32, -1, 0, 127, 128, 2**32, INT_MAX):
        assert decode(Ints, encode(Ints((n,)))) == Ints((n,))


@pytest.mark.parametrize("value", REAL_VALUES, ids=lambda v: type(v).__name__)
def test_real_models_round_trip(value: object) -> None:
    data = encode(value)
    decoded = decode(type(value), data)
    assert decoded == value
    assert encode(decoded) == data


def test_transaction_encode_and_decode_methods_round_trip() -> None:
    tx = _transaction(7)
    assert tx.encode() == encode(tx)
    assert Transaction.decode(tx.encode()) == tx


def test_annotated_optional_field_round_trips_none() -> None:
    # "X | None ... wrapped in Annotated[..., MaxLength(n)]" is a documented field form.
    assert decode(BoundedOptional, encode(BoundedOptional("abc"))) == BoundedOptional("abc")
    assert decode(BoundedOptional, encode(BoundedOptional(None))) == BoundedOptional(None)


def test_annotated_optional_field_still_enforces_max_length() -> None:
    data = msgpack.packb(["abcdef"], use_bin_type=True)
    assert "exceeds the maximum 5" in decode_error(BoundedOptional, data)


# --- framing rejections -------------------------------------------------------------


def test_decode_rejects_trailing_bytes() -> None:
    for value in (SAMPLE, *REAL_VALUES):
        reason = decode_error(type(value), encode(value) + b"\x00")
        assert "trailing" in reason


def test_decode_rejects_a_second_complete_value_after_the_first() -> None:
    data = encode(SAMPLE)
    assert "trailing" in decode_error(Everything, data + data)


def test_decode_rejects_every_prefix_of_a_valid_encoding() -> None:
    for value in (SAMPLE, *REAL_VALUES):
        data = encode(value)
        for cut in range(len(data)):
            decode_error(type(value), data[:cut])


def test_decode_reports_truncation_for_every_nonempty_prefix() -> None:
    for value in (SAMPLE, *REAL_VALUES):
        data = encode(value)
        for cut in range(1, len(data)):
            reason = decode_error(type(value), data[:cut])
            assert "truncated" in reason, f"prefix of {cut} bytes of {type(value).__name__}"


def test_decode_rejects_empty_input() -> None:
    assert "empty" in decode_error(Everything, b"")
    assert "empty" in decode_error(Transaction, b"")


def test_decode_rejects_input_over_input_bytes_max() -> None:
    data = encode(SAMPLE)
    assert decode(Everything, data, input_bytes_max=len(data)) == SAMPLE
    reason = decode_error(Everything, data, input_bytes_max=len(data) - 1)
    assert "exceeds the maximum" in reason
    assert str(len(data) - 1) in reason


def test_transaction_decode_rejects_input_over_tx_bytes_max() -> None:
    data = encode(_transaction(1, payload=b"p" * TX_BYTES_MAX))
    assert len(data) > TX_BYTES_MAX
    assert decode(Transaction, data) == _transaction(1, payload=b"p" * TX_BYTES_MAX)
    with pytest.raises(DecodeError, match="exceeds the maximum"):
        Transaction.decode(data)


@pytest.mark.parametrize(
    "data", ["\x91\x05", bytearray(b"\x91\x05"), memoryview(b"\x91\x05"), None, 145]
)
def test_decode_rejects_non_bytes_input(data: Any) -> None:
    reason = decode_error(Ints, data)
    assert "expected bytes" in reason
    assert type(data).__name__ in reason


def test_decode_rejects_an_extra_field() -> None:
    wire = [*to_wire(SAMPLE), 0]
    reason = decode_error(Everything, msgpack.packb(wire, use_bin_type=True))
    assert f"expected {len(FIELD_NAMES)} fields" in reason
    assert f"got {len(FIELD_NAMES) + 1}" in reason


def test_decode_rejects_a_missing_field() -> None:
    wire = to_wire(SAMPLE)[:-1]
    reason = decode_error(Everything, msgpack.packb(wire, use_bin_type=True))
    assert f"expected {len(FIELD_NAMES)} fields" in reason
    assert f"got {len(FIELD_NAMES) - 1}" in reason


def test_decode_rejects_a_nested_model_with_a_missing_field() -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, "inner", [1]))
    assert "Everything.inner" in reason
    assert "expected 2 fields" in reason


def test_decode_rejects_a_top_level_value_that_is_not_an_array() -> None:
    for wire in (5, "x", b"x", None, True):
        reason = decode_error(Pair, msgpack.packb(wire, use_bin_type=True))
        assert "Pair" in reason
        assert "array" in reason


def test_decode_rejects_a_transaction_with_a_missing_body_field() -> None:
    wire = mutable_wire(_transaction(1))
    wire[0] = wire[0][:-1]
    reason = decode_error(Transaction, msgpack.packb(wire, use_bin_type=True))
    assert "Transaction.body" in reason
    assert "fields" in reason


# --- type rejections, per field kind ------------------------------------------------

WRONG_TYPES = [
    # (field, wrong wire value, words the reason must contain)
    ("count", "5", ["Everything.count", "int", "str"]),
    ("count", True, ["Everything.count", "int", "bool"]),
    ("count", b"\x05", ["Everything.count", "int", "bytes"]),
    ("count", None, ["Everything.count", "int", "NoneType"]),
    ("count", [5], ["Everything.count", "int", "tuple"]),
    ("flag", 1, ["Everything.flag", "bool", "int"]),
    ("flag", 0, ["Everything.flag", "bool", "int"]),
    ("flag", None, ["Everything.flag", "bool"]),
    ("blob", "blob", ["Everything.blob", "bytes", "str"]),
    ("blob", [1, 2], ["Everything.blob", "bytes", "tuple"]),
    ("text", b"text", ["Everything.text", "str", "bytes"]),
    ("text", 3, ["Everything.text", "str", "int"]),
    ("color", 99, ["Everything.color", "99", "Color"]),
    ("color", 0, ["Everything.color", "Color"]),
    ("color", True, ["Everything.color", "Color"]),
    ("color", "RED", ["Everything.color", "Color"]),
    ("inner", 5, ["Everything.inner", "Inner array", "int"]),
    ("inner", [1, 1], ["Everything.inner.flag", "bool", "int"]),
    ("inner", ["1", True], ["Everything.inner.n", "int", "str"]),
    ("items", 5, ["Everything.items", "array", "int"]),
    ("items", [1, "2"], ["Everything.items[1]", "int", "str"]),
    ("inners", [[1, True], [2]], ["Everything.inners[1]", "expected 2 fields"]),
    ("inners", [[1, True], [2, 2]], ["Everything.inners[1].flag", "bool"]),
    ("maybe", "x", ["Everything.maybe", "int", "str"]),
    ("maybe", False, ["Everything.maybe", "int", "bool"]),
    ("maybe_inner", 1, ["Everything.maybe_inner", "Inner array"]),
    ("digest", "abcd", ["Everything.digest", "bytes", "str"]),
    ("maybe_digest", "abcd", ["Everything.maybe_digest", "bytes", "str"]),
    ("few", [1, "x"], ["Everything.few[1]", "int", "str"]),
]


@pytest.mark.parametrize(
    ("field", "wrong", "words"), WRONG_TYPES, ids=[f"{f}-{w!r}" for f, w, _ in WRONG_TYPES]
)
def test_decode_rejects_a_wrong_type_naming_the_field(
    field: str, wrong: Any, words: list[str]
) -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, field, wrong))
    for word in words:
        assert word in reason


@pytest.mark.parametrize("field", FIELD_NAMES)
def test_decode_rejects_a_float_in_any_field(field: str) -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, field, 1.5))
    assert f"Everything.{field}" in reason
    assert "float" in reason or "1.5 is not a Color" in reason


def test_decode_rejects_a_float_inside_a_tuple() -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, "items", [1, 2.0]))
    assert "Everything.items[1]" in reason
    assert "float" in reason


def test_decode_rejects_a_float32() -> None:
    data = b"\x91\x91\xca\x3f\xc0\x00\x00"  # Ints((float32 1.5,))
    assert "float" in decode_error(Ints, data)


@pytest.mark.parametrize("field", FIELD_NAMES)
def test_decode_rejects_an_empty_map_in_any_field(field: str) -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, field, {}))
    assert f"Everything.{field}" in reason
    assert "dict" in reason or "{} is not a Color" in reason


@pytest.mark.parametrize("field", FIELD_NAMES)
def test_decode_rejects_a_map_in_any_field(field: str) -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, field, {1: 2}))
    assert "map" in reason


def test_decode_rejects_a_map_as_the_top_level_value() -> None:
    data = msgpack.packb({"n": 1, "s": "a", "b": b"b"}, use_bin_type=True)
    assert "map" in decode_error(Pair, data)


@pytest.mark.parametrize("field", FIELD_NAMES)
def test_decode_rejects_an_ext_type_in_any_field(field: str) -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, field, msgpack.ExtType(5, b"x")))
    assert "ext" in reason


@pytest.mark.parametrize("field", FIELD_NAMES)
def test_decode_rejects_an_empty_ext_type_in_any_field(field: str) -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, field, msgpack.ExtType(5, b"")))
    assert f"Everything.{field}" in reason
    assert "ExtType" in reason


def test_decode_rejects_a_msgpack_timestamp() -> None:
    data = b"\x91\x91\xd6\xff\x00\x00\x00\x01"  # Ints((timestamp32 1,))
    decode_error(Ints, data)


def test_decode_rejects_invalid_utf8_in_a_str_field() -> None:
    data = b"\x93\x05\xa2\xff\xfe\xc4\x00"  # Pair(5, <bad utf-8>, b"")
    assert "utf-8" in decode_error(Pair, data)


def test_decode_rejects_a_reserved_msgpack_byte() -> None:
    # The reason is words for the client, not msgpack's exception class (FormatError).
    reason = decode_error(Pair, b"\x93\x05\xc1\xc4\x00")
    assert reason == "malformed msgpack: a type byte that msgpack leaves unused"
    with pytest.raises(DecodeError, match="leaves unused"):
        unpack_document(b"\xc1")


def test_decode_rejects_deep_nesting_without_crashing() -> None:
    reason = decode_error(Ints, b"\x91" * 100_000 + b"\x90")
    assert reason == "malformed msgpack: values are nested too deeply"  # not "StackError"
    with pytest.raises(DecodeError, match="nested too deeply"):
        unpack_document(b"\x91" * 100_000 + b"\x90")


# --- length rejections --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "wrong", "expected"),
    [
        ("digest", b"abc", "expected length 4, got 3"),
        ("digest", b"abcde", "expected length 4, got 5"),
        ("digest", b"", "expected length 4, got 0"),
        ("code", "ab", "expected length 3, got 2"),
        ("code", "abcd", "expected length 3, got 4"),
        ("maybe_digest", b"abc", "expected length 4, got 3"),
    ],
)
def test_decode_rejects_a_wrong_exact_length(field: str, wrong: Any, expected: str) -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, field, wrong))
    assert f"Everything.{field}" in reason
    assert expected in reason


@pytest.mark.parametrize(
    ("field", "wrong"),
    [("short_blob", b"123456"), ("short_text", "abcdef"), ("few", [1, 2, 3, 4])],
)
def test_decode_rejects_a_value_over_its_max_length(field: str, wrong: Any) -> None:
    reason = decode_error(Everything, wire_with(SAMPLE, field, wrong))
    assert f"Everything.{field}" in reason
    assert "exceeds the maximum" in reason


def test_max_length_is_inclusive() -> None:
    value = dataclasses.replace(SAMPLE, short_blob=b"12345", short_text="\u00e9" * 5, few=(1, 2, 3))
    assert decode(Everything, encode(value)) == value


def test_str_length_counts_characters() -> None:
    value = dataclasses.replace(SAMPLE, code="\u00e9\u00e9\u00e9")  # 6 UTF-8 bytes
    assert decode(Everything, encode(value)) == value


def test_decode_rejects_transaction_fields_of_the_wrong_length() -> None:
    tx = _transaction(1)
    for index, wrong, field in [
        (1, b"\x01" * 31, "sender"),
        (5, b"\x01" * 17, "nonce"),
        (2, "f" * 65, "family"),
        (0, "c" * 65, "chain_id"),
    ]:
        wire = mutable_wire(tx)
        wire[0][index] = wrong
        reason = decode_error(Transaction, msgpack.packb(wire, use_bin_type=True))
        assert f"Transaction.body.{field}" in reason
    wire = mutable_wire(tx)
    wire[1] = wire[1][:-1]
    assert "Transaction.signature" in decode_error(
        Transaction, msgpack.packb(wire, use_bin_type=True)
    )


# --- non-canonical spellings ----------------------------------------------------------

CANONICAL_PAIR = b"\x93\x05\xa2ab\xc4\x02xy"  # Pair(5, "ab", b"xy")


def test_hand_built_canonical_pair_decodes() -> None:
    assert decode(Pair, CANONICAL_PAIR) == Pair(5, "ab", b"xy")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x93\xcc\x05\xa2ab\xc4\x02xy", id="int-as-uint8"),
        pytest.param(b"\x93\xcd\x00\x05\xa2ab\xc4\x02xy", id="int-as-uint16"),
        pytest.param(b"\x93\xce\x00\x00\x00\x05\xa2ab\xc4\x02xy", id="int-as-uint32"),
        pytest.param(b"\x93\xcf" + (5).to_bytes(8, "big") + b"\xa2ab\xc4\x02xy", id="uint64"),
        pytest.param(b"\x93\xd0\x05\xa2ab\xc4\x02xy", id="int-as-int8"),
        pytest.param(b"\x93\xd1\x00\x05\xa2ab\xc4\x02xy", id="int-as-int16"),
        pytest.param(b"\x93\xd2\x00\x00\x00\x05\xa2ab\xc4\x02xy", id="int-as-int32"),
        pytest.param(b"\x93\xd3" + (5).to_bytes(8, "big") + b"\xa2ab\xc4\x02xy", id="int64"),
        pytest.param(b"\x93\x05\xd9\x02ab\xc4\x02xy", id="str-as-str8"),
        pytest.param(b"\x93\x05\xda\x00\x02ab\xc4\x02xy", id="str-as-str16"),
        pytest.param(b"\x93\x05\xdb\x00\x00\x00\x02ab\xc4\x02xy", id="str-as-str32"),
        pytest.param(b"\x93\x05\xa2ab\xc5\x00\x02xy", id="bin-as-bin16"),
        pytest.param(b"\x93\x05\xa2ab\xc6\x00\x00\x00\x02xy", id="bin-as-bin32"),
        pytest.param(b"\xdc\x00\x03\x05\xa2ab\xc4\x02xy", id="array-as-array16"),
        pytest.param(b"\xdd\x00\x00\x00\x03\x05\xa2ab\xc4\x02xy", id="array-as-array32"),
    ],
)
def test_decode_rejects_non_canonical_spellings(data: bytes) -> None:
    assert msgpack.unpackb(data, raw=False) == [5, "ab", b"xy"]  # valid msgpack, same value
    reason = decode_error(Pair, data)
    assert "canonical" in reason
    assert "Pair" in reason


def test_decode_rejects_a_negative_int_in_a_wider_form() -> None:
    assert "canonical" in decode_error(Ints, b"\x91\x91\xd0\xff")  # -1 as int8
    assert "canonical" in decode_error(Ints, b"\x91\x91\xd1\xff\x80")  # -128 as int16
    assert decode(Ints, b"\x91\x91\xd0\x80") == Ints((-128,))


def test_decode_rejects_a_positive_int_spelled_as_a_signed_type() -> None:
    assert "canonical" in decode_error(Ints, b"\x91\x91\xd1\x00\xc8")  # 200 as int16
    assert decode(Ints, b"\x91\x91\xcc\xc8") == Ints((200,))


def test_decode_rejects_a_transaction_with_a_widened_array_header() -> None:
    data = encode(_transaction(1))
    assert data[0] == 0x92
    assert "canonical" in decode_error(Transaction, b"\xdc\x00\x02" + data[1:])


def test_decode_rejects_a_transaction_with_a_widened_integer() -> None:
    tx = _transaction(1)
    data = encode(tx)
    expiry = tx.body.expires_at_ms.to_bytes(8, "big")
    assert data.count(b"\xcf" + expiry) == 1
    widened = data.replace(b"\xcf" + expiry, b"\xd3" + expiry)
    assert "canonical" in decode_error(Transaction, widened)


# --- codec construction -------------------------------------------------------------


@dataclass(frozen=True)
class FloatModel:
    x: float


@dataclass(frozen=True)
class DictModel:
    x: dict[str, int]


@dataclass(frozen=True)
class ListModel:
    x: list[int]


@dataclass(frozen=True)
class MixedTupleModel:
    x: tuple[int, str]


@dataclass(frozen=True)
class UnionModel:
    x: int | str


@dataclass(frozen=True)
class NestedFloatModel:
    inner: FloatModel


@dataclass(frozen=True)
class OptionalDictModel:
    x: tuple[dict[str, int], ...] | None


@pytest.mark.parametrize(
    "cls",
    [FloatModel, DictModel, ListModel, MixedTupleModel, UnionModel, NestedFloatModel],
    ids=lambda cls: cls.__name__,
)
def test_codec_for_an_unsupported_field_type_raises_type_error_on_decode(cls: type) -> None:
    with pytest.raises(TypeError):
        decode(cls, b"\x91\x05")


def test_codec_for_a_float_field_raises_type_error_on_encode() -> None:
    with pytest.raises(TypeError, match="float"):
        encode(FloatModel(1.5))


def test_codec_for_a_dict_field_raises_type_error_on_encode() -> None:
    with pytest.raises(TypeError, match="dict"):
        encode(DictModel({"a": 1}))


def test_codec_for_a_nested_unsupported_type_raises_type_error() -> None:
    with pytest.raises(TypeError):
        from_wire(OptionalDictModel, (None,))
    with pytest.raises(TypeError):
        encode(NestedFloatModel(FloatModel(1.0)))


def test_a_failed_codec_is_not_cached_as_usable() -> None:
    for _ in range(2):
        with pytest.raises(TypeError):
            encode(FloatModel(1.0))


# --- properties -----------------------------------------------------------------------

ints = st.integers(min_value=INT_MIN, max_value=INT_MAX)
inner_values = st.builds(Inner, n=ints, flag=st.booleans())
everything_values = st.builds(
    Everything,
    count=ints,
    flag=st.booleans(),
    blob=st.binary(max_size=300),
    text=st.text(max_size=40),
    color=st.sampled_from(Color),
    inner=inner_values,
    items=st.lists(ints, max_size=20).map(tuple),
    inners=st.lists(inner_values, max_size=5).map(tuple),
    maybe=st.none() | ints,
    maybe_inner=st.none() | inner_values,
    digest=st.binary(min_size=4, max_size=4),
    code=st.text(min_size=3, max_size=3),
    short_blob=st.binary(max_size=5),
    short_text=st.text(max_size=5),
    few=st.lists(ints, max_size=3).map(tuple),
    maybe_digest=st.none() | st.binary(min_size=4, max_size=4),
)


@PROPERTY_SETTINGS
@given(everything_values)
def test_round_trip_holds_for_arbitrary_values(value: Everything) -> None:
    data = encode(value)
    decoded = decode(Everything, data)
    assert decoded == value
    assert encode(decoded) == data


@PROPERTY_SETTINGS
@given(everything_values, everything_values)
def test_distinct_values_have_distinct_encodings(a: Everything, b: Everything) -> None:
    assert (encode(a) == encode(b)) == (a == b)


VALID_TX_BYTES = encode(_transaction(1))


@st.composite
def mutated_transaction_bytes(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID_TX_BYTES)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["set", "insert", "delete", "cut"]))
        if action == "insert" or not data:
            data.insert(position, draw(st.integers(0, 255)))
        elif position == len(data):
            continue
        elif action == "set":
            data[position] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[position]
        else:
            del data[position:]
    return bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | mutated_transaction_bytes())
def test_decoding_arbitrary_bytes_returns_canonical_value_or_raises_decode_error(
    data: bytes,
) -> None:
    try:
        tx = decode(Transaction, data)
    except DecodeError as exc:
        assert exc.reason
    else:
        assert isinstance(tx, Transaction)
        assert encode(tx) == data


# --- generated decoders agree with the field-by-field ones ------------------------------


@dataclass(frozen=True)
class Bounded:
    """Both bounds at once, and a bounded optional tuple: the rarer shapes of a check."""

    both: Annotated[bytes, Length(2), MaxLength(3)]
    maybe_few: Annotated[tuple[bytes, ...], MaxLength(2)] | None
    nested: tuple[tuple[int, ...], ...]


primitive_wire = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT_MIN, max_value=INT_MAX)
    | st.binary(max_size=6)
    | st.text(max_size=6)
    | st.sampled_from([1, 2, 300, 4])
)
any_wire = st.recursive(primitive_wire, lambda inner: st.lists(inner, max_size=4).map(tuple))


@st.composite
def everything_wire_with_a_field_replaced(draw: st.DrawFn) -> Any:
    fields = list(to_wire(draw(everything_values)))
    fields[draw(st.integers(0, len(fields) - 1))] = draw(any_wire)
    return tuple(_as_tuples(field) for field in fields)


def _as_tuples(wire: Any) -> Any:
    """A to_wire form as msgpack decodes it: arrays are tuples."""
    if isinstance(wire, list | tuple):
        return tuple(_as_tuples(item) for item in wire)
    return int(wire) if isinstance(wire, enum.IntEnum) else wire


def _outcome(decoder: Any, wire: Any) -> str:
    """repr tells True from 1 and Color.RED from 1, which == does not."""
    try:
        return repr(decoder(wire))
    except DecodeError as exc:
        return f"refused: {exc}"


@PROPERTY_SETTINGS
@given(
    st.sampled_from([Everything, Inner, Pair, BoundedOptional, Ints, Bounded]),
    any_wire | everything_wire_with_a_field_replaced(),
)
def test_generated_decoders_accept_and_build_exactly_what_the_checked_ones_do(
    cls: type, wire: Any
) -> None:
    codec = _model_codec(cls)
    assert _outcome(codec.from_wire, wire) == _outcome(_checked_decoders[cls], wire)


@PROPERTY_SETTINGS
@given(everything_wire_with_a_field_replaced())
def test_a_field_the_generated_decoder_refuses_is_named_in_the_error(wire: Any) -> None:
    try:
        value = from_wire(Everything, wire)
    except DecodeError as exc:
        assert str(exc).startswith("Everything.")
    else:
        assert _as_tuples(to_wire(value)) == wire


def test_bounded_shapes_round_trip_and_refuse_outside_their_bounds() -> None:
    value = Bounded(b"ab", (b"x", b"y"), ((1, 2), ()))
    assert decode(Bounded, encode(value)) == value
    assert decode(Bounded, encode(Bounded(b"ab", None, ()))).maybe_few is None
    for bad in (Bounded(b"abc", None, ()), Bounded(b"ab", (b"x", b"y", b"z"), ())):
        with pytest.raises(DecodeError, match=r"Bounded\.(both|maybe_few)"):
            decode(Bounded, encode(bad))


@PROPERTY_SETTINGS
@given(st.sampled_from([Everything, Bounded]), any_wire | everything_wire_with_a_field_replaced())
def test_decode_accepts_only_bytes_that_encoding_its_value_gives_back(cls: type, wire: Any) -> None:
    data = msgpack.packb(wire, use_bin_type=True)
    try:
        value = decode(cls, data)
    except DecodeError:
        return
    assert encode(value) == data


@pytest.mark.parametrize("bound", ["2", -1, 2.0, True, None])
def test_a_length_bound_is_a_non_negative_int(bound: Any) -> None:
    # Bounds are written into the generated decoders' source.
    for kind in (Length, MaxLength):
        with pytest.raises(TypeError, match="non-negative int"):
            kind(bound)


def test_a_failed_pack_leaves_nothing_behind_for_the_next() -> None:
    with pytest.raises(TypeError):
        pack((1, object()))
    assert pack((1, 2)) == msgpack.packb((1, 2), use_bin_type=True)


def test_threads_packing_at_once_each_get_their_own_bytes() -> None:
    """Packers are pooled, not shared: no thread sees another's buffer."""
    wrong: list[int] = []

    def worker(index: int) -> None:
        value = (index, bytes([index]) * 40, "x" * index)
        expected = msgpack.packb(value, use_bin_type=True)
        for _ in range(3000):
            if pack(value) != expected:
                wrong.append(index)
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert wrong == []


@dataclass(frozen=True)
class Positive:
    """A model with a rule of its own, as `ValidatorSet` has."""

    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError("n is positive")


@dataclass(frozen=True)
class HoldsPositive:
    inner: Positive
    many: tuple[Positive, ...]


def test_a_model_rule_refuses_with_a_decode_error_naming_where() -> None:
    assert decode(Positive, msgpack.packb((3,))) == Positive(3)
    with pytest.raises(DecodeError, match=r"^Positive: n is positive$"):
        decode(Positive, msgpack.packb((0,)))
    with pytest.raises(DecodeError, match=r"^HoldsPositive\.many\[1\]: n is positive$"):
        decode(HoldsPositive, msgpack.packb(((1,), ((2,), (-1,)))))


def test_a_validator_set_listing_a_key_twice_does_not_decode() -> None:
    key = bytes(32)
    data = msgpack.packb((1, (key, key)), use_bin_type=True)
    with pytest.raises(DecodeError, match="ValidatorSet: a validator set lists each key once"):
        decode(ValidatorSet, data)


@PROPERTY_SETTINGS
@given(any_wire)
def test_generated_and_checked_decoders_agree_on_models_with_rules(wire: Any) -> None:
    for cls in (Positive, HoldsPositive):
        codec = _model_codec(cls)
        assert _outcome(codec.from_wire, wire) == _outcome(_checked_decoders[cls], wire)
