"""The parser process gives the very verdict parsing here gives, logs what parsing logs,
and loses nothing when it dies."""

from __future__ import annotations

import concurrent.futures
import email
import email.policy
import hashlib
import logging
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from maild.clock import FixedClock
from maild.config import parse_config
from maild.errors import PermanentError
from maild.intake.parse import ParsedMail, parse
from maild.intake.parser_process import ParserProcess
from maild.intake.pipeline import intake_batch
from maild.mail.policy import MailPolicies
from maild.runtime.app import App, build_app
from tests.conftest import config_text
from tests.mailbuilder import make_mail
from tests.processes import parser_pids

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.eml"))
READING = MailPolicies().reading


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _here(raw: bytes) -> ParsedMail | str:
    try:
        return parse(raw, READING, raw_sha256=_sha(raw))
    except PermanentError as exc:
        return f"{type(exc).__name__}: {exc}"


def _there(parser: ParserProcess, raw: bytes) -> ParsedMail | str:
    """Parsed over there: the intake would parse it itself rather than wait."""
    future = parser.submit(raw, _sha(raw))
    assert future is not None, "the parser process must take the mail"
    concurrent.futures.wait([future])
    try:
        return parser.result(future, raw, _sha(raw))
    except PermanentError as exc:
        return f"{type(exc).__name__}: {exc}"


