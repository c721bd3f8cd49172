"""Named types across Avro schema references, as Java's `Schema.Parser` resolves them.

- A later reference that defines a named type an earlier one defined, differently, is a
  `bad_schema` naming both subject versions (fastavro let the last definition win: a record
  read with whichever came last). The same definition twice (a diamond, or two subjects
  holding one type) reads.
- A type in the null namespace (a reference registering `Address` without a namespace) used
  by its name from a namespaced schema is that type (Java's `Names.get` falls back to the
  null namespace; fastavro refused it: `UnknownType com.x.Address`, every record rejected).
- A type nothing defines is `bad_schema` saying what the references define and how to name
  a type of another subject."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from connectors.registry import FileRegistry, RestRegistry
from materializer.errors import RecordError
from materializer.formats.wire import header
from tests.formats.test_avro_codecs import rows, table
from tests.support.registry_server import RegistryServer

QUICK = {"retries.wait.ms": "1", "max.retries": "0"}
STREET = {"type": "record", "name": "Address", "namespace": "com.x",
          "fields": [{"name": "street", "type": "string"}]}
ZIP = {"type": "record", "name": "Address", "namespace": "com.x",
       "fields": [{"name": "zip", "type": "long"}]}
PLAIN = {"type": "record", "name": "Address", "fields": [{"name": "street", "type": "string"}]}


def ref(subject: str, name: str = "com.x.Address") -> dict[str, Any]:
    return {"name": name, "subject": subject, "version": 1}


def order(namespace: str, address: Any = "Address") -> dict[str, Any]:
    return {"type": "record", "name": "Order", "namespace": namespace,
            "fields": [{"name": "id", "type": "int"}, {"name": "a", "type": address}]}


def encode(sid: int, schema: Any, datum: Any) -> bytes:
    out = io.BytesIO()
    out.write(header(sid))
    schemaless_writer(out, parse_schema(schema), datum)
    return out.getvalue()


# what a writer with the same bytes is (fastavro cannot parse the schemas above either)
WRITER_B_UNION = {**order("com.y", {**PLAIN, "namespace": ""}), "fields": [
    *order("com.y", {**PLAIN, "namespace": ""})["fields"],
    {"name": "b", "type": ["null", {**PLAIN, "name": "B"}]}]}
WRITER_B = {**order("com.y", {**PLAIN, "namespace": ""}), "fields": [
    *order("com.y", {**PLAIN, "namespace": ""})["fields"],
    {"name": "b", "type": {**PLAIN, "name": "B"}}]}
SPEC = table({"id": "int", "a": "json"}, ["id"], key_format="int")


def test_two_references_defining_one_type_differently_are_refused_naming_both() -> None:
    with RegistryServer() as srv:
        srv.add("street", STREET)
        srv.add("zip", ZIP)
        sid = srv.add("orders-value", order("com.x"), references=[ref("street"), ref("zip")])
        reg = RestRegistry(srv.url, QUICK)
        v = encode(sid, order("com.x", ZIP), {"id": 1, "a": {"zip": 75001}})
        with pytest.raises(RecordError) as e:
            rows(SPEC, reg, [v], [(1,)])
        assert e.value.reason == "bad_schema", e.value
        text = str(e.value)
        assert "'com.x.Address'" in text and "'zip' version 1" in text \
            and "'street' version 1" in text, text
        before = srv.requests
        with pytest.raises(RecordError):
            reg.schema(sid)
        assert srv.requests == before  # refused once per id, not asked per record


def test_the_schema_itself_redefining_a_referenced_type_is_refused() -> None:
    with RegistryServer() as srv:
        srv.add("street", STREET)
        sid = srv.add("orders-value", order("com.x", ZIP), references=[ref("street")])
        with pytest.raises(RecordError) as e:
            RestRegistry(srv.url, QUICK).schema(sid)
        assert e.value.reason == "bad_schema" and "the schema defines" in str(e.value)


def test_the_same_definition_from_two_references_reads() -> None:
    with RegistryServer() as srv:
        srv.add("street", STREET)
        srv.add("street-copy", {**STREET, "doc": "the same type"})
        sid = srv.add("orders-value", order("com.x"),
                      references=[ref("street"), ref("street-copy")])
        v = encode(sid, order("com.x", STREET), {"id": 1, "a": {"street": "rue"}})
        assert rows(SPEC, RestRegistry(srv.url, QUICK), [v], [(1,)]) == [
            [1, {"street": "rue"}]]


def test_a_null_namespace_reference_used_from_a_namespaced_schema_reads() -> None:
    with RegistryServer() as srv:
        srv.add("address", PLAIN)
        schema = {**order("com.y"), "fields": [
            *order("com.y")["fields"], {"name": "b", "type": ["null", "Address"]}]}
        sid = srv.add("orders-value", schema, references=[ref("address", "Address")])
        spec = table({"id": "int", "a": "json", "b": "json"}, ["id"], key_format="int")
        v = encode(sid, WRITER_B_UNION, {"id": 1, "a": {"street": "rue"}, "b": {"street": "quai"}})
        assert rows(spec, RestRegistry(srv.url, QUICK), [v], [(1,)]) == [
            [1, {"street": "rue"}, {"street": "quai"}]]


def test_a_null_namespace_type_used_by_name_within_one_schema_file_reads(
        tmp_path: Path) -> None:
    writer = {**order("com.y", {**PLAIN, "namespace": ""}), "fields": [
        *order("com.y", {**PLAIN, "namespace": ""})["fields"],
        {"name": "b", "type": "Address"}]}
    (tmp_path / "1.avsc").write_text(json.dumps(writer))
    spec = table({"id": "int", "a": "json", "b": "json"}, ["id"], key_format="int")
    v = encode(1, WRITER_B, {"id": 1, "a": {"street": "rue"}, "b": {"street": "quai"}})
    assert rows(spec, FileRegistry(tmp_path), [v], [(1,)]) == [
        [1, {"street": "rue"}, {"street": "quai"}]]


def test_a_type_nothing_defines_says_what_the_references_define() -> None:
    with RegistryServer() as srv:
        srv.add("address", PLAIN)
        sid = srv.add("orders-value", order("com.y", "Adress"),
                      references=[ref("address", "Address")])
        with pytest.raises(RecordError) as e:
            RestRegistry(srv.url, QUICK).schema(sid)
        text = str(e.value)
        assert e.value.reason == "bad_schema", text
        assert "'com.y.Adress'" in text and "references: Address" in text \
            and "full name" in text, text


def test_a_full_name_is_not_looked_up_in_the_null_namespace() -> None:
    """Java looks only a name without a dot up in the null namespace: `com.y.Address`
    written out names that type, which nothing defines."""
    with RegistryServer() as srv:
        srv.add("address", PLAIN)
        sid = srv.add("orders-value", order("com.y", "com.y.Address"),
                      references=[ref("address", "Address")])
        with pytest.raises(RecordError) as e:
            RestRegistry(srv.url, QUICK).schema(sid)
        assert e.value.reason == "bad_schema" and "'com.y.Address'" in str(e.value)
