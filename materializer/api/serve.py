"""Serving the lookup API in its own process(es) (`materializer serve`, and `run`'s child).

- `check_listen(catalog, token)`: the refusal to listen beyond loopback without a
  bearer token, as `ConfigError` (exit 2); `run` calls it before starting anything.
- `serve(catalog, token)`: that check, then the app on `api.listen` until SIGINT or
  SIGTERM (blocking; returns once every serving process has stopped).

The server is uvicorn with its C parts (httptools for HTTP/1.1, uvloop for the event
loop: the `uvicorn[standard]` extra), about 2.5x the requests per second of its pure
Python fallbacks (h11, asyncio), which are used, with a warning, only if they are
missing. No access log.

`api.processes: N` (default 1) serves from N processes on the one port: this process
and N-1 children (multiprocessing `spawn`), each with its own listening socket bound
with `SO_REUSEPORT`, so the kernel spreads connections across them. Before binding
those, the port is probed with a plain bind: a port some other process listens on is
refused (exit 1) rather than silently shared with it. Guarantees:
- every process answers the same way (each reads the store itself; LMDB lets any
  number of readers in);
- no child outlives this process (the kernel sends it SIGTERM when its parent dies,
  `kill -9` included) and none is left behind by a normal stop;
- if one process exits, the others stop too: cleanly if it was stopped by SIGTERM or
  SIGINT (a signal to the whole process group, Ctrl-C), else (a crash) `serve` raises
  `InfrastructureError` naming it (exit 1), so `run` stops with its API as it does
  for one process.
What a process reports about itself (`/metrics` request latency, `process_*`) is
that process's own.

What counts as loopback and how `api.listen` reads are the kernel's rule
(`ApiSpec.host_port`, `ApiSpec.is_loopback`), shared with the catalog's own check.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing
import os
import signal
import socket
import threading
from multiprocessing.connection import wait
from typing import Any

from materializer.api.app import create_app
from materializer.children import die_with_parent
from materializer.errors import ConfigError, InfrastructureError
from materializer.specs import Catalog

log = logging.getLogger("materializer.api")

BACKLOG = 2048
STOP_GRACE = 10.0
"""Seconds a child API process has to stop after SIGTERM before it is killed."""


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


def implementations() -> tuple[str, str]:
    """uvicorn's (http, loop) choice: httptools and uvloop when installed (they are
    dependencies), else h11 and asyncio."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return http, loop


def serve(catalog: Catalog, token: str | None) -> None:
    """Serve the lookup API for `catalog` until SIGINT/SIGTERM, from `api.processes`
    processes (blocking)."""
    check_listen(catalog, token)
    host, port = catalog.api.host_port()
    n = max(1, catalog.api.processes)
    http, loop = implementations()
    if (http, loop) != ("httptools", "uvloop"):
        log.warning("serving with uvicorn's pure-Python %s/%s (install uvicorn[standard] for "
                    "httptools and uvloop, about 2.5x the requests per second)", http, loop)
    log.info("lookup API on http://%s:%d (%s, %d process%s)", host, port,
             "bearer token required" if token else "no token", n, "" if n == 1 else "es")
    if n == 1:
        _serve_until_signalled(catalog, token, None)
        return
    _probe(host, port)
    sock = listen_socket(host, port, reuse_port=True)
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=_child, args=(catalog, token, os.getpid(), i),
                            name=f"materializer-api-{i}", daemon=True) for i in range(1, n)]
    for child in children:
        child.start()
    failed: list[str] = []
    server: list[Any] = []
    stopping = threading.Event()

    def watch() -> None:
        wait([c.sentinel for c in children])
        if stopping.is_set():
            return
        for c in children:  # stopped by a signal (0, or killed by it early): a clean stop
            if c.exitcode not in (None, 0, -signal.SIGTERM, -signal.SIGINT):
                failed.append(f"{c.name} (pid {c.pid}) exited with code {c.exitcode}")
        if server:
            server[0].should_exit = True  # uvicorn checks it every 0.1 s

    threading.Thread(target=watch, name="api-children-watch", daemon=True).start()
    try:
        _serve_until_signalled(catalog, token, sock, server)
    finally:
        stopping.set()
        _stop(children)
    if failed:
        raise InfrastructureError(f"lookup API process {failed[0]}; the others stopped with it")


def listen_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket on host:port (SO_REUSEADDR, and SO_REUSEPORT if asked)."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise InfrastructureError(f"cannot listen on {host}:{port} (api.listen): "
                                  f"{e.strerror or e}") from e
    return sock


def _probe(host: str, port: int) -> None:
    """Refuse a port another process listens on (SO_REUSEPORT would share it silently)."""
    listen_socket(host, port, reuse_port=False).close()


def _serve_until_signalled(catalog: Catalog, token: str | None, sock: socket.socket | None,
                           holder: list[Any] | None = None) -> None:
    """Run uvicorn in this process until SIGINT/SIGTERM, then return (uvicorn re-raises the
    signal after its graceful shutdown: a handler that ignores it lets `serve` finish)."""
    import uvicorn  # noqa: PLC0415 - only the serving processes need it

    host, port = catalog.api.host_port()
    http, loop = implementations()
    app = create_app(catalog.store_path, token, catalog.api.max_lookup_keys,
                     catalog.default_schema)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            server_header=False, proxy_headers=False, lifespan="off",
                            backlog=BACKLOG, http=http, loop=loop)
    server = uvicorn.Server(config)
    if holder is not None:
        holder.append(server)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)  # what uvicorn restores, then raises into
    server.run(sockets=None if sock is None else [sock])
    if not server.started and not server.should_exit:
        raise InfrastructureError(f"the lookup API did not start on {host}:{port} "
                                  "(see the message above)")


def _child(catalog: Catalog, token: str | None, parent: int, index: int) -> None:
    """One more serving process (multiprocessing target)."""
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above
        return
    host, port = catalog.api.host_port()
    _serve_until_signalled(catalog, token, listen_socket(host, port, reuse_port=True))


def _stop(children: list[Any]) -> None:
    for c in children:
        if c.is_alive():
            with contextlib.suppress(OSError):
                c.terminate()
    for c in children:
        c.join(STOP_GRACE)
        if c.is_alive():
            c.kill()
            c.join()
