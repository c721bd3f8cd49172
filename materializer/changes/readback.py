"""A table's own change events read back: the row the change topic last announced for a key.

A snapshot finds keys that the change topic still holds a row for but the table does not
(deleted while no events were emitted: `changes:` turned off, a rebuild whose replay lost
them). A tombstone alone removes such a key from a compacted read of the topic, but
consumers that fold the events skip tombstones (Flink's and RisingWave's `debezium-json`,
the README's consumer): they would keep the row for ever. So the snapshot sends an
`op: d` event first, whose `before` is the row the topic last announced, read here from
that event (with the table's own columns, as another materializer table reading the topic
as `debezium-json` / `debezium-avro` would), and whose `source.partition` is that event's.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from materializer.columns import ColumnType
from materializer.errors import MaterializerError
from materializer.formats.base import DELETE
from materializer.formats.codecs import key_decoder, value_decoder
from materializer.formats.wire import HEADER_SIZE, read_header
from materializer.ingest.jsonrow import row_decoder
from materializer.ingest.shaper import compile_shaper
from materializer.ingest.unavailable import Unavailable
from materializer.protocols import SchemaRegistry
from materializer.specs import Column, TableSpec

log = logging.getLogger("materializer.changes")

Announced = tuple[int, tuple[Any, ...], tuple[Any, ...]]
"""(source partition, key, row) of a c, u or r event, in stored form."""


def _plain(t: ColumnType) -> ColumnType:
    """`t` without an input `encoding`: events carry values in their own forms."""
    item = _plain(t.item) if t.item is not None else None
    return replace(t, encoding=None, item=item)


def event_reader(spec: TableSpec, layout: Sequence[str], registry: SchemaRegistry | None
                 ) -> Callable[[bytes, bytes], Announced | None]:
    """A reader of `spec`'s change events (key bytes, value bytes) -> the announced row,
    or None for an event that carries none (a `d`) or that cannot be read (logged)."""
    assert spec.changes is not None
    fmt = spec.changes.format
    reader = replace(
        spec, key_format="avro" if fmt == "debezium-avro" else "json", value_format=fmt,
        columns=tuple(Column(c.name, _plain(c.type), c.not_null) for c in spec.columns),
        changes=None, partial_update=None, on_existing="overwrite", version_column=None,
        soft_primary_key=False, timestamp_column=None)
    try:
        keys = key_decoder(reader, registry)
        rows = row_decoder(reader, layout, value_decoder(reader, registry),
                           compile_shaper(reader, layout))
    except (MaterializerError, ValueError) as e:
        if isinstance(e, MaterializerError) and e.retriable:
            raise  # the registry away: the snapshot is retried
        log.warning("%s: change events cannot be read back (%s): keys the table no longer "
                    "holds get their tombstone alone", spec.name, e)
        return lambda key, value: None
    partition_of = _avro_partition(registry) if fmt == "debezium-avro" else _json_partition

    def read(key: bytes, value: bytes) -> Announced | None:
        try:
            kt = keys(key)
            row = rows(value, kt)
            if row is DELETE:
                return None
            if type(row) is Unavailable:  # a row holding Debezium's placeholder text
                raise ValueError(f"column(s) {', '.join(row.columns)} hold "
                                 "__debezium_unavailable_value")
            return partition_of(value), kt, tuple(row)
        except (MaterializerError, ValueError, KeyError, TypeError) as e:
            log.warning("%s: the change topic's last event of key %r could not be read back "
                        "(%s): only its tombstone is sent", spec.name, key, e)
            return None
    return read


def _json_partition(value: bytes) -> int:
    ev = json.loads(value)
    if isinstance(ev, dict) and "payload" in ev and "schema" in ev:
        ev = ev["payload"]
    return int(ev["source"]["partition"])


def _avro_partition(registry: SchemaRegistry | None) -> Callable[[bytes], int]:
    import fastavro  # noqa: PLC0415

    assert registry is not None

    def partition(value: bytes) -> int:
        schema = registry.schema(read_header(value))
        ev = fastavro.schemaless_reader(io.BytesIO(value[HEADER_SIZE:]), schema, None)
        assert isinstance(ev, dict)
        return int(ev["source"]["partition"])
    return partition
