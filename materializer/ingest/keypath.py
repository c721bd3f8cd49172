"""Kafka key bytes -> (key tuple in stored form, stored key bytes), in one call per record.

`key_path(spec, decode, codec)` returns that function. The general path decodes the
key with the relation's key decoder, refuses a null key column, encodes the tuple with
the relation's `KeyCodec` and checks LMDB's key size limit. Two common shapes skip most
of it, straight from the Kafka bytes:

- a one-column int or long key in a fixed-width format (`int`, `long`, or `kafka` for
  an int/long column) of the right width: one `int.from_bytes` for the tuple, and the
  stored key made from the bytes (a head by the first byte, then the rest);
- a one-column string key in `string` (or `kafka`) format: the UTF-8 check is the
  decode itself, the stored key is made from the original bytes;
- a table's composite key in `json` format, of string, int and long columns: a typed
  msgspec decoder of exactly the key columns (no other field, no null, each value of its
  column's type and range) gives the tuple, the components are encoded straight from it.

Guarantee: the fast paths return exactly what the general path returns; any input they
do not take (a wrong width, bytes that are not UTF-8, a key too long to store) goes to
the general path, which returns or raises (RecordError) as it always did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from materializer.columns import ColumnType
from materializer.errors import RecordError
from materializer.formats.base import KeyDecoder
from materializer.formats.codecs import KAFKA_KEY_KINDS
from materializer.ingest.jsonrow import msgspec_type, typed_path_off
from materializer.specs import RelationSpec
from materializer.store.keys import MAX_KEY_BYTES, KeyCodec, key_component_encoder

KeyPath = Callable[[bytes], tuple[tuple[Any, ...], bytes]]

_WIDTH = {"int": 4, "long": 8}
_from_bytes = int.from_bytes
_TYPED_KINDS = ("string", "int", "long")
"""Key column kinds the typed JSON key path reads (`jsonrow.msgspec_type`: msgspec's value
is the stored form)."""


def general_key_path(decode: KeyDecoder, codec: KeyCodec, suffix: int = 0) -> KeyPath:
    """Decode, refuse null key columns, encode, check the size (with `suffix` bytes
    added, for stream keys). RecordError(null_key | bad_unicode | key_too_long) and
    whatever the decoder raises."""
    encode = codec.encode

    def path(b: bytes) -> tuple[tuple[Any, ...], bytes]:
        kt = decode(b)
        if None in kt:
            raise RecordError("null primary key column", "null_key")
        try:
            kb = encode(kt)
        except UnicodeEncodeError as e:
            raise RecordError(f"key is not valid Unicode: {e}", "bad_unicode") from e
        if len(kb) + suffix > MAX_KEY_BYTES:
            raise RecordError(f"key is {len(kb) + suffix} bytes stored, over LMDB's limit of "
                              f"{MAX_KEY_BYTES} (use shorter keys)", "key_too_long")
        return kt, kb
    return path


def _scalar_format(spec: RelationSpec) -> str | None:
    """The scalar format of a one-column key (`kafka` resolved by the column's kind)."""
    if len(spec.key_columns) != 1:
        return None
    fmt = spec.key_format
    if fmt == "kafka":
        return KAFKA_KEY_KINDS.get(spec.key_types[0].kind)
    return fmt


def _int_key_heads(width: int) -> tuple[bytes, ...]:
    """By the first byte of a big-endian signed integer of `width` bytes: what its stored
    key (`key_component_encoder` of an int: a marker byte, then the value plus 2^63 in 8
    big-endian bytes) holds before the integer's remaining bytes. Adding 2^63 to a 64-bit
    two's complement value flips its top bit; a narrower value is sign-extended first."""
    enc = key_component_encoder(ColumnType("long"))
    heads = []
    for first in range(256):
        v = _from_bytes(bytes([first]) + bytes(width - 1), "big", signed=True)
        heads.append(enc(v)[:-(width - 1)])  # the low bytes are the integer's own
    return tuple(heads)


def key_path(spec: RelationSpec, decode: KeyDecoder, codec: KeyCodec) -> KeyPath:
    """The key function of a table (see the module doc)."""
    general = general_key_path(decode, codec)
    fmt = _scalar_format(spec)
    kind = spec.key_types[0].kind if len(spec.key_types) == 1 else ""
    if fmt in _WIDTH and kind in _WIDTH and _WIDTH[fmt] <= _WIDTH[kind]:
        width = _WIDTH[fmt]
        heads = _int_key_heads(width)

        def fixed(b: bytes) -> tuple[tuple[Any, ...], bytes]:
            if len(b) != width:
                return general(b)
            return (_from_bytes(b, "big", signed=True),), heads[b[0]] + b[1:]
        return fixed
    if fmt == "string" and kind == "string":
        enc_raw = key_component_encoder(ColumnType("bytes"))

        def text(b: bytes) -> tuple[tuple[Any, ...], bytes]:
            try:
                s = b.decode("utf-8")
            except UnicodeDecodeError:
                return general(b)
            kb = enc_raw(b)  # the UTF-8 bytes of s: what encoding s gives
            if len(kb) > MAX_KEY_BYTES:
                return general(b)
            return (s,), kb
        return text
    if (fmt is None and spec.key_format == "json" and spec.kind == "table"
            and all(t.kind in _TYPED_KINDS for t in spec.key_types)
            and not {"schema", "payload"} & set(spec.key_columns)):
        return _json_object_key(spec, general)
    return general


def _json_object_key(spec: RelationSpec, general: KeyPath) -> KeyPath:
    """A table's composite JSON key: an object of exactly its key columns, none null,
    each of its column's type (string, int, long; an int in range, not a float or a
    boolean), decoded by msgspec into those values, which are the stored form the general
    path's converters return, in the order of its `loads` (the last of a field given
    twice). Anything else (another field, Connect's wrapper, a null, a value of another
    type, bytes that are not strict JSON, a key too long to store) goes to the general
    path; once it is off (`jsonrow.typed_path_off`), every key does."""
    struct = msgspec.defstruct(
        "Key", [(f"k{i}", msgspec_type(t)) for i, t in enumerate(spec.key_types)],
        rename={f"k{i}": n for i, n in enumerate(spec.key_columns)},
        forbid_unknown_fields=True)
    decode = msgspec.json.Decoder(struct).decode
    astuple = msgspec.structs.astuple
    encoders = [key_component_encoder(t) for t in spec.key_types]
    counts = [0, 0]  # keys the typed path took, keys it missed
    off = [False]  # typed_path_off, as of the last miss (the only time it can change)

    def obj_key(b: bytes) -> tuple[tuple[Any, ...], bytes]:
        if not off[0]:
            try:
                kt = astuple(decode(b))
                kb = b"".join([enc(v) for enc, v in zip(encoders, kt)])  # noqa: B905
            except Exception:  # noqa: BLE001 - the general path says what is wrong
                kb = b""
            if 0 < len(kb) <= MAX_KEY_BYTES:
                counts[0] += 1
                return kt, kb
            counts[1] += 1
            off[0] = typed_path_off(counts[0], counts[1])
        return general(b)
    return obj_key
