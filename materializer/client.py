"""`materializer.Client`: the `Store` lookups, over HTTP, against a cluster of workers.

>>> with Client("http://10.0.0.5:8080", token=os.environ["MATERIALIZER_TOKEN"]) as c:
...     c.table("shop.users").get(1)

Guarantees:
- The same surface as `Store`: `table(name).get / get_many / scan`, `len` is not offered
  (it would need every worker), `stream(name).events`. Rows are Python values (dates,
  decimals, bytes...) as `Store` gives them, or the API's JSON with `json_form=True`.
- Seeds: `url` is one worker's API URL or several (any of them answering is enough to
  start, and they stay in the list re-read after a failure, beside the live members).
- One hop: the client reads the membership table (`GET /cluster`) and sends each key to
  the worker that owns its partition (batches split by owner, merged in the order asked);
  scans and keys whose partition it cannot tell go to any live worker, which merges
  across the owners. The answer is always the workers' (a miss is confirmed by them).
- A rebalance or a worker failure (503, a refused or timed-out connection) makes the
  client re-read the membership from any worker it knows (the one that failed last) and
  try again, with backoff, for at most `retry_for` seconds; then `ClusterUnavailable`
  (CLI exit 3, "not known here", never 1, which a script reads as "no row"). The first
  try waits up to `timeout` seconds; retries and re-reads only what is left of
  `retry_for` (a frozen worker, SIGSTOP, accepts connections and never answers: each try
  waited the whole `timeout` before). The first read of the membership and the
  relations (at the first `table`/`stream`) is tried again the same way. Bad input is
  `UsageError`
  (400), an unknown table `NotFound`, a wrong token `UsageError` naming the token.

This module owns the membership, routing and retries; `client_relations` the per-relation
half (`ClientTable`, `ClientStream`: keys in, rows out).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Sequence
from typing import Any

import httpx

from materializer.client_relations import ClientStream, ClientTable, Schema
from materializer.cluster.partitioning import Partitioning
from materializer.columns import ColumnType, TypeSyntaxError, key_unit, parse_type
from materializer.errors import (
    AmbiguousKeyError,
    InfrastructureError,
    NotFound,
    UsageError,
)
from materializer.redact import redact
from materializer.setting_values import http_url

__all__ = ["Client", "ClientStream", "ClientTable", "ClusterUnavailable", "Schema"]


class ClusterUnavailable(InfrastructureError):
    """No worker gave an answer within the client's `retry_for` seconds: the key is not
    known to be absent (CLI exit 3, as a local store's partitions not held)."""

    exit_code = 3


class _OutOfTime(Exception):
    """The client's `retry_for` seconds are over (inside `Client.call`)."""


def _type(text: Any, encoding: Any = None) -> ColumnType | None:
    """A column's type as `GET /tables` lists it; a time or timestamp with the integer unit
    it declares (`encoding: us | ns`), so an integer key counts that unit, and a bytes
    column with its encoding (`hex`...), so a str key is read in it, as `Store` reads them
    (`columns.key_unit`). None for a type this client cannot read."""
    try:
        return key_unit(parse_type(str(text))[0], encoding)
    except (TypeSyntaxError, ValueError):
        return None


def _url_problem(url: str) -> str | None:
    """Why `url` cannot be a worker's API URL (`http(s)://host[:port][/prefix]`), or None:
    checked before any request, so a mistyped one is a usage error, not 'no worker
    answered' (exit 3) nor httpx's InvalidURL (a host that is not UTF-8 text)."""
    try:
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return _NOT_AN_API_URL
    return _NOT_AN_API_URL if http_url(url) is None else None


_NOT_AN_API_URL = "is not a worker's API URL: write http://host:port (e.g. http://127.0.0.1:8080)"


class Client:
    """Lookups against a cluster of workers (see the module doc)."""

    def __init__(self, url: str | Sequence[str], token: str | None = None, *,
                 timeout: float = 10.0, retry_for: float = 30.0) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls or not all(isinstance(u, str) and u for u in urls):
            raise UsageError("Client needs a worker's API URL, or a list of them")
        for u in urls:
            problem = _url_problem(u)
            if problem is not None:
                raise UsageError(f"{redact('url', u)!r} {problem}")
        self.seeds = list(dict.fromkeys(u.rstrip("/") for u in urls))
        self.retry_for = retry_for
        self.timeout = timeout
        self._http = httpx.Client(
            timeout=timeout, limits=httpx.Limits(max_keepalive_connections=32),
            headers={"authorization": f"Bearer {token}"} if token else {})
        self._cluster: dict[str, Any] = {}
        self._schemas: dict[str, Schema] = {}
        self._parts: dict[str, Partitioning] = {}
        self._spin = itertools.count()
        self.refreshes = 0

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def table(self, name: str) -> ClientTable:
        return ClientTable(self, self._schema(name, "table"))

    def stream(self, name: str) -> ClientStream:
        return ClientStream(self, self._schema(name, "stream"))

    # ------------------------------------------------------------ membership

    def live_urls(self) -> list[str]:
        """The API URLs of the live members (the seeds when there is no cluster)."""
        urls = [m["url"] for m in self._cluster.get("members", [])
                if m.get("live") and m.get("url")]
        return urls or list(self.seeds)

    def refresh(self, deadline: float | None = None, last: str | None = None) -> None:
        """Read the membership and the relations from the first worker that answers (`last`,
        the worker that just failed, asked last), giving up at `deadline` (monotonic)."""
        problems = []
        urls = list(dict.fromkeys([*self.live_urls(), *self.seeds]))
        for url in [u for u in urls if u != last] + [u for u in urls if u == last]:
            try:
                cluster = self._http.get(f"{url}/cluster", timeout=self._left(deadline))
                tables = self._http.get(f"{url}/tables", timeout=self._left(deadline))
            except _OutOfTime:
                problems.append(f"{url}: no time left")
                break
            except httpx.HTTPError as e:
                problems.append(f"{url}: {e}")
                continue
            if cluster.status_code == 401 or tables.status_code == 401:
                raise UsageError(f"{url} refused the token (401): pass the cluster's bearer "
                                 "token as Client(url, token=...)")
            if cluster.status_code == 200 and tables.status_code == 200:
                self._cluster = cluster.json()
                self._schemas = {}
                for r in tables.json().get("tables", []):
                    self._schemas[r["name"]] = Schema(
                        r["name"], r.get("kind", "table"),
                        {c["name"]: _type(c["type"], c.get("encoding"))
                         for c in r.get("columns", [])},
                        tuple(r.get("key", [])))
                self.refreshes += 1
                return
            problems.append(f"{url}: answered {cluster.status_code}/{tables.status_code}")
        raise ClusterUnavailable("no worker answered GET /cluster and /tables: "
                                 + "; ".join(problems))

    def _first_refresh(self) -> None:
        """The first read of the membership and the relations, tried again with backoff
        while no worker answers (refused, timed out, 503), as a request is, for at most
        `retry_for` seconds; then `ClusterUnavailable`. A refused token is not retried."""
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        limit: float | None = None  # the first try waits `timeout`, a retry what is left
        while True:
            try:
                self.refresh(limit)
                return
            except ClusterUnavailable as e:
                if time.monotonic() + delay > deadline:
                    raise ClusterUnavailable(f"{e} (tried for {self.retry_for} s)") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
            limit = deadline

    def _schema(self, name: str, kind: str) -> Schema:
        if not self._schemas:
            self._first_refresh()
        found = self._schemas.get(name) or next(
            (s for n, s in self._schemas.items() if n.split(".", 1)[-1] == name
             and sum(m.split(".", 1)[-1] == name for m in self._schemas) == 1), None)
        if found is None:
            raise NotFound(f"no table or stream named {name!r} (the cluster has: "
                           f"{', '.join(sorted(self._schemas)) or 'none'})")
        if found.kind != kind:
            raise UsageError(f"{found.name} is a {found.kind}: use client.{found.kind}"
                             f"({name!r})")
        return found

    def owner_url(self, schema: Schema, stored_key: Sequence[Any]) -> str:
        """The URL of the worker owning the key's partition, else any live worker."""
        rel = self._cluster.get("relations", {}).get(schema.name)
        if rel:
            parts = self._parts.get(schema.name)
            if parts is None:
                parts = self._parts[schema.name] = Partitioning(
                    rel.get("partitioner", "murmur2"), rel.get("key_format", "json"),
                    schema.key, [t.kind for t in schema.key_types()])
            p = parts.partition(stored_key, rel.get("partitions"))
            owner = rel.get("owners", {}).get(str(p)) if p is not None else None
            for m in self._cluster.get("members", []):
                if m.get("id") == owner and m.get("live") and m.get("url"):
                    return str(m["url"])
        return self.any_url()

    def any_url(self) -> str:
        urls = self.live_urls()
        return urls[next(self._spin) % len(urls)]

    # ------------------------------------------------------------ requests

    def _left(self, deadline: float | None) -> float:
        """How long one request may wait: `timeout`, at most what is left before `deadline`
        (`_OutOfTime` when nothing is)."""
        if deadline is None:
            return self.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime
        return min(self.timeout, left)

    def call(self, pick: Any, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request to the worker `pick()` names, again after re-reading the membership
        while the cluster answers 503 or does not answer (at most `retry_for` seconds)."""
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        wait = self.timeout  # the first try waits `timeout`, a retry what is left of retry_for
        while True:
            url = pick()
            try:
                r = self._http.request(method, url + path, timeout=wait, **kw)
            except httpx.HTTPError as e:
                why = f"{url}: {type(e).__name__}: {e}"
            else:
                if r.status_code != 503:
                    return _checked(r)
                why = f"{url}: 503 {r.text[:200]}"
            if time.monotonic() + delay > deadline:
                raise ClusterUnavailable(f"no answer within {self.retry_for} s ({why})")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
            with contextlib.suppress(ClusterUnavailable):  # try again after the next pause
                self.refresh(deadline, last=url)
            try:
                wait = self._left(deadline)
            except _OutOfTime:
                raise ClusterUnavailable(f"no answer within {self.retry_for} s ({why})") from None


def _checked(r: httpx.Response) -> httpx.Response:
    if r.status_code in (200, 404):
        return r
    try:
        detail = r.json().get("detail", r.text)
    except ValueError:
        detail = r.text
    if r.status_code == 401:
        raise UsageError("the worker refused the token (401): pass the cluster's bearer token")
    if r.status_code in (400, 413, 422):
        raise UsageError(str(detail))
    if r.status_code == 409:
        raise AmbiguousKeyError(str(detail))
    raise InfrastructureError(f"the worker answered {r.status_code}: {detail}")
