"""The Jinja templates of every mail maild writes.

A template's text starts with a "Subject: …" line and a blank line; the rest is
the body. `NAME.txt.j2` is required, `NAME.html.j2` is optional (autoescaped). The
variables each receives are in templates/README.md.

An operator's template directory overrides the shipped one, file by file, and is
looked at on every render (one stat per file; Jinja recompiles a file whose mtime
changed): a template added, changed or removed there counts from the next mail, without
a restart. A text template overridden without its HTML twin is sent without HTML: the
shipped HTML would say what the operator's text no longer says.

What Jinja compiles a template into is kept in `storage.dir/compiled-templates/`, so
that a start loads the templates rather than compiling them all again; Jinja compiles a
template again when its source is not the one its kept form was compiled from.

The shipped templates are package data: `maild/shipped_templates` links to the
repository's top-level `templates/`, and a built wheel carries the files, so they
are found wherever maild is installed and whatever directory it runs in. They change
only with maild itself, so they are looked at once a process.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2 import (
    Environment,
    FileSystemBytecodeCache,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2.bccache import Bucket

from maild.config import BusinessHoursConfig
from maild.errors import TemplateFailed
from maild.tickets.durations import spoken_span

log = logging.getLogger(__name__)

SHIPPED_TEMPLATES = Path(str(files("maild") / "shipped_templates"))
TEMPLATE_NAMES = (
    "ack", "reply", "command_error", "welcome", "notify", "nudge", "auto_solved", "survey",
    "sla_alert", "escalation", "staff_unproven", "staff_confirm", "digest", "severity_changed",
)


# What a template an operator wrote can raise while it renders: Jinja's own errors (an
# undefined variable under StrictUndefined), and what its expressions and our filters
# raise on values they cannot handle. Anything else (the database going away while a
# template reads a ticket's messages) is not the template's fault and is not caught.
_TEMPLATE_FAULTS = (TemplateError, ArithmeticError, LookupError, TypeError, ValueError,
                    AttributeError)


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


def _format_hours(value: float) -> str:
    """Hours as people say them: 50.5 is "2 days 2 h"."""
    return spoken_span(timedelta(hours=value))


_DAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
              "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}


def _format_working_hours(hours: BusinessHoursConfig, at: datetime) -> str:
    """Working hours as people say them: "Monday to Friday, 09:00 to 17:00 PST" (the
    zone's name as it is at `at`)."""
    order = list(_DAY_NAMES)
    days = sorted(hours.days, key=order.index)
    indexes = [order.index(day) for day in days]
    if len(days) > 2 and indexes == list(range(indexes[0], indexes[-1] + 1)):
        named = f"{_DAY_NAMES[days[0]]} to {_DAY_NAMES[days[-1]]}"
    elif len(days) > 1:
        named = ", ".join(_DAY_NAMES[d] for d in days[:-1]) + f" and {_DAY_NAMES[days[-1]]}"
    else:
        named = _DAY_NAMES[days[0]]
    end = hours.end if isinstance(hours.end, str) else hours.end.strftime("%H:%M")
    zone = at.astimezone(ZoneInfo(hours.timezone)).tzname() or hours.timezone
    return f"{named}, {hours.start.strftime('%H:%M')} to {end} {zone}"


class _CompiledTemplates(FileSystemBytecodeCache):
    """Each template as Jinja compiled it, kept in a directory across starts: compiling
    every template costs a start about a tenth of a second, loading them a hundredth.
    Jinja compares a template's source with the one it was compiled from, and compiles
    it again when they differ. A compiled form that cannot be read or written is only
    compiled again."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError as exc:
            log.debug("compiled template not read from %s: %s", self.directory, exc)

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError as exc:
            log.debug("compiled template not kept in %s: %s", self.directory, exc)


def _compiled(directory: Path, options: dict[str, Any]) -> _CompiledTemplates | None:
    """The kept compiled forms of templates compiled with `options`, apart from those of
    other options or another Jinja (the source is all Jinja checks)."""
    key = hashlib.sha256(repr((sorted(options.items()), jinja2.__version__)).encode())
    kept = directory / f"{'html' if options['autoescape'] else 'text'}-{key.hexdigest()[:12]}"
    try:
        kept.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("compiled templates cannot be kept in %s (%s): each start compiles "
                    "them again", kept, exc.strerror or exc)
        return None
    return _CompiledTemplates(str(kept))


def _environment(directory: Path, *, html: bool, compiled_dir: Path | None) -> Environment:
    # What the compiled code depends on, besides the source.
    options: dict[str, Any] = {"undefined": StrictUndefined, "keep_trailing_newline": not html,
                               "autoescape": html}
    environment = Environment(
        loader=FileSystemLoader(str(directory)), auto_reload=directory != SHIPPED_TEMPLATES,
        bytecode_cache=_compiled(compiled_dir, options) if compiled_dir else None, **options,
    )
    environment.filters["datetime"] = _format_datetime
    environment.filters["span"] = spoken_span
    environment.filters["hours"] = _format_hours
    environment.filters["working_hours"] = _format_working_hours
    return environment


@cache
def _shipped_html(name: str) -> bool:
    return (SHIPPED_TEMPLATES / f"{name}.html.j2").is_file()


class Templates:
    def __init__(self, override_dir: Path | None = None, compiled_dir: Path | None = None
                 ) -> None:
        """`compiled_dir`: where the templates' compiled forms are kept across starts
        (none: each process compiles the templates it uses)."""
        self._override = override_dir
        directories = [d for d in (override_dir, SHIPPED_TEMPLATES) if d is not None]
        self._text = {d: _environment(d, html=False, compiled_dir=compiled_dir)
                      for d in directories}
        self._html = {d: _environment(d, html=True, compiled_dir=compiled_dir)
                      for d in directories}

    def _overridden(self, filename: str) -> bool:
        return self._override is not None and (self._override / filename).is_file()

    def sources(self, name: str) -> tuple[Path, Path | None]:
        """The directories the text and the HTML of template `name` come from (no HTML:
        None). The shipped HTML goes only with the shipped text."""
        text = self._override if self._overridden(f"{name}.txt.j2") else SHIPPED_TEMPLATES
        assert text is not None
        html: Path | None = None
        if self._overridden(f"{name}.html.j2"):
            html = self._override
        elif text == SHIPPED_TEMPLATES and _shipped_html(name):
            html = SHIPPED_TEMPLATES
        return text, html

    def _render_file(self, environments: dict[Path, Environment], directory: Path,
                     filename: str, context: dict[str, Any]) -> str:
        path = directory / filename
        try:
            return environments[directory].get_template(filename).render(context)
        except TemplateNotFound:
            raise
        except TemplateSyntaxError as exc:
            raise TemplateFailed(filename, str(path), exc.lineno, exc.message or str(exc)
                                 ) from exc
        except _TEMPLATE_FAULTS as exc:
            raise TemplateFailed(filename, str(path), _line_in(exc, path), _reason(exc)
                                 ) from exc

    def render_text(self, name: str, context: dict[str, Any]) -> tuple[str, str]:
        """The subject and the text of template `name`; TemplateFailed if it cannot."""
        directory, _ = self.sources(name)
        filename = f"{name}.txt.j2"
        try:
            source = self._render_file(self._text, directory, filename, context)
        except TemplateNotFound:
            raise TemplateFailed(filename, str(directory / filename), None,
                                 "the template is missing") from None
        return _split_subject(filename, directory / filename, source)

    def render_html(self, name: str, context: dict[str, Any]) -> str | None:
        """The HTML of template `name`, None when it has none; TemplateFailed if it
        cannot be rendered."""
        _, directory = self.sources(name)
        if directory is None:
            return None
        try:
            return self._render_file(self._html, directory, f"{name}.html.j2", context)
        except TemplateNotFound:  # removed since it was looked for: none, as asked
            return None

    def render(self, name: str, context: dict[str, Any]) -> Rendered:
        """The mail of template `name`. A template that cannot be rendered, text or HTML,
        raises TemplateFailed: the mail is not sent, and the caller decides what the
        failure of that one mail means."""
        subject, text = self.render_text(name, context)
        return Rendered(subject, text, self.render_html(name, context))

    def render_problems(self, name: str, context: dict[str, Any]) -> list[TemplateFailed]:
        """What fails when template `name` renders `context`: its text and its HTML,
        each on its own, so that one does not hide the other."""
        problems = []
        for render in (self.render_text, self.render_html):
            try:
                render(name, context)
            except TemplateFailed as exc:
                problems.append(exc)
        return problems

    def check(self, names: Sequence[str]) -> list[str]:
        """Compile every template; one line per problem, naming the file."""
        problems = []
        for name in names:
            text_dir, html_dir = self.sources(name)
            for environments, directory, filename in (
                (self._text, text_dir, f"{name}.txt.j2"),
                (self._html, html_dir, f"{name}.html.j2"),
            ):
                if directory is None:
                    continue
                try:
                    environments[directory].get_template(filename)
                except TemplateNotFound:
                    problems.append(f"{filename} is missing")
                except TemplateSyntaxError as exc:
                    problems.append(f"{filename} line {exc.lineno}: {exc.message}")
        return problems


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The line of the template at `path` where `exc` was raised: Jinja gives the frames
    of template code the template's file name and line (the innermost one counts, for an
    error inside a macro or an included file of the same template)."""
    wanted = os.path.normpath(path)
    line = None
    traceback = exc.__traceback__
    while traceback is not None:
        if os.path.normpath(traceback.tb_frame.f_code.co_filename) == wanted:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _reason(exc: BaseException) -> str:
    """Jinja's own message names the variable ("'customer' is undefined", "... has no
    attribute 'nmae'"); anything else is named by its type too."""
    if isinstance(exc, TemplateError):
        return str(exc.message if exc.message is not None else exc)
    return f"{type(exc).__name__}: {exc}"


def _split_subject(filename: str, path: Path, source: str) -> tuple[str, str]:
    head, _, body = source.lstrip("\n").partition("\n")
    if not head.lower().startswith("subject:"):
        raise TemplateFailed(filename, str(path), 1, "must start with a 'Subject: …' line")
    return " ".join(head[len("subject:"):].split()), body.lstrip("\n").rstrip() + "\n"
