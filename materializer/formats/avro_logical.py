"""The Avro logical-type converters both Avro readers call in place of fastavro's (the
generated reader, `formats.avro_compiled`, and fastavro's own reader given
`fastavro_schema`): a decimal read exactly (`exact_decimal`) where fastavro's converter
rounds, a time-millis/-micros that is no time of day refused (`NotTimeOfDay`) where
fastavro's wraps it round, a uuid string kept as its producer wrote it (`uuid_text`) where
fastavro's makes a `uuid.UUID`, and Avro 1.12's uuid on a fixed(16) read (`fixed_uuid`),
which fastavro leaves as bytes.

Importing it registers these converters in fastavro's `LOGICAL_READERS` under logical
types of our own names (`_FASTAVRO_NAMES`), beside fastavro's: none of its own replaced.
"""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Callable
from typing import Any

from fastavro.logical_readers import LOGICAL_READERS

from materializer.formats.avro_schema import rewritten


class NotTimeOfDay(ValueError):
    """An Avro time-millis or time-micros value outside [0, one day): fastavro's own
    converters wrap it round to some other time of day (-5 ms reads as 00:00:00.995)."""


def _time_of_day(key: str, unit: str, per_day: int) -> Callable[..., Any]:
    """fastavro's converter for logical reader `key`, refusing a value that is no time
    of day (NotTimeOfDay)."""
    convert = LOGICAL_READERS[key]
    what = key.split("-", 1)[1]

    def checked(data: int, writer_schema: Any = None, reader_schema: Any = None) -> Any:
        if not 0 <= data < per_day:
            raise NotTimeOfDay(f"{data} {unit} is not a time of day (Avro {what})")
        return convert(data, writer_schema, reader_schema)
    return checked


_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
"""A context whose precision is never reached: `scaleb` in it is exact."""
_Decimal = decimal.Decimal
_from_bytes = int.from_bytes


def exact_decimal(data: bytes, writer_schema: Any = None, reader_schema: Any = None) -> Any:
    """An Avro decimal's bytes (big-endian two's complement unscaled integer) as the exact
    Decimal at the schema's scale, whatever its digits, as Java's Avro reads it (and as the
    decimal bytes read raw into a decimal column are, `formats.avro_schema`). fastavro's
    converter rounds to the schema's `precision` instead: a producer that wrote 1234.56
    in a decimal(4,2) (a writer that does not check its precision) was read as 1235."""
    return _Decimal(_from_bytes(data, "big", signed=True)).scaleb(
        -writer_schema.get("scale", 0), _EXACT)


_UUID = uuid.UUID


def uuid_text(data: str, writer_schema: Any = None, reader_schema: Any = None) -> str:
    """An Avro uuid string as its producer wrote it, once checked to be a uuid (ValueError
    if not, as fastavro's converter raises): a string or json column keeps the text as
    written, a uuid column stores its canonical form (`materializer.values`). fastavro's
    converter makes a `uuid.UUID`, which no string column took."""
    _UUID(data)
    return data


def fixed_uuid(data: bytes, writer_schema: Any = None, reader_schema: Any = None) -> Any:
    """Avro 1.12's uuid on a fixed(16) (the uuid's 16 bytes, most significant first) as its
    canonical text, which uuid and string columns take; fastavro leaves the bytes. On a
    fixed of another size the logical type is invalid and, as the Avro spec says, ignored:
    the bytes."""
    return str(_UUID(bytes=data)) if len(data) == 16 else data


CHECKED_TIMES: dict[str, Callable[..., Any]] = {
    "int-time-millis": _time_of_day("int-time-millis", "ms", 86_400_000),
    "long-time-micros": _time_of_day("long-time-micros", "µs", 86_400_000_000)}
"""By fastavro's logical reader key: the time converters that refuse (NotTimeOfDay) a
value that is no time of day, in place of fastavro's."""

REPLACED: dict[str, Callable[..., Any]] = {
    **CHECKED_TIMES, "bytes-decimal": exact_decimal, "fixed-decimal": exact_decimal,
    "string-uuid": uuid_text, "fixed-uuid": fixed_uuid}
"""By fastavro's logical reader key: the converters both readers call in place of
fastavro's (`CHECKED_TIMES`, `exact_decimal`, `uuid_text`), or where fastavro has none
(`fixed_uuid`)."""

_FASTAVRO_NAMES = {("int", "time-millis"): "materializer.time-millis",
                   ("long", "time-micros"): "materializer.time-micros",
                   ("bytes", "decimal"): "materializer.decimal",
                   ("fixed", "decimal"): "materializer.decimal",
                   ("string", "uuid"): "materializer.uuid",
                   ("fixed", "uuid"): "materializer.uuid"}
"""(base type, Avro logical type) -> the logical type `fastavro_schema` names instead:
fastavro's reader then calls the `REPLACED` converter for it."""
for (_base, _logical), _ours in _FASTAVRO_NAMES.items():  # beside fastavro's: none replaced
    LOGICAL_READERS[f"{_base}-{_ours}"] = REPLACED[f"{_base}-{_logical}"]


def fastavro_schema(schema: Any) -> Any:
    """Parsed `schema` for fastavro's own reader (where no reader is generated): a copy
    whose time-millis, time-micros and decimal types are read by the `REPLACED`
    converters, so that it reads what the generated reader reads (a decimal exactly) and
    refuses (NotTimeOfDay) what it refuses rather than wrap it round; `schema` itself
    when it has no such type."""

    def change(node: dict[str, Any], apply: bool) -> bool:
        logical, base = node.get("logicalType"), node.get("type")
        ours = (_FASTAVRO_NAMES.get((base, logical))
                if type(logical) is str and type(base) is str else None)
        if ours is None:
            return False
        if apply:
            node["logicalType"] = ours
        return True
    return rewritten(schema, change)
