"""Canonical encoding: one value, one byte string.

Rule: everything that is hashed or signed is a frozen dataclass ("model")
whose fields are encoded, in declaration order, as a msgpack array. Fields may
only be `int`, `bool`, `bytes`, `str`, an `IntEnum`, another model, a
homogeneous `tuple[X, ...]`, `X | None`, or one of those wrapped in
`Annotated[..., Length(n)]` / `Annotated[..., MaxLength(n)]`. There are no
floats and no maps, so each value has exactly one encoding.

`decode` is strict: it accepts the canonical bytes of a value of the expected
model and nothing else. Trailing bytes, missing or extra fields, wrong types,
oversize input and any non-canonical spelling of a valid value (a wider
integer, a str8 where a fixstr fits) are rejected with a `DecodeError` that
names the field. Hence `encode(decode(b)) == b` for every accepted `b`, and a
hash of the bytes is a hash of the value.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar, get_args, get_origin, get_type_hints

import msgpack

from ledger.errors import DecodeError

T = TypeVar("T")

INPUT_BYTES_MAX_DEFAULT: Final = 16 * 1024 * 1024
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1


def _check_bound(n: object) -> None:
    # A bound is written into a generated decoder's source: it must be a plain number.
    if type(n) is not int or n < 0:
        raise TypeError(f"a length bound is a non-negative int, not {n!r}")


@dataclass(frozen=True, slots=True)
class Length:
    """Exact length of a `bytes` or `str` field (for hashes, keys, signatures)."""

    n: int

    def __post_init__(self) -> None:
        _check_bound(self.n)


@dataclass(frozen=True, slots=True)
class MaxLength:
    """Upper bound on the length of a `bytes`, `str` or `tuple` field."""

    n: int

    def __post_init__(self) -> None:
        _check_bound(self.n)


# A field's pair of converters: to the msgpack-ready value, and back from the
# decoded value (checking it). A failed check raises `_Bad`; the models around
# it add their field names on the way out, so the success path builds no strings.
ToWire = Callable[[Any], Any]
FromWire = Callable[[Any], Any]


class _Bad(DecodeError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.text = reason
        self.path: list[str] = []
        """Field names and indices from the innermost out."""


CheckSource = Callable[[str], str]
"""Given a variable's name, the source of an expression that is true exactly when
`from_wire` accepts the variable's value and returns it unchanged."""


@dataclass(frozen=True, slots=True)
class _Codec:
    to_wire: ToWire
    from_wire: FromWire
    check: CheckSource | None = None
    """For codecs whose decoding only checks (no conversion): the check as source,
    which a model's generated decoder inlines instead of calling `from_wire`."""


_codecs: dict[type, _Codec] = {}
_checked_decoders: dict[type, FromWire] = {}
"""Per model, the field-by-field decoder its generated one falls back to (tests compare them)."""


def _identity(value: Any) -> Any:
    return value


def _type_name(value: object) -> str:
    return type(value).__name__


def _primitive(kind: type) -> FromWire:
    name = kind.__name__

    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise _Bad(f"expected {name}, got {_type_name(value)}")
        return value

    return check


_PRIMITIVES: dict[object, FromWire] = {kind: _primitive(kind) for kind in (int, bool, bytes, str)}


def _primitive_check(kind: type) -> CheckSource:
    return lambda v: f"type({v}) is {kind.__name__}"


def _length_checked(inner: FromWire, exact: int | None, most: int | None) -> FromWire:
    def check(value: Any) -> Any:
        checked = inner(value)
        if checked is None:  # Annotated[X | None, ...]: the bound applies to X only
            return None
        size = len(checked)
        if exact is not None and size != exact:
            raise _Bad(f"expected length {exact}, got {size}")
        if most is not None and size > most:
            raise _Bad(f"length {size} exceeds the maximum {most}")
        return checked

    return check


def _annotated_codec(annotation: Any) -> _Codec:
    base, *extras = get_args(annotation)
    codec = _codec_for(base)
    exact = next((e.n for e in extras if isinstance(e, Length)), None)
    most = next((e.n for e in extras if isinstance(e, MaxLength)), None)
    bounds = [f"== {n}" for n in (exact,) if n is not None]
    bounds += [f"<= {n}" for n in (most,) if n is not None]
    check = None if codec.check is None else _bounded_check(codec.check, bounds)
    return _Codec(codec.to_wire, _length_checked(codec.from_wire, exact, most), check)


