"""Alembic environment: maild hands in the connection, nothing is read from alembic.ini."""

from __future__ import annotations

from alembic import context

from maild.db.fulltext import not_in_the_models
from maild.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=not_in_the_models,
)
with context.begin_transaction():
    context.run_migrations()
