"""materializer: the latest row per key of a Kafka changelog, in LMDB, queryable now."""

from typing import TYPE_CHECKING, Any

from materializer.store import Store

if TYPE_CHECKING:
    from materializer.client import Client

__all__ = ["Client", "Store"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`materializer.Client` is imported on first use (it needs httpx; `Store` does not)."""
    if name == "Client":
        from materializer.client import Client  # noqa: PLC0415

        return Client
    raise AttributeError(f"module 'materializer' has no attribute {name!r}")
