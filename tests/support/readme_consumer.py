"""README's change-topic consumer ("Change events"), run as it is written.

`run_readme_consumer(msgs)` executes the README's own code block with confluent_kafka's
Consumer replaced by one that hands it `msgs` in topic order, and returns its `mirror`."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

from tests.support.change_topics import Message

README = Path(__file__).resolve().parents[2] / "README.md"


class _Done(Exception):
    """The fake consumer has handed out every message."""


class _Msg:
    def __init__(self, m: Message) -> None:
        self._m = m

    def error(self) -> None:
        return None

    def key(self) -> bytes:
        return self._m.key

    def value(self) -> bytes | None:
        return self._m.value

    def partition(self) -> int:
        return self._m.partition

    def offset(self) -> int:
        return self._m.offset


def readme_consumer() -> str:
    """The python block of README's "Change events" section."""
    text = README.read_text()
    section = text[text.index("\n## Change events"):]
    section = section[:section.index("\n## ", 1)]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def run_readme_consumer(msgs: list[Message]) -> dict[Any, Any]:
    """The README consumer's `mirror` after it read `msgs` (in topic order)."""
    queue = [_Msg(m) for m in sorted(msgs, key=lambda m: (m.partition, m.offset))]

    class Consumer:
        def __init__(self, conf: dict[str, str]) -> None:
            pass

        def subscribe(self, topics: list[str]) -> None:
            pass

        def poll(self, timeout: float) -> _Msg:
            if not queue:
                raise _Done
            return queue.pop(0)

    fake = types.ModuleType("confluent_kafka")
    fake.Consumer = Consumer  # type: ignore[attr-defined]
    real = sys.modules["confluent_kafka"]
    sys.modules["confluent_kafka"] = fake
    scope: dict[str, Any] = {}
    try:
        exec(readme_consumer(), scope)  # noqa: S102 - the README's own example
    except _Done:
        pass
    finally:
        sys.modules["confluent_kafka"] = real
    mirror: dict[Any, Any] = scope["mirror"]
    return mirror
