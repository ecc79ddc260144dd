"""A built wheel is a working maild: built as a release is, installed into a fresh virtual
environment, and run from a directory that is not the checkout, it stores a customer's mail
and acknowledges it from the shipped templates (docs/design.md, "Layout")."""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import Sink, using_postgresql
from tests.mailbuilder import make_mail

CHECKOUT = Path(__file__).resolve().parent.parent
# Left behind by a checkout's own use; none of it belongs in a build.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "storage", "*.egg-info", "__pycache__", ".*_cache"
)
NOW = "2026-11-23T10:00:00-08:00"

pytestmark = pytest.mark.skipif(
    using_postgresql(), reason="the package is under test, not the database: once is enough"
)


def run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    finished = subprocess.run([str(part) for part in command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    assert finished.returncode == 0, f"{command}:\n{finished.stdout}\n{finished.stderr}"
    return finished


def build_wheel(tmp_path: Path) -> Path:
    """`python -m build --wheel` on a copy of the source tree, so that the build directory
    and metadata it writes stay out of the checkout; symbolic links are kept as links."""
    source = tmp_path / "source"
    shutil.copytree(CHECKOUT, source, symlinks=True, ignore=NOT_SOURCE)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp_path / "dist", source],
        cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("maild-*.whl")
    return wheel


def assert_carries_templates_and_migrations(wheel: Path) -> None:
    """The mail templates, the migrations, and the web part's pages."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    templates = {f"maild/shipped_templates/{p.name}" for p in (CHECKOUT / "templates").glob("*.j2")}
    migrations = {
        f"maild/db/migrations/{p.relative_to(CHECKOUT / 'maild/db/migrations').as_posix()}"
        for p in (CHECKOUT / "maild/db/migrations").rglob("*")
        if p.suffix in (".py", ".mako")
    }
    web = {f"maild/web/{p.relative_to(CHECKOUT / 'maild/web').as_posix()}"
           for p in (CHECKOUT / "maild/web").rglob("*") if p.suffix in (".j2", ".css")}
    assert templates and migrations and web
    assert templates - names == set()
    assert migrations - names == set()
    assert web - names == set()  # the dashboard's pages and stylesheet


def install(wheel: Path, venv: Path, cwd: Path) -> Path:
    run([sys.executable, "-m", "venv", venv], cwd=cwd)
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", wheel], cwd=cwd)
    return venv / "bin" / "maild"


def test_installed_wheel_stores_and_acknowledges_mail(tmp_path: Path, sink: Sink) -> None:
    wheel = build_wheel(tmp_path)
    assert_carries_templates_and_migrations(wheel)

    elsewhere = tmp_path / "elsewhere"  # nothing of the checkout here, nor on the path
    elsewhere.mkdir()
    maild = install(wheel, tmp_path / "venv", elsewhere)
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PYTHON", "MAILD_", "VIRTUAL_ENV"))}
    environment["MAILD_NOW"] = NOW
    where = run([maild.with_name("python"), "-c", "import maild; print(maild.__file__)"],
                cwd=elsewhere, env=environment)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv")

    config = tmp_path / "etc" / "maild.toml"
    config.parent.mkdir()
    config.write_text(f"""
[support]
address = "support@example.com"
name = "Example Support"

[storage]
url = "sqlite:///{tmp_path}/data/maild.db"
dir = "{tmp_path}/data"

[outbound]
host = "127.0.0.1"
port = {sink.port}
security = "none"
timeout_seconds = 5

[staff]
addresses = ["dan@example.com"]

[business_hours]
timezone = "America/Los_Angeles"
""")
    (elsewhere / "mail.eml").write_bytes(make_mail())

    ingested = run([maild, "--config", config, "ingest", "mail.eml"], cwd=elsewhere,
                   env=environment)
    assert "ticket #1" in ingested.stdout
    shown = json.loads(run([maild, "tickets", "show", "1", "--json"], cwd=elsewhere,
                           env={**environment, "MAILD_CONFIG": str(config)}).stdout)
    assert (shown["subject"], shown["status"]) == ("Printer on fire", "new")
    assert shown["messages"][0]["body"] == "It is on fire."

    run([maild, "--config", config, "run", "--once"], cwd=elsewhere, env=environment)
    delivered = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                 for p in sink.files()]
    (acknowledgment,) = [m for m in delivered if m["Delivered-To"] == "ann@customer.example"]
    assert acknowledgment["Subject"] == "Re: [#1] Printer on fire"
    text = acknowledgment.get_body(("plain",)).get_content()
    assert "Your message is now ticket #1" in text
    assert acknowledgment.get_body(("html",)) is not None  # ack.html.j2 shipped too
    assert list(elsewhere.iterdir()) == [elsewhere / "mail.eml"]  # nothing written to the cwd
