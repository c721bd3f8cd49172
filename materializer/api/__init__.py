"""The HTTP lookup API (SPEC §7): app, routes, serve, edge middleware, key text, models,
metrics."""
