"""Field kinds: typed, bounded values of scenario tables and spec dataclasses (a base module).

A field knows its name, its unit, its default, its bounds and a one-line doc, so that one
declaration serves the scenario schema (podsim.front.schema), the spec dataclasses' checks at
construction and a generated reference page. `field.check(value, where)` returns the value in
SI units (a float for numbers and quantities) or raises SpecError naming `where` (the key as
the user wrote it, e.g. "train.seq_len"), the value (shortened) and what is allowed.

Rules every kind follows: bool is never a number or an integer; integers are compared with
their bounds as Python integers, before any conversion to float or C++; numbers must be
finite; a TOML date or time is never a string.
"""

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podsim import units
from podsim.errors import SpecError, shown


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()  # the default of a field that has none


def fail(where: str, value: object, allowed: str) -> None:
    """Raise the standard SpecError: `where = value is not allowed: allowed`."""
    raise SpecError(f"{where} = {shown(value)} is not allowed: {allowed}")


def child(where: str, key: str) -> str:
    """The name of `key` inside the table named `where` ("train" -> "train.seq_len"; a
    prefix ending in ": ", such as "chip 'x': ", is followed by the key alone)."""
    if not where:
        return key
    return f"{where}{key}" if where.endswith(": ") else f"{where}.{key}"


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _g(number: float) -> str:
    return f"{number:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _interval(low: float, high: float, low_open: bool, high_open: bool, show=_g) -> str:
    return f"{'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"


