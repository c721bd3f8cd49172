"""Serving the lookup API in its own process (`materializer serve`, and `run`'s child).

- `check_listen(catalog, token)`: the refusal to listen beyond loopback without a
  bearer token, as `ConfigError` (exit 2); `run` calls it before starting anything.
- `serve(catalog, token)`: that check, then the app on `api.listen` until SIGINT or
  SIGTERM (blocking, one process, no access log).

What counts as loopback and how `api.listen` reads are the kernel's rule
(`ApiSpec.host_port`, `ApiSpec.is_loopback`), shared with the catalog's own check.
"""

from __future__ import annotations

import logging

from materializer.api.app import create_app
from materializer.errors import ConfigError
from materializer.specs import Catalog

log = logging.getLogger("materializer.api")


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
    """Serve the lookup API for `catalog` until SIGINT/SIGTERM (blocking, one process)."""
    import uvicorn  # noqa: PLC0415 - only the serving process needs it

    check_listen(catalog, token)
    host, port = catalog.api.host_port()
    app = create_app(catalog.store_path, token, catalog.api.max_lookup_keys,
                     catalog.default_schema)
    log.info("lookup API on http://%s:%d (%s)", host, port,
             "bearer token required" if token else "no token")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            server_header=False, proxy_headers=False, lifespan="off",
                            backlog=2048)
    uvicorn.Server(config).run()
