"""The declaration loader under a derandomized mutation fuzzer (`tests.support.decl_fuzz`):
mutants of the README's, the SPEC's, docker's and hand-made declaration files (keys, values,
structure, bytes, line ends, anchors, DDL). None may crash the loader or take 5 s; every
refusal is inside the file; a mutant that must change the meaning is refused or changes
the catalog (nothing silently ignored); a reformatting leaves the catalog as it was."""

from __future__ import annotations

from tests.support.decl_fuzz import fuzz


def test_mutated_declaration_files_are_refused_at_their_place_or_read_as_written() -> None:
    report = fuzz(cases=400, seed=9797)
    assert report.counts["cases"] >= 350, report.counts
    assert report.counts["refuse"] and report.counts["accept"], report.counts
    shown = {cls: [(r["desc"], r.get("error") or r.get("problem") or r["text"][:300])
                   for r in recs[:5]] for cls, recs in report.findings.items()}
    assert not report.findings, shown
