"""Column types nested as deep as the loader allows (`columns.MAX_TYPE_NESTING`) go through
every piece of code generated per table: the JSON and Avro readers, the shaper, the row
store, the change-event writers (debezium-json and debezium-avro)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connectors.registry import FileRegistry
from materializer.catalog.load import load_catalog_text
from materializer.changes.outbox import ChangeOutbox
from materializer.columns import MAX_TYPE_NESTING
from materializer.formats.avro_compiled import compile_reader
from materializer.formats.avro_schema import named_types
from materializer.formats.wire import header
from materializer.ingest.relation import open_relation
from materializer.store import Store
from materializer.testing import FakeRecord


def _nested(depth: int) -> tuple[str, Any, Any]:
    """(declared type, a value, its Avro schema) of arrays and maps alternating."""
    text, value, schema = "long", 7, "long"
    for level in range(depth):
        if level % 2:
            text, value = f"map<string,{text}>", {"k": value}
            schema = {"type": "map", "values": schema}
        else:
            text, value = f"array<{text}>", [value]
            schema = {"type": "array", "items": schema}
    return text, value, schema


@pytest.mark.parametrize("value_format", ["json", "avro"])
@pytest.mark.parametrize("changes", ["debezium-json", "debezium-avro"])
def test_the_deepest_declared_type_is_applied_and_emitted(tmp_path: Path, value_format: str,
                                                          changes: str) -> None:
    text, value, schema = _nested(MAX_TYPE_NESTING)
    (tmp_path / "registry").mkdir()
    registry = FileRegistry(tmp_path / "registry")
    doc = f"""
schema_registry: {{path: {tmp_path / "registry"}}}
tables:
  - name: deep
    topic: deep
    columns: {{id: long, v: "{text}"}}
    primary_key: [id]
    key_format: long
    value_format: {value_format}
    changes: {{topic: deep.changes, format: {changes}}}
"""
    spec = load_catalog_text(doc, "deep.yaml").relations[0]
    if value_format == "json":
        body = json.dumps({"id": 1, "v": value}).encode()
    else:
        avro = fastavro.parse_schema({"type": "record", "name": "Deep", "fields": [
            {"name": "id", "type": "long"}, {"name": "v", "type": schema}]})
        out = io.BytesIO()
        fastavro.schemaless_writer(out, avro, {"id": 1, "v": value})
        body = header(registry.register("deep-value", avro)) + out.getvalue()
        assert compile_reader(avro, named_types(avro)) is not None  # not left to fastavro
    rel = open_relation(spec, tmp_path / "data", registry=registry)
    rel.outbox = ChangeOutbox(spec, rel.writer, rel.applier.layout, None,  # type: ignore[arg-type]
                              1, registry)
    rel.apply({0: [FakeRecord((1).to_bytes(8, "big"), body, 0)]})
    assert rel.outbox.backlog() == 1
    with Store.open(tmp_path / "data") as store:
        assert store.relation("deep").get((1,)) == {"id": 1, "v": value}
