"""The composition root: every service maild needs, built once and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

from maild.clock import Clock
from maild.config import Config
from maild.db.database import Database
from maild.db.migrate import upgrade
from maild.db.rawstore import RawStore
from maild.errors import TemporaryError
from maild.intake.parser_process import ParserProcess
from maild.outbound.templates import Templates
from maild.runtime.metrics import Metrics
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.sla import SlaClocks


@dataclass(frozen=True)
class App:
    config: Config
    clock: Clock
    db: Database
    raw_store: RawStore
    attachment_store: RawStore
    templates: Templates
    calendar: BusinessCalendar
    sla: SlaClocks
    parser: ParserProcess
    metrics: Metrics = field(default_factory=Metrics)

    def close(self) -> None:
        self.parser.close()
        self.db.dispose()


def build_app(config: Config, clock: Clock, *, migrate: bool = True) -> App:
    try:
        config.storage.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TemporaryError(f"storage.dir {config.storage.dir}: {exc.strerror}") from exc
    db = Database(config.storage.url)
    calendar = BusinessCalendar(config.business_hours)
    if migrate:
        upgrade(db)
    return App(
        config=config,
        clock=clock,
        db=db,
        raw_store=RawStore(config.storage.dir / "raw"),
        attachment_store=RawStore(config.storage.dir / "attachments", suffix=".bin"),
        templates=Templates(config.templates.dir),
        calendar=calendar,
        sla=SlaClocks(config.sla, calendar),
        parser=ParserProcess(config.intake.parse_in_second_process),
    )
