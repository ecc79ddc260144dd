"""Storage: the engine, the schema and its migrations, the raw store."""
