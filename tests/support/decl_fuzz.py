"""A mutation fuzzer of the declaration loader (`load_catalog_text`), derandomized by its seed.

`tests/catalog/test_loader_fuzz.py` runs a few hundred cases; `fuzz(cases=...)` runs any number.

Seeds: valid declaration files (README example, SPEC example, docker/tables.yaml, small
hand-made ones, DDL). Mutations (tests/support/decl_mutations.py): on the YAML node tree
(keys, values, structure) and on the text (bytes, line endings, BOM, tabs, duplication).
Oracles:
  crash    anything but ConfigError out of load_catalog_text, > 5 s of CPU, MemoryError
  place    a diagnostic whose line/column is not inside the file
  howto    a diagnostic without a fix hint (reported for review)
  ignored  a mutation that must change the meaning (or be refused) accepted with the seed's
           exact catalog (a key or value silently ignored)
  neutral  a mutation that must not change the meaning (reformatting) refused or changed
  coerced  a scalar value written as X accepted while X appears nowhere in the catalog
           (reported for review: hex numbers, booleans, ...)
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from materializer.catalog import load_catalog_text
from materializer.errors import ConfigError
from tests.support.decl_mutations import mutate_sql, mutate_text, mutate_tree

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## A declaration file")
    block = text[text.index("```yaml\n", start) + 8:]
    return block[:block.index("```\n")]


SEEDS: dict[str, str] = {
    "basic": """\
tables:
  - name: shop.users
    topic: users
    columns: {id: int, name: string, age: long}
    primary_key: [id]
""",
    "block": """\
group: g1
default_schema: shop
store:
  path: /tmp/decl-fuzz-store
  map_size: 1GiB
tables:
  - name: orders
    topic: orders
    columns:
      customer_id: int
      order_id: long
      total: "decimal(10,2)"
      ts: timestamp
      tags: array<string>
      meta: map<string,long>
      note: string not null
    primary_key: [customer_id, order_id]
    shard_key: [customer_id]
    on_existing: versioned
    version_column: ts
    null_key: dead_letter
    on_error: skip
    dead_letter_topic: orders.dlq
    partitions: 3
    replicas: 1
    timestamp_column: ts
    changes: {topic: orders.changes, format: debezium-json, columns: true}
streams:
  - name: clicks
    topic: clicks
    columns: {user_id: string, url: string, ts: timestamp}
    key: [user_id]
    key_format: string
    value_format: json
    retention: {max_events_per_key: 10}
""",
    "anchors": """\
x-defaults: &d
  key_format: json
  value_format: json
tables:
  - name: a
    topic: ta
    columns: {id: int, v: string}
    primary_key: [id]
    replicated: true
  - name: b
    topic: tb
    columns: {id: string, v: "string not null", e: {type: bytes, encoding: hex}}
    soft_primary_key: [id]
""".replace("x-defaults: &d\n  key_format: json\n  value_format: json\n", ""),
    "ddl": """\
sql: |
  CREATE TABLE shop.orders (customer_id INT, order_id INT, total DOUBLE,
                            PRIMARY KEY (customer_id, order_id))
    WITH (kafka_topic='orders', key_format='JSON', value_format='JSON', partitions=3);
  CREATE STREAM pageviews (user_id STRING KEY, url STRING) WITH (kafka_topic='pageviews');
  CREATE TABLE t2 (id BIGINT PRIMARY KEY, b BYTES ENCODING 'hex', n VARCHAR NOT NULL)
    WITH (kafka_topic='t2', replicated=true, changes_topic='t2.changes');
""",
    "docker": (ROOT / "docker" / "tables.yaml").read_text(encoding="utf-8"),
    "readme": readme_example(),
}

ENV = {"KAFKA_BOOTSTRAP_SERVERS": "localhost:9092", "SCHEMA_REGISTRY_URL": "http://r:8081",
       "MATERIALIZER_TOKEN": "t"}

class Timeout(Exception):
    pass


def _alarm(_sig: int, _frm: Any) -> None:
    raise Timeout()


# ----------------------------------------------------------------------------- catalog view

def plain(x: Any) -> Any:
    """A catalog as plain data, without locations (which move with any edit)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)
                if f.name not in ("location", "source", "loc")}
    if isinstance(x, (list, tuple)):
        return [plain(i) for i in x]
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return repr(x)


LIMIT_S = 5.0  # CPU seconds a case may take: a hang (the machine's load does not count)


