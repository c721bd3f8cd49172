"""Avro schemas with Confluent schema references (`references`: named types registered under
other subjects), read by the value and key decoders.

Failed before:
- a schema that is a union of references (`["com.x.Created", "com.x.Renamed"]`, how
  Confluent puts several event types in one topic) or one bare reference refused every
  record as avro_decode (UnknownType): fastavro keeps referenced types only beside a
  record schema;
- a value of a recursive type that comes by reference, nested deep, crashed the process
  (segfault in the compiled reader: the recursion was not seen where only the name stood);
- an id whose reference the registry does not know was asked again for every record (and
  its reference too), where an unknown id is asked once per 10 s; two ids referring to
  the same subject version asked for it twice.
"""

from __future__ import annotations

import collections
import io
import json
import subprocess
import sys
from typing import Any

from fastavro import parse_schema, schemaless_writer

from connectors.registry import RestRegistry
from materializer.errors import RecordError
from materializer.formats import codecs
from materializer.formats.wire import header
from tests.formats.test_avro_codecs import rows, table
from tests.support.registry_server import RegistryServer

CREATED = {"type": "record", "name": "Created", "namespace": "com.x",
           "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"}]}
RENAMED = {"type": "record", "name": "Renamed", "namespace": "com.x",
           "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": "string"},
                      {"name": "old", "type": "string"}]}
TREE = {"type": "record", "name": "Tree", "namespace": "com.x",
        "fields": [{"name": "v", "type": "int"},
                   {"name": "kid", "type": ["null", "com.x.Tree"], "default": None}]}
QUICK = {"retries.wait.ms": "1", "max.retries": "0", "unknown.id.wait.ms": "0"}


def ref(name: str) -> dict[str, Any]:
    return {"name": name, "subject": name, "version": 1}


def encode(sid: int, schema: Any, named: list[Any], datum: Any) -> bytes:
    """`datum` in wire format, written with `schema` whose named types `named` defines."""
    types: dict[str, Any] = {}
    for n in named:
        parse_schema(n, named_schemas=types)
    out = io.BytesIO()
    out.write(header(sid))
    schemaless_writer(out, parse_schema(schema, named_schemas=types, expand=True), datum)
    return out.getvalue()


def test_a_union_of_referenced_records_is_read_branch_by_branch() -> None:
    with RegistryServer() as srv:
        srv.add("com.x.Created", CREATED)
        srv.add("com.x.Renamed", RENAMED)
        union = ["com.x.Created", "com.x.Renamed"]
        sid = srv.add("events-value", json.dumps(union), "AVRO",
                      [ref("com.x.Created"), ref("com.x.Renamed")])
        values = [encode(sid, union, [CREATED, RENAMED], ("com.x.Created", {"id": 1,
                                                                           "name": "a"})),
                  encode(sid, union, [CREATED, RENAMED], ("com.x.Renamed", {
                      "id": 2, "name": "b", "old": "a"}))]
        spec = table({"id": "int", "name": "string"}, ["id"], key_format="int")
        reg = RestRegistry(srv.url, QUICK)
        assert rows(spec, reg, values, [(1,), (2,)]) == [[1, "a"], [2, "b"]]


def test_a_value_and_a_key_that_are_one_bare_reference_are_read() -> None:
    with RegistryServer() as srv:
        srv.add("com.x.Created", CREATED)
        sid = srv.add("created-value", '"com.x.Created"', "AVRO", [ref("com.x.Created")])
        v = encode(sid, "com.x.Created", [CREATED], {"id": 3, "name": "c"})
        reg = RestRegistry(srv.url, QUICK)
        spec = table({"id": "int", "name": "string"}, ["id"], key_format="avro")
        assert rows(spec, reg, [v], [(3,)]) == [[3, "c"]]
        key = {"type": "record", "name": "Key", "namespace": "com.k",
               "fields": [{"name": "id", "type": "int"}]}
        srv.add("com.k.Key", key)
        kid = srv.add("created-key", '"com.k.Key"', "AVRO", [ref("com.k.Key")])
        assert codecs.key_decoder(spec, reg)(encode(kid, "com.k.Key", [key], {"id": 3})) == (3,)


