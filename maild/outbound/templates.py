"""The Jinja templates of every mail maild writes.

A template's text starts with a "Subject: …" line and a blank line; the rest is
the body. `NAME.txt.j2` is required, `NAME.html.j2` is optional (autoescaped).
An operator's template directory is searched before the shipped one.

The shipped templates are package data: `maild/shipped_templates` links to the
repository's top-level `templates/`, and a built wheel carries the files, so they
are found wherever maild is installed and whatever directory it runs in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
)

from maild.errors import ConfigError
from maild.tickets.durations import spoken_span

SHIPPED_TEMPLATES = Path(str(files("maild") / "shipped_templates"))
TEMPLATE_NAMES = (
    "ack", "reply", "command_error", "welcome", "notify", "nudge", "auto_solved", "survey",
    "sla_alert", "escalation", "staff_unproven", "staff_confirm", "digest",
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


def _format_datetime(value: Any, zone: Any = None, fmt: str = "%A %d %B, %H:%M %Z") -> str:
    """A datetime, or an ISO-8601 text (as in the report's data), in `zone`."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value.astimezone(zone) if zone else value).strftime(fmt)


def format_span(value: timedelta) -> str:
    """A stretch of time as people say it: "45 min", "3 h 15 min", "2 days 4 h"."""
    minutes = int(abs(value.total_seconds()) // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    return " ".join(parts) or "less than a minute"
def _format_hours(value: float) -> str:
    """Hours as people say them: 50.5 is "2 days 2 h"."""
    return spoken_span(timedelta(hours=value))


class Templates:
    def __init__(self, override_dir: Path | None = None) -> None:
        directories = [d for d in (override_dir, SHIPPED_TEMPLATES) if d is not None]
        loader = ChoiceLoader([FileSystemLoader(str(d)) for d in directories])
        self._text = Environment(
            loader=loader, undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
        )
        self._html = Environment(loader=loader, undefined=StrictUndefined, autoescape=True)
        for environment in (self._text, self._html):
            environment.filters["datetime"] = _format_datetime
            environment.filters["span"] = format_span
            environment.filters["hours"] = _format_hours

    def render(self, name: str, context: dict[str, Any]) -> Rendered:
        try:
            text_source = self._text.get_template(f"{name}.txt.j2").render(context)
        except TemplateNotFound:
            raise ConfigError([f"templates: {name}.txt.j2 is missing"]) from None
        subject, text = _split_subject(name, text_source)
        try:
            html: str | None = self._html.get_template(f"{name}.html.j2").render(context)
        except TemplateNotFound:
            html = None
        return Rendered(subject, text, html)

    def check(self, names: Sequence[str]) -> list[str]:
        """Compile every template; one line per problem, naming the file."""
        problems = []
        for name in names:
            for environment, filename, required in (
                (self._text, f"{name}.txt.j2", True),
                (self._html, f"{name}.html.j2", False),
            ):
                try:
                    environment.get_template(filename)
                except TemplateNotFound:
                    if required:
                        problems.append(f"{filename} is missing")
                except TemplateSyntaxError as exc:
                    problems.append(f"{filename} line {exc.lineno}: {exc.message}")
        return problems


def _split_subject(name: str, source: str) -> tuple[str, str]:
    head, _, body = source.lstrip("\n").partition("\n")
    if not head.lower().startswith("subject:"):
        raise ConfigError([f"templates: {name}.txt.j2 must start with a 'Subject: …' line"])
    return " ".join(head[len("subject:"):].split()), body.lstrip("\n").rstrip() + "\n"
