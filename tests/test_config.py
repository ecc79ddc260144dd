from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from maild.config import load_config, parse_config
from maild.errors import ConfigError
from maild.tickets.durations import Duration

ROOT = Path(__file__).resolve().parent.parent


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ or {})
    return caught.value.problems


def test_shipped_configs_are_valid() -> None:
    default = load_config(ROOT / "config" / "maild.toml", {})
    assert default.inbound_smtp.enabled
    assert default.storage.url.startswith("sqlite:///")
    example = load_config(ROOT / "config" / "maild.example.toml",
                          {"MAILD_IMAP_PASSWORD": "secret"})
    assert example.mailboxes[0].password == "secret"
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
    # Only what logs in to the relay needs it: the config loads, and says what is missing.
    unset = parse_config(text, {})
    assert unset.missing_secrets() == ["outbound.password_env: environment variable PW is "
                                       "not set"]
    assert unset.missing_secrets(outbound=False) == []


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


SUPPORT = """
[support]
address = "support@example.com"
"""


def test_mailboxes_with_their_defaults() -> None:
    config = parse_config(SUPPORT + """
[[mailboxes]]
name = "support"
host = "imap.example.com"
username = "Support@Example.com"
password_env = "IMAP_PASSWORD"

[[mailboxes]]
name = "feedback"
host = "outlook.office365.com"
username = "maild-service"
oauth2_token_command = "get-token feedback"
address = "feedback@example.com"
display_name = "Example Feedback"
""", {"IMAP_PASSWORD": "s3cret"})
    support, feedback = config.mailboxes
    assert (support.port, support.security, support.folder, support.processed_folder) == (
        993, "ssl", "INBOX", "Processed")
    assert support.password == "s3cret"
    assert support.address == "support@example.com"  # from the username
    assert feedback.password_env is None and feedback.oauth2_mechanism == "xoauth2"
    assert config.desk_address("feedback") == ("feedback@example.com", "Example Feedback")
    assert config.desk_address(None) == ("support@example.com", "Support")
    assert config.own_addresses == {"support@example.com", "feedback@example.com"}


def test_mailbox_problems_name_the_key() -> None:
    found = problems(SUPPORT + """
[[mailboxes]]
name = "Support Desk"
host = "imap.example.com"
username = "support@example.com"
password_env = "UNSET_VARIABLE"
idle_renew_seconds = 3600

[[mailboxes]]
name = "feedback"
host = "imap.example.com"
username = "feedback@example.com"
password_env = "IMAP_PASSWORD"
oauth2_token_file = "/run/token"
processed_folder = "INBOX"
""", {"IMAP_PASSWORD": "x"})
    assert any(p.startswith("mailboxes[0].name: String should match pattern") for p in found)
    assert any(p.startswith("mailboxes[0].idle_renew_seconds: Input should be less than or "
                            "equal to 1740") for p in found)
    assert ("mailboxes[1]: set exactly one of password_env, oauth2_token_command, "
            "oauth2_token_file") in found


def test_mailbox_folders_must_differ_and_names_be_unique() -> None:
    found = problems(SUPPORT + """
[[mailboxes]]
name = "support"
host = "a.example.com"
username = "a@example.com"
oauth2_token_file = "/run/a"

[[mailboxes]]
name = "support"
host = "b.example.com"
username = "b@example.com"
oauth2_token_file = "/run/b"
""")
    assert found == ["mailboxes: names must be unique (support)"]
    assert problems(SUPPORT + """
[[mailboxes]]
name = "support"
host = "a.example.com"
username = "a@example.com"
oauth2_token_file = "/run/a"
processed_folder = "INBOX"
""") == ["mailboxes[0]: folder, processed_folder and quarantine_folder must differ"]


def test_verifying_staff_needs_the_trusted_server() -> None:
    assert problems(SUPPORT + """
[staff]
addresses = ["dan@example.com"]
verify = "authentication-results"
""") == ["staff: verify = \"authentication-results\" needs trusted_authserv_ids (the "
         "receiving server's name in its Authentication-Results)"]


def test_the_digest_schedule_is_checked() -> None:
    found = problems('[support]\naddress="s@example.com"\n[digest]\nto=["lead"]\n'
                     'weekday="monday"\ntime="8 am"\n')
    assert [line.split(":")[0] for line in found] == ["digest.to[0]", "digest.weekday",
                                                      "digest.time"]


def test_the_sender_silence_limit_is_checked() -> None:
    assert parse_config(SUPPORT, {}).outbound.sender_silence == timedelta(seconds=15)
    assert parse_config(SUPPORT + "[outbound]\nsender_silence_seconds = 3\n",
                        {}).outbound.sender_silence == timedelta(seconds=3)
    assert problems(SUPPORT + "[outbound]\nsender_silence_seconds = 2.5\n") == [
        "outbound.sender_silence_seconds: Input should be greater than or equal to 3"]
    assert problems(SUPPORT + "[outbound]\nsender_silence_seconds = 61\n") == [
        "outbound.sender_silence_seconds: Input should be less than or equal to 60"]
