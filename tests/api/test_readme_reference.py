"""The README is part of the contract: what the code emits and accepts is named there.

Mechanical checks, no broker: every metric family `/metrics` can carry, every setting a
REST schema registry takes, every rejection reason a decoder raises, and the exit code the
README gives each error class it names, against the code.
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

from connectors.registry_http import REST_KEYS
from materializer import errors
from materializer.api.metrics import Exposition, add_process_metrics, add_worker_metrics

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = [*sorted((ROOT / "materializer").rglob("*.py")),
           *sorted((ROOT / "connectors").rglob("*.py"))]


def _literal_calls(method_names: set[str]) -> list[tuple[ast.Call, Path]]:
    calls = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in method_names:
                    calls.append((node, path))
    return calls


def _families(exp: Exposition) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", exp.text(), re.M))


def test_every_metric_family_is_named_in_the_readme() -> None:
    names: set[str] = set()
    for call, _ in _literal_calls({"add", "histogram"}):
        if call.args and isinstance(call.args[0], ast.Constant):
            value = call.args[0].value
            if isinstance(value, str) and re.fullmatch(r"(materializer|process)_[a-z_]+", value):
                names.add(value)
    # the families whose names are built at run time: a status that carries every figure
    exp = Exposition()
    process = {k: 1 for k in ("resident_memory_bytes", "cpu_seconds_total", "open_fds",
                              "start_time_seconds", "gc_collections_total")}
    add_worker_metrics(exp, {
        "updated_at": time.time(), "pid": 1,
        "partitions": [{"relation": "r", "topic": "t", "partition": 0, "lag": 0,
                        "end_offset": 1, "next_offset": 1}],
        "metrics": {"records_applied_total": 1, "dead_letters_total": 1, "rebalances_total": 1,
                    "registry_retries_total": 1, "outbox_backlog": {"r": 0},
                    "change_events_total": {"r": 1}, "process": process,
                    "batch_seconds": {"buckets": [[0.1, 1]], "count": 1, "sum": 0.1}}})
    add_process_metrics(exp)
    names |= _families(exp)
    assert "materializer_worker_process_cpu_seconds_total" in names
    assert len(names) > 25
    missing = sorted(n for n in names if not re.search(rf"\b{n}\b", README))
    assert missing == [], f"metrics the README does not name: {missing}"


def test_every_schema_registry_setting_is_named_in_the_readme() -> None:
    missing = sorted(k for k in REST_KEYS if f"`{k}`" not in README)
    assert missing == [], f"schema_registry settings the README does not name: {missing}"


def test_the_rejection_reasons_listed_are_those_raised() -> None:
    m = re.search(r"^Rejection reasons \([^)]*\):\n`([^`]*)`", README, re.M)
    assert m is not None
    listed = {r.strip() for r in m.group(1).split(",")}
    raised: set[str] = set()
    for call, path in _literal_calls({"RecordError"}):
        reason = call.args[1] if len(call.args) > 1 else next(
            (k.value for k in call.keywords if k.arg == "reason"), None)
        if isinstance(reason, ast.Constant) and isinstance(reason.value, str):
            raised.add(reason.value)
        else:  # a reason passed on from another error, or the default: named where it began
            assert reason is not None, f"{path}:{call.lineno}: a RecordError without a reason"
    assert raised - listed == set(), f"reasons the README does not list: {raised - listed}"
    assert listed - raised == set(), f"reasons listed that nothing raises: {listed - raised}"


def test_the_cli_exit_codes_given_for_error_classes_match_the_code() -> None:
    checked = 0
    for m in re.finditer(r"`materializer\.errors\.(\w+)`", README):
        after = README[m.end():m.end() + 400]
        said = re.search(r"CLI exit (\d+)", after)
        if said is None:
            continue
        cls = getattr(errors, m.group(1))
        checked += 1
        assert int(said.group(1)) == cls.exit_code, (
            f"README: {m.group(1)} ... CLI exit {said.group(1)}; the code exits "
            f"{cls.exit_code}")
    assert checked >= 1
