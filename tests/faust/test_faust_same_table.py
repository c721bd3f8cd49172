"""The same faust app, switched from memory:// to lmdb:// by its store URL alone, builds the
same tables from the same records (run side by side on the embedded broker)."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from materializer.devbroker import DevBroker
from tests.faust.support import TABLES, FaustApp, fold, produce_words, raw_table, read_changelog
from tests.support.workers import wait_until

pytestmark = pytest.mark.integration
N, KEYS = 600, 100


def test_memory_and_lmdb_stores_give_the_same_tables(session_broker: DevBroker,
                                                     tmp_path: Path) -> None:
    mem = FaustApp(session_broker, tmp_path, store="memory://")
    lm = FaustApp(session_broker, tmp_path, store="lmdb://", topic=mem.topic)
    produce_words(session_broker, mem.topic, N, KEYS)
    procs = [mem.start(), lm.start()]
    expected = Counter(b"k%d" % (i % KEYS) for i in range(N))

    def counted(app: FaustApp) -> dict[bytes, int]:
        return {json.loads(k): json.loads(v)
                for k, v in fold(read_changelog(session_broker, app.changelog("counts"))).items()}

    for app, proc in zip((mem, lm), procs, strict=True):
        wait_until(lambda app=app: sum(counted(app).values()) >= N, 90,
                   f"{app.store} to count every record", proc)
    assert counted(mem) == counted(lm) == {k.decode(): n for k, n in expected.items()}
    for t in TABLES:
        lm_fold = fold(read_changelog(session_broker, lm.changelog(t)))
        assert fold(read_changelog(session_broker, mem.changelog(t))) == lm_fold, t
        wait_until(lambda t=t, f=lm_fold: raw_table(lm.tabledir, t) == f, 30,
                   f"lmdb:// {t} to equal its changelog")
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
