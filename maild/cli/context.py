"""What every command shares: the lazily built application, logging, and the one place
that turns errors into exit codes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from maild.clock import clock_from_env
from maild.config import Config, load_config
from maild.errors import ConfigError, MaildError, NotFound, PermanentError, TemporaryError
from maild.runtime.app import App, build_app

EX_DATAERR = 65  # the message can never be accepted
EX_NOINPUT = 66  # an input file does not exist or cannot be read
EX_TEMPFAIL = 75  # try again later
EX_CONFIG = 78

# The largest id either database holds (a signed 64-bit integer): a larger number given
# on the command line names nothing, rather than overflowing the driver.
MAX_ROW_ID = 2**63 - 1

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Context:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._app: App | None = None

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None

    def config(self) -> Config:
        return load_config(self.config_path)

    def app(self, *, migrate: bool = True, daemon: bool = False) -> App:
        if self._app is None:
            config = self.config()
            # One-shot commands print their own outcome; only the daemon logs at info.
            level = config.logging.level
            setup_logging(level if daemon or level == "debug" else "warning")
            self._app = build_app(config, clock_from_env(), migrate=migrate,
                                  migrate_in_a_child=True)
        return self._app

    def read(self, query: Callable[[App, Session], T]) -> T:
        """What `query` reads, in a transaction of its own (for the commands that show)."""
        app = self.app()
        with app.db.transaction() as session:
            return query(app, session)


def known_id(value: int, missing: str) -> int:
    """`value` as an id to look up; NotFound(`missing`) when no row can have it."""
    if not 0 < value <= MAX_ROW_ID:
        raise NotFound(missing)
    return value


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet = max(logging.WARNING, logging.getLogger().level)
    for chatty in ("alembic", "mail.log", "apscheduler"):  # one line per SMTP command or run
        logging.getLogger(chatty).setLevel(quiet)


def fail(message: str, code: int) -> None:
    click.echo(f"maild: {message}", err=True)
    sys.exit(code)


def handles_errors(function: F) -> F:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"maild: config: {problem}", err=True)
            sys.exit(EX_CONFIG)
        except NotFound as exc:
            fail(str(exc), 1)
        except TemporaryError as exc:
            fail(f"{exc} (try again later)", EX_TEMPFAIL)
        except (PermanentError, MaildError) as exc:
            fail(str(exc), 1)

    return wrapper  # type: ignore[return-value]


# `--json` on every command that shows something: the data as JSON instead of text.
json_option = click.option("--json", "as_json", is_flag=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