def _within(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


@dataclass(frozen=True)
class Field:
    """A named value of a table: the base of every kind."""

    name: str
    doc: str
    default: Any = REQUIRED
    unit: str = ""

    @property
    def allowed(self) -> str:
        """What the field takes, in words (the end of its error messages)."""
        raise NotImplementedError

    def takes(self, value: object) -> bool:
        """Whether value has a type this field reads (used to choose among alternatives)."""
        raise NotImplementedError

    def check(self, value: object, where: str | None = None) -> Any:
        """The value in SI units, or SpecError naming `where` (default: the field's name)."""
        raise NotImplementedError

    def where(self, where: str | None) -> str:
        return self.name if where is None else where


@dataclass(frozen=True)
class Integer(Field):
    """An integer in [low, high] (bool refused)."""

    low: int = 0
    high: int = 2**31 - 1

    @property
    def allowed(self) -> str:
        return f"an integer in [{self.low:_}, {self.high:_}]"

    def takes(self, value: object) -> bool:
        return _is_int(value)

    def check(self, value: object, where: str | None = None) -> int:
        if not (_is_int(value) and self.low <= value <= self.high):
            fail(self.where(where), value, self.allowed)
        return int(value)


@dataclass(frozen=True)
class Number(Field):
    """A finite number in a range (an int is read as a float; bool refused)."""

    low: float = 0.0
    high: float = 1e18
    low_open: bool = False
    high_open: bool = False

    @property
    def allowed(self) -> str:
        bounds = _interval(self.low, self.high, self.low_open, self.high_open)
        return f"a number in {bounds}" + (f" {self.unit}" if self.unit else "")

    def takes(self, value: object) -> bool:
        return _is_number(value)

    def check(self, value: object, where: str | None = None) -> float:
        ok = _is_number(value) and (not _is_int(value) or abs(value) < 2**1000)
        number = float(value) if ok else math.nan
        if not (math.isfinite(number) and self._within(number)):
            fail(self.where(where), value, self.allowed)
        return number

    def _within(self, number: float) -> bool:
        return _within(number, self.low, self.high, self.low_open, self.high_open)


def fraction(name: str, doc: str, default: Any = REQUIRED, low_open: bool = False) -> Number:
    """A fraction in [0, 1] (or (0, 1] with low_open)."""
    return Number(name, doc, default, low=0.0, high=1.0, low_open=low_open)


_PARSERS: dict[str, tuple[str, Callable[[str, object], float], str]] = {
    "time": ("s", units.parse_time, "a time"),
    "size": ("B", units.parse_size, "a size"),
    "bandwidth": ("B/s", units.parse_bandwidth, "a bandwidth"),
    "flops": ("FLOP/s", units.parse_flops, "a compute rate"),
}
_EXAMPLES = {
    "time": "'2 us'",
    "size": "'80 GB'",
    "bandwidth": "'400 Gb/s'",
    "flops": "'989 TFLOP/s'",
}


@dataclass(frozen=True)
class Quantity(Number):
    """A time, size, bandwidth or compute rate: a number in SI units or a unit string
    (podsim.units), finite and within bounds."""

    kind: str = "time"

    def __post_init__(self) -> None:
        if self.kind not in _PARSERS:
            raise ValueError(f"unknown quantity kind {self.kind!r}")
        if not self.unit:
            object.__setattr__(self, "unit", _PARSERS[self.kind][0])

    @property
    def allowed(self) -> str:
        words = _PARSERS[self.kind][2]
        bounds = _interval(self.low, self.high, self.low_open, self.high_open)
        return f"{words} in {bounds} {self.unit} (a number or a string like {_EXAMPLES[self.kind]})"

    def takes(self, value: object) -> bool:
        return _is_number(value) or isinstance(value, str)

    def check(self, value: object, where: str | None = None) -> float:
        name = self.where(where)
        if _is_int(value) and abs(value) >= 2**1000:
            fail(name, value, self.allowed)
        if not self.takes(value):
            fail(name, value, self.allowed)
        try:
            number = _PARSERS[self.kind][1](name, value)
        except SpecError as error:
            if isinstance(value, str) and len(value) <= 100 and "unit" in str(error):
                raise  # an unknown unit: its message lists the units
            fail(name, value, self.allowed)
        if not self._within(number):
            fail(name, value, self.allowed)
        return number


@dataclass(frozen=True)
class Boolean(Field):
    """true or false, as a TOML boolean ("false" and 1 are refused)."""

    @property
    def allowed(self) -> str:
        return "true or false"

    def takes(self, value: object) -> bool:
        return isinstance(value, bool)

    def check(self, value: object, where: str | None = None) -> bool:
        if not isinstance(value, bool):
            fail(self.where(where), value, self.allowed)
        return value


@dataclass(frozen=True)
class Choice(Field):
    """One of a few strings."""

    choices: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        return " | ".join(repr(c) for c in self.choices)

    def takes(self, value: object) -> bool:
        return isinstance(value, str)

    def check(self, value: object, where: str | None = None) -> str:
        if not (isinstance(value, str) and value in self.choices):
            fail(self.where(where), value, self.allowed)
        return value


@dataclass(frozen=True)
class String(Field):
    """A string (not a number, date or list) of at most max_length characters."""

    max_length: int = 200
    nonempty: bool = False

    @property
    def allowed(self) -> str:
        what = "a non-empty string" if self.nonempty else "a string"
        return f"{what} of at most {self.max_length:,} characters"

    def takes(self, value: object) -> bool:
        return isinstance(value, str)

    def check(self, value: object, where: str | None = None) -> str:
        ok = isinstance(value, str) and len(value) <= self.max_length
        if not ok or (self.nonempty and not value):
            fail(self.where(where), value, self.allowed)
        return value


@dataclass(frozen=True)
class IntList(Field):
    """A list of integers, each in [low, high], at most max_length of them."""

    low: int = 0
    high: int = 2**31 - 1
    max_length: int = 1_000_000

    @property
    def allowed(self) -> str:
        return f"a list of integers in [{self.low}, {self.high}]"

    def takes(self, value: object) -> bool:
        return isinstance(value, list | tuple)

    def check(self, value: object, where: str | None = None) -> tuple[int, ...]:
        ok = isinstance(value, list | tuple) and len(value) <= self.max_length
        if not (ok and all(_is_int(v) and self.low <= v <= self.high for v in value)):
            fail(self.where(where), value, self.allowed)
        return tuple(int(v) for v in value)


@dataclass(frozen=True)
class ChoiceList(Field):
    """A list of strings, each one of a few choices."""

    choices: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        return "a list of " + " | ".join(repr(c) for c in self.choices)

    def takes(self, value: object) -> bool:
        return isinstance(value, list | tuple)

    def check(self, value: object, where: str | None = None) -> tuple[str, ...]:
        ok = isinstance(value, list | tuple) and len(value) <= len(self.choices)
        if not (ok and all(isinstance(v, str) and v in self.choices for v in value)):
            fail(self.where(where), value, self.allowed)
        return tuple(value)


@dataclass(frozen=True)
class Auto(Field):
    """The string "auto" (decided by podsim) or a value of the inner field."""

    inner: Field | None = None

    @property
    def allowed(self) -> str:
        return f'"auto" or {self.inner.allowed}'

    def takes(self, value: object) -> bool:
        return value == "auto" or self.inner.takes(value)

    def check(self, value: object, where: str | None = None) -> Any:
        if isinstance(value, str) and value == "auto":
            return value
        if not self.inner.takes(value):
            fail(self.where(where), value, self.allowed)
        try:
            return self.inner.check(value, self.where(where))
        except SpecError:
            fail(self.where(where), value, self.allowed)


def auto(inner: Field, doc: str | None = None) -> Auto:
    """Auto around `inner`, with its name and default."""
    return Auto(inner.name, doc or inner.doc, inner.default, inner.unit, inner)


def _unknown(where: str, unknown: list[str], allowed: list[str]) -> SpecError:
    head = where[:-2] if where.endswith(": ") else where
    names = [shown(k, 40) for k in unknown]
    return SpecError(f"{head}: unknown key(s) [{', '.join(names)}]; allowed: {allowed}")


def _table_value(where: str, value: object, allowed: str) -> Mapping:
    if not isinstance(value, Mapping):
        fail(where, value, allowed)
    return value


@dataclass(frozen=True)
class Table(Field):
    """A table of known keys, each a field; unknown keys are refused with the allowed list.
    check returns the keys given, checked (defaults are the consumer's to apply)."""

    fields: tuple[Field, ...] = ()

    @property
    def keys(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @property
    def allowed(self) -> str:
        return "a table of " + ", ".join(f.name for f in self.fields)

    def takes(self, value: object) -> bool:
        return isinstance(value, Mapping)

    def check(self, value: object, where: str | None = None) -> dict[str, Any]:
        name = self.where(where)
        table = _table_value(name, value, f"a table ({', '.join(self.keys)})")
        keys = self.keys
        unknown = sorted(str(k) for k in table if k not in keys)
        if unknown:
            raise _unknown(name, unknown, sorted(keys))
        return {key: keys[key].check(v, child(name, key)) for key, v in table.items()}


@dataclass(frozen=True)
class TableOf(Field):
    """A table whose keys are free (or one of `keys`) and whose values are all one field."""

    value: Field | None = None
    keys: tuple[str, ...] | None = None
    max_length: int = 1000

    @property
    def allowed(self) -> str:
        which = f"keys among {', '.join(self.keys)}" if self.keys else "string keys"
        return f"a table of {which}, each {self.value.allowed}"

    def takes(self, value: object) -> bool:
        return isinstance(value, Mapping)

    def check(self, value: object, where: str | None = None) -> dict[str, Any]:
        name = self.where(where)
        table = _table_value(name, value, self.allowed)
        if len(table) > self.max_length:
            fail(name, value, f"at most {self.max_length} keys")
        if self.keys is not None:
            unknown = sorted(str(k) for k in table if k not in self.keys)
            if unknown:
                raise _unknown(name, unknown, list(self.keys))
        return {str(k): self.value.check(v, child(name, str(k))) for k, v in table.items()}


@dataclass(frozen=True)
class OneOf(Field):
    """The first of `options` whose type the value has (e.g. a catalog id or a table)."""

    options: tuple[Field, ...] = field(default_factory=tuple)

    @property
    def allowed(self) -> str:
        return " or ".join(o.allowed for o in self.options)

    def takes(self, value: object) -> bool:
        return any(o.takes(value) for o in self.options)

    def check(self, value: object, where: str | None = None) -> Any:
        for option in self.options:
            if option.takes(value):
                return option.check(value, self.where(where))
        fail(self.where(where), value, self.allowed)


def provenance_fields() -> tuple[Field, Field]:
    """`sources` (where each figure comes from, by field) and `notes`: every catalog entry
    carries them."""
    return (
        TableOf(
            "sources",
            "where each figure comes from, by field",
            {},
            value=String("source", "a source", max_length=10_000),
        ),
        String("notes", "free text", "", max_length=100_000),
    )


def check_all(values: Mapping[str, Any], fields: Mapping[str, Field], where: str) -> None:
    """Check each named attribute against its field (for dataclass __post_init__)."""
    for key, value in values.items():
        fields[key].check(value, child(where, key))


def reference(table: Field, prefix: str = "") -> list[dict[str, str]]:
    """One row per key of a table, nested tables flattened ("cluster.chip.name"): the key,
    what it takes, its unit, its default and its doc (for a generated reference page)."""
    rows: list[dict[str, str]] = []
    fields = table.fields if isinstance(table, Table) else ()
    for f in fields:
        key = child(prefix, f.name)
        default = "" if f.default is REQUIRED else repr(f.default)
        rows.append({"key": key, "allowed": f.allowed, "unit": f.unit, "default": default})
        rows[-1]["doc"] = f.doc
        for option in f.options if isinstance(f, OneOf) else (f,):
            if isinstance(option, Table):
                rows += reference(option, key)
    return rows
