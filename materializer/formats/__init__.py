"""Formats: Kafka key and value bytes to key tuples (stored form) and field mappings.

`key_decoder(spec, registry)` and `value_decoder(spec, registry)` pick the decoder for
a relation's declared formats; every decoder raises `RecordError` (and only that)
for bytes it cannot decode, and an unreachable registry raises `InfrastructureError`.
"""
