"""Where snapshots live, what lists them, and the files' life cycle (names, manifests, locks).

    <store>/snapshots/<name>/manifest.json     what the snapshot holds; written last
    <store>/snapshots/<name>/relations/...     the store layout (`materializer.store.layout`):
                                               per relation a link and one generation, a
                                               compacted copy of its LMDB environment
    <store>/snapshots/.tmp-<name>-<id>/        a snapshot being taken (never listed)
    <store>/snapshots/.drop-<name>-<id>/       one being deleted (never listed)
    <store>/snapshots/.lock                    flock: creating, publishing, dropping

Guarantees:
- A snapshot is listed if and only if `<store>/snapshots/<name>/manifest.json` exists.
  A snapshot is built under a `.tmp-` name, every file written and fsynced, and gets
  its name by one `rename`: a process killed at any moment (kill -9 included) leaves
  at most a `.tmp-` directory, never a half snapshot listed. Dropping renames first
  (unlisted at once), then deletes.
- Leftovers (`.tmp-` of a dead taker, `.drop-`) are deleted by the next take or drop,
  under `.lock`; a `.tmp-` directory whose taker lives is never touched (the taker
  holds an flock on its `.owner` file, which the kernel releases when it dies).
- Snapshot files are read-only by convention: nothing writes into a listed snapshot
  except LMDB readers (their `lock.mdb`). Directories are 0700, files 0600.

This module needs only the standard library and the kernel, so `materializer.store`
may use it (as-of lookups) without importing the rest of `materializer.versions`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from materializer.errors import MaterializerError, NotFound, StoreError, UsageError
from materializer.private_files import FILE_MODE, make_dir, write_private

SNAPSHOTS = "snapshots"
MANIFEST = "manifest.json"
OWNER = ".owner"
TMP_PREFIX = ".tmp-"
DROP_PREFIX = ".drop-"
FORMAT = 1
"""The manifest format this code writes and reads."""
NAME_RULE = "1 to 128 of A-Z a-z 0-9 _ . -, starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class SnapshotNotFound(NotFound):
    """No snapshot of that name; `snapshots` lists the names there are (for 404 bodies)."""

    def __init__(self, name: str, snapshots: list[str]) -> None:
        listed = ", ".join(snapshots) if snapshots else "none yet"
        super().__init__(f"no snapshot named {name!r} (snapshots: {listed})")
        self.snapshots = snapshots


class SnapshotExists(MaterializerError):
    """A snapshot of that name exists already (HTTP 409)."""


def check_name(name: str) -> str:
    """`name` if it is a valid snapshot name, else UsageError saying the rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a snapshot name: use {NAME_RULE}")
    return name


def snapshots_dir(store_root: str | os.PathLike[str]) -> Path:
    return Path(store_root) / SNAPSHOTS


def snapshot_dir(store_root: str | os.PathLike[str], name: str) -> Path:
    return snapshots_dir(store_root) / name


# ------------------------------------------------------------------------ manifests


