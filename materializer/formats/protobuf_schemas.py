"""Protobuf schemas from a Confluent-compatible registry: descriptors, not .proto text.

A Protobuf schema is asked of the registry in its `serialized` form (`GET
/schemas/ids/{id}?format=serialized`): a base64 FileDescriptorProto, which is what
confluent-kafka's ProtobufSerializer registers and what Confluent Schema Registry
serves for any Protobuf schema. So no .proto compiler is needed at run time: the
descriptor is added to a `DescriptorPool` (one per schema id, as confluent-kafka's
ProtobufDeserializer does, so two versions of one file never collide) after its
dependencies:
- schema references (`references`: name, subject, version), fetched the same way,
  recursively;
- the files confluent-kafka's serializers never send as references, because every
  reader has them: `google/protobuf/*.proto` (the protobuf package),
  `google/type/*.proto` (the googleapis-common-protos package, if installed) and
  the `confluent/*.proto` files confluent-kafka ships (`meta.proto`, `type/decimal.proto`,
  `type/variant.proto`, ...; `confluent/meta.proto` and `confluent/type/decimal.proto` are
  built here when it does not have them).

`message_at(pool_file, indexes)` finds the message a record names by its
message-index path (Confluent wire format: the index of a top-level message in the
file, then of nested messages).

Errors: a schema that is not Protobuf, not a descriptor (a registry that serves only
.proto text), or whose dependencies cannot be resolved is RecordError(bad_schema);
an unknown id or reference RecordError(unknown_schema); a registry that cannot be
asked InfrastructureError (from the registry itself).
"""

from __future__ import annotations

import base64
import binascii
import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from materializer.errors import RecordError

__all__ = ["SchemaTexts", "load_file", "message_at"]

MAX_REFERENCE_DEPTH = 32


class SchemaTexts(Protocol):
    """What the Protobuf decoder needs of a registry: schemas as the registry keeps them
    (`connectors.rest_registry.RestRegistry` implements it)."""

    def schema_text(self, schema_id: int, fmt: str | None = None) -> Mapping[str, Any]:
        """{"schema": text, "schemaType": ..., "references": [...]} of an id."""
        ...

    def version_text(self, subject: str, version: int, fmt: str | None = None
                     ) -> Mapping[str, Any]:
        """The same for one version of a subject (what a reference names)."""
        ...


_F = descriptor_pb2.FieldDescriptorProto


def _confluent_decimal() -> descriptor_pb2.FileDescriptorProto:
    """confluent/type/decimal.proto: `message Decimal {bytes value = 1; uint32 precision
    = 2; int32 scale = 3;}` in package confluent.type."""
    f = descriptor_pb2.FileDescriptorProto(name="confluent/type/decimal.proto",
                                           package="confluent.type", syntax="proto3")
    m = f.message_type.add(name="Decimal")
    for name, number, kind in (("value", 1, _F.TYPE_BYTES), ("precision", 2, _F.TYPE_UINT32),
                               ("scale", 3, _F.TYPE_INT32)):
        m.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    return f


