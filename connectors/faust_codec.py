"""A faust table's keys and values as faust's codecs write them (`FaustCodec`), and the
names under which the `lmdb://` store records its table's serializers and types in the
relation's identity (`codec_name`, `type_name`). Imports faust's codecs only, so a reader
(`connectors.faust_view`) needs faust installed but no faust app."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from faust.serializers import codecs

from materializer.columns import ColumnType, parse_type
from materializer.errors import UsageError
from materializer.values import key_storage


def type_name(t: Any) -> str | None:
    if t is None:
        return None
    if t in (str, int, float, bytes, bool):
        return str(t.__name__)
    ns = getattr(getattr(t, "_options", None), "namespace", None)
    return f"record:{ns}" if ns else repr(t)


def codec_name(c: Any) -> str | None:
    return c if isinstance(c, str) or c is None else None


def _unwrap_base64(codec: str, raw: bytes) -> bytes:
    """The bytes under faust's base64 layer (`binary`, the last layer of `pickle`: stored
    bytes are base64 text of the pickle) if `codec` ends in it, else `raw` as stored."""
    try:
        nodes = getattr(codecs.get_codec(codec), "nodes", ())
    except Exception:  # noqa: BLE001 - a codec this process does not know: the stored bytes
        return raw
    if not nodes or not isinstance(nodes[-1], codecs.binary):
        return raw
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:  # not base64 (not written by this codec): the stored bytes
        return raw


_COLUMN_TYPES = {"str": "string", "int": "long", "float": "double", "bytes": "bytes",
                 "bool": "boolean"}


class FaustCodec:
    """A faust table's keys and values as faust's codecs write them, from the `faust` part
    of a relation's identity (so a reader needs no faust app, only faust).

    Logical key columns: `key`, plus `window_start` and `window_end` (double) for a
    windowed table, whose faust key is `(key, (start, end))`."""

    def __init__(self, ident: Mapping[str, Any]) -> None:
        self.key_serializer: str | None = ident.get("key_serializer")
        self.value_serializer: str | None = ident.get("value_serializer")
        self.windowed = bool(ident.get("windowed"))
        self.key_type: str | None = ident.get("key_type")
        kt = parse_type(_COLUMN_TYPES.get(self.key_type or "", "string"))[0]
        dbl = parse_type("double")[0]
        self.key_columns: tuple[str, ...] = (("key", "window_start", "window_end")
                                              if self.windowed else ("key",))
        self.key_types: tuple[ColumnType, ...] = (kt, dbl, dbl) if self.windowed else (kt,)
        # bytes keys: bytes, or base64 text (an HTTP path segment, a row's key in JSON
        # form), as materializer's own bytes key columns take them
        self._bytes_key = key_storage(kt) if kt.kind == "bytes" else None
        # Record keys: stored as the Record serializes itself (its fields and faust's
        # `__faust` marker); a key given as text, a number or a plain object never matches
        self.record_key = bool(self.key_type and self.key_type.startswith("record:"))

    def _key_value(self, key: Any) -> Any:
        if self.record_key and (key is None or isinstance(
                key, str | int | float | bool | bytes | dict | list | tuple)):
            raise UsageError(
                f"this table's keys are faust Records ({self.key_type}): a key given as "
                f"{type(key).__name__} never matches one (it would read as absent); look "
                "keys up from Python with the Record (`store.table(...).get(Key(...))`), "
                "or list the rows")
        conv = self._bytes_key
        if conv is None or not isinstance(key, str):
            return key
        try:
            return conv(key)
        except ValueError as e:
            raise UsageError(f"key {key!r}: {e}") from None

    def _dumps(self, obj: Any) -> bytes:
        if self.key_serializer is None:
            raise UsageError("this table's keys use a codec object, not a codec name: "
                             "they cannot be encoded outside the faust app")
        try:
            return bytes(codecs.dumps(self.key_serializer, obj))
        except Exception as e:  # noqa: BLE001 - a codec's own error: the key does not fit
            raise UsageError(f"key {obj!r} cannot be encoded with {self.key_serializer}: {e}") \
                from e

    def _faust_key(self, key: Any) -> Any:
        if not self.windowed:
            return self._key_value(key[0] if isinstance(key, tuple | list) and len(key) == 1
                                   else key)
        parts = tuple(key) if isinstance(key, tuple | list) else (key,)
        if len(parts) == 2 and isinstance(parts[1], tuple | list) and len(parts[1]) == 2:
            parts = (parts[0], *parts[1])
        if len(parts) != 3:
            raise UsageError("a windowed table's key is (key, window_start, window_end)")
        try:
            return (self._key_value(parts[0]), (float(parts[1]), float(parts[2])))
        except (TypeError, ValueError) as e:
            raise UsageError(f"window bounds must be numbers: {e}") from None

    def encode_key(self, key: Any) -> bytes:
        """The bytes faust stores for `key` (a bare key, or a tuple in key column order)."""
        return self._dumps(self._faust_key(key))

    def key_prefix(self, prefix: tuple[Any, ...]) -> bytes:
        """Byte prefix of the stored keys whose leading key columns are `prefix`."""
        if not prefix:
            return b""
        if not self.windowed or len(prefix) == 3:
            return self.encode_key(prefix)
        if len(prefix) == 2:
            raise UsageError("a prefix of a windowed table is (key) or the whole key")
        full = self._dumps((self._key_value(prefix[0]), (0.0, 0.0)))
        tail = self._dumps((0.0, 0.0)) + b"]"
        if not full.endswith(tail):
            raise UsageError(f"{self.key_serializer} keys cannot be scanned by key prefix")
        return full[:-len(tail)]

    def decode_key(self, raw: bytes) -> list[Any]:
        """The logical key columns of stored key bytes."""
        k = self._loads(self.key_serializer, raw, json_form=False)
        if self.windowed and isinstance(k, list | tuple) and len(k) == 2 \
                and isinstance(k[1], list | tuple) and len(k[1]) == 2:
            return [k[0], k[1][0], k[1][1]]
        return [k]

    @staticmethod
    def _loads(codec: str | None, raw: bytes, json_form: bool) -> Any:
        if codec is None or codec == "raw":
            return raw
        if json_form and "json" not in codec.split("|"):
            # not JSON (pickle, custom codecs): served as bytes (base64 in JSON), those of
            # the codec's last layer but its base64 one: never base64 of base64 text
            return _unwrap_base64(codec, raw)
        try:
            return codecs.loads(codec, raw)
        except Exception:  # noqa: BLE001 - a value the codec cannot read: served as bytes
            return raw

    def row(self, key: bytes, value: bytes | None, json_form: bool) -> dict[str, Any]:
        """`{"key": ..., ["window_start", "window_end",] "value": ...}`: decoded with the
        table's codecs. JSON form: JSON values as JSON documents, other bytes as base64."""
        cols = self.decode_key(key)
        value_out = None if value is None else self._loads(self.value_serializer, value,
                                                            json_form)
        out = dict(zip(self.key_columns, cols, strict=False))
        out["value"] = value_out
        if json_form:
            for name, v in out.items():
                if isinstance(v, bytes):
                    out[name] = base64.b64encode(v).decode("ascii")
        return out
