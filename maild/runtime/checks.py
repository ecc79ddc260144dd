"""`maild check`: the configuration is valid and every server it names answers."""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from maild.channels.imap.session import CONNECTION_FAULTS, describe, open_session, token_source
from maild.clock import Clock
from maild.config import Config, MailboxConfig
from maild.db.database import Database
from maild.db.migrate import is_current
from maild.errors import TemplateFailed, TemporaryError
from maild.outbound.samples import samples
from maild.outbound.smtp import connect
from maild.outbound.templates import TEMPLATE_NAMES, Templates


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # works, but the operator should know (ok stays True)


def check_database(config: Config) -> CheckResult:
    url = config.storage.url
    where = make_url(url)
    if (where.get_backend_name() == "sqlite" and where.database
            and not config.storage.dir.exists()
            and Path(where.database).parent.absolute() == config.storage.dir.absolute()):
        return CheckResult("database", True, f"{url}: made in storage.dir on the first start")
    try:
        database = Database(url)
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = is_current(database)
        database.dispose()
    except Exception as exc:
        return CheckResult("database", False, f"cannot open {url}: {exc}")
    state = "schema is current" if current else "schema needs `maild db upgrade` (runs on start)"
    return CheckResult("database", True, f"{url}: {state}")


def check_outbound(config: Config) -> CheckResult:
    settings = config.outbound
    where = f"{settings.host}:{settings.port}"
    try:
        client = connect(settings)
        client.noop()
        client.quit()
    except (OSError, smtplib.SMTPException) as exc:
        return CheckResult("outbound SMTP", False, f"cannot reach {where}: {exc}")
    return CheckResult("outbound SMTP", True, f"{where} answers ({settings.security})")


def check_inbound_smtp(config: Config) -> CheckResult:
    from maild.channels.smtp_listener import listen_problem  # aiosmtpd: only when enabled

    settings = config.inbound_smtp
    if not settings.enabled:
        return CheckResult("inbound SMTP", True, "disabled")
    where = f"{settings.host}:{settings.port}"
    problem = listen_problem(settings.host, settings.port)
    if problem is not None and problem.endswith("(in use by a running maild)"):
        # The daemon being checked, most likely: its own port is no failure.
        return CheckResult("inbound SMTP", True, f"{where} is in use by a running maild")
    if problem is not None:
        return CheckResult("inbound SMTP", False, problem)
    return CheckResult("inbound SMTP", True, f"{where} is free to listen on")


