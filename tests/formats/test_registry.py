"""Schema registries: files (with concurrent registration) and Confluent REST."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors.registry import (
    FileRegistry,
    RestRegistry,
    SchemaRejected,
    normalize,
    open_registry,
)
from materializer.errors import ConfigError, InfrastructureError, RecordError
from materializer.specs import RegistrySpec
from tests.support.registry_server import RegistryServer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
V1 = json.loads((SCHEMAS / "users-value-v1.avsc").read_text())
V2 = json.loads((SCHEMAS / "users-value-v2.avsc").read_text())


# --------------------------------------------------------------------------- files


def test_file_registry_register_and_read(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path / "reg")
    i1 = reg.register("users-value", V1)
    i2 = reg.register("users-value", V2)
    assert (i1, i2) == (1, 2)
    assert reg.register("users-value", json.dumps(V1)) == i1  # idempotent, text or dict
    assert reg.register("other-value", V2) == i2  # same schema, same id, another subject
    assert reg.subjects() == {"users-value": [1, 2], "other-value": [2]}
    assert reg.latest_id("users-value") == 2
    assert reg.latest_id("nope") is None
    parsed = reg.schema(2)
    assert [f["name"] for f in parsed["fields"]] == ["id", "name", "age", "email"]
    assert reg.schema(2) is parsed  # cached
    on_disk = json.loads((tmp_path / "reg" / "subjects.json").read_text())
    assert on_disk == {"users-value": [1, 2], "other-value": [2]}
    assert not list((tmp_path / "reg").glob("*.tmp"))


def test_file_registry_hand_written_files(tmp_path: Path) -> None:
    (tmp_path / "7.avsc").write_text(json.dumps(V1))
    (tmp_path / "8.avsc").write_text("{not json")
    (tmp_path / "9.avsc").write_text(json.dumps({"type": "record", "name": "X",
                                                 "fields": [{"name": "a", "type": "nope"}]}))
    reg = FileRegistry(tmp_path)
    assert reg.schema(7)["name"] == "shop.User"
    with pytest.raises(RecordError) as e:
        reg.schema(5)
    assert e.value.reason == "unknown_schema"
    for bad in (8, 9):
        with pytest.raises(RecordError) as e:
            reg.schema(bad)
        assert e.value.reason == "bad_schema"
    assert reg.register("s", V2) == 10  # next id after the highest on disk


def test_file_registry_missing_directory_is_infrastructure(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError):
        FileRegistry(tmp_path / "absent").schema(1)


def test_file_registry_rejects_invalid_schema(tmp_path: Path) -> None:
    with pytest.raises(SchemaRejected):
        FileRegistry(tmp_path).register("s", {"type": "nope"})


_WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from connectors.registry import FileRegistry
    path, me, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.001)
    reg = FileRegistry(path)
    out = {}
    for i in range(25):
        shared = {"type": "record", "name": f"Shared{i}", "fields": [{"name": "a", "type": "int"}]}
        own = {"type": "record", "name": f"Own{me}x{i}", "fields": [{"name": "a", "type": "int"}]}
        out[f"Shared{i}"] = reg.register("shared-value", shared)
        out[f"Own{me}x{i}"] = reg.register(f"own-{me}", own)
    print(json.dumps(out))
""")


def test_file_registry_concurrent_processes(tmp_path: Path) -> None:
    reg_dir = tmp_path / "reg"
    go = tmp_path / "go"
    root = str(Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(reg_dir), str(n), str(go)],
                              stdout=subprocess.PIPE, cwd=root, text=True)
             for n in range(3)]
    time.sleep(0.3)
    go.touch()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        results.append(json.loads(out))
    # a shared schema has one id whoever registered it first
    for i in range(25):
        assert len({r[f"Shared{i}"] for r in results}) == 1
    ids: dict[int, str] = {}
    for r in results:
        for name, sid in r.items():
            assert ids.setdefault(sid, name) == name, f"id {sid} given to two schemas"
    assert len(ids) == 25 + 3 * 25
    reg = FileRegistry(reg_dir)
    subjects = reg.subjects()
    assert sorted(subjects["shared-value"]) == sorted({r["Shared0"] for r in results}
                                                       | {r[f"Shared{i}"] for r in results
                                                          for i in range(25)})
    for n in range(3):
        assert len(subjects[f"own-{n}"]) == 25
    for sid, name in ids.items():
        assert reg.schema(sid)["name"] == name


