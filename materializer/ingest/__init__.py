"""The write side: open a relation, apply records by the merge rules, the worker loop, rebuild."""