def _loopback_only(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may well be reachable from outside


def check_staff(config: Config) -> CheckResult:
    """verify = "none" trusts a From header: fine where only this machine can write to
    maild, dangerous where strangers can (a mailbox, a listener beyond loopback)."""
    staff = config.staff
    if staff.verify != "none":
        servers = ", ".join(staff.trusted_authserv_ids)
        extra = (f", or the topmost Authentication-Results of {servers}"
                 if servers and staff.verify == "reply-token" else "")
        return CheckResult("staff", True, f"verify = {staff.verify!r}{extra}")
    reachable = [f"mailbox {m.name}" for m in config.mailboxes]
    listener = config.inbound_smtp
    if listener.enabled and not _loopback_only(listener.host):
        reachable.append(f"the SMTP listener on {listener.host}:{listener.port}")
    if not reachable:
        return CheckResult("staff", True,
                           'verify = "none": a From header makes staff (loopback only)')
    return CheckResult(
        "staff", True,
        f'verify = "none" trusts the From header, and strangers can write to maild '
        f"({', '.join(reachable)}): anyone can act as an engineer. Use verify = "
        '"reply-token" (the default)', warning=True)


def _serves_maild_metrics(host: str, port: int) -> bool:
    """Whether a running maild serves its web part there: its /metrics, open to all,
    names maild's own counters."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as answer:
            return b"maild_messages" in answer.read(1_000_000)
    except (OSError, ValueError):
        return False


def check_web(config: Config) -> CheckResult:
    from maild.web.auth import token_missing

    settings = config.web
    if not settings.enabled:
        return CheckResult("web", True, "disabled")
    if not settings.token:
        return CheckResult("web", False, token_missing(settings))
    where = f"{settings.host}:{settings.port}"
    try:
        with socket.create_server((settings.host, settings.port)):
            pass
    except OSError as exc:
        if _serves_maild_metrics(settings.host, settings.port):
            return CheckResult("web", True, f"http://{where}/ is in use by a running maild")
        return CheckResult("web", False, f"cannot listen on {where}: {exc.strerror}")
    return CheckResult("web", True,
                       f"http://{where}/ is free to serve on; the token is in {settings.token_env}")


def check_templates(config: Config, clock: Clock) -> list[CheckResult]:
    """Every template compiles, and renders every sample situation (outbound/samples.py)
    under StrictUndefined: a mistake is found here, not by a customer's acknowledgment.
    One line per problem, naming the file, the line and the variable."""
    templates = Templates(config.templates.dir)
    problems = templates.check(TEMPLATE_NAMES)
    if not problems:
        problems = [f"{failure} ({_when(situations)})"
                    for failure, situations in render_failures(templates, config, clock)]
    if problems:
        return [CheckResult("templates", False, problem) for problem in problems]
    source = f"{config.templates.dir} over the shipped ones" if config.templates.dir \
        else "the shipped ones"
    return [CheckResult("templates", True,
                        f"{', '.join(TEMPLATE_NAMES)} render in every situation ({source})")]


def render_failures(templates: Templates, config: Config, clock: Clock
                    ) -> list[tuple[TemplateFailed, list[str]]]:
    """Each distinct failure of the templates to render the sample situations
    (outbound/samples.py), with the situations it fails in, in the order found."""
    found: dict[str, tuple[TemplateFailed, list[str]]] = {}
    for sample in samples(config, clock):
        for failure in templates.render_problems(sample.template, sample.context):
            found.setdefault(str(failure), (failure, []))[1].append(sample.situation)
    return list(found.values())


def failing_templates(templates: Templates, config: Config, clock: Clock) -> list[str]:
    """One line per template file that fails in some sample situation: its first
    failure (file, line, reason) and the situations it fails in. What `maild run` logs
    at start; `maild check` gives every distinct failure."""
    by_file: dict[str, list[tuple[TemplateFailed, list[str]]]] = {}
    for failure, situations in render_failures(templates, config, clock):
        by_file.setdefault(failure.path, []).append((failure, situations))
    lines = []
    for failures in by_file.values():
        first = failures[0][0]
        situations = list(dict.fromkeys(
            situation for _, found_in in failures for situation in found_in))
        lines.append(f"{first.template} cannot be rendered: {first} ({_when(situations)})")
    return lines


def _when(situations: list[str]) -> str:
    more = f", and {len(situations) - 1} more" if len(situations) > 1 else ""
    return f"when {situations[0]}{more}"


def check_mailbox(mailbox: MailboxConfig, clock: Clock) -> CheckResult:
    """Log in and look at the folder, read-only: nothing is fetched, moved or created."""
    name = f"mailbox {mailbox.name}"
    try:
        session = open_session(mailbox, token_source(mailbox, clock))
    except TemporaryError as exc:
        return CheckResult(name, False, str(exc).removeprefix(f"{name}: "))
    try:
        client = session.client
        folders = [mailbox.folder, mailbox.processed_folder, mailbox.quarantine_folder]
        missing = [f for f in folders[1:] if not client.folder_exists(f)]
        if not client.folder_exists(mailbox.folder):
            return CheckResult(name, False, f"folder {mailbox.folder!r} does not exist")
        waiting = client.folder_status(mailbox.folder, ["MESSAGES"])[b"MESSAGES"]
        push = ("IDLE" if client.has_capability("IDLE") else "no IDLE: polling"
                ) if mailbox.idle else f"polling every {mailbox.poll_seconds:g} s"
        detail = (
            f"{mailbox.username} at {mailbox.host}:{mailbox.port} ({mailbox.security}); "
            f"{mailbox.folder}: {waiting} waiting; {push}"
        )
        if missing:
            detail += f"; will create {', '.join(missing)}"
        return CheckResult(name, True, detail)
    except CONNECTION_FAULTS as exc:
        return CheckResult(name, False, f"connection lost: {describe(exc)}")
    finally:
        session.close()


def run_checks(config: Config, clock: Clock) -> list[CheckResult]:
    return [
        CheckResult("config", True, "valid"),
        check_staff(config),
        check_database(config),
        *check_templates(config, clock),
        check_inbound_smtp(config),
        check_web(config),
        *(check_mailbox(mailbox, clock) for mailbox in config.mailboxes),
        check_outbound(config),
    ]