# --------------------------------------------------------------------------- REST


def _quick(**extra: str) -> dict[str, str]:
    return {"retries.wait.ms": "10", "retries.max.wait.ms": "20", "unknown.id.wait.ms": "0",
            **extra}


def test_rest_registry_with_basic_auth() -> None:
    with RegistryServer(user="alice", password="s3cret:x") as srv:
        reg = RestRegistry(srv.url, _quick(**{"basic.auth.user.info": "alice:s3cret:x"}))
        i1 = reg.register("users-value", V1)
        i2 = reg.register("users-value", V2)
        assert reg.register("users-value", V1) == i1
        assert reg.latest_id("users-value") == i2
        assert reg.latest_id("unknown-subject") is None
        before = srv.requests
        parsed = reg.schema(i2)
        assert parsed["name"] == "shop.User"
        assert reg.schema(i2) is parsed
        assert srv.requests == before + 1  # fetched once, then cached
        with pytest.raises(RecordError) as e:
            reg.schema(999)
        assert e.value.reason == "unknown_schema"
        n = srv.requests
        with pytest.raises(RecordError):
            reg.schema(999)
        assert srv.requests == n  # unknown ids are remembered for a while


def test_rest_registry_credentials_in_url() -> None:
    with RegistryServer(user="bob", password="pw") as srv:
        sid = srv.add("s", V1)
        url = srv.url.replace("http://", "http://bob:pw@")
        assert RestRegistry(url, _quick()).schema(sid)["name"] == "shop.User"


def test_rest_registry_wrong_credentials_is_infrastructure() -> None:
    with RegistryServer(user="alice", password="right") as srv:
        sid = srv.add("s", V1)
        reg = RestRegistry(srv.url, _quick(**{"basic.auth.user.info": "alice:wrong"}))
        with pytest.raises(InfrastructureError, match="refused the credentials"):
            reg.schema(sid)
        with pytest.raises(InfrastructureError):
            RestRegistry(srv.url, _quick()).schema(sid)


def test_rest_registry_retries_server_errors() -> None:
    with RegistryServer() as srv:
        sid = srv.add("s", V1)
        srv.fail_next = 2
        reg = RestRegistry(srv.url, _quick(**{"max.retries": "3"}))
        assert reg.schema(sid)["name"] == "shop.User"
        srv.fail_next = 10
        reg2 = RestRegistry(srv.url, _quick(**{"max.retries": "2"}))
        with pytest.raises(InfrastructureError, match="unreachable after 3 attempt"):
            reg2.schema(sid)


def test_rest_registry_waits_as_long_as_retry_after_asks(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """A 429 or 503 with `Retry-After: N` was retried after the backoff alone (10 ms here),
    asking again sooner than the registry said; the wait is capped by retries.max.wait.ms."""
    import connectors.registry_http as rest

    waits: list[float] = []
    monkeypatch.setattr(rest.time, "sleep", waits.append)
    busy = [b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}",
            b"HTTP/1.1 503 Unavailable\r\nRetry-After: 90\r\nContent-Length: 2\r\n\r\n{}"]
    with RegistryServer() as srv:
        sid = srv.add("s", V1)
        srv.interfere = lambda method, path: busy.pop(0) if busy else None
        reg = RestRegistry(srv.url, {"retries.wait.ms": "10", "retries.max.wait.ms": "5000"})
        assert reg.schema(sid)["name"] == "shop.User"
    assert waits == [1.0, 5.0]  # as asked; 90 s capped at retries.max.wait.ms


def test_rest_registry_unreachable_is_infrastructure_not_a_bad_record() -> None:
    from materializer.devbroker import free_port

    reg = RestRegistry(f"http://127.0.0.1:{free_port()}", _quick(**{"max.retries": "2"}))
    t0 = time.monotonic()
    with pytest.raises(InfrastructureError) as e:
        reg.schema(1)
    assert not isinstance(e.value, RecordError)
    assert "unreachable" in str(e.value)
    assert time.monotonic() - t0 < 5


def test_rest_registry_failover_to_second_url() -> None:
    from materializer.devbroker import free_port

    with RegistryServer() as srv:
        sid = srv.add("s", V2)
        reg = RestRegistry(f"http://127.0.0.1:{free_port()},{srv.url}", _quick())
        assert reg.schema(sid)["name"] == "shop.User"


