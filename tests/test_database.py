"""The engine maild builds: a savepoint per message, released or rolled back as it
should be."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select

from maild.db.models import QuarantinedMail
from maild.runtime.app import App


def test_a_savepoint_keeps_or_undoes_only_its_own_rows(app: App) -> None:
    sent: list[str] = []

    def listener(*args: Any) -> None:
        if "SAVEPOINT" in args[2]:
            sent.append(args[2].rsplit(" ", 1)[0])

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
        kept = session.scalars(select(QuarantinedMail.reason)).all()
    event.remove(app.db.engine, "before_cursor_execute", listener)

    assert kept == ["kept"]
    assert sent == ["SAVEPOINT", "RELEASE SAVEPOINT", "SAVEPOINT", "ROLLBACK TO SAVEPOINT"]
    with app.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(QuarantinedMail)) == 1
