"""Versions of the store: consistent snapshots, as-of lookups and keyed diffs.

- `paths`: where snapshots live, their manifests, names, and their files' life cycle
  (atomic publish, drop, leftovers). Needs only the kernel, so the store imports it
  for as-of lookups (`Store.at`, `store.table(name, as_of=...)`).
- `take`: taking a snapshot (one instant across relations, LMDB compacting copies).
- `child`: the snapshot process the worker's schedule and the HTTP API start.
- `schedule`: `snapshots: {every, keep}`, the worker's hook.
- `walk`, `diff`: comparing two versions of a relation in key order (Dolt's diff types).
- `events`: a diff as Debezium change events.
- `commands`, `http`: the command line and HTTP surfaces.

This module imports nothing, so importing `materializer.versions.paths` from the store
does not pull in the modules that build on the store.
"""
