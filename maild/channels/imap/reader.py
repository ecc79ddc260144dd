"""Reading one IMAP mailbox into the intake pipeline, for as long as the daemon runs.

The order is what keeps every message exactly once: fetch with BODY.PEEK[] (nothing is
marked \\Seen), store and commit, then file the message away to the processed folder.
A crash before filing away means the message is read again and recognised as a
duplicate. Waiting for mail uses IDLE where the server offers it, else polling; every
fault of the connection ends in a reconnect after a capped, jittered backoff.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient

from maild.channels.imap.folders import ensure_folder, file_away
from maild.channels.imap.session import (
    CONNECTION_FAULTS,
    Session,
    describe,
    open_session,
    token_source,
)
from maild.channels.imap.state import (
    last_uid_for,
    record_connection,
    record_poll,
    remember_last_uid,
)
from maild.config import MailboxConfig
from maild.errors import TemporaryError
from maild.intake.pipeline import IngestResult, Intake, intake_batch, quarantine
from maild.runtime.backoff import Backoff
from maild.runtime.leases import Leases

log = logging.getLogger(__name__)

# How often a wait in IDLE looks at the stop flag; also the unit of the dead-socket test.
IDLE_SLICE_SECONDS = 1.0
# Mail that arrives between a command and the IDLE after it is not announced by every
# server (Dovecot 2.3 waits for its 30 s check), so the first IDLE after handling mail
# ends this soon, and the SELECT after it finds what slipped in.
CONFIRM_SECONDS = 1.0
# Partial fetches of a message too large to hold in memory.
CHUNK_BYTES = 1024 * 1024
# A message larger than this goes to disk in partial fetches and is read from there, its
# large attachments streamed (maild/intake/large.py): memory stays flat whatever comes.
STREAM_BYTES = 4 * 1024 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # what a message expunged meanwhile leaves
BACKOFF_CAP_SECONDS = 300.0
# A standby reader asks for the mailbox's lease this often. The holder checks it still
# has it before each message and every IDLE slice, so it notices a lost lease within
# about two seconds (leases.CONFIRMED_FOR_SECONDS + IDLE_SLICE_SECONDS); a standby that
# takes the lease over waits longer than that before it reads, so the two never read at
# once.
LEASE_RETRY_SECONDS = 2.0
TAKEOVER_GRACE_SECONDS = 5.0
RECOVERABLE: tuple[type[BaseException], ...] = (TemporaryError, *CONNECTION_FAULTS)


@dataclass
class DrainReport:
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    ignored: int = 0  # automatic mail for no ticket, filed with its reason
    last_uid: int = 0  # every message up to this UID is filed away

    @property
    def handled(self) -> int:
        return self.stored + self.duplicates + self.quarantined + self.ignored

    def count(self, result: IngestResult) -> None:
        if result.outcome == "stored":
            self.stored += 1
        elif result.outcome == "duplicate":
            self.duplicates += 1
        elif result.outcome == "ignored":
            self.ignored += 1
        else:
            self.quarantined += 1


def plan_batches(
    sizes: dict[int, int], max_messages: int, max_bytes: int
) -> Iterator[list[int]]:
    """UIDs in ascending order, grouped so no fetch holds more than max_bytes at once
    (a single larger message is fetched alone)."""
    batch: list[int] = []
    held = 0
    for uid in sorted(sizes):
        size = sizes[uid]
        if batch and (len(batch) >= max_messages or held + size > max_bytes):
            yield batch
            batch, held = [], 0
        batch.append(uid)
        held += size
    if batch:
        yield batch


def _announces_mail(response: tuple[object, ...]) -> bool:
    return len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")


def _arrivals(selected: dict[bytes, Any]) -> tuple[int, int]:
    """What a SELECT answer says about mail landed: UIDNEXT moves on with every new
    message (RFC 3501 requires it in the answer); a server that leaves it out is judged
    by its message count, which filing away also changes (a search for nothing)."""
    if b"UIDNEXT" in selected:
        return int(selected[b"UIDNEXT"]), 0
    return 0, int(selected[b"EXISTS"])


@dataclass(frozen=True)
class ReaderStatus:
    """How a reader stands now, for /healthz: starting, connected, standby (another maild
    holds the mailbox), backoff (after a fault, until it tries again) or stopped."""

    state: str
    detail: str = ""


class FolderRenumbered(TemporaryError):
    """The folder's UIDVALIDITY changed under the reader: read it again from the start."""


class MailboxBusy(TemporaryError):
    """Another maild holds the mailbox's lease and reads it."""


