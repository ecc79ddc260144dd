"""Spoofing: a staff From header alone does not make an SE when the operator asks for
the receiving server's verdict (Authentication-Results)."""

from __future__ import annotations

import pytest

from maild.config import Config
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from tests.conftest import Sink
from tests.helpers import show
from tests.mailbuilder import make_mail, plain_text

MX = "mx.example.com"


@pytest.fixture
def config(config: Config) -> Config:
    return config.model_copy(update={"staff": config.staff.model_copy(update={
        "verify": "authentication-results", "trusted_authserv_ids": [MX]})})


def se_reply(ticket_id: int, results: str | None, message_id: str) -> bytes:
    return make_mail(sender="Dan Engineer <dan@example.com>", subject=f"Re: [#{ticket_id}]",
                     message_id=message_id, in_reply_to="<first@customer.example>",
                     body="#solve\nAll fixed, closing this.\n",
                     headers={"Authentication-Results": results} if results else {})


def test_staff_mail_passing_dkim_at_our_server_is_staff(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    passed = f"{MX}; dkim=pass header.d=example.com header.s=s1; spf=fail smtp.mailfrom=x.test"
    ingest(app.intake, se_reply(ticket_id, passed, "<real@example.com>"), "test")

    ticket = show(app, ticket_id)
    assert ticket["status"] == "solved"
    assert ticket["messages"][-1]["kind"] == "public"


@pytest.mark.parametrize("results", [
    None,  # no verdict at all
    f"{MX}; dkim=fail header.d=example.com; spf=softfail smtp.mailfrom=dan@example.com",
    f"{MX}; dkim=pass header.d=attacker.example",  # signed, but by someone else
    "mx.attacker.example; dkim=pass header.d=example.com",  # written by the sender itself
])
def test_claimed_staff_mail_that_fails_is_a_customer_message_and_flagged(
    app: App, sink: Sink, results: str | None
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, se_reply(ticket_id, results, "<spoof@example.com>"), "test")

    ticket = show(app, ticket_id)
    assert ticket["status"] == "open"  # not solved: the "#solve" was a customer's words
    last = ticket["messages"][-1]
    assert (last["direction"], last["kind"]) == ("in", "public")
    flagged = [e for e in ticket["events"] if e["kind"] == "staff_unverified"]
    assert len(flagged) == 1
    reason = flagged[0]["detail"].removeprefix("<spoof@example.com> ")
    assert reason.startswith("claims staff address dan@example.com, but ")
    assert last["unproven_staff"] == reason
    assert last["ignored_commands"] == ["#solve"]
    relayed = [m for m in ticket["messages"] if (m["direction"], m["kind"]) == ("out", "public")]
    assert relayed == []
    app.sender.deliver_due()
    [warning] = [m for m in sink.messages() if m["Delivered-To"] == "dan@example.com"
                 and "handled as a customer's" in m["Subject"]]
    assert plain_text(warning).startswith(
        "A mail from your address dan@example.com on ticket #1 did not prove that you wrote "
        f"it: the mail {reason}.")


@pytest.mark.parametrize(("results", "reason"), [
    (None, f"no Authentication-Results from {MX} is on it"),
    (f"{MX}; dkim=fail header.d=example.com; spf=softfail smtp.mailfrom=dan@example.com",
     f"the topmost Authentication-Results from {MX} shows no dkim, spf or dmarc pass for "
     "example.com"),
    # A pass inside a comment, or for another property, is no pass for the domain.
    (f"{MX}; dkim=fail (dkim=pass header.d=example.com) header.d=example.com",
     f"the topmost Authentication-Results from {MX} shows no dkim, spf or dmarc pass for "
     "example.com"),
    (f"{MX}; spf=pass smtp.mailfrom=x@attacker.example header.from=example.com",
     f"the topmost Authentication-Results from {MX} shows no dkim, spf or dmarc pass for "
     "example.com"),
])
def test_the_reason_says_what_the_receiving_server_did_not_show(
    app: App, results: str | None, reason: str
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, se_reply(ticket_id, results, "<spoof@example.com>"), "test")
    assert show(app, ticket_id)["messages"][-1]["unproven_staff"] == (
        f"claims staff address dan@example.com, but {reason}")


@pytest.mark.parametrize("passing", [
    f"{MX}; spf=pass smtp.mailfrom=dan@example.com",
    f"{MX}; dmarc=pass (p=reject) header.from=example.com",
    f"{MX.upper()}; dkim=pass (2048-bit key; secure) header.d=example.com",
    f'{MX} 1; dkim = pass header.d="example.com" header.s=s1',
    # As Gmail writes it: the signer named by header.i, and comments full of semicolons.
    (f"{MX}; dkim=pass header.i=@example.com header.s=20230601 header.b=AbC; spf=pass "
     "(google.com: domain of dan@example.com designates 1.2.3.4 as permitted sender; x) "
     "smtp.mailfrom=dan@example.com"),
])
def test_each_method_the_receiving_server_vouches_with_counts(app: App, passing: str) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, se_reply(ticket_id, passing, "<real@example.com>"), "test")
    assert show(app, ticket_id)["status"] == "solved"


def test_a_mangled_authentication_results_header_is_a_failed_check_not_a_crash(
    app: App
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    result = ingest(app.intake, se_reply(ticket_id, ";;; dkim=", "<mangled@example.com>"), "test")
    assert result.outcome == "stored"
    assert show(app, ticket_id)["status"] == "open"


def test_only_the_topmost_header_of_a_trusted_server_counts(app: App) -> None:
    """Ours is the topmost *trusted* one: a relay after our MX may add one of its own above
    it, and what lies below it the sender wrote (tests/security/ holds the attack)."""
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    forged_below = se_reply(ticket_id, f"{MX}; dkim=pass header.d=example.com", "<f@example.com>")
    real = f"{MX}; dkim=fail header.d=example.com".encode()
    ingest(app.intake, b"Authentication-Results: " + real + b"\r\n" + forged_below, "test")
    assert show(app, ticket_id)["status"] == "open"

    passing = se_reply(ticket_id, None, "<p@example.com>")
    ingest(app.intake, b"Authentication-Results: relay.internal.example; none\r\n"
                b"Authentication-Results: " + f"{MX}; dkim=pass header.d=example.com".encode()
           + b"\r\n" + passing, "test")
    assert show(app, ticket_id)["status"] == "solved"
