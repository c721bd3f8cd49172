"""A relation's store keeps one LMDB named database per partition, and an environment
holds at most MAX_DBS (4,096) of them. A topic of 5,000 partitions stopped the worker
30 s into its first batch with "LMDB failed while opening partition 985: mdb_dbi_open:
MDB_DBS_FULL: ... (Please use a larger Environment(max_dbs=) parameter)", advice a user
cannot follow (probe h126). The error now names the limit and what to do, and the batch
is not written (no partition's rows nor offsets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from materializer.errors import StoreError
from materializer.store.environment import (
    MAX_DBS,
    MAX_PARTITIONS,
    META,
    RESERVED_DBS,
    open_db,
)
from tests.support.api import USERS, FakeRecord, SpecWriter, user_row


def _batch(partitions: range) -> dict[int, list[FakeRecord]]:
    return {p: [FakeRecord(json.dumps(p).encode(), json.dumps(user_row(p)).encode(),
                           0, 1_700_000_000_000)] for p in partitions}


def _stored(users: SpecWriter) -> list[int]:
    env = users.writer.env
    with env.begin(db=open_db(env, META)) as txn:
        return list(json.loads(txn.get(b"partitions", b"[]")))


def test_the_limit_leaves_room_for_the_relations_own_databases() -> None:
    assert MAX_PARTITIONS == MAX_DBS - RESERVED_DBS == 4094


def test_a_partition_past_the_limit_is_a_clear_error_and_nothing_is_written(
        tmp_path: Path) -> None:
    users = SpecWriter(str(tmp_path), USERS)
    with pytest.raises(StoreError) as caught:
        users.rel.apply(_batch(range(MAX_PARTITIONS + 1)))
    msg = str(caught.value)
    assert "holds at most 4,094 partitions" in msg, msg
    assert f"cannot store partition {MAX_PARTITIONS}" in msg, msg
    assert "max_dbs=" not in msg  # not py-lmdb's advice: no setting of ours changes it
    assert _stored(users) == []


def test_the_limit_itself_is_stored(tmp_path: Path) -> None:
    users = SpecWriter(str(tmp_path), USERS)
    out = users.rel.apply(_batch(range(MAX_PARTITIONS)))
    assert all(o.fatal is None and o.next_offset == 1 for o in out.values())
    assert len(_stored(users)) == MAX_PARTITIONS
