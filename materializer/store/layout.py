"""Where a relation's files live: directory names, generations, atomic replacement.

    <store>/relations/<key>           symlink to the current generation, `<key>@<gen>`
    <store>/relations/<key>@<gen>/    one LMDB environment (data.mdb, lock.mdb) and a
                                      file `name` holding the qualified name

`<key>` is a slug of the qualified name (at most 48 of `A-Za-z0-9._-`, others as `_`)
plus `-` and 16 hex digits of the SHA-256 of the name, so any valid name (200
characters of schema and 200 of table, spaces and brackets included) makes a short,
safe file name, and names that differ only where the slug blurs them stay apart.
The real name is in `name` (listing) and in the LMDB `meta` (identity).

A generation is never reused: `rebuild` builds a fresh one beside the current one
and `publish` swaps the symlink with one `rename`, atomically; readers that still
use the replaced generation keep reading its (deleted) files until they notice the
new link (`token` changes), so no reader ever sees a half-built relation or an error.

Stores of the earlier layout (`<store>/relations/<qualified name>/`) stay readable;
the first writer that opens such a relation moves it into a generation.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from materializer.errors import StoreError
from materializer.private_files import make_dir, write_private
from materializer.store.lock import store_root

RELATIONS = "relations"
NAME_FILE = "name"
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
_LEGACY = "legacy:"


def relations_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / RELATIONS


def relation_key(name: str) -> str:
    """The file name of a relation's link: a readable slug plus a hash of the full name."""
    slug = _SLUG.sub("_", name).lstrip(".")[:48] or "_"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def _legacy_dir(data_dir: str | os.PathLike[str], name: str) -> Path | None:
    """`relations/<name>/` of the earlier layout, if this name has one."""
    if (not name or "/" in name or "\x00" in name or name in (".", "..")
            or len(name.encode()) > 255):
        return None
    path = relations_dir(data_dir) / name
    try:
        if not path.is_symlink() and (path / "data.mdb").is_file():
            return path
    except OSError:
        pass
    return None


def token(data_dir: str | os.PathLike[str], name: str) -> str | None:
    """What identifies the relation's current generation (None: no such relation).
    It changes whenever `publish` replaces the generation; one `readlink` to read."""
    try:
        return os.readlink(relations_dir(data_dir) / relation_key(name))
    except OSError:
        pass
    legacy = _legacy_dir(data_dir, name)
    if legacy is None:
        return None
    try:
        return f"{_LEGACY}{(legacy / 'data.mdb').stat().st_ino}"
    except OSError:
        return None


def current(data_dir: str | os.PathLike[str], name: str) -> tuple[str, Path] | None:
    """(token, directory) of the relation's current generation, or None."""
    tok = token(data_dir, name)
    if tok is None:
        return None
    if tok.startswith(_LEGACY):
        return tok, relations_dir(data_dir) / name
    return tok, relations_dir(data_dir) / tok


def relation_exists(data_dir: str | os.PathLike[str], name: str) -> bool:
    """Whether the store holds local state of `name` (either layout)."""
    found = current(data_dir, name)
    return found is not None and (found[1] / "data.mdb").is_file()


def names(data_dir: str | os.PathLike[str]) -> list[str]:
    """The qualified names of every relation in the store (either layout), sorted."""
    base = relations_dir(data_dir)
    found: set[str] = set()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return []
    for e in entries:
        if e.name.startswith("."):
            continue
        path = base / e.name
        try:
            if e.is_symlink():
                found.add((path / NAME_FILE).read_text(encoding="utf-8"))
            elif "@" not in e.name and (path / "data.mdb").is_file():
                found.add(e.name)  # the earlier layout
        except OSError:
            continue  # replaced or removed while listing
    return sorted(found)


DECLARED_FILE = "declared.json"
"""In a store's root: the names of the relations the configuration `run` last started with
declares (a JSON list); readers refuse the others (`read_declared`)."""


