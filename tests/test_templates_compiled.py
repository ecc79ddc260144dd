"""The templates' compiled forms are kept across starts: a start loads them instead of
compiling every template again, and a template changed since is compiled again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from jinja2 import Environment

from maild.clock import FixedClock
from maild.config import Config
from maild.outbound.samples import samples
from maild.outbound.templates import SHIPPED_TEMPLATES, Templates
from maild.runtime.checks import render_failures


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates Jinja compiles from here on."""
    names: list[str] = []
    compile_source = Environment.compile

    def counted(self: Environment, source: str, name: str | None = None,
                *args: object, **kwargs: object) -> object:
        names.append(str(name))
        return compile_source(self, source, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Environment, "compile", counted)
    return names


def _render_every_sample(templates: Templates, config: Config, clock: FixedClock) -> None:
    assert render_failures(templates, config, clock) == []


def test_a_second_start_compiles_no_template(
    config: Config, clock: FixedClock, tmp_path: Path, compiled: list[str]
) -> None:
    _render_every_sample(Templates(None, tmp_path / "compiled"), config, clock)
    first = sorted(compiled)
    compiled.clear()

    _render_every_sample(Templates(None, tmp_path / "compiled"), config, clock)

    assert {sample.template for sample in samples(config, clock)} <= \
        {name.split(".")[0] for name in first}
    assert compiled == []


def test_a_template_changed_since_is_compiled_again(
    config: Config, clock: FixedClock, tmp_path: Path, compiled: list[str]
) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    ack = overrides / "ack.txt.j2"
    ack.write_text((SHIPPED_TEMPLATES / "ack.txt.j2").read_text())
    context = next(s.context for s in samples(config, clock) if s.template == "ack")
    Templates(overrides, tmp_path / "compiled").render("ack", context)
    compiled.clear()

    ack.write_text("Subject: Got it\n\nThank you, {{ support.name }}.\n")
    rendered = Templates(overrides, tmp_path / "compiled").render("ack", context)

    assert compiled == ["ack.txt.j2"]
    assert rendered.text == f"Thank you, {context['support']['name']}.\n"


def test_templates_render_when_their_compiled_forms_cannot_be_kept(
    config: Config, clock: FixedClock, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    _render_every_sample(Templates(None, not_a_directory / "compiled"), config, clock)
    # Gone after the start: neither read nor written.
    templates = Templates(None, tmp_path / "compiled")
    shutil.rmtree(tmp_path / "compiled")
    (tmp_path / "compiled").write_text("")
    _render_every_sample(templates, config, clock)
