"""The store lock: one writer per data directory (`<store>/lock`, an `flock`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import threading
import time
from pathlib import Path

from materializer.errors import StoreError
from materializer.procstats import pid_exists

LOCK_FILE = "lock"
FORMAT_FILE = "format"
STORE_FORMAT = 1
"""The store's byte formats (keys, rows, stream events, meta, layout), as a number in
`<store>/format`: written by the first writer, checked by every reader and writer, so a
store a newer materializer wrote in another format is refused, never misread. A store
without the file is format 1 (written before it existed)."""
_HELD: dict[str, StoreLock] = {}
_HELD_LOCK = threading.Lock()


class StoreLocked(StoreError):
    """Another process holds the store lock (its pid and command are in the message)."""


def store_root(path: str | os.PathLike[str], create: bool) -> Path:
    """The data directory `path`, created (mode 0700) if `create`; StoreError if it is not
    a directory (a file, say), so commands say so instead of failing deeper down. An
    existing directory keeps its mode (what is inside is the owner's only anyway)."""
    root = Path(path)
    if create and not root.exists():
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(root, 0o700)  # mkdir's mode is subject to the umask
        except FileExistsError:
            pass  # not a directory: said below
        except OSError as e:
            raise StoreError(f"cannot create the data directory {root} (store.path): "
                             f"{e.strerror or e}") from e
    if root.exists() and not root.is_dir():
        raise StoreError(f"store.path {root} is not a directory: point `store.path` at a "
                         "directory (it is created if missing)")
    _check_format(root)
    return root


def _check_format(root: Path) -> None:
    """StoreError if `root` holds a store of a format this version does not read."""
    try:
        text = (root / FORMAT_FILE).read_bytes()[:100]
    except OSError:
        return  # none (format 1, or not a store yet), or unreadable: the files will say
    try:
        found = int(text.strip())
    except ValueError:
        found = -1
    if found != STORE_FORMAT:
        newer = found > STORE_FORMAT
        raise StoreError(
            f"{root} holds a store of format {found if found >= 0 else repr(text)} "
            f"({'written by a newer materializer' if newer else 'not one this version wrote'}"
            f"); this version reads format {STORE_FORMAT} and would misread it: run the "
            "version that wrote it, or point store.path at a new directory and let the "
            "worker rebuild it from the topics")


def stamp_format(root: Path) -> None:
    """Record this version's store format in `root` (a writer's first start), once."""
    from materializer.store.layout import replace_private  # noqa: PLC0415 - layout uses us

    path = root / FORMAT_FILE
    if not path.exists():
        replace_private(path, b"%d\n" % STORE_FORMAT)


_TEMPORARY = re.compile(r"(?:[A-Za-z0-9_-]+(?:\.[0-9]+)?\.(?P<a>[0-9]+)\.tmp"
                        r"|\.(?:declared\.json|format)\.(?P<b>[0-9]+))")
"""The temporary files of the store root's atomic replacements, named by their writer's
pid: `worker.<pid>.tmp`, `worker.<i>.<pid>.tmp` (status files), `cluster.<pid>.tmp`
(membership), `.declared.json.<pid>`, `.format.<pid>` (`layout.replace_private`)."""


def remove_dead_temporaries(root: Path) -> None:
    """Delete the temporary files a writer killed between writing and renaming one left in
    the store root (kill -9 there: nothing else would ever remove them). Only those of a
    process that no longer runs: a living writer's file is its own. Called by the holder of
    the store lock."""
    try:
        entries = [e.name for e in os.scandir(root)]
    except OSError:
        return
    for entry in entries:
        m = _TEMPORARY.fullmatch(entry)
        if m is not None and not pid_exists(int(m.group("a") or m.group("b"))):
            with contextlib.suppress(OSError):
                (root / entry).unlink()


class StoreLock:
    """The exclusive lock of one data directory: at most one writer per store.

    Who takes it: `materializer run` for its whole life (shared with any worker process
    it starts), `materializer rebuild` while it rebuilds. A second taker fails at once
    with `StoreLocked` (exit 1) naming the holder's pid and command, which the holder
    writes into `<store>/lock`. Readers (`Store`, `serve`, `get`, `scan`, `status`)
    never take it: LMDB lets them read while the holder writes.

    It is an `fcntl.flock` on `<store>/lock` (mode 0600), which belongs to the open file
    description: the kernel releases it when every process holding that description has
    closed it or exited, kill -9 included. A stale file never blocks anyone; its text
    is only a hint of who held it last.

    Sharing with worker processes: a child created by `fork` (multiprocessing's `fork`
    context) holds the lock with its parent as it is. A spawned child (`subprocess`,
    multiprocessing `spawn`) gets the descriptor through `pass_fds=lock.pass_fds()`
    and calls `StoreLock.inherit(store_path, fd)` to hold it as an object. The lock
    stays held while any of them lives, so a parent that dies first does not let a
    second writer in beside children still writing.
    """

    __slots__ = ("path", "fd", "what")

    def __init__(self, path: Path, fd: int, what: str) -> None:
        self.path = path
        self.fd = fd
        self.what = what

    @classmethod
    def acquire(cls, store_path: str | os.PathLike[str], what: str) -> StoreLock:
        """Take the lock of `store_path` (created, 0700, if missing) for `what` (the
        command, shown to whoever is refused). Raises StoreLocked at once if held."""
        root = store_root(store_path, create=True)
        stamp_format(root)
        path = root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StoreError(f"cannot open the store lock {path}: {e.strerror or e}") from e
        try:
            os.fchmod(fd, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StoreError(f"cannot lock {path}: {e.strerror or e}") from e
                raise StoreLocked(_refusal(root, _holder(fd))) from None
            text = json.dumps({"pid": os.getpid(), "what": what, "since": time.time()})
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, text.encode() + b"\n", 0)
            except OSError as e:  # a full file system: said, not a traceback
                raise StoreError(f"cannot write the store lock {path}: "
                                 f"{e.strerror or e}") from e
        except BaseException:
            os.close(fd)
            raise
        lock = cls(root, fd, what)
        with _HELD_LOCK:
            _HELD[_key(root)] = lock
        remove_dead_temporaries(root)
        return lock

    @classmethod
    def inherit(cls, store_path: str | os.PathLike[str], fd: int) -> StoreLock:
        """In a child process, hold the lock whose descriptor the parent passed (`fd`).
        Raises StoreError if `fd` does not hold the lock of `store_path`."""
        root = Path(store_path)
        try:
            same = os.fstat(fd).st_ino == os.stat(root / LOCK_FILE).st_ino
            # a description that already holds the lock takes it again without waiting
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise StoreError(f"descriptor {fd} does not hold the lock of {root}: "
                             f"{e.strerror or e}") from e
        if not same:
            raise StoreError(f"descriptor {fd} is not the lock file of {root}")
        os.set_inheritable(fd, False)
        lock = cls(root, fd, "inherited")
        with _HELD_LOCK:
            _HELD[_key(root)] = lock
        return lock

    def pass_fds(self) -> tuple[int, ...]:
        """What to give `subprocess.Popen(pass_fds=...)` so that a child can `inherit`."""
        return (self.fd,)

    def release(self) -> None:
        """Let go of this process's hold (others sharing the lock keep it). Idempotent."""
        with _HELD_LOCK:
            if _HELD.get(_key(self.path)) is self:
                del _HELD[_key(self.path)]
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def held_here(store_path: str | os.PathLike[str]) -> bool:
    """Whether this process holds the lock of `store_path` (writers may then tidy up)."""
    with _HELD_LOCK:
        return _key(Path(store_path)) in _HELD


def check_held(store_path: str | os.PathLike[str]) -> None:
    """StoreError if this process holds the lock of `store_path` but `<store>/lock` is no
    longer the file it locked (removed, or replaced by another file): a second writer
    would then lock the new file and start beside this one. Nothing if not held here."""
    with _HELD_LOCK:
        lock = _HELD.get(_key(Path(store_path)))
    if lock is None or lock.fd < 0:
        return
    path = lock.path / LOCK_FILE
    try:
        held = os.fstat(lock.fd)
        now = os.stat(path)
        same = (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
    except OSError:
        same = False
    if not same:
        raise StoreError(f"the store lock {path} was removed or replaced while this process "
                         "held it: another writer (`materializer run`, `rebuild`) could take "
                         "the store beside this one; stopping (start it again to take the "
                         "lock anew)")


def _key(root: Path) -> str:
    return str(root.resolve())


def _holder(fd: int) -> dict[str, object]:
    """What the holder wrote into the lock file (it writes right after locking: wait a
    moment for it rather than report an unknown holder)."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            raw = os.pread(fd, 4096, 0)
            info = json.loads(raw)
            if isinstance(info, dict):
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.02)


def _refusal(root: Path, info: dict[str, object]) -> str:
    who = (f"pid {info['pid']} ({info.get('what', 'unknown command')})" if "pid" in info
           else "another process")
    return (f"the store {root} is in use by {who}: a store has one writer at a time. "
            "Stop that process first, or give this one another `store.path`.")


_FOR_LIFE: dict[str, int] = {}


def hold_for_life(path: Path, refusal: str) -> None:
    """An exclusive `flock` on `path` (created, 0600) kept until this process exits (the
    kernel lets go then, kill -9 included); taken again in the same process, nothing
    happens. Held by another process: StoreError(`refusal`), whose `{holder}` names its
    pid. (The faust store: one worker per table of a directory.)"""
    key = str(path.resolve())
    if key in _FOR_LIFE:
        return
    store_root(path.parent, create=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise StoreError(f"cannot open {path}: {e.strerror or e}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 100, 0).decode(errors="replace").strip() or "pid unknown"
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StoreError(f"cannot lock {path}: {e.strerror or e}") from e
        raise StoreError(refusal.format(holder=holder)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
    _FOR_LIFE[key] = fd
