"""Storage: the engine, sessions, models and migrations; the only package that knows SQLite from PostgreSQL."""