def _same(a: ParsedMail | str, b: ParsedMail | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a == b and [x.data for x in a.attachments] == [x.data for x in b.attachments]


@pytest.fixture
def parser() -> Iterator[ParserProcess]:
    process = ParserProcess(enabled=True, policy=READING)
    yield process
    process.close()


def test_every_corpus_mail_gets_the_same_verdict_over_there_as_here(
    parser: ParserProcess,
) -> None:
    assert len(CORPUS) > 30
    for path in CORPUS:
        raw = path.read_bytes()
        here, there = _here(raw), _there(parser, raw)
        assert _same(here, there), path.name
    assert parser_pids(), "the mail must have been parsed in another process"


def _logs_a_warning(n: int) -> bytes:
    """A mail whose parsing logs a warning: a winmail.dat that is not TNEF."""
    message = email.message_from_bytes(make_mail(message_id=f"<w{n}@customer.example>"),
                                       policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    message.add_attachment(b"not TNEF at all", maintype="application",
                           subtype="ms-tnef", filename="winmail.dat")
    return message.as_bytes()


def _where_parsed(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [r.process for r in caplog.records if "winmail.dat could not be" in r.message
            if r.process is not None]


def test_what_parsing_logs_over_there_is_logged_here(
    parser: ParserProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="maild"):
        _there(parser, _logs_a_warning(0))

    [record] = [r for r in caplog.records if "winmail.dat could not be unpacked" in r.message]
    assert record.name == "maild.intake.tnef"
    assert record.levelno == logging.WARNING
    assert record.process != os.getpid()
    assert "Wrong TNEF signature" in record.getMessage()


def test_the_intake_parses_what_the_process_has_not_begun_rather_than_wait(
    parser: ParserProcess, caplog: pytest.LogCaptureFixture
) -> None:
    raws = [_logs_a_warning(n) for n in range(10)]
    with caplog.at_level(logging.WARNING, logger="maild"):
        # Straight after its start: nothing is back from it yet, so nothing is waited for.
        futures = [parser.submit(raw, _sha(raw)) for raw in raws]
        cold = [parser.result(f, raw, _sha(raw)) for f, raw in zip(futures, raws, strict=True)
                if f is not None]
        assert len(cold) == len(raws)
        assert set(_where_parsed(caplog)) == {os.getpid()}

        caplog.clear()
        _there(parser, raws[0])  # now it is up
        futures = [parser.submit(raw, _sha(raw)) for raw in raws]
        concurrent.futures.wait([f for f in futures[:1] if f is not None])
        warm = [parser.result(f, raw, _sha(raw)) for f, raw in zip(futures, raws, strict=True)
                if f is not None]

    assert [m.message_id for m in cold] == [m.message_id for m in warm]
    where = _where_parsed(caplog)
    assert len(where) == len(raws) + 1
    assert set(where) - {os.getpid()}, "once up, the process parses ahead of the intake"


def test_a_killed_parser_process_loses_no_mail_and_is_replaced(
    parser: ParserProcess, caplog: pytest.LogCaptureFixture
) -> None:
    raws = [path.read_bytes() for path in CORPUS[:10]]
    _there(parser, raws[0])  # the process is up
    [pid] = parser_pids()
    futures = [parser.submit(raw, _sha(raw)) for raw in raws]
    os.kill(pid, signal.SIGKILL)

    verdicts = []
    for raw, future in zip(raws, futures, strict=True):
        assert future is not None
        try:
            verdicts.append(parser.result(future, raw, _sha(raw)))
        except PermanentError as exc:
            verdicts.append(f"{type(exc).__name__}: {exc}")

    assert all(_same(_here(raw), v) for raw, v in zip(raws, verdicts, strict=True))
    assert "the parser process ended unexpectedly" in caplog.text
    # The next mail starts a new process, having reaped the killed one.
    assert _same(_there(parser, raws[1]), _here(raws[1]))
    assert parser_pids() and pid not in parser_pids()


def test_a_closed_parser_process_is_gone_and_takes_no_more_mail() -> None:
    process = ParserProcess(enabled=True, policy=READING)
    raw = CORPUS[0].read_bytes()
    _there(process, raw)
    assert parser_pids()

    process.close()

    assert not parser_pids()
    assert process.submit(raw, _sha(raw)) is None


_KILLED_PARENT = """
import hashlib, sys, time
from pathlib import Path
from maild.intake.parser_process import ParserProcess
from maild.mail.policy import MailPolicies
raw = Path(sys.argv[1]).read_bytes()
parser = ParserProcess(enabled=True, policy=MailPolicies().reading)
parser.submit(raw, hashlib.sha256(raw).hexdigest()).result()
print("parsed", flush=True)
time.sleep(60)
"""


def test_the_parser_process_ends_when_maild_is_killed() -> None:
    with subprocess.Popen([sys.executable, "-c", _KILLED_PARENT, str(CORPUS[0])],
                          stdout=subprocess.PIPE, text=True) as maild:
        try:
            assert maild.stdout is not None and maild.stdout.readline() == "parsed\n"
            [orphan] = parser_pids(maild.pid)
            orphan_exit = os.pidfd_open(orphan)  # readable once the process has ended
        finally:
            maild.kill()

    try:
        ended, _, _ = select.select([orphan_exit], [], [], 10)
    finally:
        os.close(orphan_exit)
    assert ended, "the parser process outlived maild"


def _app(directory: Path, clock: FixedClock, enabled: bool) -> App:
    # Each side its own SQLite database: the two runs must not see each other's rows.
    text = config_text(f"sqlite:///{directory}/maild.db", directory / "storage", 2526)
    text += f"\n[intake]\nparse_in_second_process = {str(enabled).lower()}\n"
    return build_app(parse_config(text), clock)


def _take_batch(app: App, raws: list[bytes]) -> list[tuple[object, ...]]:
    try:
        with intake_batch(app.intake, "imap", "support") as batch:
            batch.parse_ahead(raws)
            results = [batch.ingest(raw) for raw in raws]
        parsed_elsewhere = bool(parser_pids())
    finally:
        app.close()
    assert parsed_elsewhere == app.parser.enabled
    return [(r.outcome, r.reason, r.message_id, r.ticket_id, r.outbox_queued)
            for r in results]


def test_a_batch_ends_the_same_with_and_without_the_parser_process(
    tmp_path: Path, clock: FixedClock
) -> None:
    raws = [path.read_bytes() for path in CORPUS]
    raws += raws[:3]  # the same mail twice in a batch

    there = _take_batch(_app(tmp_path / "there", clock, True), raws)
    here = _take_batch(_app(tmp_path / "here", clock, False), raws)

    assert there == here
    assert {outcome for outcome, *_ in here} == {"stored", "quarantined", "duplicate", "ignored"}


def test_a_lone_message_is_parsed_here(tmp_path: Path, clock: FixedClock) -> None:
    app = _app(tmp_path, clock, True)
    try:
        with intake_batch(app.intake, "imap", "support") as batch:
            batch.parse_ahead([CORPUS[0].read_bytes()])
            result = batch.ingest(CORPUS[0].read_bytes())
        assert not parser_pids()
    finally:
        app.close()
    assert result.outcome in ("stored", "quarantined")
