"""`materializer demo --records N` says how many distinct keys it produced, not the size of
the key space it drew them from (200 records once read "2,000 distinct keys")."""

from __future__ import annotations

import re

import pytest

from materializer.demo import sample_changelog
from tests.support.workers import run_cli

pytestmark = pytest.mark.integration


def test_the_demo_counts_the_distinct_keys_it_produced() -> None:
    demo = run_cli("demo", "--records", "40", timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    said = re.search(r"produced 40 records .*: (\d+) tombstones, (\d+) null keys, ([\d,]+) "
                     r"distinct keys", demo.stdout)
    assert said is not None, demo.stdout
    changelog, table = sample_changelog(40, 2_000)
    keys = {k for k, _ in changelog if k is not None}
    assert int(said[3].replace(",", "")) == len(keys) <= 40  # of the 2,000 it draws from
    assert f"({len(table):,} rows)" in demo.stdout
