"""Checks of setting values shared by the loader and the command line: a store path LMDB
can open (`store_path_problem`), worker and registry URLs (`http_url`,
`advertise_problem`, `registry_url_problem`), sizes (`byte_size`). Each returns why a
value cannot be used (or None), for the caller to place in the file or the command line.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from materializer.redact import redact


def store_path_problem(path: str) -> str | None:
    """Why `path` cannot be a store's directory, or None: LMDB opens a path as UTF-8 text,
    so a name that is not (a command-line argument or a folder name in another encoding,
    held by Python as surrogates) would stop the first write with a UnicodeEncodeError."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return (f"{path!r} is not UTF-8 text, which LMDB needs: give a directory whose "
                "path is UTF-8")
    return None


def http_url(url: str) -> SplitResult | None:
    """`url` split if it is `http(s)://host[:port]...` with a host and a numeric port (if
    any), else None: the shape of a worker's API URL (advertised, or a client's seed)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts


def advertise_problem(url: str) -> str | None:
    """Why `url` cannot be an advertised API address (`http(s)://host[:port][/prefix]`),
    or None. The CLI's `--advertise` is checked by the same rule."""
    parts = http_url(url)
    if parts is None or parts.query or parts.fragment:
        return ("is not a URL other workers can reach: write http://host:port (for example "
                "http://10.0.0.5:8080)")
    if "@" in parts.netloc:
        return ("holds a user name or password (`user:password@`): the advertised URL is "
                "published in the group's membership topic and shown by GET /cluster and "
                "`materializer status`; workers and clients authenticate with the bearer "
                "token (`api.token_env`): write http://host:port")
    return None


def registry_url_problem(url: str) -> tuple[int, str] | None:
    """(offset in `url`, or -1 for all of it; why) if `url` is not one or more
    comma-separated http(s) URLs of a schema registry (`schema_registry.url`), else None.
    Blanks around each URL, a trailing `/` and empty entries are allowed (the client drops
    them), and so is a user and password in a URL."""
    offset, seen = 0, False
    for part in url.split(","):
        lead = len(part) - len(part.lstrip())
        raw = part.strip()
        if raw:
            seen = True
            parts = http_url(raw)
            if parts is None:
                return offset + lead, (f"`{redact('url', raw)}` is not an http(s) URL: write "
                                       "http://host:port (for example http://localhost:8081)"
                                       "; several registries: comma-separated URLs")
            if parts.query or parts.fragment:
                return offset + lead, (f"`{redact('url', raw)}` has a `?query` or `#fragment`, "
                                       "but the client appends its request paths to the URL: "
                                       "remove it")
        offset += len(part) + 1
    if not seen:
        return -1, ("is empty: write the registry's URL (for example http://localhost:8081), "
                   "or use `path:` for a registry kept as files")
    return None


_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]i?B)?\s*\Z", re.IGNORECASE)
_UNITS = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def byte_size(text: str) -> int | None:
    """A size in bytes from `68719476736`, `64GiB`, `512MB` (KB, MB, GB, TB: powers of 1000;
    KiB, ... powers of 1024), or None for anything else, zero included."""
    m = _SIZE.match(text)
    if m is None or int(m.group(1)) == 0:
        return None
    unit = (m.group(2) or "")[:-1].lower()
    return int(m.group(1)) * _UNITS.get(unit, 1)
