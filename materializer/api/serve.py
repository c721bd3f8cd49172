"""Serving the lookup API in its own processes (`materializer serve`, and `run`'s child).

- `check_listen(catalog, token)`: the refusal to listen beyond loopback without a
  bearer token, as `ConfigError` (exit 2); `run` calls it before starting anything.
- `serve(catalog, token)`: that check, then the app on `api.listen` until SIGINT or
  SIGTERM (blocking; returns once every serving process has stopped).

The server is Granian (HTTP/1.1 and sockets in Rust, the ASGI app on a uvloop event
loop, one single-threaded runtime per process), chosen by measurement: on the bench
table it answers about 1.5x the point lookups per second of uvicorn with httptools
and uvloop, with the same app (bench/lookup.py). No access log.

`api.processes: N` (default 1) serves from N worker processes on the one port
(Granian's workers, each with its own listening socket, supervised by the `serve`
process). Before anything binds, the port is probed with a plain bind: a port some
other process listens on is refused (exit 1) rather than shared with it. Guarantees:
- every process answers the same way (each reads the store itself; LMDB lets any
  number of readers in);
- no worker outlives `serve` (the kernel sends it SIGTERM when its parent dies,
  `kill -9` included) and none is left behind by a normal stop;
- if a worker exits on its own (a crash), the others stop too and `serve` raises
  `InfrastructureError` (exit 1), so `run` stops with its API.
What a process reports about itself (`/metrics` request latency, `process_*`) is
that process's own.

What counts as loopback and how `api.listen` reads are the kernel's rule
(`ApiSpec.host_port`, `ApiSpec.is_loopback`), shared with the catalog's own check.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import socket
import sys
from typing import Any

from materializer.api.app import create_app
from materializer.children import die_with_parent
from materializer.errors import ConfigError, InfrastructureError, MaterializerError
from materializer.specs import Catalog

log = logging.getLogger("materializer.api")

BACKLOG = 2048


def check_listen(catalog: Catalog, token: str | None) -> None:
    """Refuse (ConfigError, exit 2) to listen beyond loopback without a bearer token."""
    catalog.api.host_port()  # ConfigError if `api.listen` is not host:port
    if token is None and not catalog.api.is_loopback():
        var = catalog.api.token_env
        why = (f"the environment variable {var} (api.token_env) is unset or empty" if var
               else "api.token_env is not set")
        raise ConfigError(
            f"api.listen {catalog.api.listen} is not a loopback address and no bearer token is "
            f"configured ({why}): set api.token_env to the name of an environment variable "
            "holding the token and export it, or listen on 127.0.0.1")


def serve(catalog: Catalog, token: str | None) -> None:
    """Serve the lookup API for `catalog` until SIGINT/SIGTERM, from `api.processes`
    worker processes (blocking)."""
    from granian import Granian  # noqa: PLC0415 - only the serving process needs it
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes  # noqa: PLC0415
    from granian.log import LogLevels  # noqa: PLC0415

    check_listen(catalog, token)
    if token is None and catalog.api.token_env:  # loopback: every local user may ask
        log.warning("api.token_env names %s, but it is unset or empty: the lookup API on %s "
                    "answers every request without a token; export %s to require one",
                    catalog.api.token_env, catalog.api.listen, catalog.api.token_env)
    host, port = catalog.api.host_port()
    n = max(1, catalog.api.processes)
    _probe(host, port)
    # built here once too: what is wrong with the store is said plainly, before any worker
    create_app(catalog.store_path, token, catalog.api.max_lookup_keys, catalog.default_schema)
    uvloop = importlib.util.find_spec("uvloop") is not None
    if not uvloop:
        log.warning("uvloop is not installed: the lookup API runs on asyncio's own event loop "
                    "(install granian[uvloop] for the speed the README quotes)")
    log.info("lookup API on http://%s:%d (%s, %d process%s)", host, port,
             "bearer token required" if token else "no token", n, "" if n == 1 else "es")
    server = Granian(
        "materializer.api.app:create_app", address=host, port=port,
        interface=Interfaces.ASGINL, workers=n, runtime_mode=RuntimeModes.st,
        loop=Loops.uvloop if uvloop else Loops.asyncio, http=HTTPModes.http1,
        websockets=False, backlog=BACKLOG, log_level=LogLevels.warning, log_access=False,
        respawn_failed_workers=False)
    loader = functools.partial(_load_app, catalog.store_path, token,
                               catalog.api.max_lookup_keys, catalog.default_schema, os.getpid(),
                               n)
    try:
        server.serve(target_loader=loader, wrap_loader=False)
    except SystemExit as e:  # Granian exits 1 when a worker died on its own (it logged which)
        if e.code not in (0, None):
            raise InfrastructureError(
                "a lookup API process exited unexpectedly (see the message above); the others "
                "stopped with it") from None


def _load_app(store_path: str, token: str | None, max_lookup_keys: int, default_schema: str,
              parent: int, processes: int, *_: Any) -> Any:
    """In a worker: tie it to the `serve` process, then build the app (one of several:
    its own metrics labelled `api_process` with its pid)."""
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above
        sys.exit(0)
    try:
        return create_app(store_path, token, max_lookup_keys, default_schema,
                          api_process=str(os.getpid()) if processes > 1 else None)
    except MaterializerError as e:  # serve's own check passed: the store changed since
        log.error("lookup API process %d: %s", os.getpid(), e)
        sys.exit(1)


def _probe(host: str, port: int) -> None:
    """Refuse a port another process listens on (InfrastructureError, exit 1)."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(1)
        except OSError as e:
            raise InfrastructureError(f"cannot listen on {host}:{port} (api.listen): "
                                      f"{e.strerror or e}") from e
