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

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial

from maild.errors import PermanentError
from maild.intake.parse import ParsedMail, parse

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


_collected = _Collect()  # in the parser process, every record; none is written there


def _start_worker(level: int, parent: int) -> None:
    root = logging.getLogger()
    root.handlers[:] = [_collected]
    root.setLevel(level)
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: int) -> None:
    """Exit once the process that started this one is gone (killed, say): its queue
    would never tell, since this end holds both sides of the pipe."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _parse_there(raw: bytes, raw_sha256: str) -> Verdict:
    _collected.records = []
    try:
        return Verdict(parse(raw, raw_sha256=raw_sha256), None, _collected.records)
    except PermanentError as exc:
        return Verdict(None, exc, _collected.records)
    except Exception:  # not a verdict: parsed again in the intake, which reports it
        return Verdict(None, None, _collected.records)


def _note_start(started: threading.Event, done: Future[Verdict]) -> None:
    if not done.cancelled() and done.exception() is None:
        started.set()


class ParserProcess:
    """One process, started when first needed, that parses mail ahead of the intake.

    Shared by every thread of this process; `close` stops it. A mail it has not begun
    by the time the intake wants it is parsed there and then, in the intake's process:
    so the intake never waits on the process starting, nor on one that falls behind."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._executor: ProcessPoolExecutor | None = None
        self._started = threading.Event()  # a first mail came back from this executor
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, raw: bytes, raw_sha256: str) -> Future[Verdict] | None:
        """Start parsing `raw` over there; None when it is to be parsed here."""
        with self._lock:
            if not self.enabled or self._closed:
                return None
            if self._executor is None:
                # spawn, not fork: the daemon has threads, and a forked child would inherit
                # their locks in whatever state they were.
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(logging.getLogger().getEffectiveLevel(), os.getpid()),
                )
                self._started = threading.Event()
            try:
                future = self._executor.submit(_parse_there, raw, raw_sha256)
            except (BrokenProcessPool, RuntimeError):
                self._replace(self._executor)
                return None
            future.add_done_callback(partial(_note_start, self._started))
            return future

    def result(self, future: Future[Verdict], raw: bytes, raw_sha256: str) -> ParsedMail:
        """The mail `submit` started parsing, or its PermanentError raised."""
        if not future.done() and (future.cancel() or not self._started.is_set()):
            return parse(raw, raw_sha256=raw_sha256)  # sooner here than waiting
        try:
            verdict = future.result()
        except BrokenProcessPool:
            log.warning("the parser process ended unexpectedly; parsing here, and starting "
                        "a new one for the next batch")
            with self._lock:
                if self._executor is not None:
                    self._replace(self._executor)
            return parse(raw, raw_sha256=raw_sha256)
        except Exception:  # the verdict could not cross back (pickling)
            return parse(raw, raw_sha256=raw_sha256)
        for record in verdict.records:
            logging.getLogger(record.name).handle(record)
        if verdict.error is not None:
            raise verdict.error
        if verdict.mail is None:
            return parse(raw, raw_sha256=raw_sha256)
        return verdict.mail

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop a broken executor (called with the lock held); the next submit starts
        a new process."""
        if self._executor is broken:
            self._executor = None
            broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
