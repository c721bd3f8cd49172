"""The producer of change events, dead letters and membership keeps each partition's order
(connectors.producer.sink_settings): one request in flight unless the producer is
idempotent, whatever the catalog's Kafka settings say."""

from __future__ import annotations

import logging

import pytest

from connectors.producer import IN_ORDER, sink_settings


def test_one_request_in_flight_by_default() -> None:
    settings = sink_settings({"bootstrap.servers": "x:1"})
    assert settings[IN_ORDER] == 1 and settings["enable.idempotence"] is False
    assert settings["bootstrap.servers"] == "x:1"


def test_more_in_flight_without_idempotence_is_lowered_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="materializer.kafka"):
        settings = sink_settings({"bootstrap.servers": "x:1", IN_ORDER: "5"})
    assert settings[IN_ORDER] == 1
    assert "lowered to 1" in caplog.text and "enable.idempotence: true" in caplog.text


@pytest.mark.parametrize("idempotence", ["true", "True", True])
def test_an_idempotent_producer_keeps_its_requests_in_flight(idempotence: object) -> None:
    settings = sink_settings({"bootstrap.servers": "x:1", "enable.idempotence": idempotence,
                              IN_ORDER: "5"})  # type: ignore[dict-item]
    assert settings[IN_ORDER] == "5"
