"""A small in-memory Confluent-compatible schema registry for tests.

Speaks the REST paths the worker uses: `GET /schemas/ids/{id}`,
`POST /subjects/{s}/versions`, `GET /subjects/{s}/versions/latest`,
`GET /subjects/{s}/versions/{v}`, `GET /subjects`, and `POST /subjects/{s}` (look a
schema up, as confluent-kafka's serializers do for references). Schemas of other
types than Avro (`schemaType` PROTOBUF, JSON) are kept as the text given, with their
references, and served back as they are (a serialized Protobuf descriptor registered by
confluent-kafka's ProtobufSerializer comes back for `?format=serialized`, as from a
real registry). Optional basic auth (401
without the right credentials), and `fail_next` answers that many requests with
HTTP 503 first, to exercise retries. `interfere(method, path)`, when set, may answer a
request instead: `(status, body)`, `(status, body, content_length)` (a body cut short) or
raw bytes written as they are (not HTTP). `requests` counts the requests served.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.support.fake_http import send_json

Interference = tuple[int, bytes] | tuple[int, bytes, int] | bytes | None


class RegistryServer:
    """`with RegistryServer(user="u", password="p") as r: r.url` -> http://127.0.0.1:PORT"""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.user, self.password = user, password
        self.schemas: dict[int, str] = {}
        self.kinds: dict[int, str] = {}  # schemaType of each id other than AVRO
        self.references: dict[int, list[dict[str, Any]]] = {}
        self.subjects: dict[str, list[int]] = {}
        self.fail_next = 0
        self.interfere: Callable[[str, str], Interference] | None = None
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- state

    def add(self, subject: str, schema: Any, schema_type: str = "AVRO",
            references: list[dict[str, Any]] | None = None) -> int:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        if schema_type == "AVRO":
            text = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        refs = list(references or [])
        with self._lock:
            sid = next((i for i, s in self.schemas.items() if s == text
                        and self.kinds.get(i, "AVRO") == schema_type
                        and self.references.get(i, []) == refs), None)
            if sid is None:
                sid = max(self.schemas, default=0) + 1
                self.schemas[sid] = text
                if schema_type != "AVRO":
                    self.kinds[sid] = schema_type
                if refs:
                    self.references[sid] = refs
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            return sid

    def answer(self, sid: int) -> dict[str, Any]:
        """What the registry says of schema `sid` (its text, type and references)."""
        out: dict[str, Any] = {"schema": self.schemas[sid]}
        if sid in self.kinds:
            out["schemaType"] = self.kinds[sid]
        if sid in self.references:
            out["references"] = self.references[sid]
        return out

    # -- HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _send(self, status: int, body: Any) -> None:
                send_json(self, status, body, "application/vnd.schemaregistry.v1+json")

            def _gate(self) -> bool:
                with registry._lock:
                    registry.requests += 1
                    if registry.fail_next > 0:
                        registry.fail_next -= 1
                        self._send(503, {"error_code": 50302, "message": "try later"})
                        return False
                odd = registry.interfere(self.command, self.path) if registry.interfere else None
                if isinstance(odd, bytes):
                    self.wfile.write(odd)
                    self.close_connection = True
                    return False
                if odd is not None:
                    self.send_response(odd[0])
                    self.send_header("Content-Length", str(odd[-1] if len(odd) == 3
                                                           else len(odd[1])))
                    self.end_headers()
                    self.wfile.write(odd[1])
                    self.close_connection = True
                    return False
                if registry.user is not None:
                    want = base64.b64encode(
                        f"{registry.user}:{registry.password}".encode()).decode()
                    if self.headers.get("Authorization") != f"Basic {want}":
                        self._send(401, {"error_code": 401, "message": "Unauthorized"})
                        return False
                return True

            def _parts(self) -> list[str]:
                path = urllib.parse.urlsplit(self.path).path
                return [urllib.parse.unquote(p) for p in path.strip("/").split("/")]

            def do_GET(self) -> None:  # noqa: N802
                if not self._gate():
                    return
                p = self._parts()
                if len(p) == 3 and p[:2] == ["schemas", "ids"] and p[2].isdigit():
                    text = registry.schemas.get(int(p[2]))
                    if text is None:
                        self._send(404, {"error_code": 40403, "message": "Schema not found"})
                    else:
                        self._send(200, registry.answer(int(p[2])))
                    return
                if p == ["subjects"]:
                    self._send(200, sorted(registry.subjects))
                    return
                if len(p) == 4 and p[0] == "subjects" and p[2] == "versions":
                    versions = registry.subjects.get(p[1])
                    if not versions:
                        self._send(404, {"error_code": 40401, "message": "Subject not found"})
                        return
                    if p[3] == "latest":
                        v = len(versions)
                    elif p[3].isdigit() and 1 <= int(p[3]) <= len(versions):
                        v = int(p[3])
                    else:
                        self._send(404, {"error_code": 40402, "message": "Version not found"})
                        return
                    sid = versions[v - 1]
                    self._send(200, {"subject": p[1], "version": v, "id": sid,
                                     **registry.answer(sid)})
                    return
                self._send(404, {"error_code": 404, "message": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                if not self._gate():
                    return
                p = self._parts()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    req = json.loads(body)
                    kind = req.get("schemaType") or "AVRO"
                    schema = req["schema"]
                    if kind == "AVRO":
                        schema = json.loads(schema)
                    refs = req.get("references") or []
                except (ValueError, KeyError, TypeError, AttributeError):
                    self._send(422, {"error_code": 42201, "message": "Invalid schema"})
                    return
                if len(p) == 3 and p[0] == "subjects" and p[2] == "versions":
                    self._send(200, {"id": registry.add(p[1], schema, kind, refs)})
                    return
                if len(p) == 2 and p[0] == "subjects":  # look a schema up in a subject
                    with registry._lock:
                        versions = list(registry.subjects.get(p[1], []))
                    for v, sid in enumerate(versions, 1):
                        if registry.schemas[sid] == (schema if kind != "AVRO" else json.dumps(
                                schema, sort_keys=True, separators=(",", ":"))):
                            self._send(200, {"subject": p[1], "version": v, "id": sid,
                                             **registry.answer(sid)})
                            return
                    self._send(404, {"error_code": 40403, "message": "Schema not found"})
                    return
                self._send(404, {"error_code": 404, "message": "not found"})

        return Handler

    def start(self) -> RegistryServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


QUICK_RETRIES = "  retries.wait.ms: '10'\n  retries.max.wait.ms: '20'\n  max.retries: '1'\n"
"""Registry client settings that give up on a lookup within a fraction of a second."""


def avro_users(url: str, topic: str, registry: str = QUICK_RETRIES,
               on_error: str | None = "skip") -> str:
    """A declaration body: the registry at `url` (with the client settings `registry`) and
    table `users` of `topic`, int keys and Avro values {id, name}."""
    policy = f"    on_error: {on_error}\n" if on_error else ""
    return (f"schema_registry:\n  url: {url}\n{registry}tables:\n  - name: users\n"
            f"    topic: {topic}\n    columns: {{id: int, name: string}}\n"
            "    primary_key: [id]\n    key_format: int\n    value_format: avro\n" + policy)
