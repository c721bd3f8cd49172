"""materializer: the latest row per key of a Kafka changelog, in LMDB, queryable now."""

from materializer.store import Store

__all__ = ["Store"]
__version__ = "0.1.0"
