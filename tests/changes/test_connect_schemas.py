"""debezium-json change events with `schemas: true`: keys and values wrapped in Kafka
Connect's JSON schemas, read back the way Connect reads them."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from typing import Any

from materializer.changes.envelope import JsonEnvelope
from materializer.changes.event import Change
from materializer.formats.base import DELETE
from materializer.formats.codecs import key_decoder, value_decoder
from materializer.specs import ChangesSpec, TableSpec
from materializer.stored import from_storage
from tests.support.changes import COLUMNS, ROW, source, stored, table

INT_RANGES = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def connect_read(schema: dict[str, Any], v: Any) -> Any:
    """A Kafka Connect JsonConverter reading of `v` against its Connect `schema` (types
    checked, logical types applied, recursively), independent of the materializer."""
    if v is None:
        assert schema.get("optional") is True, f"null for a required {schema}"
        return None
    t, name = schema["type"], schema.get("name")
    if t == "struct":
        fields = schema["fields"]  # an absent field reads as null (JsonConverter's rule)
        assert isinstance(v, dict) and set(v) <= {f["field"] for f in fields}, (v, fields)
        return {f["field"]: connect_read(f, v.get(f["field"])) for f in fields}
    if t == "array":
        assert isinstance(v, list)
        return [connect_read(schema["items"], x) for x in v]
    if t == "map":
        assert isinstance(v, dict)
        return {connect_read(schema["keys"], k): connect_read(schema["values"], x)
                for k, x in v.items()}
    if t in INT_RANGES:
        bits = INT_RANGES[t]
        assert type(v) is int and -(2 ** (bits - 1)) <= v < 2 ** (bits - 1), (t, v)
    elif t in ("float32", "float64"):
        assert type(v) in (int, float), (t, v)
    elif t == "boolean":
        assert type(v) is bool
    elif t == "string":
        assert type(v) is str
    else:
        assert t == "bytes" and type(v) is str, (t, v)
        v = base64.b64decode(v, validate=True)
    if name == "org.apache.kafka.connect.data.Decimal":
        assert t == "bytes"
        with decimal.localcontext(prec=100):
            return decimal.Decimal(int.from_bytes(v, "big", signed=True)).scaleb(
                -int(schema["parameters"]["scale"]))
    if name == "org.apache.kafka.connect.data.Date":
        assert t == "int32"
        return dt.date(1970, 1, 1) + dt.timedelta(days=v)
    if name == "io.debezium.time.MicroTime":
        assert t == "int64"
        return (dt.datetime.min + dt.timedelta(microseconds=v)).time()
    if name == "io.debezium.time.MicroTimestamp":
        assert t == "int64"
        return EPOCH + dt.timedelta(microseconds=v)
    if name == "io.debezium.data.Json":
        assert t == "string"
        return json.loads(v)
    return v


def python_row(spec: TableSpec, row: tuple[Any, ...]) -> dict[str, Any]:
    out = {}
    for c, v in zip(spec.columns, row, strict=True):
        conv = from_storage(c.type)
        out[c.name] = v if v is None or conv is None else conv(v)
    return out


def test_json_schemas_wrap_key_and_value_in_connect_schemas() -> None:
    """`changes: {schemas: true}`: every key and value is JsonConverter's
    `{"schema", "payload"}`, the payload fitting the schema (Connect types, Connect and
    Debezium logical types), the envelope Debezium's."""
    spec = table(ChangesSpec(topic="items.changes", columns=True, schemas=True))
    enc = JsonEnvelope(spec, spec.column_names)
    row1 = stored(spec, ROW)
    row2 = stored(spec, {**ROW, "name": "Bob", "price": "-0.01", "attrs": {"k": "-12.8"}})
    msgs = enc.encode([Change("c", 2, 40, 1000, (7,), None, row1),
                       Change("u", 2, 41, 1001, (7,), row1, row2),
                       Change("d", 2, 42, 1002, (7,), row2, None)], now_ms=5)
    assert len(msgs) == 4 and msgs[3] == (2, msgs[0][1], None)  # a tombstone stays null
    assert {m[1] for m in msgs} == {msgs[0][1]}
    key = json.loads(msgs[0][1])
    assert key == {"schema": {"type": "struct", "optional": False,
                              "name": "materializer.shop.items.Key",
                              "fields": [{"field": "id", "type": "int32", "optional": False}]},
                   "payload": {"id": 7}}
    c, u, d = (json.loads(m[2] or b"") for m in msgs[:3])
    schema = c["schema"]
    assert set(c) == {"schema", "payload"} and u["schema"] == d["schema"] == schema
    assert schema["type"] == "struct" and schema["optional"] is False
    assert schema["name"] == "materializer.shop.items.Envelope"
    top = {f["field"]: f for f in schema["fields"]}
    assert list(top) == ["before", "after", "source", "op", "ts_ms", "changed"]
    assert top["before"] == {**top["after"], "field": "before"}
    assert top["after"]["type"] == "struct" and top["after"]["optional"] is True
    assert top["after"]["name"] == "materializer.shop.items.Value"
    assert top["op"] == {"field": "op", "type": "string", "optional": False}
    assert top["ts_ms"] == {"field": "ts_ms", "type": "int64", "optional": True}
    assert top["changed"] == {"field": "changed", "type": "array", "optional": True,
                              "items": {"type": "string", "optional": False}}
    src = {f["field"]: f for f in top["source"]["fields"]}
    assert top["source"]["optional"] is False
    assert [(n, f["type"], f["optional"]) for n, f in src.items()] == [
        ("version", "string", False), ("connector", "string", False),
        ("name", "string", False), ("ts_ms", "int64", False), ("snapshot", "string", True),
        ("db", "string", False), ("table", "string", False), ("topic", "string", False),
        ("partition", "int32", False), ("offset", "int64", False)]
    assert src["snapshot"]["name"] == "io.debezium.data.Enum"
    assert src["snapshot"]["default"] == "false"
    f = {x["field"]: x for x in top["after"]["fields"]}
    assert list(f) == list(COLUMNS)
    assert f["id"] == {"field": "id", "type": "int32", "optional": False}
    assert f["price"] == {"field": "price", "type": "bytes", "optional": True,
                          "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
                          "parameters": {"scale": "2", "connect.decimal.precision": "10"}}
    assert (f["born"]["type"], f["born"]["name"]) == ("int32",
                                                      "org.apache.kafka.connect.data.Date")
    assert (f["at"]["type"], f["at"]["name"]) == ("int64", "io.debezium.time.MicroTimestamp")
    assert (f["t"]["type"], f["t"]["name"]) == ("int64", "io.debezium.time.MicroTime")
    assert (f["u"]["type"], f["u"]["name"]) == ("string", "io.debezium.data.Uuid")
    assert (f["doc"]["type"], f["doc"]["name"]) == ("string", "io.debezium.data.Json")
    assert f["tags"] == {"field": "tags", "type": "array", "optional": True,
                         "items": {"type": "string", "optional": True}}
    assert f["attrs"]["type"] == "map" and f["attrs"]["keys"] == {"type": "string",
                                                                  "optional": False}
    assert f["attrs"]["values"]["parameters"]["scale"] == "1"
    assert [f[n]["type"] for n in ("blob", "ok", "big", "ratio")] == [
        "bytes", "boolean", "int64", "float64"]
    # what a JsonConverter reads: the rows, the source, the changed columns
    ev = [connect_read(schema, m["payload"]) for m in (c, u, d)]
    assert ev[0]["before"] is None and ev[0]["after"] == python_row(spec, row1)
    assert ev[1]["before"] == python_row(spec, row1)
    assert ev[1]["after"] == python_row(spec, row2)
    assert ev[1]["after"]["price"] == decimal.Decimal("-0.01")
    assert ev[1]["after"]["attrs"] == {"k": decimal.Decimal("-12.8")}
    assert ev[1]["changed"] == ["name", "price", "attrs"] and ev[0]["changed"] is None
    assert ev[2]["after"] is None and ev[2]["op"] == "d"
    assert ev[0]["source"] == source(2, 40, 1000) and ev[0]["ts_ms"] == 5
    # the materializer's own debezium-json input (which applies Connect logical types at
    # the top level of a row) reads key and value back to the same stored row
    copy = TableSpec(name="copy", topic="items.changes", columns=spec.columns,
                     key_columns=("id",), key_format="json", value_format="debezium-json")
    dec = value_decoder(copy)
    for m, want in ((msgs[0], row1), (msgs[1], row2)):
        fields = dict(dec(m[2] or b""))
        fields.pop("attrs")  # a map of decimals: a logical type nested in a map
        got = stored(copy, fields)
        nested = spec.column_names.index("attrs")
        assert got[:nested] + got[nested + 1:] == want[:nested] + want[nested + 1:]
    assert dec(msgs[2][2] or b"") is DELETE
    assert key_decoder(copy)(msgs[0][1]) == (7,)


