"""The snapshot process: `python -m materializer.versions.child STORE NAME [options]`.

The worker's schedule and `POST /snapshots` take snapshots through this process rather
than on a thread of their own: a copy holds read transactions for as long as it runs,
and no other thread of the process may then adopt a grown map (see `take`). It prints
one JSON line on stdout and exits 0 with `{"snapshot": <manifest>, "pruned": [names]}`,
or non-zero with `{"error": <kind>, "detail": <message>, "snapshots": [names]}` where
kind is `exists` (exit 3), `not_found` (4), `usage` (2) or `failed` (1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from materializer.errors import MaterializerError, NotFound, UsageError
from materializer.logsetup import log_like_the_parent
from materializer.versions.paths import SnapshotExists, SnapshotNotFound

EXIT = {"exists": 3, "not_found": 4, "usage": 2, "failed": 1}


def command(store_path: str, name: str, tables: Sequence[str] | None = None, *,
            scheduled: bool = False, keep: int | None = None,
            default_schema: str = "public") -> list[str]:
    """The argument list that runs this module (for `subprocess` / `asyncio`)."""
    args = [sys.executable, "-m", "materializer.versions.child", store_path, name,
            "--default-schema", default_schema]
    if tables:
        args += ["--tables", *tables]
    if scheduled:
        args.append("--scheduled")
    if keep is not None:
        args += ["--keep", str(keep)]
    return args


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a snapshot process answered: `result` on success, else `error` (a kind of
    `EXIT`), `detail` and the snapshot names (for a 404)."""

    result: dict[str, Any] | None
    error: str | None = None
    detail: str = ""
    snapshots: tuple[str, ...] = ()


def parse_outcome(code: int, stdout: bytes, stderr: bytes) -> Outcome:
    """Read what a snapshot process printed (a crash prints no JSON: `failed`)."""
    try:
        obj = json.loads(stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return Outcome(None, "failed", f"the snapshot process exited with {code}: {tail[0]}")
    if code == 0 and isinstance(obj, dict) and "snapshot" in obj:
        return Outcome(obj)
    return Outcome(None, str(obj.get("error", "failed")), str(obj.get("detail", "")),
                   tuple(obj.get("snapshots", ())))


async def run_async(args: list[str]) -> Outcome:
    """Run a snapshot process without blocking the event loop; its outcome."""
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return parse_outcome(proc.returncode or 0, out, err)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m materializer.versions.child")
    p.add_argument("store")
    p.add_argument("name")
    p.add_argument("--tables", nargs="+")
    p.add_argument("--scheduled", action="store_true")
    p.add_argument("--keep", type=int)
    p.add_argument("--default-schema", default="public")
    args = p.parse_args(argv)
    log_like_the_parent()
    from materializer.versions.take import prune, take_snapshot  # noqa: PLC0415

    try:
        manifest = take_snapshot(args.store, args.name, args.tables, scheduled=args.scheduled,
                                 default_schema=args.default_schema)
        pruned = (prune(args.store, args.keep, manifest) if args.keep is not None
                  else [])
    except MaterializerError as e:
        kind = ("exists" if isinstance(e, SnapshotExists) else
                "not_found" if isinstance(e, NotFound) else
                "usage" if isinstance(e, UsageError) else "failed")
        names = list(e.snapshots) if isinstance(e, SnapshotNotFound) else []
        print(json.dumps({"error": kind, "detail": str(e), "snapshots": names}))
        logging.getLogger("materializer.versions").error("snapshot %s: %s", args.name, e)
        return EXIT[kind]
    print(json.dumps({"snapshot": manifest.to_json(), "pruned": pruned}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