def test_rest_registry_rejects_invalid_schema() -> None:
    with RegistryServer() as srv:
        reg = RestRegistry(srv.url, _quick())
        for bad in ("[1, 2", {"type": "record", "name": "R", "fields": [{"name": "a"}]}):
            with pytest.raises(SchemaRejected):
                reg.register("s", bad)
        assert srv.requests == 0


def test_rest_registry_non_avro_schema_is_a_bad_record() -> None:
    with RegistryServer() as srv:
        srv.schemas[5] = normalize({"type": "object"})  # a JSON schema, say
        reg = RestRegistry(srv.url, _quick())
        with pytest.raises(RecordError) as e:
            reg.schema(5)
        assert e.value.reason == "bad_schema"
        asked = srv.requests
        for _ in range(3):  # an id's schema never changes: one request, not one per record
            with pytest.raises(RecordError, match="not usable Avro") as again:
                reg.schema(5)
            assert again.value.reason == "bad_schema"
        assert srv.requests == asked


def test_rest_registry_config_checks() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        RestRegistry("http://localhost:8081", {"basic.auth.userinfo": "a:b"})
    with pytest.raises(ConfigError):
        RestRegistry("ftp://localhost", {})
    with pytest.raises(ConfigError):
        RestRegistry("http://localhost:8081", {"basic.auth.credentials.source": "SASL_INHERIT"})


def test_open_registry(tmp_path: Path) -> None:
    assert open_registry(None) is None
    assert open_registry(RegistrySpec()) is None
    assert isinstance(open_registry(RegistrySpec(path=str(tmp_path))), FileRegistry)
    r = open_registry(RegistrySpec(url="http://localhost:8081",
                                   config=(("basic.auth.user.info", "u:p"),)))
    assert isinstance(r, RestRegistry)


def test_rest_registry_schema_texts_as_the_registry_keeps_them() -> None:
    """What the Protobuf decoder reads: text, type and references, cached; an unknown id or
    version is a bad record, a registry that does not answer is not."""
    with RegistryServer() as srv:
        avro = srv.add("s", V1)
        refs = [{"name": "a.proto", "subject": "a.proto", "version": 1}]
        proto = srv.add("p-value", "CgdhLnByb3Rv", "PROTOBUF", refs)
        reg = RestRegistry(srv.url, _quick(**{"max.retries": "1"}))
        assert reg.schema_text(avro)["schemaType"] == "AVRO"
        assert reg.schema_text(proto, "serialized") == {
            "schema": "CgdhLnByb3Rv", "schemaType": "PROTOBUF", "references": refs}
        assert reg.version_text("p-value", 1, "serialized")["references"] == refs
        before = srv.requests
        reg.schema_text(proto, "serialized")
        assert srv.requests == before
        with pytest.raises(RecordError) as e:
            reg.schema_text(999)
        assert e.value.reason == "unknown_schema"
        with pytest.raises(RecordError) as e:
            reg.version_text("p-value", 7)
        assert e.value.reason == "unknown_schema"
        srv.references[proto] = [{"name": "a.proto"}]  # no subject, no version
        with pytest.raises(RecordError) as e:
            RestRegistry(srv.url).schema_text(proto)
        assert e.value.reason == "bad_schema"
        srv.fail_next = 10
        with pytest.raises(InfrastructureError):
            RestRegistry(srv.url, _quick(**{"max.retries": "1"})).schema_text(avro)


# --------------------------------------------------------------------------- outages


_OUTER = {"type": "record", "name": "Outer", "fields": [{"name": "i", "type": "Inner"}]}
_INNER = {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}


def test_rest_registry_unanswered_reference_is_not_a_bad_record() -> None:
    """A schema whose reference the registry does not answer for (5xx, refused
    credentials, an answer that is no schema) is the registry's trouble, never the record's
    bad_schema: the worker retries the batch instead of dead-lettering valid records."""
    with RegistryServer() as srv:
        srv.add("inner", _INNER)
        sid = srv.add("outer", _OUTER, "AVRO", [{"name": "Inner", "subject": "inner",
                                                 "version": 1}])
        for odd in ((503, b'{"error_code": 50302}'), (401, b'{"error_code": 401}'),
                    (200, b"[1, 2]")):
            srv.interfere = lambda _m, path, odd=odd: odd if "/subjects/" in path else None
            with pytest.raises(InfrastructureError) as e:
                RestRegistry(srv.url, _quick(**{"max.retries": "1"})).schema(sid)
            assert not isinstance(e.value, RecordError)
        srv.interfere = None
        assert RestRegistry(srv.url, _quick()).schema(sid)["name"] == "Outer"
        srv.subjects["inner"] = []  # the reference truly unknown: the record's error
        with pytest.raises(RecordError) as r:
            RestRegistry(srv.url, _quick()).schema(sid)
        assert r.value.reason == "unknown_schema"


