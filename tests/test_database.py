"""The engine maild builds: savepoints sent as plain text, the same text SQLAlchemy
compiles, and rolled back as they should be."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.sql.expression import (
    ReleaseSavepointClause,
    RollbackToSavepointClause,
    SavepointClause,
)

from maild.db.models import QuarantinedMail
from maild.runtime.app import App


def test_savepoints_are_the_statements_sqlalchemy_would_compile(app: App) -> None:
    sent: list[str] = []

    def listener(*args: Any) -> None:
        if "SAVEPOINT" in args[2]:
            sent.append(args[2])

    event.listen(app.db.engine, "before_cursor_execute", listener)
    with app.db.transaction() as session:
        with session.begin_nested():
            session.add(QuarantinedMail(raw_sha256="a" * 64, channel="test", reason="kept",
                                        received_at=app.clock.now(), status="held"))
        try:
            with session.begin_nested():
                session.add(QuarantinedMail(raw_sha256="b" * 64, channel="test",
                                            reason="undone", received_at=app.clock.now(),
                                            status="held"))
                session.flush()
                raise RuntimeError("undo this savepoint")
        except RuntimeError:
            pass
        kept = session.scalar(select(func.count()).select_from(QuarantinedMail))
    event.remove(app.db.engine, "before_cursor_execute", listener)

    assert kept == 1
    dialect = app.db.engine.dialect
    names = ["sa_savepoint_1", "sa_savepoint_2"]
    assert sent == [str(clause.compile(dialect=dialect)) for clause in (
        SavepointClause(names[0]), ReleaseSavepointClause(names[0]),
        SavepointClause(names[1]), RollbackToSavepointClause(names[1]))]
