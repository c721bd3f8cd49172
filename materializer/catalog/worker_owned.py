"""`kafka:` properties the worker sets itself (`WORKER_OWNED`: a value that disagrees is
refused at load, one that says what the worker does anyway is accepted, `AGREEING`), and
what makes a consumer group id not the one it looks like (`group_problem`).
"""

from __future__ import annotations

import unicodedata

# librdkafka properties the worker sets for its consumers whatever `kafka:` says (a value
# there would be ignored, or would split the group from the one the workers report)
WORKER_OWNED = {
    "group.id": "the consumer group is the top-level `group:` (the workers' membership "
                "topic, status and metrics name it too); move the value there",
    "auto.offset.reset": "it is `error`, so that an offset the broker no longer holds is "
                         "reported (`on_reset`), never moved silently, and a table reads its "
                         "topic from the start; remove it",
    "enable.partition.eof": "it is true, so that the end of a partition is seen; remove it",
    "isolation.level": "it is `read_committed`, so that the records of a transaction still "
                       "open, or aborted, are never applied (nothing later would undo them: "
                       "the table would keep rows the topic does not hold); remove it",
    "transactional.id": "it is unset: the change-event and dead-letter producers are not "
                        "transactional (a change event is sent from the outbox written in "
                        "the rows' own transaction; with a transactional.id every send "
                        "would fail); remove it",
}
# values of those that say what the worker does anyway: accepted (a file written for
# another Kafka client keeps working), not passed on
AGREEING = {"auto.offset.reset": ("earliest", "smallest", "beginning", "error"),
            "enable.partition.eof": ("true",), "isolation.level": ("read_committed",)}


def group_problem(group: str) -> tuple[int, str] | None:
    """(offset, message) of what makes a consumer group id not the one it looks like
    (offset -1: the whole value)."""
    if "${" in group:  # a reference left unsubstituted: its own error was reported
        return None
    if not group.strip():
        return -1, ("is empty: name the consumer group (default: materializer), or leave "
                   "`group` out")
    if group != group.strip():
        at = 0 if group[0].isspace() else len(group.rstrip())
        return at, ("starts or ends with a blank, which is part of the group id: remove it "
                    "(quote the value if the blank came from a variable)")
    for i, ch in enumerate(group):
        cat = unicodedata.category(ch)
        if cat[0] in "CZ" and ch != " ":
            name = unicodedata.name(ch, "a control character")
            return i, (f"holds U+{ord(ch):04X} ({name}), which does not show: the group "
                       "would not be the one it looks like; remove it")
    return None
