"""Deletes marked by a field (Debezium's ExtractNewRecordState transform).

With `delete.handling.mode=rewrite` (Debezium 2.5+: `delete.tombstone.handling.mode=
rewrite`), the transform turns a delete into the deleted row with a field `__deleted`
set to "true" (other rows carry "false"), and drops the tombstone that would follow
(`drop.tombstones` defaults to true). Stored as a row, the deleted row would be served
as alive: the topic says it is gone. A relation that does not declare a column named
`__deleted` reads a JSON or Avro value whose `__deleted` is "true" (or true) as a
delete; "false", false or null is a row, and any other value is rejected
(RecordError type_mismatch), never guessed. A relation that declares the column stores
the field as data, as before.
"""

from __future__ import annotations

from typing import Any

from materializer.errors import RecordError
from materializer.specs import RelationSpec

DELETED_FIELD = "__deleted"


def reads_deleted_marker(spec: RelationSpec) -> bool:
    """Whether `spec`'s values may mark a delete by `__deleted` (it is no column of it)."""
    return DELETED_FIELD not in spec.column_names


def marks_deleted(value: Any) -> bool:
    """Whether a `__deleted` field's value says the row was deleted."""
    if value == "true" or value is True:
        return True
    if value == "false" or value is False or value is None:
        return False
    raise RecordError(f"field {DELETED_FIELD!r} is {value!r}: a delete marker (Debezium's "
                      "delete.handling.mode=rewrite) is \"true\" or \"false\" (declare a "
                      f"column {DELETED_FIELD} to store it as data)", "type_mismatch")
