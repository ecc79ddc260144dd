"""`maild run`: the inbound channels, the outbound sender and the scheduler, until told to stop."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from maild.channels.imap.reader import DrainReport, MailboxBusy, MailboxReader, ReaderStatus
from maild.errors import ConfigError, TemporaryError
from maild.intake.pipeline import IngestResult
from maild.outbound.sender import DeliveryReport
from maild.outbound.templates import TEMPLATE_NAMES
from maild.runtime.app import App
from maild.runtime.sweeps import run_sweeps
from maild.runtime.template_trial import TemplateTrials, fingerprint

if TYPE_CHECKING:
    from maild.web.server import WebServer
    from maild.web.sources import WebSources

log = logging.getLogger(__name__)

ROLES = ("inbound", "outbound", "scheduler")
SWEEP_INTERVAL_SECONDS = 60
READER_DRAIN_SECONDS = 60


@dataclass
class OnceReport:
    received: DrainReport = field(default_factory=DrainReport)
    unreachable: list[str] = field(default_factory=list)  # mailboxes that could not be read
    delivered: DeliveryReport = field(default_factory=DeliveryReport)
    sweeps: dict[str, int] = field(default_factory=dict)


def _unhealthy(status: ReaderStatus) -> str | None:
    """Why a reader in this state cannot take mail in; None when it can (connected), or
    when another maild reads its mailbox (standby: a known wait)."""
    if status.state in ("connected", "standby"):
        return None
    if status.state == "backoff":
        return f"not connected: {status.detail}"
    return "not connected yet" if status.state == "starting" else status.state


def web_sources(app: App) -> WebSources:
    """What the web part reads of the services the composition root built."""
    from maild.web.sources import WebSources

    return WebSources(config=app.config, clock=app.clock, db=app.db, calendar=app.calendar,
                      raw_store=app.raw_store, mail_policy=app.parser.policy,
                      metrics=app.metrics)


class Daemon:
    def __init__(self, app: App, roles: tuple[str, ...] = ROLES,
                 web_port: int | None = None) -> None:
        self.app = app
        self.roles = roles
        self.web_port = web_port
        self.sender = app.sender
        self._wake_sender = threading.Event()
        self.readers = [
            MailboxReader(app.intake, app.leases, box, self._on_stored)
            for box in app.config.mailboxes
        ] if "inbound" in roles else []

    def _on_stored(self, result: IngestResult) -> None:
        if result.outbox_queued:
            self._wake_sender.set()

    def _deliver_safely(self, stop: threading.Event | None = None, limit: int | None = 100
                        ) -> DeliveryReport:
        try:
            return self.sender.deliver_due(limit, stop=stop)
        except TemporaryError as exc:
            log.warning("outbound: %s", exc)
        except Exception:
            log.exception("outbound: unexpected failure; carrying on")
        return DeliveryReport()

    def _sweep_safely(self) -> dict[str, int]:
        try:
            return run_sweeps(self.app)
        except TemporaryError as exc:
            log.warning("scheduler: %s", exc)
        except Exception:
            log.exception("scheduler: a sweep failed; carrying on")
        return {}

    def health(self) -> list[str]:
        """What keeps this process's roles from working now (for /healthz); [] if nothing."""
        found = []
        for reader in self.readers:
            problem = _unhealthy(reader.status)
            if problem:
                found.append(f"{reader.name}: {problem}")
        return found

    def _start_web(self) -> WebServer | None:
        """The web part, when [web] enables it; a web part that cannot start (no token, the
        port taken) is refused with the reason, and the roles run without it."""
        if not self.app.config.web.enabled:
            return None
        from maild.web.server import WebServer

        try:
            server = WebServer(web_sources(self.app), self.health, self.web_port)
            server.start()
        except (ConfigError, TemporaryError) as exc:
            log.error("%s (the rest of maild runs)", exc)
            return None
        return server

    def _outbound_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            # Told to stop, the sender finishes the mail it is sending and releases the
            # rest of its claims, so that another sender takes them at once.
            report = self._deliver_safely(stop)
            if report.attempted == 0:
                self._wake_sender.wait(self.app.config.outbound.poll_seconds)
                self._wake_sender.clear()

    def run(self, stop: threading.Event) -> None:
        problems = self.app.templates.check(TEMPLATE_NAMES)
        if problems:  # refuse to start rather than fail on the first customer's mail
            raise ConfigError([f"templates: {problem}" for problem in problems])
        self._warn_about_templates()
        self._remove_stale_temporaries()
        listener = scheduler = sender_thread = None
        reader_threads: list[threading.Thread] = []
        web = self._start_web()
        try:
            if "inbound" in self.roles and self.app.config.inbound_smtp.enabled:
                # Imported here, as the trial of the templates below: what a start that
                # needs neither would import (aiosmtpd, the sample situations) costs it
                # more than a twentieth of a second.
                from maild.channels.smtp_listener import SmtpListener

                listener = SmtpListener(self.app.intake, self.app.config.inbound_smtp,
                                        self._on_stored)
                listener.start()
            for reader in self.readers:
                thread = threading.Thread(
                    target=reader.run, args=(stop,), name=reader.channel, daemon=True
                )
                thread.start()
                reader_threads.append(thread)
            if "outbound" in self.roles:
                sender_thread = threading.Thread(
                    target=self._outbound_loop, args=(stop,), name="outbound", daemon=True
                )
                sender_thread.start()
            if "scheduler" in self.roles:
                # Imported here: `run --once` runs the sweeps itself, without a scheduler.
                from apscheduler.schedulers.background import BackgroundScheduler

                scheduler = BackgroundScheduler(timezone="UTC")
                scheduler.add_job(
                    self._sweep_safely, "interval", seconds=SWEEP_INTERVAL_SECONDS,
                    id="sweeps", coalesce=True, max_instances=1,
                )
                scheduler.start()
                self._sweep_safely()
            log.info("maild running: %s", ", ".join(self.roles))
            stop.wait()
        finally:
            log.info("maild stopping")
            if listener is not None:
                listener.stop()
            for thread in reader_threads:
                # Each reader finishes the message in hand and files it away first.
                thread.join(timeout=READER_DRAIN_SECONDS)
                if thread.is_alive():
                    log.warning("%s did not finish in %s s", thread.name, READER_DRAIN_SECONDS)
            self._wake_sender.set()
            if sender_thread is not None:
                sender_thread.join(timeout=self.app.config.outbound.timeout_seconds + 5)
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            if web is not None:
                web.stop()
            log.info("maild stopped")

    def _warn_about_templates(self) -> None:
        """Render every template in the situations `maild check` tries, and say which
        fail. The start goes on: mail is still stored, and each mail a template cannot
        make fails by itself, on its ticket; this says so before the first one does.
        Not again after a start that found none failing, if nothing it reads has changed
        (template_trial.py)."""
        trials = TemplateTrials(self.app.config.storage.dir / "compiled-templates" / "trial")
        try:
            tried = fingerprint(self.app.config)
            if trials.passed(tried):
                return
            from maild.runtime.checks import failing_templates

            failing = failing_templates(self.app.templates, self.app.config, self.app.clock)
        except Exception:  # a look ahead that must never keep mail from being taken in
            log.exception("the templates could not be tried at start")
            return
        if not failing:
            trials.remember_passed(tried)
        for problem in failing:
            log.warning("template %s; its mails are not sent until it is mended "
                        "(`maild check` lists every failure)", problem)

    def _remove_stale_temporaries(self) -> None:
        for store in (self.app.raw_store, self.app.attachment_store):
            removed = store.remove_stale_temporaries()
            if removed:
                log.info("removed %d temporary file(s) a stopped maild left in %s",
                         removed, store.directory)
        # Messages the listener was receiving when its maild stopped: never answered
        # 250, so their senders send them again.
        removed = self.app.raw_store.remove_abandoned_spools()
        if removed:
            log.warning("removed %d spool file(s) of messages a stopped maild was "
                        "receiving; their senders will send them again", removed)

    def run_once(self) -> OnceReport:
        """Everything due now, once: read the mailboxes, run the sweeps, deliver the
        outbox.

        One after the other, not side by side: a sender thread during the drain was
        measured (bench/README.md) and is slower. On SQLite the intake holds the write lock
        for most of each batch, so the sender, and its heartbeat, get in only between
        batches; on PostgreSQL the two share one interpreter, and the time the sending
        saves the intake loses."""
        self._warn_about_templates()
        self._remove_stale_temporaries()
        report = OnceReport()
        for reader in self.readers:
            try:
                drained = reader.drain_once()
            except MailboxBusy as exc:
                log.info("%s; leaving it to that one", exc)
                continue
            except TemporaryError as exc:
                log.warning("%s", exc)
                report.unreachable.append(reader.mailbox.name)
                continue
            report.received.stored += drained.stored
            report.received.duplicates += drained.duplicates
            report.received.quarantined += drained.quarantined
            report.received.ignored += drained.ignored
        if "scheduler" in self.roles:
            report.sweeps = self._sweep_safely()
        if "outbound" in self.roles:
            while True:
                # No stop to look out for between rounds: one round, its connections kept.
                batch = self._deliver_safely(limit=None)
                report.delivered.sent += batch.sent
                report.delivered.deferred += batch.deferred
                report.delivered.failed += batch.failed
                if batch.attempted == 0 or batch.sent == 0:
                    break
        return report
