"""A Protobuf `string` field feeding a bytes column: refused (type_mismatch), as a Connect or
Avro string field is, never guessed as base64 (text that is hex, `fbff0102`, is valid base64
of other bytes). Before, the text was read as base64: "Ann" was refused by chance, but
hex text of even length was stored as other bytes. A column `encoding` reads it."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf import descriptor_pool

from connectors.registry import RestRegistry
from materializer.formats import codecs
from tests.support.protobuf import (
    COLUMNS,
    message_class,
    reason_of,
    registry_server,
    serializer,
    shaped,
    shop_pool,
    table,
)
from tests.support.registry_server import RegistryServer

pool = pytest.fixture(scope="module", name="pool")(shop_pool)
registry = pytest.fixture(scope="module", name="registry")(registry_server)


def user(pool: descriptor_pool.DescriptorPool, email: str) -> object:
    return message_class(pool, "shop.User")(id=7, name="Ann", email=email)


def test_a_string_field_does_not_fill_a_bytes_column(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    spec = table({**COLUMNS, "email": "bytes"})
    raw = serializer(registry, message_class(pool, "shop.User"))(user(pool, "fbff0102"))
    reason, message = reason_of(spec, RestRegistry(registry.url), raw)
    assert reason == "type_mismatch" and "types it as text" in message


def test_a_declared_encoding_reads_it(pool: descriptor_pool.DescriptorPool,
                                      registry: RegistryServer) -> None:
    spec = table({**COLUMNS, "email": "bytes"})
    spec = dataclasses.replace(spec, columns=tuple(
        dataclasses.replace(c, type=dataclasses.replace(c.type, encoding="hex"))
        if c.name == "email" else c for c in spec.columns))
    raw = serializer(registry, message_class(pool, "shop.User"))(user(pool, "fbff0102"))
    fields = codecs.value_decoder(spec, RestRegistry(registry.url))(raw)
    assert shaped(spec, fields, (7,))["email"] == b"\xfb\xff\x01\x02"