@dataclass(frozen=True, slots=True)
class RelationEntry:
    """One relation in a snapshot: its kind, per partition the next offset to apply
    (every record below it is in the snapshot, none above), rows and bytes."""

    kind: str
    offsets: Mapping[int, int]
    rows: int
    bytes: int
    revoked: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
                "rows": self.rows, "bytes": self.bytes, "revoked": list(self.revoked)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RelationEntry:
        return cls(str(obj["kind"]), {int(p): int(o) for p, o in obj["offsets"].items()},
                   int(obj["rows"]), int(obj["bytes"]), tuple(obj.get("revoked", ())))


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a snapshot holds. `complete`: it was taken of every relation in the store, so a
    relation it does not hold did not exist then (a diff reads it as empty), except those
    in `undeclared`: the store held them, not declared then (their rows followed no
    topic), and the snapshot left them out: their rows then are not known."""

    name: str
    created_at: float  # seconds since the epoch, the instant the snapshot reflects
    scheduled: bool
    complete: bool
    relations: Mapping[str, RelationEntry] = field(default_factory=dict)
    undeclared: tuple[str, ...] = ()

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.relations.values())

    @property
    def created(self) -> str:
        """`created_at` as ISO 8601 in UTC (milliseconds, `Z`)."""
        t = dt.datetime.fromtimestamp(self.created_at, dt.UTC)
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "created": self.created,
                "created_at": self.created_at, "scheduled": self.scheduled,
                "complete": self.complete, "bytes": self.bytes,
                "relations": {n: r.to_json() for n, r in sorted(self.relations.items())},
                **({"undeclared": list(self.undeclared)} if self.undeclared else {})}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Manifest:
        if obj.get("format") != FORMAT:
            raise StoreError(f"snapshot {obj.get('name')!r} has manifest format "
                             f"{obj.get('format')!r}; this version reads format {FORMAT}")
        return cls(str(obj["name"]), float(obj["created_at"]), bool(obj["scheduled"]),
                   bool(obj["complete"]),
                   {n: RelationEntry.from_json(r) for n, r in obj["relations"].items()},
                   tuple(map(str, obj.get("undeclared", ()))))


def read_manifest(store_root: str | os.PathLike[str], name: str) -> Manifest:
    """The manifest of snapshot `name`; SnapshotNotFound (listing the names) if absent."""
    path = snapshot_dir(store_root, name) / MANIFEST if _NAME.fullmatch(name) else None
    try:
        if path is None:
            raise FileNotFoundError
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotNotFound(name, snapshot_names(store_root)) from None
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        return Manifest.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise StoreError(f"{path} is not a snapshot manifest: {e}") from e


def require(store_root: str | os.PathLike[str], name: str) -> Path:
    """The directory of snapshot `name` (one stat); SnapshotNotFound if it is not listed."""
    path = snapshot_dir(store_root, name)
    if not (_NAME.fullmatch(name) and (path / MANIFEST).is_file()):
        raise SnapshotNotFound(name, snapshot_names(store_root))
    return path


def snapshot_names(store_root: str | os.PathLike[str]) -> list[str]:
    """The names of the listed snapshots, sorted."""
    base = snapshots_dir(store_root)
    try:
        entries = os.listdir(base)
    except OSError:
        return []
    return sorted(e for e in entries if _NAME.fullmatch(e) and (base / e / MANIFEST).is_file())


def list_snapshots(store_root: str | os.PathLike[str]) -> list[Manifest]:
    """Every listed snapshot's manifest, oldest first (a snapshot dropped meanwhile is left
    out)."""
    out = []
    for name in snapshot_names(store_root):
        with contextlib.suppress(SnapshotNotFound):
            out.append(read_manifest(store_root, name))
    return sorted(out, key=lambda m: (m.created_at, m.name))


def store_root_of(data_dir: str | os.PathLike[str]) -> Path:
    """The store a data directory belongs to: itself, or for a snapshot's directory
    (`<store>/snapshots/<name>`) the store that holds it."""
    path = Path(data_dir)
    if path.parent.name == SNAPSHOTS and (path / MANIFEST).is_file():
        return path.parent.parent
    return path


# ------------------------------------------------------------------- file life cycle


def fsync_path(path: Path) -> None:
    """fsync a file or directory."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def directory_lock(store_root: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold `<store>/snapshots/.lock` (created with the directory if missing); yields the
    snapshots directory. Held only for renames and deletions, never while copying."""
    base = snapshots_dir(store_root)
    make_dir(base)
    fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield base
    finally:
        os.close(fd)


class Pending:
    """A snapshot being built: `<store>/snapshots/.tmp-<name>-<id>/`, owned by this process
    (an flock on its `.owner` file) until `publish` renames it to its name or `discard`
    deletes it."""

    def __init__(self, store_root: str | os.PathLike[str], name: str) -> None:
        self.store_root = Path(store_root)
        self.name = check_name(name)
        with directory_lock(store_root) as base:
            remove_leftovers(base)
            if (base / name).exists():
                raise SnapshotExists(f"a snapshot named {name!r} exists already: drop it "
                                     "first (materializer snapshot CONFIG --drop NAME) or "
                                     "choose another name")
            self.path = base / f"{TMP_PREFIX}{name}-{secrets.token_hex(6)}"
            make_dir(self.path)
            self._fd = os.open(self.path / OWNER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                               FILE_MODE)
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def publish(self, manifest: Manifest) -> Path:
        """Write the manifest, fsync everything, and rename the directory to the snapshot's
        name: from here on it is listed. SnapshotExists if the name was taken meanwhile."""
        write_private(self.path / MANIFEST, json.dumps(manifest.to_json(), indent=1).encode(),
                      new=True)
        for dirpath, _dirs, _files in os.walk(self.path):
            fsync_path(Path(dirpath))
        with directory_lock(self.store_root) as base:
            final = base / self.name
            if final.exists():
                raise SnapshotExists(f"a snapshot named {self.name!r} was taken meanwhile")
            try:
                os.rename(self.path, final)
                fsync_path(base)
            except OSError as e:
                raise StoreError(f"cannot publish snapshot {self.name!r}: "
                                 f"{e.strerror or e}") from e
            with contextlib.suppress(OSError):
                (final / OWNER).unlink()
        self.path = final
        self._release()
        return final

    def discard(self) -> None:
        """Delete the unfinished directory (after a failure); a no-op once published."""
        if self._fd >= 0:
            shutil.rmtree(self.path, ignore_errors=True)
            self._release()

    def _release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def remove_leftovers(base: Path) -> list[str]:
    """Delete what dead takers and droppers left in `base` (the snapshots directory); the
    names deleted. Call with `directory_lock` held."""
    removed: list[str] = []
    try:
        entries = os.listdir(base)
    except OSError:
        return removed
    for entry in entries:
        path = base / entry
        if entry.startswith(DROP_PREFIX) or (entry.startswith(TMP_PREFIX) and _orphan(path)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(entry)
    return removed


def _orphan(tmp: Path) -> bool:
    """Whether no living process owns this `.tmp-` directory (its `.owner` is unlocked or
    missing: a taker creates and locks it under the directory lock, with the directory)."""
    try:
        fd = os.open(tmp / OWNER, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its taker is alive
    finally:
        os.close(fd)
    return True


def drop_snapshot(store_root: str | os.PathLike[str], name: str) -> None:
    """Remove snapshot `name`: unlisted at once (one rename), then deleted. Readers that
    have its files open keep reading them until they notice. SnapshotNotFound if absent."""
    require(store_root, name)
    with directory_lock(store_root) as base:
        remove_leftovers(base)
        gone = base / f"{DROP_PREFIX}{name}-{secrets.token_hex(6)}"
        try:
            os.rename(base / name, gone)
            fsync_path(base)
        except FileNotFoundError:
            raise SnapshotNotFound(name, snapshot_names(store_root)) from None
        except OSError as e:
            raise StoreError(f"cannot drop snapshot {name!r}: {e.strerror or e}") from e
    shutil.rmtree(gone, ignore_errors=True)
