"""The composition root: every service maild needs, built once and passed down.

Each service is given only what it uses (a clock, the business calendar, the SLA clocks,
the mails, the database, the stores, its section of the config); only `runtime/` and
`cli/` see the whole `App`.
"""

from __future__ import annotations

from dataclasses import dataclass

from maild.clock import Clock
from maild.config import Config
from maild.db.database import Database
from maild.db.migrate import upgrade_if_behind, upgrade_in_a_child_if_behind
from maild.db.rawstore import RawStore
from maild.db.secrets import site_secret
from maild.errors import TemporaryError
from maild.intake.parser_process import ParserProcess
from maild.intake.pipeline import Intake
from maild.mail.policy import MailPolicies
from maild.mail.reply_tokens import ReplyTokens
from maild.outbound.mails import Mails
from maild.outbound.sender import Sender
from maild.outbound.templates import Templates
from maild.runtime.leases import Leases
from maild.runtime.metrics import Metrics
from maild.tickets.alerts import SlaAlerts
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.digest import WeeklyDigest
from maild.tickets.followups import FollowUps
from maild.tickets.sla import SlaClocks
from maild.tickets.surveys import Surveys


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
    mails: Mails
    intake: Intake
    sender: Sender
    followups: FollowUps
    surveys: Surveys
    sla_alerts: SlaAlerts
    reply_tokens: ReplyTokens
    metrics: Metrics  # what this process counts, for /metrics
    digest: WeeklyDigest
    leases: Leases  # one reader per mailbox across processes

    def close(self) -> None:
        self.parser.close()
        self.leases.close()
        self.db.dispose()


def build_app(config: Config, clock: Clock, *, migrate: bool = True,
              migrate_in_a_child: bool = False) -> App:
    """`migrate`: bring the schema to the newest revision first, if it is behind;
    `migrate_in_a_child` in a process of its own (as the command line does), so that this
    one never imports Alembic (12 MB, bench/README.md)."""
    try:
        config.storage.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TemporaryError(f"storage.dir {config.storage.dir}: {exc.strerror}") from exc
    db = Database(config.storage.url)
    if migrate:
        try:
            (upgrade_in_a_child_if_behind if migrate_in_a_child else upgrade_if_behind)(db)
        except BaseException:
            db.dispose()  # no App holds it to close
            raise
    reply_tokens = ReplyTokens(site_secret(db, "reply_tokens", clock.now()))
    raw_store = RawStore(config.storage.dir / "raw")
    attachment_store = RawStore(config.storage.dir / "attachments", suffix=".bin")
    templates = Templates(config.templates.dir,
                          compiled_dir=config.storage.dir / "compiled-templates")
    calendar = BusinessCalendar(config.business_hours)
    sla = SlaClocks(config.sla, calendar)
    policies = MailPolicies()
    metrics = Metrics()
    parser = ParserProcess(config.intake.parse_in_second_process, policies.reading)
    mails = Mails(config=config, templates=templates, clock=clock, calendar=calendar, sla=sla,
                  raw_store=raw_store, policy=policies.writing,
                  attachment_store=attachment_store, reply_tokens=reply_tokens)
    return App(
        config=config,
        clock=clock,
        db=db,
        raw_store=raw_store,
        attachment_store=attachment_store,
        templates=templates,
        calendar=calendar,
        sla=sla,
        parser=parser,
        mails=mails,
        intake=Intake(config=config, clock=clock, db=db, raw_store=raw_store,
                      attachment_store=attachment_store, parser=parser, sla=sla, mails=mails,
                      reply_tokens=reply_tokens, metrics=metrics),
        sender=Sender(db, clock, raw_store, config.outbound, metrics),
        followups=FollowUps(db, clock, calendar, sla, mails, config.followup,
                            config.outbound.auto_replies_per_hour),
        surveys=Surveys(db, clock, mails, config.outbound.auto_replies_per_hour),
        sla_alerts=SlaAlerts(db, clock, sla, mails, config.staff),
        reply_tokens=reply_tokens,
        metrics=metrics,
        digest=WeeklyDigest(db, clock, calendar, mails, config.digest, config.support.domain),
        leases=Leases(config.storage.url, config.storage.dir),
    )
