"""Shared fixtures, registered by tests/conftest.py: one broker for the whole run, one for
a test alone (`own_broker`), and the guard that kills processes a test left running."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from materializer.devbroker import DevBroker
from tests.support.workers import STARTED


@pytest.fixture(scope="session")
def session_broker() -> Iterator[DevBroker]:
    with DevBroker() as broker:
        yield broker


@pytest.fixture
def own_broker() -> Iterator[DevBroker]:
    """A broker of the test alone (embedded Tansu): the test may stop it."""
    broker = DevBroker(prefer="tansu").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(autouse=True)
def _kill_leftover_workers() -> Iterator[None]:
    """A failing test must not leave a worker running."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
