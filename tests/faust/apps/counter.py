"""A faust app written only against faust's documented API (the store comes from the
environment: memory:// or lmdb://). It counts words per key, per key and minute
(a tumbling window), and keeps the last word per key in a global table.

Environment: FAUST_APP_ID, FAUST_BROKER (host:port), FAUST_STORE, FAUST_DATADIR,
FAUST_TOPIC (the source topic, 2 partitions: key text, value text)."""

import os

import faust

app = faust.App(
    os.environ["FAUST_APP_ID"],
    broker="kafka://" + os.environ["FAUST_BROKER"],
    store=os.environ.get("FAUST_STORE", "memory://"),
    datadir=os.environ["FAUST_DATADIR"],
    topic_partitions=2,
    web_enabled=False,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=0.5,
    broker_commit_every=100,
    broker_commit_interval=0.5,
    # the embedded broker's high watermark is the base offset of the last record batch
    # + 1 (it can be below the true end): faust's check would take a persisted offset
    # past it for data removed from the topic
    recovery_consistency_check=False,
)
words = app.topic(os.environ["FAUST_TOPIC"], key_type=str, value_type=str,
                  key_serializer="raw", value_serializer="raw", partitions=2)
counts = app.Table("counts", default=int, key_type=str, partitions=2)
hits = app.Table("hits", default=int, key_type=str, partitions=2).tumbling(60.0)
last = app.GlobalTable("last", key_type=str, value_type=str, partitions=2)


@app.agent(words)
async def count(stream: faust.StreamT) -> None:
    async for key, word in stream.items():
        counts[key] += 1
        hits[key] += 1
        last[key] = word


@app.timer(0.5)
async def report() -> None:
    print(f"COUNTED {sum(counts.values())} KEYS {len(counts)}", flush=True)


if __name__ == "__main__":
    app.main()
