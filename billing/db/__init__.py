"""Persistence: SQLAlchemy models per domain concept, the engine factory and Alembic migrations."""
