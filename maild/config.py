"""Configuration: read once at start into frozen, typed objects.

Every key is documented in config/maild.example.toml. A bad file produces a
ConfigError with one line per problem, each naming the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from maild.errors import ConfigError
from maild.mail.addresses import domain_of
from maild.tickets.durations import Duration, parse_duration
from maild.tickets.model import Priority

DEFAULT_CONFIG_PATH = Path("config/maild.toml")


def _address(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None


def _domain(value: str) -> str:
    value = value.strip().lower().lstrip("@")
    if not value or "." not in value or " " in value:
        raise ValueError(f"{value!r} is not a domain name")
    return value


def _duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a text such as \"72 hours\"")
    return parse_duration(value)


Address = Annotated[str, AfterValidator(_address)]
Domain = Annotated[str, AfterValidator(_domain)]
DurationText = Annotated[Duration, BeforeValidator(_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TimeOfDay = time  # a field named `time` would hide the type in its class


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SupportConfig(_Section):
    address: Address
    name: str = "Support"

    @property
    def domain(self) -> str:
        return domain_of(self.address)


class StorageConfig(_Section):
    url: str = "sqlite:///storage/maild.db"
    dir: Path = Path("storage")
    # Larger attachments are not stored on their own (the raw message keeps them).
    max_attachment_bytes: Annotated[int, Field(ge=0)] = 25 * 1024 * 1024

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return value


class InboundSmtpConfig(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 2525
    max_message_bytes: Annotated[int, Field(ge=1024)] = 50 * 1024 * 1024
    # Mail is taken for [support] address and the mailboxes' addresses, and these;
    # any other recipient is refused at RCPT (550).
    addresses: list[Address] = []
    # Large messages (over 1 MB, or of a size the client does not declare) received and
    # stored at once; the others wait their turn at DATA. Each is written to disk as it
    # arrives (maild/channels/smtp_data.py), not held in memory.
    max_concurrent_large_messages: Annotated[int, Field(ge=1)] = 1
    # Beyond this many clients connected at once, new mail is deferred (451).
    max_connections: Annotated[int, Field(ge=1)] = 100
    # A client that sends nothing for this long while maild waits on it, in a command
    # or in the middle of a message, is disconnected (RFC 5321 4.5.3.2.7: 5 minutes).
    # A large message coming slowly but steadily is taken, however long it takes, up
    # to command_deadline_seconds.
    idle_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    # The most one command, or one message with its DATA, may take: a client that
    # trickles bytes holds a connection no longer than this.
    command_deadline_seconds: Annotated[float, Field(gt=0)] = 3600.0


class MailboxConfig(_Section):
    """One IMAP mailbox maild reads (support@, feedback@ …); see [[mailboxes]]."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,29}$")]
    host: str
    port: Port = 993
    security: Literal["ssl", "starttls", "none"] = "ssl"
    tls_verify: bool = True
    username: str
    # Exactly one way to log in: a password, or an OAuth2 access token from a command or file.
    password_env: str | None = None
    oauth2_token_command: str | None = None
    oauth2_token_file: Path | None = None
    oauth2_mechanism: Literal["xoauth2", "oauthbearer"] = "xoauth2"
    # The address customers write to; replies on its tickets go out from it.
    address: Address | None = None
    display_name: str | None = None
    folder: str = "INBOX"
    processed_folder: Annotated[str, Field(min_length=1)] = "Processed"
    quarantine_folder: Annotated[str, Field(min_length=1)] = "Quarantine"
    idle: bool = True
    # RFC 2177: a client must renew IDLE at least every 29 minutes; NAT boxes forget sooner.
    idle_renew_seconds: Annotated[float, Field(gt=0, le=29 * 60)] = 300.0
    poll_seconds: Annotated[float, Field(gt=0)] = 60.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    batch_messages: Annotated[int, Field(ge=1)] = 50
    batch_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    max_message_bytes: Annotated[int, Field(ge=1024)] = 50 * 1024 * 1024
    # Filled from password_env when the config is loaded; never read from the file.
    password: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> MailboxConfig:
        ways = [w for w in ("password_env", "oauth2_token_command", "oauth2_token_file")
                if getattr(self, w)]
        if len(ways) != 1:
            raise ValueError(
                "set exactly one of password_env, oauth2_token_command, oauth2_token_file"
            )
        folders = {self.folder, self.processed_folder, self.quarantine_folder}
        if len(folders) != 3:
            raise ValueError("folder, processed_folder and quarantine_folder must differ")
        return self


class OutboundConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 2526
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password_env: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    max_attempts: Annotated[int, Field(ge=1)] = 12
    poll_seconds: Annotated[float, Field(gt=0)] = 5.0
    # Connections to the relay a sender uses at once, each carrying one mail at a time:
    # the mails of a claim (five) go side by side, so no more than five are ever used.
    connections: Annotated[int, Field(ge=1, le=5)] = 3
    # Automatic mail (acknowledgments, nudges, surveys, auto-solve notices) to one address
    # in an hour, at most: a script or a loop writing to us again and again gets a few
    # answers, not hundreds.
    auto_replies_per_hour: Annotated[int, Field(ge=1)] = 5
    # A sender silent this long (no heartbeat, on the database's clock) is taken for dead
    # and its claimed mails go to another sender. A sender at work beats several times
    # within it (maild/outbound/claims.py): below 3 s, a loaded machine or a slow commit
    # would make a live sender look dead; above 60 s, a dead one's mail waits minutes,
    # where the promise is seconds (docs/design.md, "What maild promises").
    sender_silence_seconds: Annotated[float, Field(ge=3, le=60)] = 15.0
    # Filled from password_env when the config is loaded; never read from the file.
    password: str | None = Field(default=None, exclude=True)

    @property
    def sender_silence(self) -> timedelta:
        return timedelta(seconds=self.sender_silence_seconds)

    @model_validator(mode="after")
    def _login_needs_both(self) -> OutboundConfig:
        if self.username and not self.password_env:
            raise ValueError("username is set but password_env is not")
        return self


class StaffConfig(_Section):
    addresses: list[Address] = []
    domains: list[Domain] = []
    # Each new ticket and customer reply is mailed to the assignee, or while there is
    # none to every address above, in the ticket's thread.
    notify: bool = True
    # Notifications about mail from one sender in an hour, at most: a flood from one
    # address is stored in full, and the next notification allowed counts what was held.
    notify_per_sender_per_hour: Annotated[int, Field(ge=1)] = 10
    # Being staff takes more than a From header (maild/intake/authenticity.py).
    # "reply-token": the mail answers a mail maild sent to that address about the ticket.
    # "authentication-results": the receiving server's topmost Authentication-Results
    # (from one of trusted_authserv_ids) shows dkim, spf or dmarc passing for the staff
    # address's domain; with trusted_authserv_ids set, that counts in "reply-token" too.
    # "none": trust From (only where nobody else can reach the intake).
    verify: Literal["reply-token", "authentication-results", "none"] = "reply-token"
    trusted_authserv_ids: list[str] = []
    # Support leads: tickets unresolved past [sla] escalate_after go to them. They are
    # staff too. None given: escalations go to the addresses above.
    leads: list[Address] = []

    @model_validator(mode="after")
    def _verifier_named(self) -> StaffConfig:
        if self.verify == "authentication-results" and not self.trusted_authserv_ids:
            raise ValueError("verify = \"authentication-results\" needs trusted_authserv_ids "
                             "(the receiving server's name in its Authentication-Results)")
        return self

    def is_staff(self, address: str) -> bool:
        address = address.lower()
        return (address in self.addresses or address in self.leads
                or domain_of(address) in self.domains)


