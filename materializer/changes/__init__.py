"""Change events (SPEC §5): the applied `Change`, Debezium envelopes, and the outbox."""
