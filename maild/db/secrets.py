"""Keys maild makes for itself: random on first use, then kept in the database, so that
they survive restarts and every process sharing the database uses the same one."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from maild.db.database import Database
from maild.db.models import SiteSecret


def site_secret(db: Database, name: str, now: datetime) -> bytes:
    """The secret called `name`, made now if there is none yet. Two processes making it
    at once: the second one's insert fails on the key, and it reads the first one's."""
    query = select(SiteSecret.value).where(SiteSecret.name == name)
    with db.transaction() as session:
        value = session.scalar(query)
        if value is not None:
            return bytes.fromhex(value)
    try:
        with db.transaction() as session:
            value = secrets.token_hex(32)
            session.add(SiteSecret(name=name, value=value, created_at=now))
        return bytes.fromhex(value)
    except IntegrityError:
        with db.transaction() as session:
            return bytes.fromhex(session.scalars(query).one())