_DEEP = """
import sys
from connectors.registry import RestRegistry
from materializer.errors import RecordError
from materializer.formats.wire import header
from tests.formats.test_avro_codecs import rows, table
url, sid, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
body = b"\\x02" + b"\\x00\\x02" * depth + b"\\x00\\x00"  # id 1, then `depth` trees
spec = table({"id": "int", "t": "json"}, ["id"], key_format="int")
try:
    rows(spec, RestRegistry(url, {"max.retries": "0"}), [header(sid) + body], [(1,)])
    print("read")
except RecordError as e:
    print(e.reason)
"""


def test_a_recursive_referenced_type_nested_deep_is_too_deep_not_a_crash() -> None:
    with RegistryServer() as srv:
        srv.add("com.x.Tree", TREE)
        outer = {"type": "record", "name": "Outer", "namespace": "com.x",
                 "fields": [{"name": "id", "type": "int"}, {"name": "t", "type": "com.x.Tree"}]}
        sid = srv.add("trees-value", outer, "AVRO", [ref("com.x.Tree")])
        shallow = encode(sid, outer, [TREE], {"id": 1, "t": {"v": 0, "kid": {"v": 1,
                                                                           "kid": None}}})
        spec = table({"id": "int", "t": "json"}, ["id"], key_format="int")
        assert rows(spec, RestRegistry(srv.url, QUICK), [shallow], [(1,)]) == [
            [1, {"v": 0, "kid": {"v": 1, "kid": None}}]]
        done = subprocess.run([sys.executable, "-c", _DEEP, srv.url, str(sid), "200000"],
                              capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout.strip()) == (0, "too_deep"), done.stderr[-2000:]


def test_references_are_asked_once_and_a_dangling_one_as_seldom_as_an_unknown_id() -> None:
    with RegistryServer() as srv:
        asked: collections.Counter[str] = collections.Counter()

        def count(_method: str, path: str) -> None:
            asked[path] += 1
        srv.add("com.x.Created", CREATED)
        one = {"type": "record", "name": "One", "namespace": "com.x",
               "fields": [{"name": "id", "type": "int"}, {"name": "c", "type": "com.x.Created"}]}
        two = {**one, "name": "Two"}
        sids = [srv.add(f"{s['name']}-value", s, "AVRO", [ref("com.x.Created")])
                for s in (one, two)]
        gone = srv.add("gone-value", {**one, "name": "Gone"}, "AVRO", [ref("com.x.Missing")])
        srv.interfere = count
        reg = RestRegistry(srv.url, QUICK)
        spec = table({"id": "int", "c": "json"}, ["id"], key_format="int")
        dec = codecs.value_decoder(spec, reg)
        for sid, schema in zip(sids, (one, two), strict=True):
            for i in range(5):
                dec(encode(sid, schema, [CREATED], {"id": i, "c": {"id": i, "name": "n"}}))
        reasons = []
        for _ in range(20):
            try:
                dec(header(gone) + b"\x02\x02\x00")
            except RecordError as e:
                reasons.append((e.reason, "com.x.Missing" in str(e)))
        assert reasons == [("unknown_schema", True)] * 20
        assert asked == {f"/schemas/ids/{sids[0]}": 1, f"/schemas/ids/{sids[1]}": 1,
                         "/subjects/com.x.Created/versions/1": 1,
                         f"/schemas/ids/{gone}": 1, "/subjects/com.x.Missing/versions/1": 1}


def test_a_protobuf_reference_the_registry_lacks_is_asked_once_not_per_record() -> None:
    import base64

    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name="a.proto", package="a", syntax="proto3",
                                             dependency=["gone.proto"])
    fdp.message_type.add(name="M")
    with RegistryServer() as srv:
        asked: collections.Counter[str] = collections.Counter()

        def count(_method: str, path: str) -> None:
            asked[path] += 1
        sid = srv.add("a-value", base64.b64encode(fdp.SerializeToString()).decode(),
                      "PROTOBUF", [{"name": "gone.proto", "subject": "gone", "version": 1}])
        srv.interfere = count
        spec = table({"id": "int", "name": "string"}, ["id"], key_format="int",
                     value_format="protobuf")
        dec = codecs.value_decoder(spec, RestRegistry(srv.url, QUICK))
        reasons = []
        for _ in range(20):
            try:
                dec(header(sid) + b"\x00")
            except RecordError as e:
                reasons.append(e.reason)
        assert reasons == ["unknown_schema"] * 20
        assert asked == {f"/schemas/ids/{sid}?format=serialized": 1,
                         "/subjects/gone/versions/1?format=serialized": 1}
