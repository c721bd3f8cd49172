"""A whole-store snapshot leaves out a relation the store holds but no longer declares (its
rows followed no topic then). It said `complete`, so once the relation was declared again a
diff from that snapshot read it as empty then: every row `added`. The manifest now lists
it as `undeclared`, and a diff or an as-of read of it there is refused (NotFound)."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.errors import NotFound
from materializer.specs import TableSpec
from materializer.store.layout import write_declared
from materializer.versions.diff import iter_entries
from materializer.versions.paths import read_manifest
from materializer.versions.take import take_snapshot
from tests.support.api import SpecWriter, columns


def _table(name: str) -> TableSpec:
    return TableSpec(name=f"public.{name}", topic=name,
                     columns=columns({"id": "long", "v": "string"}, ["id"]),
                     key_columns=("id",), key_format="json", value_format="json")


def test_a_relation_undeclared_at_snapshot_time_is_not_read_as_empty(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("users", "clicks"):
        SpecWriter(str(data), _table(name)).write([(i, {"v": f"{name}-{i}"}) for i in range(3)])
    write_declared(data, ["public.users"])  # clicks: removed from the declaration
    manifest = take_snapshot(data, "s")
    assert list(manifest.relations) == ["public.users"] and manifest.complete
    assert read_manifest(data, "s").undeclared == ("public.clicks",)

    write_declared(data, ["public.users", "public.clicks"])  # declared again
    assert list(iter_entries(data, "public.users", "s", None)) == []
    with pytest.raises(NotFound, match="not declared when the snapshot was taken"):
        list(iter_entries(data, "public.clicks", "s", None))

    take_snapshot(data, "t")  # both declared: nothing left out
    assert read_manifest(data, "t").undeclared == ()
    assert "undeclared" not in (data / "snapshots").joinpath("t").joinpath(
        "manifest.json").read_text()
