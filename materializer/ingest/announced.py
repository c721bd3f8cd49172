"""Which change topic was told of a table's rows, in which format (`changes:` declared
later, turned off and on, moved to another topic, or given another format)."""

from __future__ import annotations

import logging

from materializer.errors import SchemaChangedError
from materializer.ingest.relation import Relation
from materializer.specs import TableSpec

log = logging.getLogger("materializer.worker")


def owe_snapshot_if_unannounced(rel: Relation) -> None:
    """A table that declares `changes:` and holds rows its change topic was never told of
    (declared after they were applied, or turned off and on again meanwhile) owes it a
    snapshot (`op: r` for every row, see ingest.resync): else the topic would lack them,
    and keep old values of rows changed while no events were emitted. A table without
    `changes:` forgets that its rows were announced. The rows were announced to one topic
    in one format: a `changes:` topic changed since owes the new one a snapshot too.

    State of a materializer from before 2026-12-05 records neither mark, though it emitted
    an event for every change while `changes:` was declared (its outbox exists): it owes a
    snapshot too (whether `changes:` was declared from its start cannot be told), but the
    records applied meanwhile keep their own events (`keep_events`): they are new changes,
    not a replay, and a consumer of the topic must not lose them.

    Refused (SchemaChangedError), so that no topic holds events of two formats: a format
    changed on the same topic, or while events staged in the old one are undelivered."""
    changes = rel.spec.changes if isinstance(rel.spec, TableSpec) else None
    emits = changes is not None
    announced = rel.writer.changes_announced()
    older = False
    if changes is not None:
        encoding = encoding_of(changes.format, changes.schemas)
        told = rel.writer.changes_target()
        older = told is None and not announced and _outbox_exists(rel)
        if told != (changes.topic, encoding):
            if told is not None:
                refuse_change_format_change(rel, told, changes.topic, encoding)
                if announced:  # announced to another topic
                    rel.writer.set_changes_announced(False)
                    announced = False
            rel.writer.set_changes_target(changes.topic, encoding)
    if emits and not announced:
        if any(rel.next_offsets.values()):
            if older:
                log.warning("%s: state written by an older materializer, which did not record "
                            "whether its change topic holds every row: a snapshot (op r for "
                            "every row) follows once caught up; change events go on meanwhile",
                            rel.spec.name)
            if not rel.writer.snapshot_due():  # a debt recorded earlier keeps its kind
                rel.writer.set_snapshot_due(True, keep_events=older)
        else:  # nothing applied yet: every row to come is an event
            rel.writer.set_changes_announced(True)
    elif not emits and announced:
        rel.writer.set_changes_announced(False)


def _outbox_exists(rel: Relation) -> bool:
    from materializer.changes.outbox import OUTBOX_DB  # noqa: PLC0415 - only with `changes:`

    return rel.writer.has_side_table(OUTBOX_DB)


def encoding_of(fmt: str, schemas: bool) -> str:
    """How change events are written, as recorded: the format, and JsonConverter's wrapper
    (`schemas: true`: the event keys are other bytes, and other text)."""
    return f"{fmt} (schemas: true)" if schemas and fmt == "debezium-json" else fmt


def refuse_change_format_change(rel: Relation, told: tuple[str, str], topic: str,
                                fmt: str) -> None:
    """SchemaChangedError if the change events' format changed where that would mix two
    formats in one topic (see `owe_snapshot_if_unannounced`)."""
    was_topic, was_fmt = told
    if was_fmt == fmt:
        return
    name = rel.spec.name
    if was_topic == topic:
        raise SchemaChangedError(
            f"{name}: the change events' encoding (changes.format, changes.schemas) changed "
            f"from {was_fmt} to {fmt}, but the change topic {topic} holds {was_fmt} events: a "
            "consumer could not read it, and its keys would not match. Give `changes.topic` a "
            "new topic (it gets a snapshot of every row), or keep the encoding")
    from materializer.changes.outbox import OUTBOX_DB  # noqa: PLC0415 - only with `changes:`

    pending = rel.writer.side_table(OUTBOX_DB).entries()  # staged, encoded, not yet sent
    if pending:
        raise SchemaChangedError(
            f"{name}: {pending} change event(s) in {was_fmt} for {was_topic} are not delivered "
            f"yet, and would go to {topic} as {was_fmt}: run once more with the former "
            "`changes:` until they are (/metrics: materializer_outbox_backlog 0), then "
            "change it")