def load(text: str, name: str = "/tmp/decl-fuzz/decl.yaml") -> tuple[str, Any, float]:
    """(outcome, catalog view or diagnostics or error, CPU seconds)."""
    t0 = time.process_time()
    old = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, LIMIT_S)
    try:
        cat = load_catalog_text(text, name, ENV)
        out: tuple[str, Any] = ("accept", plain(cat))
    except ConfigError as e:
        out = ("refuse", e.diagnostics)
    except Timeout:
        out = ("crash", f"more than {LIMIT_S} s of CPU")
    except RecursionError as e:
        out = ("crash", f"RecursionError {e}")
    except MemoryError:
        out = ("crash", "MemoryError")
    except Exception as e:  # noqa: BLE001 - any other exception is the finding
        import traceback
        out = ("crash", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
    return out[0], out[1], time.process_time() - t0


# ----------------------------------------------------------------------------- oracles

HOWTO = re.compile(r"\b(add|remove|use|write|give|rename|declare|choose|quote|set|keep|list|"
                   r"replace|point|did you mean|please|delete|move|make|end|put|valid|"
                   r"must|needs?|fix|change|at least|at most|leave|spell|save|mark|take|"
                   r"declares|pick|try)\b", re.I)


def line_extent(text: str) -> list[int]:
    """Lengths of the file's lines, as an editor splits them (\\n, \\r\\n, \\r)."""
    return [len(x) for x in re.split(r"\r\n|\r|\n", text)]


def check_diags(text: str, diags: list[Any]) -> list[str]:
    problems = []
    lens = line_extent(text)
    for d in diags:
        if d.line < 1 or d.column < 1:
            problems.append(f"place: non-positive {d.line}:{d.column}")
        elif d.line > len(lens):
            problems.append(f"place: line {d.line} past the end ({len(lens)} lines)")
        elif d.column > lens[d.line - 1] + 1:
            problems.append(f"place: column {d.column} past line {d.line} "
                            f"(length {lens[d.line - 1]}): {d.message[:80]}")
        if not d.message or not HOWTO.search(d.message):
            problems.append(f"howto: {d.message[:160]}")
    return problems



def mutate(text: str, seed_name: str, rng: random.Random) -> tuple[str, str, str] | None:
    """One mutant of a seed: (text, kind, description), or None when the draw fits nothing."""
    r = rng.random()
    if r < 0.55:
        return mutate_tree(text, rng)
    if r < 0.7 and seed_name == "ddl":
        return mutate_sql(text, rng)
    return mutate_text(text, rng)


@dataclasses.dataclass
class Report:
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    findings: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    reviews: Counter[str] = dataclasses.field(default_factory=Counter)
    samples: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")

    def finding(self, cls: str, rec: dict[str, Any]) -> None:
        self.findings.setdefault(cls, []).append(rec)


def fuzz(cases: int, seed: int = 9797, sample: int = 0) -> Report:
    """Run `cases` mutants; `sample` of them are kept (description, text) for a CLI run."""
    rng = random.Random(seed)
    base: dict[str, Any] = {}
    for name, text in SEEDS.items():
        outcome, view, _ = load(text)
        assert outcome == "accept", (name, view)
        base[name] = view
    rep = Report()
    for case in range(cases):
        seed_name = rng.choice(list(SEEDS))
        try:
            m = mutate(SEEDS[seed_name], seed_name, rng)
        except Exception as e:  # noqa: BLE001 - the mutator's own failures are counted
            rep.counts["mutator-error"] += 1
            rep.reviews[f"mutator {type(e).__name__}"] += 1
            continue
        if m is None:
            rep.counts["skipped"] += 1
            continue
        text, kind, desc = m
        rep.counts["cases"] += 1
        outcome, got, secs = load(text)
        if secs > rep.slowest[0]:
            rep.slowest = (secs, f"{seed_name}: {desc}")
        rep.counts[outcome] += 1
        rec = {"case": case, "seed": seed_name, "desc": desc, "kind": kind,
               "text": text if len(text) < 4000 else text[:4000] + "...<cut>"}
        if outcome == "crash":
            rep.finding("crash", {**rec, "error": got})
            continue
        if outcome == "refuse":
            for p in check_diags(text, got):
                cls = p.split(":", 1)[0]
                if cls == "howto":
                    rep.reviews[p] += 1
                else:
                    rep.finding(cls, {**rec, "problem": p,
                                      "diags": [str(d)[:300] for d in got]})
            if kind == "neutral":
                rep.finding("neutral-refused", {**rec, "diags": [str(d)[:300] for d in got]})
        else:
            same = got == base[seed_name]
            if kind == "change" and same:
                rep.finding("ignored", rec)
            if kind == "neutral" and not same:
                rep.finding("neutral-changed", rec)
            if "||" in desc:
                written = desc.split("||", 1)[1]
                bare = written.strip("'\"")
                if bare and bare not in json.dumps(got, ensure_ascii=False) and \
                        bare not in ("null", "~", "Null", "", "[]", "{}", "*a") and \
                        not bare.startswith("${"):
                    rep.reviews[f"coerced: {written!r} ({desc.split('||')[0]})"] += 1
        if sample and len(rep.samples) < sample and rng.random() < sample / cases * 2:
            rep.samples.append((desc, text))
    return rep