class MailboxReader:
    def __init__(
        self,
        intake: Intake,
        leases: Leases,
        mailbox: MailboxConfig,
        on_stored: Callable[[IngestResult], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.intake = intake
        self.mailbox = mailbox
        self.on_stored = on_stored or (lambda result: None)
        self.backoff = backoff or Backoff(cap=BACKOFF_CAP_SECONDS)
        self.tokens = token_source(mailbox, intake.clock)
        self.channel = f"imap:{mailbox.name}"
        self.name = f"mailbox {mailbox.name}"
        # One reader per mailbox across every maild sharing the database.
        self.lease = leases.lease(f"mailbox-{mailbox.name}")
        self._standing_by = False
        self.status = ReaderStatus("starting")

    # --- the daemon's loop ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Read until `stop` is set. Never returns early for a transient fault."""
        try:
            while not stop.is_set():
                if self._take_lease(stop):
                    self._serve_safely(stop)
                    if not stop.is_set() and not self.lease.held():
                        self._pause_after_losing_the_lease(stop)
        finally:
            if self.status.state in ("connected", "backoff"):  # ours to tell
                record_connection(self.intake.db, self.intake.clock, self.mailbox.name, "stopped")
            self.status = ReaderStatus("stopped")
            self.lease.release()

    def _pause_after_losing_the_lease(self, stop: threading.Event) -> None:
        """Its database session ended (a restart, a network fault): a standby elsewhere,
        whose own session is sound, gets the first chance to take the mailbox over."""
        self.status = ReaderStatus(
            "standby", f"lost its lease; asking again in {TAKEOVER_GRACE_SECONDS:g} s")
        stop.wait(TAKEOVER_GRACE_SECONDS)

    def _take_lease(self, stop: threading.Event) -> bool:
        try:
            taken = self.lease.try_acquire()
        except Exception as exc:  # the lock file's disk, say: try again, never die
            delay = self.backoff.next_delay()
            log.warning("%s: cannot take the lease to read it (%s); trying again in %.1f s",
                        self.name, exc, delay)
            stop.wait(delay)
            return False
        if taken:
            if self._standing_by:
                log.info("%s: the other reader is gone; taking over in %g s", self.name,
                         TAKEOVER_GRACE_SECONDS)
                self.status = ReaderStatus("starting")
                # The other may still be reading: its lock's session was ended under it
                # (a PostgreSQL restart), and it has yet to notice.
                stop.wait(TAKEOVER_GRACE_SECONDS)
                if stop.is_set() or not self.lease.held():
                    return False  # lost meanwhile: still a standby, waiting again next time
                self._standing_by = False
            return True
        if not self._standing_by:
            log.info("%s: another maild is reading it; standing by", self.name)
            self._standing_by = True
            self.status = ReaderStatus("standby", "another maild is reading it")
        stop.wait(LEASE_RETRY_SECONDS)
        return False

    def _serve_safely(self, stop: threading.Event) -> None:
        try:
            self._serve(stop)
        except RECOVERABLE as exc:
            delay = self.backoff.next_delay()
            said = describe(exc)
            if not said.startswith(self.name):
                said = f"{self.name}: {said}"
            log.warning("%s; trying again in %.1f s", said, delay)
            self._backing_off(said.removeprefix(f"{self.name}: "), delay)
            stop.wait(delay)
        except Exception as exc:
            delay = self.backoff.next_delay()
            log.exception("%s: unexpected failure; trying again in %.1f s", self.name, delay)
            self._backing_off(f"unexpected failure: {exc!r}", delay)
            stop.wait(delay)

    def _backing_off(self, fault: str, delay: float) -> None:
        record_connection(self.intake.db, self.intake.clock, self.mailbox.name, "backoff", fault)
        self.status = ReaderStatus("backoff", f"{fault}; trying again in {delay:.1f} s")

    def drain_once(self) -> DrainReport:
        """`maild run --once`: everything waiting in the folder now, then log out."""
        if not self.lease.try_acquire():
            raise MailboxBusy(f"{self.name}: another maild is reading it")
        try:
            session = open_session(self.mailbox, self.tokens)
            try:
                last_uid, _ = self._open_folder(session.client)
                return self._drain(session.client, threading.Event(), last_uid, rescan=True)
            except CONNECTION_FAULTS as exc:
                raise TemporaryError(f"{self.name}: {describe(exc)}") from exc
            finally:
                session.close()
        finally:
            self.lease.release()

    def _serve(self, stop: threading.Event) -> None:
        session = open_session(self.mailbox, self.tokens)
        try:
            client = session.client
            last_uid, selected = self._open_folder(client)
            uidvalidity, seen = int(selected[b"UIDVALIDITY"]), _arrivals(selected)
            # Anything still in the folder is unread, or was stored and not yet filed away.
            report = self._drain(client, stop, last_uid, rescan=True)
            last_uid = report.last_uid
            self.backoff.reset()
            idle = self.mailbox.idle and client.has_capability("IDLE")
            log.info(
                "%s: reading %s on %s as %s (%s); %d message(s) waiting were handled",
                self.name, self.mailbox.folder, self.mailbox.host, self.mailbox.username,
                "IDLE" if idle else f"polling every {self.mailbox.poll_seconds:g} s",
                report.handled,
            )
            # Recorded before /healthz says so: whoever sees it healthy finds the mailbox
            # connected in maild_imap_connected too.
            record_connection(self.intake.db, self.intake.clock, self.mailbox.name, "connected")
            self.status = ReaderStatus("connected")
            confirm = True
            while (not stop.is_set() and not self._login_expired(session)
                   and self._still_ours()):
                if idle:
                    # Mail that lands while another command runs is announced with that
                    # command's answer and never again (a SEARCH's, say: the search did
                    # not see it), so before each wait the folder is selected afresh:
                    # its answer tells whether anything landed since the last look.
                    now = self._look_again(client, uidvalidity)
                    record_poll(self.intake.db, self.intake.clock, self.mailbox.name)
                    if now == seen:
                        self._wait_in_idle(client, stop, CONFIRM_SECONDS if confirm else None)
                        confirm = False
                        continue
                    seen = now
                else:
                    stop.wait(self.mailbox.poll_seconds)
                    client.noop()
                    record_poll(self.intake.db, self.intake.clock, self.mailbox.name)
                if stop.is_set():
                    break
                report = self._drain(client, stop, last_uid, rescan=False)
                last_uid = report.last_uid
                confirm = confirm or report.handled > 0
        finally:
            session.close()

    def _still_ours(self) -> bool:
        if self.lease.held():
            return True
        log.warning("%s: no longer ours to read (the database session holding it ended); "
                    "stopping, to take it again or leave it to another maild", self.name)
        return False

    def _login_expired(self, session: Session) -> bool:
        if session.expires_at is None or self.intake.clock.now() < session.expires_at:
            return False
        log.info("%s: the access token has expired; logging in again", self.name)
        return True

    # --- folders and state ------------------------------------------------------------------

    def _open_folder(self, client: IMAPClient) -> tuple[int, dict[bytes, Any]]:
        """Select the folder; the last UID handled in it (0 if it was renumbered), and
        the server's answer to the SELECT."""
        ensure_folder(client, self.mailbox.processed_folder)
        ensure_folder(client, self.mailbox.quarantine_folder)
        selected = client.select_folder(self.mailbox.folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = last_uid_for(self.intake.db, self.intake.clock, self.mailbox.name,
                                self.mailbox.folder, uidvalidity)
        return last_uid, selected

    def _look_again(self, client: IMAPClient, uidvalidity: int) -> tuple[int, int]:
        """Select the folder again: the server brings the session up to date and answers
        with the whole state (imapclient returns all of that answer), so nothing that
        landed before it goes unseen, whatever earlier answers carried."""
        selected = client.select_folder(self.mailbox.folder)
        if int(selected[b"UIDVALIDITY"]) != uidvalidity:
            raise FolderRenumbered(f"{self.name}: {self.mailbox.folder} was renumbered")
        return _arrivals(selected)

    # --- waiting ------------------------------------------------------------------------------

    def _wait_in_idle(
        self, client: IMAPClient, stop: threading.Event, seconds: float | None = None
    ) -> None:
        """Return when mail may have arrived, when told to stop, or when IDLE is due for
        renewal (after `seconds`, by default the mailbox's idle_renew_seconds).

        The DONE that ends every IDLE is answered by a live server, so it doubles as the
        liveness check: a server that died or a network that hangs raises there.
        """
        client.idle()
        renew_at = time.monotonic() + (seconds or self.mailbox.idle_renew_seconds)
        try:
            while not stop.is_set() and time.monotonic() < renew_at and self.lease.held():
                started = time.monotonic()
                responses = client.idle_check(timeout=IDLE_SLICE_SECONDS)
                if any(_announces_mail(r) for r in responses):
                    return
                if not responses and time.monotonic() - started < IDLE_SLICE_SECONDS / 2:
                    # The socket woke us with nothing to read: the server closed the
                    # connection (imapclient then returns [] at once, forever).
                    return
        finally:
            client.idle_done()

    # --- draining -----------------------------------------------------------------------------

    def _drain(
        self, client: IMAPClient, stop: threading.Event, last_uid: int, *, rescan: bool
    ) -> DrainReport:
        """Ingest the messages after `last_uid`, in batches; with `rescan`, every message
        in the folder (left there by a crash or a failed move, or renumbered)."""
        report = DrainReport(last_uid=last_uid)
        if not self.lease.held():
            return report
        if rescan:
            uids = client.search(["NOT", "DELETED"])
        else:
            uids = [u for u in client.search(["UID", f"{last_uid + 1}:*", "NOT", "DELETED"])
                    if u > last_uid]
        if not uids:
            return report
        sizes = {
            uid: int(data.get(b"RFC822.SIZE", 0))
            for uid, data in client.fetch(uids, ["RFC822.SIZE"]).items()
        }
        too_large = {uid for uid, size in sizes.items()
                     if size > self.mailbox.max_message_bytes}
        for uid in sorted(too_large):
            if stop.is_set() or not self.lease.held():
                return report
            self._set_aside_too_large(client, uid, sizes.pop(uid), report)
        for batch in plan_batches(sizes, self.mailbox.batch_messages, self.mailbox.batch_bytes):
            if stop.is_set() or not self.lease.held():
                break
            handled = self._ingest_batch(client, batch, sizes, stop, report)
            if handled:
                report.last_uid = max(report.last_uid, *handled)
                remember_last_uid(self.intake.db, self.intake.clock, self.mailbox.name,
                                  report.last_uid)
        return report

    def _ingest_batch(
        self, client: IMAPClient, batch: list[int], sizes: dict[int, int],
        stop: threading.Event, report: DrainReport,
    ) -> list[int]:
        """Store a batch in one transaction, then file away what it committed. A fault
        part-way (the disk, say) still commits and files away the messages before it."""
        streamed = {uid for uid in batch if sizes[uid] > STREAM_BYTES}
        whole = [uid for uid in batch if uid not in streamed]
        fetched = client.fetch(whole, ["BODY.PEEK[]"]) if whole else {}
        taken: list[int] = []  # the UIDs taken, in the order the batch took them
        fault: TemporaryError | None = None
        with intake_batch(self.intake, self.channel, self.mailbox.name) as intake:
            intake.parse_ahead([data[b"BODY[]"] for data in fetched.values()
                                if isinstance(data.get(b"BODY[]"), bytes)])
            for uid in batch:
                if stop.is_set() or not self.lease.held():
                    break
                try:
                    if uid in streamed:
                        raw_sha256 = self.intake.raw_store.put_chunks(
                            self._chunks(client, uid, sizes[uid]))
                        if raw_sha256 == EMPTY_SHA256:
                            continue  # expunged by someone else since the search
                        intake.ingest_stored(raw_sha256)
                        taken.append(uid)
                        continue
                    # Held until it is stored; a small message's bytes until the batch
                    # writes its rows (at most batch_bytes in all).
                    data = fetched.pop(uid, None)
                    if data is None or b"BODY[]" not in data:
                        continue  # expunged by someone else since the search
                    raw = data[b"BODY[]"]
                    # A server that answers NIL for the body: quarantined as empty, not
                    # retried forever in front of the messages after it.
                    raw = raw if isinstance(raw, bytes) else b""
                    intake.ingest(raw)
                    taken.append(uid)
                except TemporaryError as exc:
                    fault = exc
                    break
        # Final once the batch has ended: a message taken with others may yet have been
        # taken again alone (maild/intake/pipeline.py).
        results = list(zip(taken, intake.results, strict=True))
        for _, result in results:
            report.count(result)
            if result.outcome == "stored":
                self.on_stored(result)
        processed = [uid for uid, result in results if result.outcome != "quarantined"]
        quarantined = [uid for uid, result in results if result.outcome == "quarantined"]
        file_away(client, processed, self.mailbox.processed_folder)
        file_away(client, quarantined, self.mailbox.quarantine_folder)
        if fault is not None:
            raise fault
        return processed + quarantined

    def _set_aside_too_large(
        self, client: IMAPClient, uid: int, size: int, report: DrainReport
    ) -> None:
        """Keep it (streamed to the raw store, never whole in memory) and quarantine it."""
        raw_sha256 = self.intake.raw_store.put_chunks(self._chunks(client, uid, size))
        reason = (
            f"message of {size} bytes is larger than max_message_bytes "
            f"({self.mailbox.max_message_bytes}) of mailbox {self.mailbox.name}"
        )
        report.count(quarantine(self.intake, raw_sha256, self.channel, reason))
        file_away(client, [uid], self.mailbox.quarantine_folder)

    def _chunks(self, client: IMAPClient, uid: int, size: int) -> Iterator[bytes]:
        for offset in range(0, size, CHUNK_BYTES):
            section = f"BODY.PEEK[]<{offset}.{CHUNK_BYTES}>"
            data = client.fetch([uid], [section]).get(uid, {})
            chunk = data.get(f"BODY[]<{offset}>".encode(), b"")
            if not chunk:
                return
            yield chunk
