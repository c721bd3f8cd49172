"""The faust sensor through which each `lmdb://` store (`connectors.faust.LmdbStore`) learns
which of its writes faust logged to the changelog and which changelog records the broker
acknowledged or refused."""

from __future__ import annotations

from typing import Any, Protocol

from faust.sensors import Sensor
from faust.types import AppT, CollectionT


class ChangelogListener(Protocol):
    """What the sensor tells a store."""

    def announced(self) -> None:
        """faust is about to set or delete a key of the table, with a changelog record."""

    def acked(self, partition: int, offset: int, key: Any, value: Any) -> None:
        """The broker acknowledged a changelog record of the table at this offset."""

    def failed(self, partition: int | None, key: Any, exc: BaseException) -> None:
        """A changelog record of the table was not produced."""


class ChangelogSensor(Sensor):
    """Tells each LMDB store of an app which writes faust logged (`on_table_set/del`,
    called between sending the changelog record and setting the store) and what the
    broker acknowledged (`on_send_completed`, with the record's bytes and offset)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.by_table: dict[int, ChangelogListener] = {}
        self.by_topic: dict[str, ChangelogListener] = {}

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        store = self.by_table.get(id(table))
        if store is not None:
            store.announced()

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        store = self.by_table.get(id(table))
        if store is not None:
            store.announced()

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int,
                          valsize: int) -> Any:
        store = self.by_topic.get(topic)
        return None if store is None else (store, message)

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        if state is not None:
            store, message = state
            store.acked(metadata.partition, metadata.offset, message.key, message.value)

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        if state is not None:
            store, message = state
            store.failed(message.partition, message.key, exc)


def sensor_of(app: AppT) -> ChangelogSensor:
    """The app's one sensor for its LMDB stores (added to the app the first time)."""
    sensor = getattr(app, "_materializer_lmdb_sensor", None)
    if sensor is None:
        sensor = ChangelogSensor()
        app.sensors.add(sensor)
        app._materializer_lmdb_sensor = sensor  # type: ignore[attr-defined]
    assert isinstance(sensor, ChangelogSensor)
    return sensor
