"""A sender's heartbeat, in a thread of its own while the sender holds claims: a slow
SMTP transaction (up to the relay timeout, and more than one in a row) never lets the
claims lapse while the sender is alive. After each beat it frees the claims of senders
that went silent, so that the sender's own claims need not look (claims.claim)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from maild.db.database import Database
from maild.errors import TemporaryError
from maild.outbound.claims import beat, beat_interval, take_over_silent

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, db: Database, owner: str, first_beat: float,
                 silence_limit: timedelta) -> None:
        """`first_beat`: time.monotonic() taken before the claim that registered the
        owner (and so beat for it) began. `silence_limit`: how long a sender may be silent
        before another takes it for dead (outbound.sender_silence_seconds)."""
        self.db = db
        self.owner = owner
        self.silence_limit = silence_limit
        self.beat_every = beat_interval(silence_limit)
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._last_beat = first_beat
        self._thread = threading.Thread(target=self._run, name="outbox-heartbeat",
                                        daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """No more beats. A beat still waiting on the database is not waited for long:
        once the sender has left, that beat finds nothing to renew."""
        self._stop.set()
        self._thread.join(timeout=self.silence_limit.total_seconds())

    def holding(self) -> bool:
        """Whether the claims are surely still ours: not taken over, and the last beat
        recent enough that nobody can have found us silent (half the silence limit, so
        that a mail begun now is recorded before anyone may take it; a beat comes every
        fifth of it at most, so this holds from one beat to the next)."""
        if self._lost.is_set():
            return False
        return time.monotonic() - self._last_beat < self.silence_limit.total_seconds() / 2

    @property
    def lost(self) -> bool:
        """Another sender found us silent and took our claims over."""
        return self._lost.is_set()

    def lose(self) -> None:
        """A mail of ours turned out to be another's: we were found silent."""
        self._lost.set()

    def _run(self) -> None:
        while not self._stop.wait(self.beat_every.total_seconds()):
            # Taken before the beat: the database's beat_at is never older than what
            # holding() counts from, however long the transaction takes.
            beginning = time.monotonic()
            try:
                with self.db.transaction() as session:
                    alive = beat(session, self.owner)
            except TemporaryError as exc:  # the claims lapse unless the next beat goes
                log.warning("outbox sender %s: heartbeat failed: %s", self.owner, exc)
                continue
            except Exception:  # never a silent end of the thread: holding() tells the sender
                log.exception("outbox sender %s: heartbeat failed", self.owner)
                continue
            if not alive:
                log.error("outbox sender %s was found silent and its claims were taken "
                          "over; it stops sending them", self.owner)
                self._lost.set()
                return
            self._last_beat = beginning
            self._take_over_silent()

    def _take_over_silent(self) -> None:
        """In a transaction of its own: a beat never waits on another sender's mails."""
        try:
            with self.db.transaction() as session:
                take_over_silent(session, self.silence_limit)
        except TemporaryError as exc:  # the next beat looks again
            log.warning("outbox sender %s: could not look for silent senders: %s",
                        self.owner, exc)
        except Exception:
            log.exception("outbox sender %s: could not look for silent senders", self.owner)
