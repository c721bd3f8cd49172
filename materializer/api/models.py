"""Request and response shapes of the lookup API, for its OpenAPI description.

Handlers build their JSON bytes directly (no per-request model validation on the hot
path); these models state what those bytes are. Rows are JSON objects of every
declared column: dates, times and timestamps as ISO 8601 strings (timestamps in UTC,
ending in `Z`), decimals as strings, bytes as standard base64, arrays and maps as
JSON arrays and objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field

Row = dict[str, Any]


class ErrorBody(BaseModel):
    detail: str = Field(description="What went wrong, for a person to read.")
    snapshots: list[str] | None = Field(None, description="With a 404 for a snapshot that "
                                        "does not exist (`as_of`, `from`, `to`, a drop): "
                                        "the names of those there are.")


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="Declared type, e.g. `int`, `decimal(10,2)`, `array<string>`.")
    not_null: bool
    encoding: str | None = Field(None, description="The column's declared input `encoding` "
                                 "(`s`, `us`, `ns`, `base64`, `base64-url-safe`, `hex`), "
                                 "absent for the default: integer keys of a time or "
                                 "timestamp count that unit; key text (and a JSON string "
                                 "key) of a bytes column is in that encoding.")


class RelationInfo(BaseModel):
    name: str = Field(description="Qualified name `schema.name`.")
    kind: Literal["table", "stream"]
    columns: list[ColumnInfo]
    key: list[str] = Field(description="Primary key (table) or key (stream) columns, in order.")


class TablesResponse(BaseModel):
    tables: list[RelationInfo]


class RowsPage(BaseModel):
    rows: list[Row] = Field(description="Rows in key order.")
    next: str | None = Field(description="Cursor for the next page (`after=`); null on the "
                                         "last page.")


class LookupRequest(BaseModel):
    keys: list[list[Any] | Any] = Field(
        description="Keys to look up: each a JSON array of the key columns in key order "
                    "(a bare value is accepted for a one-column key). Temporal values as "
                    "ISO 8601 strings, decimals as strings or numbers, bytes as base64.",
        examples=[[[1], [2]]])


class LookupResponse(BaseModel):
    rows: list[Row | None] = Field(description="One entry per key asked, in the order asked; "
                                               "null where no row has that key.")


class EventsResponse(BaseModel):
    events: list[Row | None] = Field(description="Newest first; null for an event whose "
                                                 "value was null.")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    reason: str


class SnapshotRelation(BaseModel):
    kind: Literal["table", "stream"]
    offsets: dict[str, int] = Field(description="Per partition, the next offset to apply: "
                                                "every record below it is in the snapshot.")
    rows: int
    bytes: int
    revoked: list[int] = Field(description="Partitions revoked from this store's worker then.")


class Snapshot(BaseModel):
    format: int
    name: str
    created: str = Field(description="The instant the snapshot reflects, ISO 8601 UTC.")
    created_at: float = Field(description="The same, in seconds since the epoch.")
    scheduled: bool = Field(description="Taken by the `snapshots:` schedule (pruned by `keep`).")
    complete: bool = Field(description="Taken of every table and stream of the store.")
    bytes: int
    relations: dict[str, SnapshotRelation]


class SnapshotsResponse(BaseModel):
    snapshots: list[Snapshot] = Field(description="Oldest first.")


class Dropped(BaseModel):
    dropped: str


class DiffPage(BaseModel):
    diff: list[dict[str, Any]] = Field(
        description="Changes in key order. Tables: `diff_type` (`added`, `removed`, "
                    "`modified`), `key`, `from`, `to` (rows or null) and, for `modified`, "
                    "`changed` (column names). Streams: `diff_type` (`added`, `removed`), "
                    "`key`, `partition`, `offset`, `timestamp`, `value`.")
    next: str | None = Field(description="Cursor for the next page (`after=`); null on the "
                                         "last page.")


class ClusterMember(BaseModel):
    id: str = Field(description="The worker id (`cluster.worker_id`).")
    url: str | None = Field(description="Its advertised API URL.")
    generation: int | None = Field(description="Consumer group generation of its assignment.")
    assigned_at: int = Field(description="When its assignment last changed (Unix ms).")
    heartbeat_at: int = Field(description="Its last heartbeat (Unix ms, its clock).")
    heard_at: int | None = Field(
        None, description="When this worker last heard from it (Unix ms, this worker's "
                          "clock); absent for this worker itself and for records only read "
                          "back from the membership topic (then `heartbeat_at` stands for it).")
    heartbeat_age_s: float = Field(description="Seconds since it was last heard from "
                                               "(`heard_at`, else `heartbeat_at`).")
    live: bool = Field(description="False once silent for `cluster.member_timeout_ms` "
                                   "(timed by this worker's clock, not the member's).")
    relations: dict[str, Any] = Field(
        description="Per relation: topic, partition count, assigned and standby partitions, "
                    "next offset and lag per partition, partitioner.")


class ClusterResponse(BaseModel):
    standalone: bool = Field(description="True when no worker runs beside this API: it "
                                         "answers from its local store alone.")
    self: str | None = Field(description="This worker's id.")
    members: list[ClusterMember] = Field(description="Live members, then expired ones.")
    relations: dict[str, Any] = Field(
        description="Per relation: partition count, partitioner, and the owner and standbys "
                    "of each partition.")


# query parameters several endpoints take
AsOf = Annotated[str | None, Query(max_length=128, description="A snapshot name: answer as "
                                   "that snapshot holds it (404 listing the snapshots if "
                                   "there is none).")]
Stale = Annotated[str | None, Query(description="`ok`: in a cluster, a key "
                                    "whose owner is gone or still catching up is answered "
                                    "from the freshest standby copy (header "
                                    "`x-materializer-standby-lag`) instead of 503.")]
