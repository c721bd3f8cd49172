"""Avro test helpers: a table of declared columns reading Avro values."""

from __future__ import annotations

from materializer.columns import parse_type
from materializer.specs import Column, TableSpec


def avro_table(columns: dict[str, str], key_format: str = "int") -> TableSpec:
    """Table `public.t` of `columns` (name -> type), key `id`, values in Avro."""
    cols = tuple(Column(n, parse_type(t)[0], n == "id") for n, t in columns.items())
    return TableSpec(name="public.t", topic="t", columns=cols, key_columns=("id",),
                     key_format=key_format, value_format="avro")