class BusinessHoursConfig(_Section):
    timezone: str = "UTC"
    days: Annotated[list[Weekday], Field(min_length=1)] = ["mon", "tue", "wed", "thu", "fri"]
    start: time = time(9, 0)
    # "24:00" is midnight at the end of the day, for hours that run until the day is over.
    end: time | Literal["24:00"] = time(17, 0)
    holidays: list[str] = []

    @field_validator("holidays")
    @classmethod
    def _iso_dates(cls, value: list[str]) -> list[str]:
        for day in value:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise ValueError(f"{day!r} is not a date (write 2026-12-25)") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone (e.g. Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHoursConfig:
        if isinstance(self.end, time) and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class FollowupConfig(_Section):
    nudges: list[DurationText] = [
        parse_duration("2 business days"), parse_duration("4 business days")
    ]
    auto_solve_after: DurationText = parse_duration("6 business days")
    close_after_solved: DurationText = parse_duration("72 hours")


def _wall_clock(value: Duration) -> Duration:
    if value.business:
        raise ValueError("must be wall-clock time, such as \"2 hours\" (not business time)")
    return value


WallClockDuration = Annotated[DurationText, AfterValidator(_wall_clock)]


class SlaPolicyConfig(_Section):
    """What a customer is promised for one severity, on some plans or on all."""

    severity: Annotated[int, Field(ge=1, le=4)]
    # Left out: every plan, and customers with no plan or no known organisation.
    plans: list[Annotated[str, Field(min_length=1)]] | None = None
    first_response: DurationText | None = None
    resolution: DurationText | None = None

    @model_validator(mode="after")
    def _promises_something(self) -> SlaPolicyConfig:
        if self.first_response is None and self.resolution is None:
            raise ValueError("set first_response, resolution or both")
        return self

    def fits(self, severity: int, plan: str | None) -> bool:
        return self.severity == severity and (self.plans is None or plan in self.plans)


class InternalTargetConfig(BusinessHoursConfig):
    """The team's own first-response target: stricter than any promise, in its own hours."""

    enabled: bool = True
    first_response: DurationText = parse_duration("1 business hour")
    warn_before: WallClockDuration = parse_duration("15 minutes")
    end: time | Literal["24:00"] = "24:00"


_DEFAULT_SEVERITIES: dict[Priority, int] = {"p0": 1, "p1": 1, "p2": 2, "p3": 2}


class SlaConfig(_Section):
    # Each priority's severity; the policies below promise per severity.
    severities: dict[Priority, Annotated[int, Field(ge=1, le=4)]] = _DEFAULT_SEVERITIES
    # The first policy that fits a ticket's severity and its customer's plan applies.
    policies: list[SlaPolicyConfig] = [
        SlaPolicyConfig(severity=1, first_response=parse_duration("24 hours"),
                        resolution=parse_duration("72 hours")),
        SlaPolicyConfig(severity=2, first_response=parse_duration("1 business week")),
    ]
    # The assignee (or the staff list) is warned this long before a due time, and told
    # again when it passes.
    warn_before: WallClockDuration = parse_duration("2 hours")
    # A ticket unresolved this long after it came in goes to [staff] leads: by default,
    # once it enters its third week.
    escalate_after: DurationText = parse_duration("14 days")
    internal: InternalTargetConfig = InternalTargetConfig()

    @field_validator("severities")
    @classmethod
    def _every_priority(cls, value: dict[Priority, int]) -> dict[Priority, int]:
        return {**_DEFAULT_SEVERITIES, **value}

    def severity(self, priority: str) -> int:
        return self.severities[cast(Priority, priority)]

    def policy(self, severity: int, plan: str | None) -> SlaPolicyConfig | None:
        return next((p for p in self.policies if p.fits(severity, plan)), None)


def _more_than_one_cpu() -> bool:
    if hasattr(os, "sched_getaffinity"):  # the CPUs this process may run on
        return len(os.sched_getaffinity(0)) > 1
    return (os.cpu_count() or 1) > 1


class IntakeConfig(_Section):
    # Parse a batch's mail in a second process while this one stores it; worth it only
    # with a second CPU to run on.
    parse_in_second_process: bool = Field(default_factory=_more_than_one_cpu)


class DigestConfig(_Section):
    """The weekly report by mail: to whom, and when (in the business time zone)."""

    # Empty: no digest is sent.
    to: list[Address] = []
    weekday: Weekday = "mon"
    time: TimeOfDay = TimeOfDay(8, 0)


class TemplatesConfig(_Section):
    dir: Path | None = None


class WebConfig(_Section):
    """Metrics, health and the read-only dashboard, served by every `maild run`."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 8025
    # The environment variable holding the token the dashboard's pages ask for.
    token_env: Annotated[str, Field(min_length=1)] = "MAILD_WEB_TOKEN"
    # Filled from token_env when the config is loaded; None when the variable is unset or
    # empty (the web part then refuses to start, and `maild check` says why).
    token: str | None = Field(default=None, exclude=True, repr=False)


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Section):
    support: SupportConfig
    storage: StorageConfig = StorageConfig()
    inbound_smtp: InboundSmtpConfig = InboundSmtpConfig()
    outbound: OutboundConfig = OutboundConfig()
    staff: StaffConfig = StaffConfig()
    business_hours: BusinessHoursConfig = BusinessHoursConfig()
    followup: FollowupConfig = FollowupConfig()
    sla: SlaConfig = SlaConfig()
    intake: IntakeConfig = IntakeConfig()
    digest: DigestConfig = DigestConfig()
    templates: TemplatesConfig = TemplatesConfig()
    web: WebConfig = WebConfig()
    logging: LoggingConfig = LoggingConfig()
    mailboxes: list[MailboxConfig] = []

    @field_validator("mailboxes")
    @classmethod
    def _unique_names(cls, value: list[MailboxConfig]) -> list[MailboxConfig]:
        names = [m.name for m in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"names must be unique ({', '.join(repeated)})")
        return value

    def mailbox(self, name: str | None) -> MailboxConfig | None:
        return next((m for m in self.mailboxes if m.name == name), None)

    def desk_address(self, mailbox: str | None,
                     delivered_to: str | None = None) -> tuple[str, str]:
        """The address and display name a ticket's mail goes out from: its mailbox's, else
        the support address it was delivered to (while the config still names it as
        ours), else [support]'s."""
        found = self.mailbox(mailbox)
        if found is not None and found.address is not None:
            return found.address, found.display_name or self.support.name
        if delivered_to is not None and delivered_to in self.own_addresses:
            return delivered_to, self.support.name
        return self.support.address, self.support.name

    def missing_secrets(self, *, mailboxes: bool = True, outbound: bool = True) -> list[str]:
        """The passwords named by a `password_env` whose variable is not set: for the
        mailboxes (the IMAP readers log in with them) and the relay (the sender). A
        command that uses neither needs none of them."""
        sections: list[tuple[str, MailboxConfig | OutboundConfig]] = []
        if mailboxes:
            sections += [(f"mailboxes[{i}]", m) for i, m in enumerate(self.mailboxes)]
        if outbound:
            sections.append(("outbound", self.outbound))
        return [f"{key}.password_env: environment variable {section.password_env} is not set"
                for key, section in sections
                if section.password_env and section.password is None]

    @property
    def own_addresses(self) -> frozenset[str]:
        """Every address maild answers as: mail from these is our own, never a customer's."""
        return frozenset([self.support.address, *self.inbound_smtp.addresses,
                          *(m.address for m in self.mailboxes if m.address)])


def _key(location: tuple[Any, ...]) -> str:
    key = ""
    for part in location:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key or "(top level)"


def _describe(error: Mapping[str, Any]) -> str:
    location = tuple(p for p in error["loc"] if not str(p).startswith(("function-", "literal[")))
    if error["type"] == "extra_forbidden":
        return f"{_key(location)}: unknown key"
    if error["type"] == "missing":
        return f"{_key(location)}: required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{_key(location)}: {message}"


def _resolve_secret(section: object, key: str, environ: Mapping[str, str]) -> list[str]:
    """Fill `password` from `password_env` in one section that logs in somewhere, when
    the variable is set."""
    if not isinstance(section, dict):
        return []
    if "password" in section:
        return [f"{key}.password: unknown key (use password_env)"]
    name = section.get("password_env")
    if not name or not isinstance(name, str):
        return []
    # A variable not set is a problem only for what logs in there (`missing_secrets`):
    # a command that never does, such as `maild tickets list`, runs without it.
    if name in environ:
        section["password"] = environ[name]
    return []


def _resolve_web_token(section: object, environ: Mapping[str, str]) -> list[str]:
    """The dashboard's token; a missing one stops only the web part, not the config."""
    if not isinstance(section, dict):
        return []
    if "token" in section:
        return ["web.token: unknown key (use token_env)"]
    name = section.get("token_env", WebConfig.model_fields["token_env"].default)
    if isinstance(name, str) and environ.get(name):
        section["token"] = environ[name]
    return []


def _resolve_secrets(raw: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    problems = _resolve_secret(raw.get("outbound"), "outbound", environ)
    problems += _resolve_web_token(raw.get("web"), environ)
    mailboxes = raw.get("mailboxes")
    if isinstance(mailboxes, list):
        for index, mailbox in enumerate(mailboxes):
            problems += _resolve_secret(mailbox, f"mailboxes[{index}]", environ)
    return problems


def _default_mailbox_addresses(raw: dict[str, Any]) -> None:
    """A mailbox's address defaults to its username when that is an address (it usually is)."""
    mailboxes = raw.get("mailboxes")
    if not isinstance(mailboxes, list):
        return
    for mailbox in mailboxes:
        if isinstance(mailbox, dict) and "address" not in mailbox:
            username = mailbox.get("username")
            if isinstance(username, str) and "@" in username:
                mailbox["address"] = username


def parse_config(text: str, environ: Mapping[str, str] = os.environ, source: str = "") -> Config:
    where = f"{source}: " if source else ""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}not valid TOML: {exc}"]) from None
    problems = _resolve_secrets(raw, environ)
    _default_mailbox_addresses(raw)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems += [_describe(error) for error in exc.errors()]
    if problems:
        raise ConfigError([f"{where}{problem}" for problem in problems])
    return config


def load_config(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    if path is None:
        path = Path(environ.get("MAILD_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the configuration: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}: line {line}: not UTF-8 text (byte "
                           f"{exc.object[exc.start]:#04x}); save the file as UTF-8"]) from None
    return parse_config(text, environ, source=str(path))
