"""Fields a parsed Protobuf message holds as unknown although its schema declares them
(`unread_check`): the parser keeps a field it cannot read as its schema types it (another
wire type: the record was written with another schema than its id names; a number a closed
proto2 enum does not name) as an unknown field, and the field then reads as unset (its
default, or null): `formats.protobuf` refuses such a record rather than store the default."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any


class Unread(ValueError):
    """A record's field its schema declares that the message holds as an unknown field."""


_WIRE_TYPES = {0: "a varint", 1: "8 fixed bytes", 2: "length-delimited bytes",
               3: "a group", 4: "a group end", 5: "4 fixed bytes"}


def _unknown_fields() -> Callable[[Any], Any]:
    """The unknown fields of a parsed message: `(field_number, wire_type, data)` items."""
    try:
        from google.protobuf.unknown_fields import UnknownFieldSet  # noqa: PLC0415
    except ImportError:  # protobuf before 4.23
        return lambda m: m.UnknownFields()
    return UnknownFieldSet  # type: ignore[no-any-return]


def unread_check(desc: Any, names: Collection[str]) -> Callable[[Any], None]:
    """A check that a parsed message of type `desc` holds no unknown field under the
    number of one of its fields `names`: the parser keeps a field it cannot read as its
    schema types it (another wire type: the record was written with another schema than
    its id names; a number a closed proto2 enum does not name) as an unknown field, and
    the field then reads as unset (its default, or null). Raises `Unread`."""
    fields = {fd.number: fd for fd in desc.fields if fd.name in names}
    unknown = _unknown_fields()

    def check(m: Any) -> None:
        for f in unknown(m):
            fd = fields.get(f.field_number)
            if fd is None:
                continue  # a number the schema does not declare: no field of it is read
            if fd.enum_type is not None and f.wire_type == 0:
                raise Unread(
                    f"field {fd.name!r} carries {f.data}, which its closed (proto2) enum "
                    f"{fd.enum_type.full_name} does not name: Protobuf reads the field as "
                    "unset, so its value would be lost (the record was written with "
                    "another version of the enum than its schema id names)")
            raise Unread(
                f"field {fd.name!r} (number {fd.number}) is carried as "
                f"{_WIRE_TYPES.get(f.wire_type, f'wire type {f.wire_type}')}, which is not "
                f"how message {desc.full_name} types it: the record was not written with the "
                "schema its id names (a producer serializing another version of the "
                "message under this id), and the field would read as its default; produce "
                "it with the schema registered for it")
    return check
