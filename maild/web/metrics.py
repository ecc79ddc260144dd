"""GET /metrics: the process's own counts (maild/runtime/metrics.py) and the figures that
describe the desk, read from the database at each scrape.

Read from the database, the desk's figures are the same from every maild that shares
it: scrape any one of them for the desk (or take the max over several), and each for its
own counters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maild.channels.imap.state import connections
from maild.errors import TemporaryError
from maild.intake.quarantine import held_count
from maild.outbound.outbox import backlog
from maild.tickets.desk import open_by_status, sla_breaches
from maild.web.sources import WebSources

log = logging.getLogger(__name__)


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


class DeskCollector(Collector):
    """Gauges computed from the database when Prometheus asks."""

    def __init__(self, app: WebSources) -> None:
        self.app = app

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing is read from the database when registering

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("maild_database_up",
                               "1 when the database answered this scrape, else 0")
        try:
            families = self._read()
        except TemporaryError as exc:
            log.warning("metrics: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[Metric]:
        now = self.app.clock.now()
        with self.app.db.reading() as session:
            statuses = open_by_status(session)
            breaches = sla_breaches(session, now)
            outbox = backlog(session)
            held = held_count(session)
            mailboxes = connections(session)

        tickets = GaugeMetricFamily("maild_open_tickets", "Tickets not resolved, by status",
                                    labels=["status"])
        for status, count in statuses.items():
            tickets.add_metric([status], count)
        breached = GaugeMetricFamily(
            "maild_sla_breached_tickets",
            "Tickets not resolved whose SLA due time passed unmet, by target",
            labels=["target"])
        for target, count in breaches.items():
            breached.add_metric([target], count)
        oldest = (now - outbox.oldest).total_seconds() if outbox.oldest else 0.0
        families: list[Metric] = [
            tickets, breached,
            GaugeMetricFamily("maild_outbox_queued", "Mail waiting in the outbox to be sent",
                              value=outbox.queued),
            GaugeMetricFamily("maild_outbox_oldest_age_seconds",
                              "Age of the oldest mail waiting in the outbox (0: none waits)",
                              value=max(0.0, oldest)),
            GaugeMetricFamily("maild_outbox_failed", "Outbox mail given up on",
                              value=outbox.failed),
            GaugeMetricFamily("maild_quarantine_held", "Messages set aside for an operator",
                              value=held),
        ]
        connected = GaugeMetricFamily(
            "maild_imap_connected",
            "1 while the maild reading the mailbox is connected to it, else 0",
            labels=["mailbox"])
        polled = GaugeMetricFamily(
            "maild_imap_last_poll_timestamp_seconds",
            "When the mailbox's reader last looked at its folder and the server answered",
            labels=["mailbox"])
        for mailbox in self.app.config.mailboxes:
            row = mailboxes.get(mailbox.name)
            connected.add_metric([mailbox.name], 1 if row and row.state == "connected" else 0)
            if row is not None and row.last_poll_at is not None:
                polled.add_metric([mailbox.name], _seconds(row.last_poll_at))
        families += [connected, polled]
        return families


def exposition(app: WebSources) -> bytes:
    """The Prometheus text of this process, desk figures included (reads the database)."""
    return generate_latest(app.metrics.registry)