def _confluent_meta() -> descriptor_pb2.FileDescriptorProto:
    """confluent/meta.proto: the `Meta` options (doc, params, tags) Confluent's schemas
    may carry on files, messages, fields and enums (extension number 1088)."""
    f = descriptor_pb2.FileDescriptorProto(name="confluent/meta.proto", package="confluent",
                                           syntax="proto3",
                                           dependency=["google/protobuf/descriptor.proto"])
    m = f.message_type.add(name="Meta")
    m.field.add(name="doc", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    m.field.add(name="params", number=2, type=_F.TYPE_MESSAGE, label=_F.LABEL_REPEATED,
                type_name=".confluent.Meta.ParamsEntry")
    m.field.add(name="tags", number=3, type=_F.TYPE_STRING, label=_F.LABEL_REPEATED)
    entry = m.nested_type.add(name="ParamsEntry")
    entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    entry.options.map_entry = True
    for name, extendee in (("file_meta", "FileOptions"), ("message_meta", "MessageOptions"),
                           ("field_meta", "FieldOptions"), ("enum_meta", "EnumOptions"),
                           ("enum_value_meta", "EnumValueOptions")):
        f.extension.add(name=name, number=1088, type=_F.TYPE_MESSAGE, label=_F.LABEL_OPTIONAL,
                        type_name=".confluent.Meta", extendee=f".google.protobuf.{extendee}")
    return f


_BUILT_HERE = {"confluent/type/decimal.proto": _confluent_decimal,
               "confluent/meta.proto": _confluent_meta}


def _builtin(name: str) -> bytes | None:
    """The serialized descriptor of a file every reader is expected to have, or None."""
    if name.startswith("confluent/") and name.endswith(".proto"):
        # confluent-kafka's own copies first: its serializers treat every confluent/ file
        # as built in (never a reference), and newer releases add files (type/variant.proto,
        # types/decimal.proto) and fields (meta.proto's rules) to the ones built here
        module = "confluent_kafka.schema_registry." + name[:-len(".proto")].replace("/", ".")
        try:
            desc = importlib.import_module(module + "_pb2").DESCRIPTOR
        except Exception:  # noqa: BLE001 - missing, or its gencode refuses this protobuf
            desc = None
        if desc is not None and desc.name == name:
            return bytes(desc.serialized_pb)
    make = _BUILT_HERE.get(name)
    if make is not None:
        return bytes(make().SerializeToString())
    if name.startswith(("google/protobuf/", "google/type/")) and name.endswith(".proto"):
        module = name[:-len(".proto")].replace("/", ".") + "_pb2"
        try:
            return bytes(importlib.import_module(module).DESCRIPTOR.serialized_pb)
        except ImportError:
            return None
    return None


def _descriptor(text: str, what: str) -> descriptor_pb2.FileDescriptorProto:
    try:
        raw = base64.b64decode(text, validate=True)
        fdp = descriptor_pb2.FileDescriptorProto()
        fdp.ParseFromString(raw)
    except (binascii.Error, ValueError, DecodeError) as e:
        shown = text[:60] + ("..." if len(text) > 60 else "")
        raise RecordError(
            f"{what} is not a serialized Protobuf descriptor ({shown!r}): the registry "
            "should serve Protobuf schemas with ?format=serialized (Confluent Schema "
            "Registry does); .proto text cannot be read without a compiler",
            "bad_schema") from e
    return fdp


class _Loader:
    """Adds one schema and everything it depends on to a fresh pool."""

    def __init__(self, registry: SchemaTexts, what: str) -> None:
        self.registry = registry
        self.what = what
        self.pool = descriptor_pool.DescriptorPool()
        self.added: set[str] = set()
        self.visiting: set[str] = set()
        self.references: dict[str, tuple[str, int]] = {}

    def add(self, fdp: descriptor_pb2.FileDescriptorProto, depth: int) -> None:
        if depth > MAX_REFERENCE_DEPTH:
            raise RecordError(f"{self.what}: schema references nest more than "
                              f"{MAX_REFERENCE_DEPTH} levels", "bad_schema")
        for dep in fdp.dependency:
            if dep not in self.added:
                self.dependency(dep, depth + 1)
        try:
            self.pool.Add(fdp)
        except (TypeError, ValueError, KeyError) as e:
            raise RecordError(f"{self.what}: file {fdp.name!r} does not build: {e}",
                              "bad_schema") from e
        self.added.add(fdp.name)

    def dependency(self, name: str, depth: int) -> None:
        if name in self.visiting:
            raise RecordError(f"{self.what}: file {name!r} imports itself (a cycle)",
                              "bad_schema")
        self.visiting.add(name)
        self.add(self.resolve(name), depth)
        self.visiting.discard(name)

    def resolve(self, name: str) -> descriptor_pb2.FileDescriptorProto:
        ref = self.references.get(name)
        if ref is not None:
            answer = self.registry.version_text(ref[0], ref[1], "serialized")
            self.remember(answer)
            fdp = _descriptor(answer["schema"], f"{self.what}: reference {name!r}")
            fdp.name = name
            return fdp
        raw = _builtin(name)
        if raw is None:
            hint = (" (install googleapis-common-protos for google/type files)"
                    if name.startswith("google/type/") else "")
            raise RecordError(f"{self.what} imports {name!r}, which is neither among its "
                              f"schema references nor a file every reader has{hint}",
                              "bad_schema")
        fdp = descriptor_pb2.FileDescriptorProto()
        fdp.ParseFromString(raw)
        return fdp

    def remember(self, answer: Mapping[str, Any]) -> None:
        for ref in answer.get("references") or ():
            self.references.setdefault(ref["name"], (ref["subject"], ref["version"]))


def load_file(registry: SchemaTexts, schema_id: int) -> Any:
    """The FileDescriptor of Protobuf schema `schema_id`, in a pool of its own with its
    dependencies. RecordError(unknown_schema | bad_schema)."""
    what = f"schema {schema_id}"
    answer = registry.schema_text(schema_id, "serialized")
    kind = answer.get("schemaType") or "AVRO"
    if kind != "PROTOBUF":
        raise RecordError(f"{what} is a {kind} schema, not Protobuf", "bad_schema")
    loader = _Loader(registry, what)
    loader.remember(answer)
    fdp = _descriptor(answer["schema"], what)
    if not fdp.name:
        fdp.name = f"schema-{schema_id}.proto"
    loader.add(fdp, 0)
    return loader.pool.FindFileByName(fdp.name)


def message_at(file: Any, indexes: tuple[int, ...], schema_id: int) -> Any:
    """The message descriptor a record's message-index path names in `file`.
    RecordError(bad_schema) for a path the schema does not have."""
    try:
        desc = list(file.message_types_by_name.values())[indexes[0]]
        for i in indexes[1:]:
            desc = desc.nested_types[i]
    except (IndexError, TypeError) as e:
        raise RecordError(f"message index {list(indexes)} names no message of schema "
                          f"{schema_id}", "bad_schema") from e
    return desc
