"""PostgreSQL advisory lock keys. Advisory locks are per database, not per schema, so a
key is named by the schema as well as by what it guards: desks in two schemas of one
database never hold each other's locks."""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, text


def lock_key(schema: str, name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    digest = hashlib.sha256(f"maild:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def schema_of(connection: Connection) -> str:
    """The schema `connection` works in (the first of its search_path that exists)."""
    return str(connection.scalar(text("SELECT current_schema()")) or "")
