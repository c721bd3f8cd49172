"""The envelopes' per-batch templates (the parts every event of a batch shares, encoded
once) write, event by event, what a plain encoder writes for each whole envelope: Avro
values are fastavro's bytes, JSON values carry the same fields in the same order, over
batches that mix ops, partitions, offsets and timestamps (repeated and not), snapshot
flags and the `changed` list."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.registry import FileRegistry
from materializer.changes.avro_envelope import AvroEnvelope, envelope_schema
from materializer.changes.envelope import JsonEnvelope
from materializer.changes.event import Change
from materializer.specs import ChangesSpec
from tests.support.changes import source, table

COLUMNS = {"id": "long not null", "name": "string", "n": "long", "at": "timestamp"}
SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, database=None)
ROW = st.tuples(st.one_of(st.none(), st.text(max_size=5)),
                st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
                # timestamps (microseconds) of years 1 to 9999
                st.one_of(st.none(), st.integers(-62_135_596_800_000_000,
                                                 253_402_300_799_999_999)))
CHANGE = st.tuples(st.sampled_from("cudr"), st.sampled_from([0, 0, 3, 2**31 - 1]),
                   st.integers(0, 2**62), st.sampled_from([0, 1_700_000_000_123, -5, 2**45]),
                   ROW, ROW)
BATCH = st.tuples(st.lists(CHANGE, min_size=1, max_size=8),
                  st.sampled_from(["", "snapshot", "snapshot_last"]),
                  st.integers(0, 2**45))


def _changes(drawn: list[tuple[Any, ...]]) -> list[Change]:
    out = []
    for i, (op, p, offset, ts, before, after) in enumerate(drawn):
        b = None if op in ("c", "r") else (i, *before)
        a = None if op == "d" else (i, *after)
        out.append(Change(op, p, offset, ts, (i,), b, a))
    return out


def _expected(changes: list[Change], mode: str, now: int, columns: bool,
              names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each event's envelope as plain values, in field order."""
    out = []
    for i, ch in enumerate(changes):
        flag = "true" if mode == "snapshot" or ch.op == "r" else "false"
        if mode == "snapshot_last" and i == len(changes) - 1:
            flag = "last"
        env: dict[str, Any] = {
            "before": None if ch.before is None else dict(zip(names, ch.before, strict=True)),
            "after": None if ch.after is None else dict(zip(names, ch.after, strict=True)),
            "op": ch.op, "ts_ms": now}
        if columns and ch.op == "u":
            assert ch.before is not None and ch.after is not None
            env["changed"] = [n for n, x, y in zip(names, ch.before, ch.after, strict=True)
                              if x != y]
        env["source"] = source(ch.partition, ch.offset, ch.timestamp_ms, flag)
        out.append(env)
    return out


def _encode(env: Any, changes: list[Change], mode: str, now: int) -> list[bytes]:
    msgs = env.encode(changes, now, snapshot=mode == "snapshot",
                      snapshot_last=mode == "snapshot_last")
    assert [m[0] for m in msgs if m[2] is None] == [c.partition for c in changes
                                                   if c.op == "d"]  # a tombstone per d
    return [m[2] for m in msgs if m[2] is not None]


@pytest.mark.parametrize("columns", [False, True])
def test_avro_batches_are_fastavros_envelopes(tmp_path: Path, columns: bool) -> None:
    spec = table(ChangesSpec("items.changes", "debezium-avro", columns), COLUMNS)
    names = spec.column_names
    env = AvroEnvelope(spec, names, FileRegistry(tmp_path))
    schema = fastavro.parse_schema(envelope_schema(spec, names))

    @SETTINGS
    @given(BATCH)
    def run(batch: tuple[list[tuple[Any, ...]], str, int]) -> None:
        drawn, mode, now = batch
        changes = _changes(drawn)
        for value, plain in zip(_encode(env, changes, mode, now),
                                _expected(changes, mode, now, columns, names), strict=True):
            if columns:
                plain.setdefault("changed", None)
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, schema, plain)
            assert value[5:] == buf.getvalue()

    run()


@pytest.mark.parametrize("columns", [False, True])
def test_json_batches_carry_every_field_in_order(columns: bool) -> None:
    spec = table(ChangesSpec("items.changes", "debezium-json", columns), COLUMNS)
    names = spec.column_names
    env = JsonEnvelope(spec, names)

    @SETTINGS
    @given(BATCH)
    def run(batch: tuple[list[tuple[Any, ...]], str, int]) -> None:
        drawn, mode, now = batch
        changes = _changes(drawn)
        for value, plain in zip(_encode(env, changes, mode, now),
                                _expected(changes, mode, now, columns, names), strict=True):
            got = json.loads(value)
            assert list(got) == list(plain)
            assert list(got["source"]) == list(plain["source"])
            got.pop("before"), got.pop("after"), plain.pop("before"), plain.pop("after")
            assert got == plain

    run()
