"""`value_format: protobuf` follows a field's `json_name` (probe h93): a column no field
matches by its own name (exactly, or case-insensitively when unambiguous) takes the one
field whose JSON name (the `json_name` option, or the default lowerCamel name: `userId`
for `user_id`) is the column's name. It was NULL, with a warning naming the json_name;
a message type sharing a column only that way was no_declared_columns. Several fields
with one JSON name refuse every message of the type (ambiguous_alias; the Protobuf
runtime already refuses such a file: bad_schema)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from connectors.registry import RestRegistry
from materializer.formats import codecs
from materializer.formats.field_match import unmatched_schema
from tests.support.protobuf import message_class, reason_of, registry_server, serializer, shaped
from tests.support.protobuf import table as users_table
from tests.support.registry_server import RegistryServer

F = descriptor_pb2.FieldDescriptorProto
registry = pytest.fixture(scope="module", name="registry")(registry_server)


def _file() -> descriptor_pb2.FileDescriptorProto:
    """jn/v.proto: V (`mail` with json_name `email`, `user_id` with its default JSON name
    `userId`, `n`) and W (`USERID` and `user_id`: `userId` matches the first by its own
    name, case-insensitively)."""
    f = descriptor_pb2.FileDescriptorProto(name="jn/v.proto", package="jn", syntax="proto3")
    v = f.message_type.add(name="V")
    v.field.add(name="mail", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL,
                json_name="email")
    v.field.add(name="user_id", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    v.field.add(name="n", number=3, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    w = f.message_type.add(name="W")
    w.field.add(name="USERID", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    w.field.add(name="user_id", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    return f


@pytest.fixture(scope="module", name="pool")
def _pool() -> Iterator[descriptor_pool.DescriptorPool]:
    p = descriptor_pool.DescriptorPool()
    p.Add(_file())
    yield p


def _row(registry: RegistryServer, raw: bytes, columns: dict[str, str]) -> dict[str, object]:
    spec = users_table(columns)
    return shaped(spec, codecs.value_decoder(spec, RestRegistry(registry.url))(raw), (1,))


def test_a_column_takes_the_field_whose_json_name_it_is(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    cls = message_class(pool, "jn.V")
    raw = serializer(registry, cls, "jn")(cls(mail="a@b", user_id=2**40, n=7))
    got = _row(registry, raw, {"id": "int", "email": "string", "userId": "long", "n": "int"})
    assert got == {"id": 1, "email": "a@b", "userId": 2**40, "n": 7}
    # sharing columns only through JSON names: read (was no_declared_columns)
    assert _row(registry, raw, {"id": "int", "email": "string"}) == {"id": 1, "email": "a@b"}


def test_a_field_matched_by_its_own_name_wins_over_a_json_name(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    v, w = message_class(pool, "jn.V"), message_class(pool, "jn.W")
    raw = serializer(registry, w, "jnw")(w(USERID=1, user_id=2))
    assert _row(registry, raw, {"id": "int", "userId": "long"})["userId"] == 1
    raw = serializer(registry, v, "jnv")(v(mail="a@b", user_id=5))
    got = _row(registry, raw, {"id": "int", "user_id": "long", "userId": "long",
                               "email": "string"})
    assert got == {"id": 1, "user_id": 5, "userId": 5, "email": "a@b"}


def test_a_json_name_differing_from_a_column_only_in_case_is_named_in_the_warning(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer,
        caplog: pytest.LogCaptureFixture) -> None:
    cls = message_class(pool, "jn.V")
    raw = serializer(registry, cls, "jnc")(cls(mail="a@b", user_id=3, n=1))
    with caplog.at_level(logging.WARNING, logger="materializer.formats"):
        got = _row(registry, raw, {"id": "int", "userid": "long", "email": "string"})
    assert got == {"id": 1, "userid": None, "email": "a@b"}
    assert "no field for column(s) userid" in caplog.text
    assert "field 'user_id' has json_name 'userId'" in caplog.text
    assert "only when they are its name exactly" in caplog.text


def test_several_fields_with_one_json_name_are_never_guessed_between(
        registry: RegistryServer) -> None:
    """The Protobuf runtime refuses such a file (bad_schema); the matcher refuses such a
    message type itself (ambiguous_alias), naming the fields and the column."""
    f = descriptor_pb2.FileDescriptorProto(name="jn/dup.proto", package="jndup",
                                           syntax="proto3")
    m = f.message_type.add(name="D")
    for number, name in ((1, "mail"), (2, "e_mail")):
        m.field.add(name=name, number=number, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL,
                    json_name="email")
    sid = registry.add("dup-value", base64.b64encode(f.SerializeToString()).decode(),
                       "PROTOBUF")
    reason, _ = reason_of(users_table({"id": "int", "email": "string"}),
                          RestRegistry(registry.url), b"\x00" + sid.to_bytes(4, "big") + b"\x00")
    assert reason == "bad_schema"
    refused = unmatched_schema("Protobuf message jndup.D", ["mail", "e_mail", "n"],
                               ["id", "email", "n"], ["email", "n"], "public.t",
                               [("mail", "json_name", "email"), ("e_mail", "json_name", "email")])
    assert refused is not None and refused.reason == "ambiguous_alias"
    assert ("Protobuf message jndup.D: column 'email' is named by the json_name of field "
            "'mail' and the json_name of field 'e_mail', which is ambiguous") in str(refused)
