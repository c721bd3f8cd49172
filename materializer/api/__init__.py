"""The HTTP lookup API (SPEC §7): app, edge middleware, key text, models, metrics."""
