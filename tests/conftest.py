"""Fixtures: a real database (SQLite, or PostgreSQL when MAILD_TEST_DB=postgresql),
a fixed clock, and a real SMTP sink on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import create_engine, make_url, text

from maild.channels.sink import start_sink
from maild.clock import FixedClock
from maild.config import Config, parse_config
from maild.runtime.app import App, build_app

PG_URL = os.environ.get(
    "MAILD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
START = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # a Monday, 10:00 in Los Angeles

# Hypothesis keeps caches; they belong in the temp directory, not in the checkout.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "maild-hypothesis")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def using_postgresql() -> bool:
    return os.environ.get("MAILD_TEST_DB", "sqlite") == "postgresql"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "empty_database: the test's database as a first start finds it, with "
                   "no schema (by default it holds the schema the migrations make)")


def _schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[Path | str | None]:
    """The schema every migration makes, made once for the whole run by the migrations
    themselves: on SQLite a database file to copy, on PostgreSQL the script pg_dump writes
    of a migrated schema, its name to be replaced (None without pg_dump: the test's maild
    then migrates, as a first start does). A test starts on a current schema in a few
    milliseconds instead of migrating (0.1 to 0.4 s a test)."""
    from maild.db.database import Database
    from maild.db.migrate import upgrade

    if not using_postgresql():
        path = tmp_path_factory.mktemp("migrated") / "maild.db"
        database = Database(f"sqlite:///{path}")
        upgrade(database)
        database.dispose()  # the last connection closed: the WAL is folded into the file
        yield path
        return
    schema = f"t_template_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        database = Database(_schema_url(schema))
        upgrade(database)
        database.dispose()
        with admin.connect() as connection:
            revision = connection.execute(text(
                f'SELECT version_num FROM "{schema}".alembic_version')).scalar_one()
        url = make_url(PG_URL)
        dumped = subprocess.run(
            ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "--schema", schema,
             "--host", url.host or "127.0.0.1", "--port", str(url.port or 5432),
             "--username", url.username or "postgres", url.database or "test"],
            capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:  # no pg_dump: each test's maild migrates, as a first start
        dumped = ""
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    if "CREATE TABLE" not in dumped:
        yield None
        return
    # psql's own commands (\restrict) are not SQL; the schema is made by the fixture.
    script = "\n".join(line for line in dumped.splitlines()
                       if not line.startswith("\\") and line != f"CREATE SCHEMA {schema};")
    script += f"\nINSERT INTO {schema}.alembic_version (version_num) VALUES ('{revision}');\n"
    yield script.replace(schema, _TEMPLATE_NAME)


_TEMPLATE_NAME = "maild_migrated_template_schema"


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own: with the current schema, or with none for a test
    marked `empty_database`."""
    empty = request.node.get_closest_marker("empty_database") is not None
    template = None if empty else request.getfixturevalue("migrated_template")
    if not using_postgresql():
        if isinstance(template, Path):
            shutil.copyfile(template, tmp_path / "maild.db")
            assert not template.with_name("maild.db-wal").exists(), "the template is open"
        yield f"sqlite:///{tmp_path}/maild.db"
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        if isinstance(template, str):
            connection.exec_driver_sql(template.replace(_TEMPLATE_NAME, schema))
    try:
        yield _schema_url(schema)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Sink:
    """A real SMTP server that keeps what it is given; read back as parsed mail."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml"), key=lambda p: p.name)

    def messages(self) -> list[Any]:
        from tests.mailbuilder import read_eml

        return [read_eml(p) for p in self.files()]


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Sink]:
    port = free_port()
    directory = tmp_path / "sink"
    controller = start_sink("127.0.0.1", port, directory)
    try:
        yield Sink(directory, port)
    finally:
        controller.stop()


def config_text(
    database_url: str, storage_dir: Path, outbound_port: int, extra: str = "",
    staff_extra: str = "", outbound_extra: str = "",
) -> str:
    return f"""
[support]
address = "support@example.com"
name = "Example Support"

[storage]
url = "{database_url}"
dir = "{storage_dir}"

[outbound]
host = "127.0.0.1"
port = {outbound_port}
timeout_seconds = 5
poll_seconds = 0.5
# One connection to the relay: mail reaches the sink in the order it was queued, which
# is how the tests read it (tests/test_outbox_connections.py uses several).
connections = 1
{outbound_extra}

[staff]
addresses = ["dan@example.com"]
domains = ["staff.example.com"]
{staff_extra}

[business_hours]
timezone = "America/Los_Angeles"
{extra}
"""


@pytest.fixture
def config_file(tmp_path: Path, database_url: str, sink: Sink) -> Path:
    """The test configuration as a file, for the command line."""
    path = tmp_path / "maild.toml"
    path.write_text(config_text(database_url, tmp_path / "storage", sink.port))
    return path


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def config(database_url: str, tmp_path: Path, sink: Sink) -> Config:
    return parse_config(config_text(database_url, tmp_path / "storage", sink.port))


@pytest.fixture
def app(config: Config, clock: FixedClock) -> Iterator[App]:
    application = build_app(config, clock)
    try:
        yield application
    finally:
        application.close()


@pytest.fixture
def app_with(app: App) -> Iterator[Callable[..., App]]:
    """Another maild on the same database and storage, built by the composition root
    with some sections of its configuration replaced: `app_with(staff=...)`."""
    built: list[App] = []

    def build(**sections: Any) -> App:
        built.append(build_app(app.config.model_copy(update=sections), app.clock,
                               migrate=False))
        return built[-1]

    yield build
    for other in built:
        other.close()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Any]:
    from tests.dovecot import Dovecot

    server = Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def imap_account(dovecot: Any) -> Any:
    """A fresh account with an empty INBOX on the private Dovecot."""
    return dovecot.add_account()


def mailbox_toml(account: Any, name: str = "support", **settings: Any) -> str:
    """A [[mailboxes]] entry for a test account; `settings` override or add keys."""
    values: dict[str, Any] = {
        "name": name,
        "host": "127.0.0.1",
        "port": account.server.port,
        "security": "none",
        "username": account.username,
        "address": "support@example.com",
        "password_env": f"MAILD_TEST_IMAP_{name.upper()}",
        "idle_renew_seconds": 30,
        "poll_seconds": 0.5,
        "timeout_seconds": 5,
    }
    values.update(settings)
    lines = ["[[mailboxes]]"]
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"
