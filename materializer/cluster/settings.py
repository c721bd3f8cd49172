"""What differs per worker of one declaration file: store path, API address, advertised URL
and worker id.

They come from `${VAR}` / `${VAR:-default}` in the YAML (`store.path`, `api.listen`,
`api.advertise`, `cluster.worker_id`) or from the `run`/`serve` flags `--store`, `--listen`,
`--advertise`, which win over the file. Guarantees: a flag is checked by the same rule as the
YAML key it replaces (ConfigError, exit 2, naming the flag); defaults are stable across
restarts of the same worker (the id depends only on the host name and the store path).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import replace

from materializer.errors import ConfigError
from materializer.redact import redact
from materializer.setting_values import advertise_problem, store_path_problem
from materializer.specs import ApiSpec, Catalog


def with_overrides(catalog: Catalog, *, store: str | None = None, listen: str | None = None,
                   advertise: str | None = None) -> Catalog:
    """`catalog` with the command line's `--store`, `--listen` and `--advertise` applied
    (a relative `--store` is relative to the current directory, like any path on a
    command line)."""
    if store is not None:
        if not store.strip():
            raise ConfigError("--store is empty: give the data directory of this worker")
        path = os.path.abspath(os.path.expanduser(store))
        problem = store_path_problem(path)
        if problem is not None:
            raise ConfigError(f"--store {problem}")
        catalog = replace(catalog, store_path=path)
    api = catalog.api
    if listen is not None:
        api = replace(api, listen=listen)
        try:
            api.host_port()
        except ConfigError:
            raise ConfigError(f"--listen {listen!r} is not host:port (e.g. 127.0.0.1:8080)"
                              ) from None
    if advertise is not None:
        problem = advertise_problem(advertise)
        if problem is not None:
            raise ConfigError(f"--advertise {redact('url', advertise)} {problem}")
        api = replace(api, advertise=advertise)
    return replace(catalog, api=api) if api is not catalog.api else catalog


def worker_id(catalog: Catalog) -> str:
    """`cluster.worker_id`, else `<host name>-<hash of the store path>`: stable across
    restarts, distinct for every store on a host (one worker per store)."""
    if catalog.cluster.worker_id:
        return catalog.cluster.worker_id
    digest = hashlib.sha256(os.path.abspath(catalog.store_path).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def advertised_url(api: ApiSpec) -> str:
    """`api.advertise`, else `http://<api.listen>` (a wildcard host, 0.0.0.0 or ::, is
    replaced by this host's name, which other machines can resolve)."""
    if api.advertise:
        return api.advertise.rstrip("/")
    host, port = api.host_port()
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
