"""Parsing a batch's mail in a second process while this one stores what is parsed.

Parsing is about a fifth of what a message costs the intake, and it needs nothing but
the message's bytes: no database, no clock, no configuration. A second core can parse
the next messages of a batch while this process threads and stores the current one,
which one process cannot do for its Python code alone.

The parser process only ever gives a verdict on a mail (a ParsedMail, or the
PermanentError that quarantines it). Anything else (the process killed, an error of
the parser itself, a result that cannot cross back) leaves the mail to be parsed here,
where its fault is raised and logged as it always is: the second process can make the
intake faster, never different.
"""

from __future__ import annotations

import collections
import importlib
import logging
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from email.policy import EmailPolicy
from multiprocessing.connection import Connection

from maild.errors import PermanentError
from maild.intake.parse import PARSING_LIBRARIES, ParsedMail, parse
from maild.mail.policy import MailPolicies

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    mail: ParsedMail | None
    error: PermanentError | None
    # What parsing logged over there, to be logged here when the mail is taken, in order.
    records: list[logging.LogRecord]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # As logging.handlers.QueueHandler.prepare: the text made here, nothing unpicklable.
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        self.records.append(record)


def _parse_there(raw: bytes, raw_sha256: str, policy: EmailPolicy, collected: _Collect
                 ) -> Verdict:
    collected.records = []
    try:
        return Verdict(parse(raw, policy, raw_sha256=raw_sha256), None, collected.records)
    except PermanentError as exc:
        return Verdict(None, exc, collected.records)
    except Exception:  # not a verdict: parsed again in the intake, which reports it
        return Verdict(None, None, collected.records)


def serve() -> None:
    """The parser process: verdicts for mail, in the order it comes, until maild closes
    its end of the pipe (or dies, which closes it too)."""
    requests_fd, verdicts_fd, level = (int(arg) for arg in sys.argv[1:4])
    requests = Connection(requests_fd, writable=False)
    verdicts = Connection(verdicts_fd, readable=False)
    collected = _Collect()
    policy = MailPolicies().reading
    root = logging.getLogger()
    root.handlers[:] = [collected]  # nothing is written here; the intake logs it all
    root.setLevel(level)
    for library in PARSING_LIBRARIES:  # before the first mail, not with it
        importlib.import_module(library)
    while True:
        try:
            raw, raw_sha256 = requests.recv()
        except EOFError:
            return
        verdict = _parse_there(raw, raw_sha256, policy, collected)
        try:
            verdicts.send(verdict)  # pickled whole before a byte is written
        except OSError:  # maild is gone
            return
        except Exception:  # it cannot cross back (pickling): the intake parses it itself
            verdicts.send(Verdict(None, None, []))


class _ParserGone(Exception):
    """The parser process ended before it gave this verdict."""


_WORKER_COMMAND = "from maild.intake.parser_process import serve; serve()"


