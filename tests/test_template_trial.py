"""A start tries the templates in every sample situation (test_template_failures.py) only
when something the trial reads has changed since a start that found none failing: the
templates, the configuration, maild itself. A failing template is told at every start."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import maild.runtime.checks
import maild.runtime.template_trial
from maild.outbound.templates import SHIPPED_TEMPLATES
from maild.runtime.app import App
from maild.runtime.daemon import Daemon
from maild.runtime.template_trial import fingerprint


@pytest.fixture
def trials(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry for each start that tried the templates."""
    tried: list[int] = []
    trial = maild.runtime.checks.failing_templates

    def counted(*args: Any) -> list[str]:
        tried.append(1)
        return trial(*args)

    monkeypatch.setattr(maild.runtime.checks, "failing_templates", counted)
    return tried


def _start(app: App) -> None:
    Daemon(app).run_once()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "cannot be rendered" in r.getMessage()]


def test_a_start_like_the_last_does_not_try_the_templates_again(
    app: App, trials: list[int]
) -> None:
    _start(app)
    _start(app)
    assert len(trials) == 1


def test_a_template_changed_since_is_tried_and_its_failure_told_at_every_start(
    app: App, app_with: Callable[..., App], trials: list[int], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    ack = overrides / "ack.txt.j2"
    ack.write_text((SHIPPED_TEMPLATES / "ack.txt.j2").read_text())
    desk = app_with(templates=app.config.templates.model_copy(update={"dir": overrides}))
    _start(desk)
    assert len(trials) == 1 and _warnings(caplog) == []

    ack.write_text("Subject: Hello\n\nDear {{ customer.nmae }},\n")
    _start(desk)
    _start(desk)

    assert len(trials) == 3
    assert len(_warnings(caplog)) == 2


def test_another_configuration_is_tried_again(
    app: App, app_with: Callable[..., App], trials: list[int]
) -> None:
    _start(app)
    _start(app_with(staff=app.config.staff.model_copy(update={"addresses": ["kim@example.com"]})))
    assert len(trials) == 2


def test_an_upgraded_maild_is_tried_again(app: App, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "maild"
    (code / "outbound").mkdir(parents=True)
    module = code / "outbound" / "samples.py"
    module.write_text("SITUATIONS = 1\n")
    monkeypatch.setattr(maild.runtime.template_trial, "_CODE", code)
    before = fingerprint(app.config)

    module.write_text("SITUATIONS = 12\n")

    assert fingerprint(app.config) != before
