"""results: what the engine measured, as result types, tables and traces; nothing recomputed."""
