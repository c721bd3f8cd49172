"""Stores carry their format (`<store>/format`, written by the first writer): one written by
a newer materializer in another format is refused by readers and writers alike, naming
what to do, instead of being misread. A store without the file is format 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from materializer.errors import StoreError
from materializer.store import Store, StoreLock
from materializer.store.lock import STORE_FORMAT


def test_the_first_writer_records_the_format(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lock = StoreLock.acquire(data, "test")
    lock.release()
    assert (data / "format").read_text() == f"{STORE_FORMAT}\n"
    assert (data / "format").stat().st_mode & 0o777 == 0o600
    Store.open(data).close()


@pytest.mark.parametrize(("text", "said"), [
    (b"2\n", "format 2 (written by a newer materializer)"),
    (b"banana", "format b'banana' (not one this version wrote)")])
def test_a_store_of_another_format_is_refused(tmp_path: Path, text: bytes, said: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "format").write_bytes(text)
    for open_it in (lambda: Store.open(data), lambda: StoreLock.acquire(data, "test")):
        with pytest.raises(StoreError, match="this version reads format 1") as e:
            open_it()
        assert said in str(e.value)


def test_a_store_without_the_file_is_format_1(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    Store.open(data).close()  # written before the file existed