def _bounded_check(inner: CheckSource, bounds: list[str]) -> CheckSource:
    if not bounds:
        return inner

    def check(v: str) -> str:
        sizes = " and ".join(f"len({v}) {bound}" for bound in bounds)
        # `is None`: in `Annotated[X | None, ...]` the bound applies to X only.
        return f"({inner(v)} and ({v} is None or ({sizes})))"

    return check


def _optional_codec(inner: _Codec) -> _Codec:
    inner_to, inner_from = inner.to_wire, inner.from_wire

    def to_wire(value: Any) -> Any:
        return None if value is None else inner_to(value)

    def from_wire(value: Any) -> Any:
        return None if value is None else inner_from(value)

    inner_check = inner.check
    check = None if inner_check is None else (lambda v: f"({v} is None or {inner_check(v)})")
    return _Codec(to_wire, from_wire, check)


def _tuple_codec(inner: _Codec) -> _Codec:
    inner_to, inner_from = inner.to_wire, inner.from_wire
    plain = inner_to is _identity

    def to_wire(value: Any) -> Any:
        return value if plain else [inner_to(item) for item in value]

    def from_wire(value: Any) -> Any:
        if type(value) is not tuple:
            raise _Bad(f"expected array, got {_type_name(value)}")
        try:
            return tuple([inner_from(item) for item in value])
        except _Bad:
            for index, item in enumerate(value):
                try:
                    inner_from(item)
                except _Bad as bad:
                    bad.path.append(f"[{index}]")
                    raise
            raise

    item_check = inner.check
    check = (
        None
        if item_check is None
        else lambda v: f"(type({v}) is tuple and all({item_check(v + '_')} for {v}_ in {v}))"
    )
    return _Codec(to_wire, from_wire, check)


def _enum_codec(cls: type[enum.IntEnum]) -> _Codec:
    members = {member.value: member for member in cls}

    def to_wire(value: Any) -> Any:
        return int(value)

    def from_wire(value: Any) -> Any:
        member = members.get(value) if type(value) is int else None
        if member is None:
            raise _Bad(f"{value!r} is not a {cls.__name__}")
        return member

    return _Codec(to_wire, from_wire)