def replace_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with a private file (`write_private`) holding `data`;
    StoreError naming it if it cannot be written (a full or read-only file system: said,
    not a traceback), leaving no temporary file behind."""
    tmp = path.parent / f".{path.name}.{os.getpid()}"
    try:
        write_private(tmp, data)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from e


def write_declared(data_dir: str | os.PathLike[str], names: Iterable[str]) -> None:
    """Record, atomically, the relations the running configuration declares."""
    root = store_root(data_dir, create=True)
    replace_private(root / DECLARED_FILE, json.dumps(sorted(names)).encode())


def read_declared(data_dir: str | os.PathLike[str]) -> frozenset[str] | None:
    """The relations the configuration `run` last started with declares, or None when no
    worker recorded any (a store only written by `rebuild`, a snapshot, faust)."""
    try:
        names = json.loads((Path(data_dir) / DECLARED_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return frozenset(n for n in names if isinstance(n, str)) if isinstance(names, list) \
        else None


def _relations(data_dir: str | os.PathLike[str]) -> Path:
    make_dir(store_root(data_dir, create=True))
    base = relations_dir(data_dir)
    make_dir(base)
    return base


def new_generation(data_dir: str | os.PathLike[str], name: str) -> Path:
    """An empty, unpublished generation directory for `name` (0700, `name` file written)."""
    base = _relations(data_dir)
    gen = base / f"{relation_key(name)}@{secrets.token_hex(6)}"
    make_dir(gen)
    write_private(gen / NAME_FILE, name.encode())
    return gen


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(data_dir: str | os.PathLike[str], name: str, gen: Path) -> Path | None:
    """Make `gen` the current generation of `name` in one atomic rename of the link.
    Returns the generation it replaced (the caller deletes it), or None."""
    base = relations_dir(data_dir)
    before = current(data_dir, name)
    tmp = base / f".{gen.name}.link"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(gen.name, tmp)
        os.replace(tmp, base / relation_key(name))
        _fsync_dir(base)
    except OSError as e:
        raise StoreError(f"cannot publish {gen}: {e.strerror or e}") from e
    if before is None or before[1] == gen:
        return None
    return before[1]


def writable_dir(data_dir: str | os.PathLike[str], name: str) -> Path:
    """The current generation of `name`, for its writer: a new relation gets a published,
    empty one; one of the earlier layout is moved into a generation (same files)."""
    cur = current(data_dir, name)
    if cur is not None and not cur[0].startswith(_LEGACY):
        return cur[1]
    if cur is None:
        gen = new_generation(data_dir, name)
    else:
        gen = relations_dir(data_dir) / f"{relation_key(name)}@{secrets.token_hex(6)}"
        try:
            os.rename(cur[1], gen)
        except OSError as e:
            raise StoreError(f"cannot move {cur[1]} into the current layout: "
                             f"{e.strerror or e}") from e
        make_dir(gen)
        write_private(gen / NAME_FILE, name.encode())
    publish(data_dir, name, gen)
    return gen


def remove_generation(path: Path) -> None:
    """Delete a generation's files (processes that map them keep reading them)."""
    shutil.rmtree(path, ignore_errors=True)


def remove_orphans(data_dir: str | os.PathLike[str], name: str, keep: Path) -> None:
    """Delete generations of `name` that are neither current nor `keep` (left by a rebuild
    that died). Only the holder of the store lock may call this."""
    base = relations_dir(data_dir)
    cur = current(data_dir, name)
    prefix = relation_key(name) + "@"
    try:
        entries = [e.name for e in os.scandir(base)]
    except OSError:
        return
    for entry in entries:
        path = base / entry
        if entry.startswith(prefix) and path != keep and (cur is None or path != cur[1]):
            remove_generation(path)
        elif entry.startswith(f".{prefix}") and entry.endswith(".link"):
            with contextlib.suppress(OSError):
                path.unlink()


def generations(data_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """Every directory holding a generation of `name` (current, orphaned, earlier layout)."""
    base = relations_dir(data_dir)
    prefix = relation_key(name) + "@"
    found = [base / e for e in (os.listdir(base) if base.is_dir() else [])
             if e.startswith(prefix)]
    legacy = _legacy_dir(data_dir, name)
    return found + ([legacy] if legacy is not None else [])


def drop(data_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """Remove `name` from the store (link, then every generation); returns the directories
    removed. Readers that use them keep reading them until they notice."""
    base = relations_dir(data_dir)
    removed: list[Path] = []
    cur = current(data_dir, name)
    if cur is not None and cur[0].startswith(_LEGACY):
        remove_generation(cur[1])
        removed.append(cur[1])
    try:
        (base / relation_key(name)).unlink()
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise StoreError(f"cannot remove {name}: {e.strerror or e}") from e
    prefix = relation_key(name) + "@"
    for entry in (os.listdir(base) if base.is_dir() else []):
        if entry.startswith(prefix):
            remove_generation(base / entry)
            removed.append(base / entry)
    return removed
