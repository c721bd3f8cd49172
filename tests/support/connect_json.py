"""Kafka Connect's JsonConverter (schemas.enable=true), strictly, as a Python port read
against apache/kafka's JsonConverter.java: what it reads of a change event's schema and
payload, with what it would read wrongly or refuse raised (`connect_message`); and a
table's stored row as that reading gives it back (`expected_row`)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from typing import Any

from materializer.specs import TableSpec

_CONNECT_TYPES = ("boolean", "int8", "int16", "int32", "int64", "float32", "float64",
                  "bytes", "string", "array", "map", "struct")
_INT_RANGE = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_EPOCH = dt.date(1970, 1, 1)


def connect_schema(node: Any, where: str) -> dict[str, Any]:
    """JsonConverter.asConnectSchema, strictly: what it reads of a schema node, with what it
    would read wrongly or refuse raised."""
    assert isinstance(node, dict), where
    t = node.get("type")
    assert t in _CONNECT_TYPES, f"{where}: type {t!r}"
    assert isinstance(node.get("optional", False), bool), where
    if "version" in node:
        assert type(node["version"]) is int, f"{where}: version must be an int"
    if "name" in node:
        assert isinstance(node["name"], str), where
    params = node.get("parameters", {})
    assert isinstance(params, dict) and all(isinstance(v, str) for v in params.values()), \
        f"{where}: parameters are text (textValue() of anything else is null)"
    if node.get("name") == "org.apache.kafka.connect.data.Decimal":
        assert t == "bytes" and params.get("scale", "").lstrip("-").isdigit(), where
    if node.get("name") == "org.apache.kafka.connect.data.Date":
        assert t == "int32", where
    if t == "struct":
        names = [f.get("field") for f in node["fields"]]
        assert len(set(names)) == len(names) and all(isinstance(n, str) for n in names), where
        for f in node["fields"]:
            connect_schema(f, f"{where}.{f['field']}")
    elif t == "array":
        connect_schema(node["items"], f"{where}[]")
    elif t == "map":
        connect_schema(node["keys"], f"{where}{{key}}")
        connect_schema(node["values"], f"{where}{{value}}")
    if "default" in node:
        connect_read(node, node["default"], f"{where} default")
    return node


def connect_read(schema: dict[str, Any], v: Any, where: str) -> Any:
    """JsonConverter.convertToConnect, strictly: the Connect value of payload `v` (logical
    types as Python values: Decimal, date; Debezium's named int64s as ints), refusing what
    Connect would refuse (a null for a required field) or read silently wrong (a text in an
    int32 field reads 0, a payload field the schema lacks is dropped)."""
    t, name = schema["type"], schema.get("name")
    if v is None:
        if "default" in schema:
            return connect_read({k: x for k, x in schema.items() if k != "default"},
                                schema["default"], where)
        assert schema.get("optional", False), f"{where}: null for a required {t}"
        return None
    if t in _INT_RANGE:
        assert type(v) is int and -(1 << (_INT_RANGE[t] - 1)) <= v < 1 << (_INT_RANGE[t] - 1), \
            f"{where}: {v!r} is no {t}"
        if name == "org.apache.kafka.connect.data.Date":
            return _EPOCH + dt.timedelta(days=v)
        return v
    if t in ("float32", "float64"):
        assert type(v) in (int, float), f"{where}: {v!r} is no {t}"
        return float(v)
    if t == "boolean":
        assert type(v) is bool, f"{where}: {v!r} is no boolean"
        return v
    if t == "string":
        assert type(v) is str, f"{where}: {v!r} is no string"
        return v
    if t == "bytes":
        if name == "org.apache.kafka.connect.data.Decimal" and type(v) in (int, float):
            return decimal.Decimal(str(v))
        assert type(v) is str, f"{where}: {v!r} is no base64 text"
        raw = base64.b64decode(v, validate=True)
        if name == "org.apache.kafka.connect.data.Decimal":
            scale = int(schema["parameters"]["scale"])
            return decimal.Decimal(int.from_bytes(raw, "big", signed=True)).scaleb(-scale)
        return raw
    if t == "array":
        assert type(v) is list, f"{where}: {v!r} is no array"
        return [connect_read(schema["items"], x, f"{where}[]") for x in v]
    if t == "map":
        if schema["keys"]["type"] == "string":
            assert type(v) is dict, f"{where}: {v!r} is no object"
            return {k: connect_read(schema["values"], x, f"{where}{{}}") for k, x in v.items()}
        assert type(v) is list, where
        return {connect_read(schema["keys"], k, where): connect_read(schema["values"], x, where)
                for k, x in v}
    assert t == "struct" and type(v) is dict, f"{where}: {v!r} is no struct"
    fields = [f["field"] for f in schema["fields"]]
    # a field the payload lacks reads null (JsonNode.get); one the schema lacks is dropped
    assert set(v) <= set(fields), f"{where}: payload fields {sorted(v)} not in {fields}"
    return {f["field"]: connect_read(f, v.get(f["field"]), f"{where}.{f['field']}")
            for f in schema["fields"]}


def connect_message(raw: bytes, where: str) -> Any:
    """A key or value as JsonConverter (schemas.enable=true) reads it."""
    doc = json.loads(raw)
    assert type(doc) is dict and set(doc) == {"schema", "payload"}, where
    return connect_read(connect_schema(doc["schema"], where), doc["payload"], where)


def _connect_form(kind: str, v: Any) -> Any:
    """A stored (scan) value as the Connect reading of our schemas gives it back."""
    if v is None:
        return None
    if kind == "time":
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    if kind == "timestamp":
        return (v - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
            microseconds=1)
    if kind == "json":
        return json.dumps(v, separators=(",", ":"))
    if kind == "float":
        return float(v)
    return v


def _kind_of(t: str) -> str:
    return t.split("(")[0].split("<")[0].replace(" not null", "")


def expected_row(spec: TableSpec, row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in spec.columns:
        v = row[c.name]
        if c.type.kind in ("array", "map") and v is not None:
            assert c.type.item is not None
            ik = c.type.item.kind
            v = ([_connect_form(ik, x) for x in v] if c.type.kind == "array"
                 else {k: _connect_form(ik, x) for k, x in v.items()})
        else:
            v = _connect_form(c.type.kind, v)
        out[c.name] = v
    return out