def _codec_for(annotation: Any) -> _Codec:
    if annotation in _PRIMITIVES:
        return _Codec(_identity, _PRIMITIVES[annotation], _primitive_check(annotation))
    supertype = getattr(annotation, "__supertype__", None)
    if supertype is not None:  # typing.NewType
        return _codec_for(supertype)
    origin = get_origin(annotation)
    if origin is Annotated:
        return _annotated_codec(annotation)
    if origin in (types.UnionType, typing.Union):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1 or len(get_args(annotation)) != 2:
            raise TypeError(f"only `X | None` unions are encodable, not {annotation}")
        return _optional_codec(_codec_for(members[0]))
    if origin is tuple:
        item, *rest = get_args(annotation)
        if rest != [Ellipsis]:
            raise TypeError(f"only homogeneous tuple[X, ...] is encodable, not {annotation}")
        return _tuple_codec(_codec_for(item))
    if isinstance(annotation, type) and issubclass(annotation, enum.IntEnum):
        return _enum_codec(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _model_codec(annotation)
    raise TypeError(f"{annotation!r} is not encodable (floats and maps never are)")


def _compiled(source: str, namespace: dict[str, Any], name: str) -> Callable[[Any], Any]:
    """The function `name` defined by `source`, built from field names and bounds only."""
    exec(source, namespace)  # noqa: S102  (our own models' field names, never input)
    function: Callable[[Any], Any] = namespace[name]
    return function


def _model_to_wire(names: tuple[str, ...], parts: tuple[ToWire, ...]) -> ToWire:
    if all(part is _identity for part in parts):
        # attrgetter builds the tuple in C; msgpack packs a tuple as an array.
        get = operator.attrgetter(*names)
        if len(names) == 1:
            return lambda value: (get(value),)
        return get
    # Generated, as `dataclasses` generates `__init__`: plain attribute reads and direct
    # calls cost a fraction of a loop of getattr over (converter, name) pairs.
    namespace: dict[str, Any] = {}
    items = []
    for index, (name, part) in enumerate(zip(names, parts, strict=True)):
        if part is _identity:
            items.append(f"value.{name}")
        else:
            namespace[f"_to{index}"] = part
            items.append(f"_to{index}(value.{name})")
    source = f"def to_wire(value):\n    return [{', '.join(items)}]\n"
    return _compiled(source, namespace, "to_wire")


def _model_from_wire(cls: type, field_codecs: tuple[_Codec, ...], slow: FromWire) -> FromWire:
    """A model's decoder with its fields' checks inlined, falling back to `slow` on failure.

    The generated code accepts only what `slow` accepts and builds the same value; on
    anything it does not accept it hands the value to `slow`, which then raises the
    error naming the field. Fields whose codec converts (enums, models, tuples of those)
    go through their codec's own `from_wire`.
    """
    count = len(field_codecs)
    variables = [f"f{index}" for index in range(count)]
    namespace: dict[str, Any] = {"_cls": cls, "_slow": slow, "_Bad": _Bad}
    conditions = []
    conversions = []
    for index, (variable, codec) in enumerate(zip(variables, field_codecs, strict=True)):
        if codec.check is not None:
            conditions.append(codec.check(variable))
        else:
            namespace[f"_from{index}"] = codec.from_wire
            conversions.append(f"        {variable} = _from{index}({variable})")
    lines = [
        "def from_wire(value):",
        f"    if type(value) is not tuple or len(value) != {count}:",
        "        return _slow(value)",
        f"    {', '.join(variables)}, = value",
    ]
    if conditions:
        lines += [f"    if not ({' and '.join(conditions)}):", "        return _slow(value)"]
    if conversions:
        lines += ["    try:", *conversions, "    except _Bad:", "        return _slow(value)"]
    lines += [
        "    try:",
        f"        return _cls({', '.join(variables)})",
        "    except ValueError:",  # a model's own rule: `slow` says which
        "        return _slow(value)",
    ]
    return _compiled("\n".join(lines) + "\n", namespace, "from_wire")


def _model_codec(cls: type) -> _Codec:
    cached = _codecs.get(cls)
    if cached is not None:
        return cached
    hints = get_type_hints(cls, include_extras=True)
    names = tuple(f.name for f in dataclasses.fields(cls))
    field_codecs = tuple(_codec_for(hints[name]) for name in names)
    checks = tuple(c.from_wire for c in field_codecs)
    pairs = tuple(zip(checks, names, strict=True))
    count = len(names)
    title = cls.__name__

    def checked_from_wire(value: Any) -> Any:
        if type(value) is not tuple:
            raise _Bad(f"expected {title} array, got {_type_name(value)}")
        if len(value) != count:
            raise _Bad(f"expected {count} fields for {title}, got {len(value)}")
        try:
            return cls(*[check(item) for check, item in zip(checks, value)])  # noqa: B905
        except _Bad:
            for (check, name), item in zip(pairs, value, strict=True):
                try:
                    check(item)
                except _Bad as bad:
                    bad.path.append(f".{name}")
                    raise
            raise
        except ValueError as invalid:  # the model's own rule (`__post_init__`) refused it
            raise _Bad(str(invalid)) from None

    to_wire = _model_to_wire(names, tuple(c.to_wire for c in field_codecs))
    _checked_decoders[cls] = checked_from_wire
    from_wire = _model_from_wire(cls, field_codecs, checked_from_wire)
    codec = (
        _Codec(*_cached_wire(to_wire, from_wire))
        if getattr(cls, "__wire_cached__", False)
        else _Codec(to_wire, from_wire)
    )
    _codecs[cls] = codec
    return codec


def _cached_wire(to_wire: ToWire, from_wire: FromWire) -> tuple[ToWire, FromWire]:
    """For a model that sets `__wire_cached__` (and has a `__dict__`): its msgpack-ready
    form is kept on the object, from decoding or from the first encoding, so a value
    that travels through many messages and records is walked in Python only once.

    Sound because a decoded value's wire form re-packs to exactly its canonical bytes
    (`decode` checks that), and frozen models never change."""

    def cached_to_wire(value: Any) -> Any:
        attributes = value.__dict__
        wire = attributes.get("_wire")
        if wire is None:
            wire = attributes["_wire"] = to_wire(value)
        return wire

    def cached_from_wire(wire: Any) -> Any:
        value = from_wire(wire)
        value.__dict__["_wire"] = wire
        return value

    return cached_to_wire, cached_from_wire


def to_wire(value: object) -> Any:
    """The msgpack-ready form of a model (nested tuples and lists of primitives)."""
    return _model_codec(type(value)).to_wire(value)


def from_wire(cls: type[T], value: Any) -> T:
    """Check a decoded msgpack value against `cls` and build the model."""
    try:
        result: T = _model_codec(cls).from_wire(value)
    except _Bad as bad:
        where = cls.__name__ + "".join(reversed(bad.path))
        raise DecodeError(f"{where}: {bad.text}") from None
    return result


def encode(value: object) -> bytes:
    """The canonical bytes of a model: the bytes that are hashed and signed."""
    return pack(to_wire(value))


_packers: list[Any] = []
"""Idle msgpack packers. `msgpack.packb` builds a packer per call, which costs more than
the packing of a small value; one shared packer would be unsafe across threads (it keeps
its buffer between calls), so each call takes one from here, or makes one, and returns it."""


def pack(wire: Any) -> bytes:
    """msgpack with the options that make the encoding canonical."""
    try:
        packer = _packers.pop()  # atomic, unlike checking for one first
    except IndexError:
        packer = msgpack.Packer(use_bin_type=True)
    try:
        packed: bytes = packer.pack(wire)  # a failed pack leaves the packer empty
    finally:
        _packers.append(packer)
    return packed


def unpack(data: bytes, *, input_bytes_max: int = INPUT_BYTES_MAX_DEFAULT) -> Any:
    """Parse msgpack strictly: no maps, no extension types, no trailing bytes."""
    if type(data) is not bytes:
        raise DecodeError(f"expected bytes to decode, got {_type_name(data)}")
    if len(data) > input_bytes_max:
        raise DecodeError(f"input of {len(data)} bytes exceeds the maximum {input_bytes_max}")
    if not data:
        raise DecodeError("input is empty")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=False,
            strict_map_key=True,
            max_map_len=0,
            max_ext_len=0,
        )
    except msgpack.ExtraData as exc:
        raise DecodeError(f"{len(exc.extra)} trailing bytes after the value") from None
    except (ValueError, msgpack.UnpackException) as exc:  # FormatError, StackError, OutOfData
        raise DecodeError(f"malformed msgpack: {_describe(exc)}") from None


