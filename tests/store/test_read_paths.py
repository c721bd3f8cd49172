"""The lookup shortcuts of `TableView` answer exactly as the general path: plain one-column
keys encoded directly, partition lists reread only when the snapshot changed, and rows
decoded by the layout's generated function (short rows padded with None)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from materializer.columns import parse_type
from materializer.errors import PartitionsNotHeld, UsageError
from materializer.specs import Column, TableSpec
from materializer.store import Store
from materializer.store.rows import RowLayout, encode_row
from tests.support.api import SpecWriter


def _table(name: str, key_type: str) -> TableSpec:
    cols = {"k": key_type, "v": "string", "d": "date"}
    return TableSpec(name=f"public.{name}", topic=name,
                     columns=tuple(Column(n, parse_type(t)[0], n == "k") for n, t in cols.items()),
                     key_columns=("k",), key_format="json", value_format="json")


INT_KEYS: list[Any] = [0, 1, -1, 2**31 - 1, -(2**31)]
LONG_KEYS: list[Any] = [0, -5, 2**63 - 1, -(2**63), 2**40]
STR_KEYS: list[Any] = ["", "a", "a/b", "\x00x", "é€😀"]


@pytest.mark.parametrize(("key_type", "keys", "bad"), [
    ("int", INT_KEYS, [2**31, -(2**31) - 1, True, 1.0, "1"]),
    ("long", LONG_KEYS, [2**63, -(2**63) - 1, False, 2.5, "x"]),
    ("string", STR_KEYS, [1, b"a", None]),
])
def test_plain_keys_answer_like_the_general_path(tmp_path: Path, key_type: str,
                                                 keys: list[Any], bad: list[Any]) -> None:
    w = SpecWriter(str(tmp_path), _table("t", key_type))
    w.write([(k, {"v": f"v{i}", "d": "2024-01-02"}) for i, k in enumerate(keys)])
    with Store.open(tmp_path) as store:
        view = store.table("t")
        for i, k in enumerate(keys):
            # the general path: the key as a tuple goes through key_tuple and KeyCodec
            assert view.encode_key(k) == view.key_codec.encode(view.key_tuple((k,)))
            row = view.get(k)
            assert row is not None and row["k"] == k and row["v"] == f"v{i}"
            assert view.get((k,)) == row and view.get_many([k]) == [row]
        for k in bad:
            if k is None:
                continue  # a None component is a stream key's business: the general path
            with pytest.raises(UsageError):
                view.get(k)


def test_revoking_a_partition_is_seen_by_the_very_next_lookup(tmp_path: Path) -> None:
    w = SpecWriter(str(tmp_path), _table("t", "long"))
    for p in range(3):
        w.write([(p, {"v": "x", "d": None})], partition=p)
    with Store.open(tmp_path) as store:
        view = store.table("t")
        for _ in range(3):  # the same snapshot read again and again: no meta read
            assert [view.get(p) is not None for p in range(3)] == [True, True, True]
        w.writer.set_revoked([1], True)
        with pytest.raises(PartitionsNotHeld, match="partitions 1 of public.t are not held"):
            view.get(1)  # not served, and not known to be absent
        assert view.get(1, held_only=True) is None and view.get(2) is not None
        w.write([(7, {"v": "y", "d": None})], partition=2)  # a commit in between
        assert view.get(1, held_only=True) is None and view.get(7) is not None
        w.writer.set_revoked([1], False)
        assert view.get(1) is not None


def test_generated_row_decoder_pads_short_rows_and_converts() -> None:
    types = [parse_type(t)[0] for t in ("long", "string", "date", "bytes", "timestamp")]
    layout = RowLayout(["id", "a b", "d", "blob", "ts"], types)
    full = encode_row((1, "x", 3, b"\x00\x01", 1_000_000))
    assert layout.to_json(full) == {"id": 1, "a b": "x", "d": "1970-01-04", "blob": "AAE=",
                                    "ts": "1970-01-01T00:00:01Z"}
    assert layout.to_python(full)["d"].isoformat() == "1970-01-04"
    assert layout.to_json(encode_row((2, None))) == {"id": 2, "a b": None, "d": None,
                                                     "blob": None, "ts": None}
    assert RowLayout([], []).to_json(encode_row(())) == {}
    odd = RowLayout(["def", "n0", "c0", "t"], types[:4])  # names that look like the code's
    assert odd.to_python(encode_row((1, "a", 0, b""))) == {"def": 1, "n0": "a", "c0": (
        odd.to_python(encode_row((0, None, 0, None)))["c0"]), "t": b""}
