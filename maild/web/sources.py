"""What the web part reads, handed to it by the daemon from the composition root's
services: it sees these, not the whole application."""

from __future__ import annotations

from dataclasses import dataclass
from email.policy import EmailPolicy

from maild.clock import Clock
from maild.config import Config
from maild.db.database import Database
from maild.db.rawstore import RawStore
from maild.runtime.metrics import Metrics
from maild.tickets.business_time import BusinessCalendar


@dataclass(frozen=True)
class WebSources:
    config: Config
    clock: Clock
    db: Database
    calendar: BusinessCalendar
    raw_store: RawStore  # received mail, read again for a thread's quoted history
    mail_policy: EmailPolicy  # how that mail's headers are read
    metrics: Metrics  # this process's counters, shown with the desk's figures