def test_rest_registry_broken_http_answers_are_infrastructure() -> None:
    """An answer cut short or not HTTP at all is retried and then InfrastructureError,
    never an exception of http.client's that stops the worker."""
    with RegistryServer() as srv:
        sid = srv.add("s", V1)
        for odd in ((200, b'{"schema":', 400), b"HELLO WORLD\r\n\r\n"):
            srv.interfere = lambda _m, _p, odd=odd: odd
            reg = RestRegistry(srv.url, _quick(**{"max.retries": "1"}))
            with pytest.raises(InfrastructureError, match="unreachable after 2 attempt"):
                reg.schema(sid)
            with pytest.raises(InfrastructureError):
                reg.schema_text(sid)
            with pytest.raises(InfrastructureError):
                reg.latest_id("s")
        srv.interfere = None
        assert reg.schema(sid)["name"] == "shop.User"


def test_rest_registry_404_that_is_not_the_registrys_is_not_unknown_schema() -> None:
    """Only a registry's own 'not found' (error code 404xx) makes an id unknown: a 404
    page from a proxy or a wrong base path would otherwise reject every record."""
    with RegistryServer() as srv:
        sid = srv.add("s", V1)
        srv.interfere = lambda _m, _p: (404, b"<html>Not Found</html>")
        reg = RestRegistry(srv.url, _quick())
        for ask in (lambda: reg.schema(sid), lambda: reg.schema_text(sid),
                    lambda: reg.version_text("s", 1), lambda: reg.latest_id("s")):
            with pytest.raises(InfrastructureError, match="HTTP 404"):
                ask()
        srv.interfere = None
        assert reg.schema(sid)["name"] == "shop.User"  # and it was not remembered unknown
        with pytest.raises(RecordError) as e:
            reg.schema(sid + 1)
        assert e.value.reason == "unknown_schema"
        assert reg.latest_id("nope") is None


def test_rest_registry_odd_answers_are_infrastructure() -> None:
    with RegistryServer() as srv:
        srv.interfere = lambda _m, _p: (200, b'{"version": 1}')
        with pytest.raises(InfrastructureError, match="unexpected answer"):
            RestRegistry(srv.url, _quick()).latest_id("s")
        srv.interfere = lambda _m, _p: (200, json.dumps({"schema": json.dumps(V1),
                                                         "schemaType": None}).encode())
        assert RestRegistry(srv.url, _quick()).schema(1)["name"] == "shop.User"


def test_file_registry_malformed_subjects_is_infrastructure(tmp_path: Path) -> None:
    reg = FileRegistry(tmp_path)
    for text in ('{"s": 5}', '{"s": ["x"]}', "[1]"):
        (tmp_path / "subjects.json").write_text(text)
        with pytest.raises(InfrastructureError, match="subject -> \\[ids\\]"):
            reg.latest_id("s")
        with pytest.raises(InfrastructureError):
            reg.register("s", V1)


def test_rest_registry_redirect_keeps_credentials_to_their_origin() -> None:
    """A redirect is followed, but the Authorization header goes only to the origin it was
    given for (urllib sent it to any host a registry or proxy redirected to)."""
    with RegistryServer(user="u", password="secret") as other, RegistryServer() as srv:
        sid = srv.add("s", V1)
        other.add("s", V1)
        seen: list[str] = []
        target = other.url.replace("127.0.0.1", "localhost")  # another origin

        def redirect(_m: str, path: str) -> bytes:
            seen.append(path)
            return (f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}{path}\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n").encode()

        srv.interfere = redirect
        reg = RestRegistry(srv.url, _quick(**{"basic.auth.user.info": "u:secret"}))
        with pytest.raises(InfrastructureError, match="refused the credentials"):
            reg.schema(sid)  # the other origin never saw them
        assert seen
        srv.interfere = None
        srv.user, srv.password = "u", "secret"
        assert reg.schema(sid)["name"] == "shop.User"
