"""Threat: the sender writes an Authentication-Results header of their own, naming our
receiving server and a dkim pass, below the real one our server added on top (which says
the check failed). Headers below the topmost one from a trusted authserv-id were in the
mail before our server saw it: the sender's words, which never count (RFC 8601 section 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maild.clock import FixedClock
from maild.config import Config
from tests.conftest import Sink
from tests.mailbuilder import make_mail
from tests.security.staff_desk import CUSTOMER, SE, Desk, open_desk

MX = "mx.example.com"
REAL_FAIL = f"{MX}; dkim=fail header.d=example.com; spf=fail smtp.mailfrom=evil.example"
REAL_PASS = f"{MX}; dkim=pass header.d=example.com header.s=s1; spf=pass smtp.mailfrom=example.com"
FORGED_PASS = f"{MX}; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=dan@example.com"


@pytest.fixture(params=["authentication-results", "reply-token"])
def desk(request: pytest.FixtureRequest, config: Config, config_file: Path, clock: FixedClock,
         sink: Sink) -> Iterator[Desk]:
    with open_desk(config, config_file, clock, sink, verify=request.param,
                   trusted_authserv_ids=[MX]) as running:
        yield running


def as_received(raw: bytes, *results: str) -> bytes:
    """The mail as our receiving server hands it on: its own verdict added on top."""
    return b"".join(f"Authentication-Results: {r}\r\n".encode() for r in results) + raw


def se_mail(*, forged: str | None = None) -> bytes:
    """Mail in Dan's name answering only the customer's mail (no reply token), with
    `forged` written into it by its sender."""
    return make_mail(sender="Dan Engineer <dan@example.com>", subject="Re: [#1] Printer on fire",
                     message_id="<se@example.com>", in_reply_to="<first@customer.example>",
                     body="#solve\nAll done.\n",
                     headers={"Authentication-Results": forged} if forged else None)


def test_a_pass_forged_below_the_real_failing_header_does_not_count(desk: Desk) -> None:
    desk.send(make_mail(), CUSTOMER)
    desk.send(as_received(se_mail(forged=FORGED_PASS), REAL_FAIL), SE)

    ticket = desk.show(1)
    assert ticket["status"] == "open"
    [forged] = [m for m in ticket["messages"] if m["message_id"] == "<se@example.com>"]
    assert forged["unproven_staff"].endswith(
        f"the topmost Authentication-Results from {MX} shows no dkim, spf or dmarc pass for "
        "example.com")
    assert len(desk.mails_to(CUSTOMER)) == 1  # the acknowledgment only


def test_the_real_topmost_pass_counts_without_a_reply_token(desk: Desk) -> None:
    desk.send(make_mail(), CUSTOMER)
    # A failing header further down (an earlier hop, or the sender's) changes nothing.
    desk.send(as_received(se_mail(forged=REAL_FAIL), REAL_PASS), SE)

    ticket = desk.show(1)
    assert ticket["status"] == "solved"
    assert ticket["messages"][-1]["unproven_staff"] is None
    assert desk.mails_to(CUSTOMER)[-1]["Subject"] == "Re: [#1] Printer on fire"
