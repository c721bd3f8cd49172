"""docker/ read statically, against the code it deploys: what the build context holds (by
the .dockerignore's own rules), the worker's stop and PID 1, the environment names the
compose file sets against the names the code reads, the healthcheck's route, the store
volume, the pins, and the files the comments name. No Docker engine, no broker.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from packaging.requirements import Requirement

from materializer import logsetup
from materializer.api.app import OPEN_PATHS
from materializer.api.operations import router as operations_router
from materializer.catalog import load_catalog
from materializer.ingest.processes import STOP_GRACE
from materializer.ingest.worker import SHUTDOWN_GRACE

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
IMAGE_EXTRAS = ("protobuf",)


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return doc


def worker() -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"]["materializer"]
    return service


def dockerfile(name: str) -> list[str]:
    """The arguments of every `name` instruction of docker/Dockerfile."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == name:
            out.append(rest.strip())
    return out


# ----------------------------------------------------------------------------- build context


def _pattern(text: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker's pattern matcher reads it (`**` any number of
    directories, `*` and `?` within one path element)."""
    text = text.strip().strip("/")
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out)


def _ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parent
    directories, decides (a `!` pattern keeps the file)."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for keep, pattern in rules:
        if any(pattern.fullmatch(c) for c in candidates):
            ignored = not keep
    return ignored


def _rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((keep, _pattern(line[1:] if keep else line)))
    return rules


def test_the_build_context_holds_what_the_package_needs_and_nothing_secret() -> None:
    rules = _rules()
    tree = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
            if p.is_file() and p.relative_to(ROOT).parts[0] != ".git"
            and "__pycache__" not in p.parts]
    context = {f for f in tree if not _ignored(f, rules)}
    # everything setuptools packages (pyproject: materializer*, connectors*, py.typed),
    # the metadata the build reads and the pins the install uses
    needed = {f for f in tree if f.split("/")[0] in ("materializer", "connectors")
              and not f.endswith(".pyc")}
    needed |= {"pyproject.toml", "README.md", "docker/constraints.txt"}
    assert needed - context == set()
    # each COPY source is in the context
    for copy in dockerfile("COPY"):
        for source in copy.split()[:-1]:
            assert source in context or any(f.startswith(source + "/") for f in context), source
    # never the token file, the git history, tests, benchmarks, bytecode
    for path in ("docker/materializer.env", ".git/config", "tests/conftest.py",
                 "bench/lookup.py", "materializer/__pycache__/cli.cpython-311.pyc",
                 "materializer.egg-info/PKG-INFO", "data/relations/x/data.mdb"):
        assert _ignored(path, rules), path
    assert not any(f.startswith(("tests/", "bench/", "examples/")) for f in context)


# ----------------------------------------------------------------------------- signals


def _seconds(duration: str) -> float:
    """A compose duration (`1m30s`, `40s`, `500ms`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_the_worker_runs_behind_an_init() -> None:
    """Without an init the worker is PID 1 in its container: the kernel drops a SIGTERM
    that arrives before its handlers are installed (the container then waits for SIGKILL),
    and processes orphaned by a child are never reaped."""
    assert worker().get("init") is True


def test_docker_stop_waits_for_the_workers_bounded_stop() -> None:
    """`docker stop` sends SIGKILL after `stop_grace_period` (10 s unless set); the worker's
    stop may take its worker processes' grace (--processes) plus its own bounded steps
    (delivering change events, leaving the group): a SIGTERM during the start with the
    broker down took 13-16 s to exit 0 (2026-12-07)."""
    grace = _seconds(str(worker().get("stop_grace_period", "10s")))
    assert grace >= STOP_GRACE + 2 * SHUTDOWN_GRACE, grace
    assert "STOPSIGNAL" not in (DOCKER / "Dockerfile").read_text()  # SIGTERM, the default


# ----------------------------------------------------------------------------- environment


def test_the_environment_names_set_are_the_names_read() -> None:
    config_text = (DOCKER / "tables.yaml").read_text()
    substituted = dict(re.findall(r"\$\{(\w+)(?::-([^}]*))?\}", config_text))
    env = {k: str(v) for k, v in worker()["environment"].items()}
    catalog = load_catalog(str(DOCKER / "tables.yaml"), env=env)
    token_env = catalog.api.token_env
    read_by_code = {logsetup.LOG_FORMAT_ENV, logsetup.LOG_LEVEL_ENV, token_env}
    for name in env:
        assert name in substituted or name in read_by_code, name
    # every `${NAME}` without a default is given a value
    for name, default in substituted.items():
        assert default or name in env, name
    # the substitutions took: the compose values, not the defaults
    assert dict(catalog.kafka)["bootstrap.servers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert catalog.schema_registry is not None
    assert env["MATERIALIZER_LOG_FORMAT"] in ("json", "text")
    # the token's variable comes from the env file, named as the example names it
    example = (DOCKER / "materializer.env.example").read_text()
    assert re.findall(r"^(\w+)=", example, re.M) == [token_env]


# ----------------------------------------------------------------------------- healthcheck


def test_the_healthcheck_asks_an_open_route_on_the_api_port_with_a_program_the_image_has(
        ) -> None:
    test = worker()["healthcheck"]["test"]
    assert test[0] == "CMD"
    [base] = dockerfile("FROM")
    assert test[1] == "python" and base.startswith("python:")  # the base image's python
    [url] = re.findall(r"https?://[^'\" ]+", " ".join(test))
    parts = urlsplit(url)
    catalog = load_catalog(str(DOCKER / "tables.yaml"), env={})
    assert parts.hostname == "127.0.0.1" and parts.port == catalog.api.host_port()[1]
    assert "8080" in dockerfile("EXPOSE")[0].split()
    routes = {getattr(r, "path", None): getattr(r, "methods", set())
              for r in operations_router.routes}
    assert "GET" in routes[parts.path]  # urlopen without data sends GET
    assert parts.path in OPEN_PATHS  # no token: the probe has none
    assert "Authorization" not in " ".join(test)
    # each check's own timeout ends before compose gives up on it
    assert float(re.search(r"timeout=(\d+(?:\.\d+)?)", " ".join(test)).group(1)) < _seconds(  # type: ignore[union-attr]
        worker()["healthcheck"]["timeout"])


# ----------------------------------------------------------------------------- store volume


def test_the_store_is_the_volume_the_image_declares_and_the_worker_user_owns() -> None:
    catalog = load_catalog(str(DOCKER / "tables.yaml"), env={})
    store = str(catalog.store_path)
    assert store == "/data"
    assert json.loads(dockerfile("VOLUME")[0]) == [store]
    assert f"materializer-data:{store}" in worker()["volumes"]
    [user] = dockerfile("USER")
    [run] = dockerfile("RUN")
    assert f"chown {user} {store}" in run
    # the declarations are mounted where the image's command reads them
    [cmd] = dockerfile("CMD")
    config = json.loads(cmd)[-1]
    assert f"./tables.yaml:{config}:ro" in worker()["volumes"]


# ----------------------------------------------------------------------------- pins


def _closure() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    roots = [*project["dependencies"],
             *(d for extra in IMAGE_EXTRAS for d in project["optional-dependencies"][extra])]
    seen: set[str] = set()

    def walk(text: str, extras: tuple[str, ...] = ("",)) -> None:
        """`text`, if its marker holds for one of `extras` (those its parent was asked
        with), and what it requires (with its own extras)."""
        req = Requirement(text)
        if req.marker is not None and not any(req.marker.evaluate({"extra": e})
                                              for e in extras):
            return
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            return
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in walked:
            return
        walked.add(key)
        seen.add(name)
        for sub in dist.requires or []:
            walk(sub, ("", *sorted(req.extras)))

    walked: set[str] = set()
    for root in roots:
        walk(root)
    return seen


def test_constraints_pin_nothing_the_image_does_not_install() -> None:
    pins = set()
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), line  # exact pins only
            pins.add(re.sub(r"[-_.]+", "-", name.strip()).lower())
    assert pins - _closure() == set()


# ----------------------------------------------------------------------------- references


def test_the_files_the_deployment_comments_name_exist() -> None:
    """Tests named in pyproject.toml and docker/ (`tests/e2e/test_docker.py` checks ...)
    exist: a comment sending a reader to a file that moved says nothing true."""
    sources = [ROOT / "pyproject.toml", *sorted(p for p in DOCKER.iterdir() if p.is_file())]
    named = {(src.name, m) for src in sources
             for m in re.findall(r"\b(tests/[\w./-]*\w\*?)", src.read_text())}
    assert named
    missing = sorted((src, path) for src, path in named if not list(ROOT.glob(path)))
    assert missing == []
