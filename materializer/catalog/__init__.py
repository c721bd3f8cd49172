"""Declarations: YAML (and its `sql:` DDL) to validated, immutable specs.

Every problem is reported with file:line:column and how to fix it.
"""

from materializer.catalog.load import describe, load_catalog, load_catalog_text

__all__ = ["describe", "load_catalog", "load_catalog_text"]
