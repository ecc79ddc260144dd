"""Configuration: read once at start into frozen, typed objects.

Every key is documented in config/maild.example.toml. A bad file produces a
ConfigError with one line per problem, each naming the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
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

from maild.durations import Duration, parse_duration
from maild.errors import ConfigError

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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SupportConfig(_Section):
    address: Address
    name: str = "Support"

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]


class StorageConfig(_Section):
    url: str = "sqlite:///storage/maild.db"
    dir: Path = Path("storage")

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


class OutboundConfig(_Section):
    host: str = "127.0.0.1"
    port: Port = 2526
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password_env: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    max_attempts: Annotated[int, Field(ge=1)] = 12
    poll_seconds: Annotated[float, Field(gt=0)] = 5.0
    # Automatic mail (acknowledgments) to one address in an hour, at most: a script or a
    # loop writing to us again and again gets one answer, not hundreds.
    auto_replies_per_hour: Annotated[int, Field(ge=1)] = 5
    # Filled from password_env when the config is loaded; never read from the file.
    password: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _login_needs_both(self) -> OutboundConfig:
        if self.username and not self.password_env:
            raise ValueError("username is set but password_env is not")
        return self


class StaffConfig(_Section):
    addresses: list[Address] = []
    domains: list[Domain] = []

    def is_staff(self, address: str) -> bool:
        address = address.lower()
        return address in self.addresses or address.rsplit("@", 1)[-1] in self.domains


class BusinessHoursConfig(_Section):
    timezone: str = "UTC"
    days: Annotated[
        list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]], Field(min_length=1)
    ] = ["mon", "tue", "wed", "thu", "fri"]
    start: time = time(9, 0)
    end: time = time(17, 0)
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
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class FollowupConfig(_Section):
    nudges: list[DurationText] = [
        parse_duration("2 business days"), parse_duration("4 business days")
    ]
    auto_solve_after: DurationText = parse_duration("6 business days")
    close_after_solved: DurationText = parse_duration("72 hours")


class SlaConfig(_Section):
    first_response: DurationText = parse_duration("24 hours")
    resolution: DurationText = parse_duration("72 hours")


class TemplatesConfig(_Section):
    dir: Path | None = None


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
    templates: TemplatesConfig = TemplatesConfig()
    logging: LoggingConfig = LoggingConfig()


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


def _resolve_secrets(raw: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Fill `password` from `password_env` for sections that log in somewhere."""
    problems = []
    outbound = raw.get("outbound")
    if isinstance(outbound, dict) and outbound.get("password_env"):
        if "password" in outbound:
            problems.append("outbound.password: unknown key (use password_env)")
        name = outbound["password_env"]
        if name not in environ:
            problems.append(f"outbound.password_env: environment variable {name} is not set")
        else:
            outbound["password"] = environ[name]
    elif isinstance(outbound, dict) and "password" in outbound:
        problems.append("outbound.password: unknown key (use password_env)")
    return problems


def parse_config(text: str, environ: Mapping[str, str] = os.environ, source: str = "") -> Config:
    where = f"{source}: " if source else ""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}not valid TOML: {exc}"]) from None
    if "mailboxes" in raw:
        raise ConfigError(
            [f"{where}mailboxes: reading IMAP mailboxes is not available in this version yet"]
        )
    problems = _resolve_secrets(raw, environ)
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
    return parse_config(text, environ, source=str(path))
