"""A faust agent that enriches orders with the user a materializer worker keeps:
a stream-table join without a repartition.

`materializer run tables.yaml` keeps `shop.users` in LMDB (./data); this agent looks
each order's user up there with `Store.open(...).table("shop.users").get(user_id)`,
a memory-mapped read of committed state (microseconds, no network, every partition of
the table on this machine), and sends the order with its user to `orders-enriched`.
The orders topic needs no repartition by user: any worker reads any user.

Run (with a broker at $BROKER, default localhost:9092):

    materializer run tables.yaml &
    python app.py worker -l info

Environment: BROKER, APP_ID, ORDERS_TOPIC, ENRICHED_TOPIC, MATERIALIZER_DATA, FAUST_DATADIR,
SESSION_TIMEOUT, HEARTBEAT_INTERVAL.
"""

from __future__ import annotations

import os
from typing import Any

import faust

from materializer import Store
from materializer.store import TableView

app = faust.App(
    os.environ.get("APP_ID", "enrich-orders"),
    broker="kafka://" + os.environ.get("BROKER", "localhost:9092"),
    datadir=os.environ.get("FAUST_DATADIR", "enrich-orders-data"),
    web_enabled=False,
    # group timeouts (faust's defaults; the embedded test broker wants 6 s and 0.5 s)
    broker_session_timeout=float(os.environ.get("SESSION_TIMEOUT", "60")),
    broker_heartbeat_interval=float(os.environ.get("HEARTBEAT_INTERVAL", "3")),
)


class Order(faust.Record, serializer="json"):
    order_id: int
    user_id: int
    total: float


orders = app.topic(os.environ.get("ORDERS_TOPIC", "orders"), key_type=str, value_type=Order,
                   key_serializer="raw")
enriched = app.topic(os.environ.get("ENRICHED_TOPIC", "orders-enriched"), key_type=str,
                     key_serializer="raw", value_serializer="json")
_users: TableView | None = None


def users() -> TableView:
    """The materializer table, opened on first use (the worker creates the data directory)."""
    global _users
    if _users is None:
        _users = Store.open(os.environ.get("MATERIALIZER_DATA", "data")).table("shop.users")
    return _users


@app.agent(orders)
async def enrich(stream: faust.StreamT[Order]) -> None:
    async for order in stream:
        user: dict[str, Any] | None = users().get(order.user_id, json_form=True)
        await enriched.send(key=str(order.order_id),
                            value={"order_id": order.order_id, "total": order.total,
                                   "user_id": order.user_id,
                                   "user_name": None if user is None else user["name"]})


if __name__ == "__main__":
    app.main()