class _Worker:
    """One parser process and the two threads that talk to it: one hands it mail as it
    can take it (the intake never waits on a full pipe), one gives each verdict to the
    mail's future, in order."""

    def __init__(self, level: int) -> None:
        self.started = threading.Event()  # a first verdict came back
        self.gone = False
        self._waiting: queue.SimpleQueue[tuple[Future[Verdict], bytes, str] | None] = (
            queue.SimpleQueue())
        self._in_flight: collections.deque[Future[Verdict]] = collections.deque()
        self._lock = threading.Lock()
        # Pipe(duplex=False) gives the reading end, then the writing end.
        its_requests, requests = multiprocessing.Pipe(duplex=False)
        verdicts, its_verdicts = multiprocessing.Pipe(duplex=False)
        # Its own interpreter, importing nothing but the parser: not a fork of a process
        # with threads, and not the half of maild a spawned child would import again.
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_COMMAND, str(its_requests.fileno()),
                 str(its_verdicts.fileno()), str(level)],
                pass_fds=(its_requests.fileno(), its_verdicts.fileno()),
                stdin=subprocess.DEVNULL,
                # The very modules this process imports, wherever they came from.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except BaseException:
            for end in (requests, verdicts):
                end.close()
            raise
        finally:
            its_requests.close()
            its_verdicts.close()
        self._requests = requests
        self._verdicts = verdicts
        self._feeder = threading.Thread(target=self._feed, name="parser-feed", daemon=True)
        self._reader = threading.Thread(target=self._read, name="parser-read", daemon=True)
        self._feeder.start()
        self._reader.start()

    def submit(self, raw: bytes, raw_sha256: str) -> Future[Verdict]:
        future: Future[Verdict] = Future()
        self._waiting.put((future, raw, raw_sha256))
        return future

    def _feed(self) -> None:
        while (item := self._waiting.get()) is not None:
            future, raw, raw_sha256 = item
            if not future.set_running_or_notify_cancel():
                continue  # the intake parsed it itself
            with self._lock:
                if self.gone:
                    future.set_exception(_ParserGone())
                    continue
                self._in_flight.append(future)
            try:
                self._requests.send((raw, raw_sha256))
            except OSError:  # it died: the reader fails what is in flight
                pass
        self._requests.close()

    def _read(self) -> None:
        while True:
            try:
                verdict = self._verdicts.recv()
            except (EOFError, OSError):
                break
            except Exception:  # read whole but not unpickled: the intake parses it itself
                verdict = Verdict(None, None, [])
            with self._lock:
                future = self._in_flight.popleft()
            self.started.set()
            future.set_result(verdict)
        with self._lock:
            self.gone = True
            in_flight, self._in_flight = list(self._in_flight), collections.deque()
        for future in in_flight:
            future.set_exception(_ParserGone())
        self._verdicts.close()

    def close(self) -> None:
        self._waiting.put(None)
        self._feeder.join(timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)


class ParserProcess:
    """One process, started when first needed, that parses mail ahead of the intake.

    Shared by every thread of this process; `close` stops it. A mail it has not begun
    by the time the intake wants it is parsed there and then, in the intake's process:
    so the intake never waits on the process starting, nor on one that falls behind."""

    def __init__(self, enabled: bool, policy: EmailPolicy) -> None:
        self.enabled = enabled
        self.policy = policy  # for the mail parsed here
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, raw: bytes, raw_sha256: str) -> Future[Verdict] | None:
        """Start parsing `raw` over there; None when it is to be parsed here."""
        with self._lock:
            if not self.enabled or self._closed:
                return None
            if self._worker is not None and self._worker.gone:
                self._worker.close()
                if not self._worker.started.is_set():
                    log.warning("the parser process ended before its first mail; parsing "
                                "in this process from now on")
                    self.enabled = False
                    return None
                self._worker = None
            if self._worker is None:
                try:
                    self._worker = _Worker(logging.getLogger().getEffectiveLevel())
                except (OSError, subprocess.SubprocessError) as exc:
                    log.warning("cannot start the parser process (%s); parsing here", exc)
                    return None
            return self._worker.submit(raw, raw_sha256)

    def result(self, future: Future[Verdict], raw: bytes, raw_sha256: str) -> ParsedMail:
        """The mail `submit` started parsing, or its PermanentError raised."""
        worker = self._worker
        if not future.done() and (future.cancel() or worker is None
                                  or not worker.started.is_set()):
            return parse(raw, self.policy, raw_sha256=raw_sha256)  # sooner here than waiting
        try:
            verdict = future.result()
        except _ParserGone:
            log.warning("the parser process ended unexpectedly; parsing here, and starting "
                        "a new one for the next batch")
            return parse(raw, self.policy, raw_sha256=raw_sha256)
        for record in verdict.records:
            logging.getLogger(record.name).handle(record)
        if verdict.error is not None:
            raise verdict.error
        if verdict.mail is None:
            return parse(raw, self.policy, raw_sha256=raw_sha256)
        return verdict.mail

    def close(self) -> None:
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()