def unpack_byte_strings(data: bytes, *, input_bytes_max: int) -> tuple[bytes, ...]:
    """An array of byte strings (a batch of encodings, each decoded on its own later)."""
    items = unpack(data, input_bytes_max=input_bytes_max)
    if type(items) is not tuple or any(type(item) is not bytes for item in items):
        raise DecodeError("expected an array of byte strings")
    return items


def unpack_document(data: bytes, *, input_bytes_max: int = INPUT_BYTES_MAX_DEFAULT) -> Any:
    """Parse an API document (maps allowed): never hashed or signed, so no canonical form."""
    if len(data) > input_bytes_max:
        raise DecodeError(f"input of {len(data)} bytes exceeds the maximum {input_bytes_max}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, max_ext_len=0)
    except msgpack.ExtraData as exc:
        raise DecodeError(f"{len(exc.extra)} trailing bytes after the value") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise DecodeError(f"malformed msgpack: {_describe(exc)}") from None


def decode(cls: type[T], data: bytes, *, input_bytes_max: int = INPUT_BYTES_MAX_DEFAULT) -> T:
    """Decode canonical bytes into a `cls`; raise `DecodeError` for anything else."""
    wire = unpack(data, input_bytes_max=input_bytes_max)
    value = from_wire(cls, wire)
    # Re-packing the parsed form checks the same as re-encoding the value, for less:
    # decoding converts nothing (an enum member stays its number on the wire).
    if pack(wire) != data:
        raise DecodeError(f"{cls.__name__}: bytes are not in canonical form")
    return value


def _describe(exc: Exception) -> str:
    """msgpack's complaint in words; never the name of its exception class, which
    says nothing to the client that reads it."""
    if isinstance(exc, msgpack.StackError):
        return "values are nested too deeply"
    if isinstance(exc, msgpack.FormatError):
        return "a type byte that msgpack leaves unused"
    text = str(exc)
    if "max_map_len" in text:
        return "maps are not allowed"
    if "max_ext_len" in text:
        return "extension types are not allowed"
    # msgpack bounds every other length by the input's size, so a length over
    # that bound means the input ends before the value it announces.
    if isinstance(exc, msgpack.OutOfData) or "incomplete input" in text or "exceeds max_" in text:
        return "input is truncated"
    return text or "not valid msgpack"
