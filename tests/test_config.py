from __future__ import annotations

from pathlib import Path

import pytest

from maild.config import load_config, parse_config
from maild.durations import Duration
from maild.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ or {})
    return caught.value.problems


def test_shipped_configs_are_valid() -> None:
    default = load_config(ROOT / "config" / "maild.toml", {})
    assert default.inbound_smtp.enabled
    assert default.storage.url.startswith("sqlite:///")
    example = load_config(ROOT / "config" / "maild.example.toml", {})
    assert example.followup.nudges == [Duration(2, "day", True), Duration(4, "day", True)]


def test_one_line_per_problem_naming_the_key() -> None:
    found = problems("""
[support]
address = "nope"
[outbound]
prot = 25
port = 0
security = "tls"
[followup]
nudges = ["soon"]
""")
    assert len(found) == 5
    keys = sorted(line.split(":")[0] for line in found)
    assert keys == ["followup.nudges[0]", "outbound.port", "outbound.prot", "outbound.security",
                    "support.address"]
    assert "outbound.prot: unknown key" in found


def test_missing_required_section() -> None:
    assert problems("") == ["support: required key is missing"]


def test_secret_comes_from_the_environment() -> None:
    text = '[support]\naddress="s@example.com"\n[outbound]\nusername="u"\npassword_env="PW"\n'
    assert parse_config(text, {"PW": "secret"}).outbound.password == "secret"
    assert problems(text) == ["outbound.password_env: environment variable PW is not set"]


def test_plain_password_in_the_file_is_refused() -> None:
    found = problems('[support]\naddress="s@example.com"\n[outbound]\npassword="x"\n')
    assert found == ["outbound.password: unknown key (use password_env)"]


def test_business_hours_are_checked() -> None:
    found = problems('[support]\naddress="s@example.com"\n[business_hours]\n'
                     'timezone="Mars/Olympus"\nstart="18:00"\nend="09:00"\nholidays=["xmas"]\n')
    assert any(p.startswith("business_hours.timezone:") for p in found)
    assert any(p.startswith("business_hours.holidays:") for p in found)


def test_not_toml() -> None:
    assert "not valid TOML" in problems("[support\n")[0]
