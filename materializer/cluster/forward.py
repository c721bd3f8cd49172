"""Lookups forwarded to the worker that owns a partition: one pooled keep-alive HTTP client.

Protocol between workers (the same endpoints clients use, plus two headers):
- request header `x-materializer-forwarded: <sender id>`: answer from your own partitions
  only, never forward again (the loop guard);
- answer header `x-materializer-partitions: 0,3`: the partitions that answer covered (owned
  and served by the answering worker's store, checked after the read). A miss is only
  trusted when the answers of all owners together covered every partition.

Guarantees: every request carries the API's bearer token (aiohttp, pooled keep-alive
connections), waits at most
`cluster.forward_timeout_ms`, and any failure (refused, timeout, 5xx, a body that is not
JSON) is an `Answer` with `ok=False`, never an exception; each call is counted and timed
per target member (`materializer_forwarded_*` metrics).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import aiohttp
from yarl import URL

from materializer.api.metrics import LatencyRecorder
from materializer.cluster.record import Member

FORWARDED = "x-materializer-forwarded"
COVERED = "x-materializer-partitions"
MEMBER = "x-materializer-member"
STANDBY_LAG = "x-materializer-standby-lag"  # a standby's answer: its copies' largest lag


def covered_header(partitions: frozenset[int] | set[int]) -> str:
    return ",".join(str(p) for p in sorted(partitions))


def parse_covered(value: str | None) -> frozenset[int]:
    if not value:
        return frozenset()
    try:
        return frozenset(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        return frozenset()


@dataclass(frozen=True, slots=True)
class Answer:
    """What one member answered (ok: a 200 or 404 from it, with its coverage)."""

    member: str
    ok: bool
    status: int = 0
    body: Any = None
    covered: frozenset[int] = field(default_factory=frozenset)
    error: str = ""
    lag: str | None = None  # x-materializer-standby-lag of a standby's answer
    raw: bytes = b""  # the body as it came


class Forwarder:
    """Pooled keep-alive HTTP to the other members: one `aiohttp` session (its C HTTP
    parser costs a fraction of a pure-Python client per forwarded lookup), created in
    the serving event loop on first use."""

    def __init__(self, token: str | None, timeout: float = 5.0) -> None:
        self.token = token
        self.timeout = timeout
        self.sender = ""
        self._session: aiohttp.ClientSession | None = None
        self.latency = LatencyRecorder()
        self.outcomes: dict[tuple[str, str], int] = {}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, limit_per_host=64,
                                               keepalive_timeout=30),
                headers={"authorization": f"Bearer {self.token}"} if self.token else {},
                skip_auto_headers=("User-Agent",), auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, member: Member, method: str, path: str, *,
                   params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
                   body: Any = None, what: str = "lookup") -> Answer:
        """One forwarded request (see the module doc); never raises."""
        if not member.url:
            return self._done(member, what, 0.0, Answer(member.id, False,
                                                         error="it advertises no API URL"))
        t0 = time.perf_counter()
        headers = {FORWARDED: self.sender or "?"}
        if body is not None:
            headers["content-type"] = "application/json"
        query = None if params is None else [
            (k, str(v)) for k, v in (params.items() if isinstance(params, Mapping) else params)]
        try:  # the path as encoded here, verbatim: yarl would decode it, drop dot segments
            async with self._http().request(
                    method, URL(member.url + path, encoded=True), params=query,
                    headers=headers,
                    data=None if body is None else json.dumps(body).encode(),
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as r:
                status = r.status
                raw = await r.read()
                covered, lag = r.headers.get(COVERED), r.headers.get(STANDBY_LAG)
        except (TimeoutError, aiohttp.ClientError) as e:
            return self._done(member, what, time.perf_counter() - t0,
                              Answer(member.id, False, error=f"{type(e).__name__}: {e}"))
        elapsed = time.perf_counter() - t0
        if status not in (200, 404):
            return self._done(member, what, elapsed, Answer(
                member.id, False, status, error=f"answered {status}: "
                f"{raw[:200].decode('utf-8', 'replace')}", raw=raw))
        try:
            parsed = json.loads(raw)
        except ValueError:
            return self._done(member, what, elapsed, Answer(member.id, False, status,
                                                            error="answered with no JSON"))
        return self._done(member, what, elapsed, Answer(
            member.id, True, status, parsed, parse_covered(covered), lag=lag, raw=raw))

    def _done(self, member: Member, what: str, seconds: float, answer: Answer) -> Answer:
        outcome = "ok" if answer.ok else "failed"
        key = (member.id, f"{what}:{outcome}")
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        if seconds:
            self.latency.observe(member.id, answer.status, seconds)
        return answer


def path_segment(raw: bytes | str) -> str:
    """One path segment, percent-encoded, from its text or its raw (percent-encoded) bytes as
    a request path had it. `.` and `..` become `%2E` and `%2E%2E`: sent as they are, HTTP
    clients and servers remove them as dot segments (RFC 3986), the key with them."""
    value = raw.encode() if isinstance(raw, str) else unquote_to_bytes(raw)
    if value in (b".", b".."):
        return "%2E" * len(value)
    return quote(value, safe="")


def encoded_path(raw_path: bytes) -> str:
    """A raw request path (`keys.raw_path`), each segment encoded anew by `path_segment`:
    forwarded, it names the same relation and key."""
    return "/".join(path_segment(s) for s in raw_path.split(b"/"))


def table_path(name: str, suffix: str) -> str:
    return f"/tables/{path_segment(name)}/{suffix}"


def stream_path(name: str, key_raw: bytes | str) -> str:
    """The events path of the key whose raw path segments are `key_raw` (`a/b%2Fc`)."""
    raw = key_raw.encode() if isinstance(key_raw, str) else key_raw
    return f"/streams/{path_segment(name)}/keys/{encoded_path(raw)}/events"