def test_connect_decimals_are_exact_twos_complement() -> None:
    """Decimal payloads: minimal big-endian two's complement of the unscaled value, exact
    beyond the 28 digits of Python's default decimal context."""
    spec = table(ChangesSpec(topic="x", schemas=True), {"id": "int", "d": "decimal(38,6)"})
    enc = JsonEnvelope(spec, spec.column_names)
    for text, size in [("0.000000", 1), ("-1.280000", 3), ("0.000127", 1),
                       ("-0.000128", 1), ("0.000128", 2),
                       ("-99999999999999999999999999999999.999999", 16)]:  # stored form
        (m,) = enc.encode([Change("c", 0, 0, 0, (1,), None, (1, text))], 0)
        ev = json.loads(m[2] or b"")
        raw = ev["payload"]["after"]["d"]
        assert len(base64.b64decode(raw)) == size, text
        row = connect_read(ev["schema"], ev["payload"])["after"]
        assert row["d"] == decimal.Decimal(text)


def test_json_schemas_templates_are_computed_once() -> None:
    """The schema texts are built with the encoder: an event only adds its payload."""
    spec = table(ChangesSpec(topic="x", schemas=True), {"id": "long", "v": "string"})
    enc = JsonEnvelope(spec, spec.column_names)
    (a,) = enc.encode([Change("c", 0, 1, 2, (1,), None, (1, "a"))], 3)
    (b,) = enc.encode([Change("c", 0, 2, 2, (2,), None, (2, "b"))], 3)
    head_a = (a[2] or b"").split(b',"payload":')[0]
    assert head_a == (b[2] or b"").split(b',"payload":')[0]
    assert json.loads(a[1])["schema"]["fields"] == [
        {"field": "id", "type": "int64", "optional": False}]
    plain = JsonEnvelope(table(ChangesSpec(topic="x"), {"id": "long", "v": "string"}),
                         ["id", "v"])
    (p,) = plain.encode([Change("c", 0, 1, 2, (1,), None, (1, "a"))], 3)
    assert json.loads(a[2] or b"")["payload"] == json.loads(p[2] or b"")
    assert json.loads(a[1])["payload"] == json.loads(p[1])


