"""`value_format: protobuf`: values read as every Protobuf reader reads them (probe h56):
an enum alias names its number by the first name, a Timestamp whose nanos are no fraction
of a second is refused (not carried into the seconds), a confluent Decimal with a negative
scale (Java's BigDecimal writes them) is read, google.type.Decimal fills a decimal column,
and schemas importing confluent-kafka's newer built-in files (confluent/type/variant.proto)
resolve."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.type import decimal_pb2 as google_decimal_pb2

from connectors.registry import RestRegistry
from materializer.decimals import scaled
from materializer.formats import codecs
from tests.support.protobuf import (
    WELL_KNOWN,
    message_class,
    reason_of,
    registry_server,
    serializer,
    shaped,
    table,
)
from tests.support.registry_server import RegistryServer

F = descriptor_pb2.FieldDescriptorProto
registry = pytest.fixture(scope="module", name="registry")(registry_server)


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="fid/m.proto", package="fid", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "confluent/type/decimal.proto",
                    "google/type/decimal.proto"])
    m = f.message_type.add(name="M")
    for name, number, kind, type_name in (
            ("id", 1, F.TYPE_INT32, ""), ("color", 2, F.TYPE_ENUM, ".fid.Color"),
            ("at", 3, F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
            ("amount", 4, F.TYPE_MESSAGE, ".confluent.type.Decimal"),
            ("price", 5, F.TYPE_MESSAGE, ".google.type.Decimal"),
            ("inner", 6, F.TYPE_MESSAGE, ".fid.M")):
        fd = m.field.add(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL)
        if type_name:
            fd.type_name = type_name
    e = f.enum_type.add(name="Color")
    e.options.allow_alias = True
    for name, number in (("RED", 0), ("GREEN", 1), ("VERDE", 1)):
        e.value.add(name=name, number=number)
    return f


@pytest.fixture(scope="module", name="pool")
def _pool() -> Iterator[descriptor_pool.DescriptorPool]:
    p = descriptor_pool.DescriptorPool()
    for mod in (*WELL_KNOWN, google_decimal_pb2):
        p.AddSerializedFile(mod.DESCRIPTOR.serialized_pb)
    p.Add(_file())
    yield p


COLUMNS = {"id": "int", "color": "string", "at": "timestamp", "amount": "decimal(20,2)",
           "price": "decimal(20,2)", "inner": "json"}


def _read(registry: RegistryServer, msg: Any, columns: dict[str, str] | None = None
          ) -> dict[str, Any]:
    spec = table(columns or COLUMNS)
    raw = serializer(registry, type(msg), "fid")(msg)
    row = shaped(spec, codecs.value_decoder(spec, RestRegistry(registry.url))(raw), (1,))
    # not the key, nor the NULLs, nor the enum's default (RED) where no color was set
    return {k: v for k, v in row.items()
            if v is not None and k != "id" and (k, v) != ("color", "RED")}


def _reason(registry: RegistryServer, msg: Any) -> tuple[str, str]:
    raw = serializer(registry, type(msg), "fid")(msg)
    return reason_of(table(COLUMNS), RestRegistry(registry.url), raw)


def test_an_enum_alias_reads_as_the_first_name_of_its_number(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    """GREEN and VERDE are both 1: Protobuf's readers (json_format, Java's getName) say
    GREEN, the first; VERDE (the last) was stored."""
    m = message_class(pool, "fid.M")(color=1)
    assert _read(registry, m) == {"color": "GREEN"}
    m.inner.color = 1
    assert _read(registry, m)["inner"]["color"] == "GREEN"


@pytest.mark.parametrize("nanos", [-5, 1_000_000_000, 2_000_000_000])
def test_a_timestamp_whose_nanos_are_no_fraction_of_a_second_is_refused(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer, nanos: int) -> None:
    """Timestamp.nanos is 0..999,999,999; seconds=10, nanos=2e9 was stored as 12 s, and
    nanos=-5 as a microsecond before the second: no Protobuf reader reads them so."""
    m = message_class(pool, "fid.M")()
    m.at.seconds, m.at.nanos = 10, 999_999_999
    assert _read(registry, m) == {"at": 10_999_999}
    m.at.nanos = nanos
    reason, message = _reason(registry, m)
    assert reason == "type_mismatch" and "Timestamp nanos" in message
    m = message_class(pool, "fid.M")()
    m.inner.at.seconds, m.inner.at.nanos = 10, nanos
    assert _reason(registry, m)[0] == "type_mismatch"


def test_a_confluent_decimal_with_a_negative_scale_is_read(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    """Java's BigDecimal (and confluent-kafka's protobuf_to_decimal) read unscaled 12345 at
    scale -2 as 1234500; it was refused (type_mismatch, `[<class ConversionSyntax>]`)."""
    assert scaled(12345, -2) == decimal.Decimal(1234500)
    assert scaled(-7, 0) == decimal.Decimal(-7)
    m = message_class(pool, "fid.M")()
    m.amount.value = (12345).to_bytes(2, "big", signed=True)
    m.amount.scale = -2
    assert _read(registry, m) == {"amount": "1234500.00"}


def test_a_google_type_decimal_fills_a_decimal_column(
        pool: descriptor_pool.DescriptorPool, registry: RegistryServer) -> None:
    m = message_class(pool, "fid.M")()
    for text, stored in (("1.25", "1.25"), ("-0.5", "-0.50"), ("+2", "2.00"),
                         ("1.5e2", "150.00"), (".5", "0.50"), ("3.", "3.00")):
        m.price.value = text
        assert _read(registry, m) == {"price": stored}, text
    for bad in ("NaN", "Infinity", "1_000", " 1", "", "1e", "0x10"):
        m.price.value = bad
        assert _reason(registry, m)[0] == "type_mismatch", bad


def test_a_schema_importing_confluent_variant_proto_is_read(registry: RegistryServer) -> None:
    """confluent-kafka's serializers never send a confluent/ file as a reference; its newer
    releases have confluent/type/variant.proto, which every record of a schema importing it
    was refused for (bad_schema)."""
    variant = pytest.importorskip("confluent_kafka.schema_registry.confluent.type.variant_pb2")
    f = descriptor_pb2.FileDescriptorProto(name="fid/v.proto", package="fidv",
                                           syntax="proto3",
                                           dependency=["confluent/type/variant.proto"])
    m = f.message_type.add(name="V")
    m.field.add(name="id", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="name", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="var", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".confluent.type.Variant")
    p = descriptor_pool.DescriptorPool()
    p.AddSerializedFile(variant.DESCRIPTOR.serialized_pb)
    p.Add(f)
    v = message_class(p, "fidv.V")(name="x")
    v.var.value = b"\x01"
    assert _read(registry, v, {"id": "int", "name": "string", "var": "json"}) == {
        "name": "x", "var": {"metadata": "", "value": "AQ=="}}
