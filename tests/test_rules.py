"""The rules written once and used everywhere: the subject tag, Message-IDs, mailer daemons,
who receives staff mail, the ticket model's sets and the connection to the relay."""

from __future__ import annotations

import smtplib

import pytest

from maild.config import OutboundConfig, StaffConfig
from maild.db.models import Ticket
from maild.mail.addresses import is_mailer_daemon
from maild.mail.message_id import message_ids, new_message_id
from maild.mail.subject import bare, tag, tagged, tags_in
from maild.outbound.smtp import connect
from maild.tickets.model import RESOLVED, STATUSES, WAITING_ON_US
from maild.tickets.staff import escalation_recipients, staff_recipients
from tests.conftest import Sink

# --- the [#N] tag -------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 42, 999_999_999])
def test_a_tag_written_is_read_back(number: int) -> None:
    subject = tagged("Re: Printer on fire", number)
    assert subject == f"[#{number}] Printer on fire"
    assert tags_in(subject) == [number]
    assert tags_in(tagged(subject, number)) == [number]  # written once, however often asked


def test_tags_are_read_in_order_and_bounded() -> None:
    assert tags_in("Re: [#12] merged with [#7]") == [12, 7]
    assert tags_in("[#1234567890] ten digits is no ticket of ours") == []
    assert tags_in("[# 5] [#x] #5 [5]") == []


def test_bare_removes_reply_prefixes_and_tags() -> None:
    assert bare("RE: AW: Fwd: [#3] Invoice") == "Invoice"
    assert bare("Invoice [#3]") == "Invoice"
    assert bare("Invoice") == "Invoice"


def test_bare_removes_prefixes_and_tags_however_they_interleave() -> None:
    """A reply to the acknowledgment of ticket 1's follow-up."""
    assert bare("Re: [#17] Re: [#1] Printer on fire") == "Printer on fire"
    assert bare("AW:[#17]AW: [#1] Drucker brennt") == "Drucker brennt"
    assert tagged("Re: [#1] Re: Printer on fire", 17) == "[#17] Printer on fire"
    assert tag(3) == "[#3]"


def test_another_tickets_tag_gives_way_to_this_one() -> None:
    assert tagged("Re: [#3] Invoice", 4) == "[#4] Invoice"


# --- Message-IDs --------------------------------------------------------------------------


def test_message_ids_are_read_as_clients_write_them() -> None:
    long_id = "<" + "x" * 300 + "@corp.local>"
    assert message_ids(f" <a@b.example>\r\n\t{long_id} junk <not an id>") == [
        "<a@b.example>", long_id]
    assert message_ids("") == []


def test_a_new_message_id_is_read_back_whole() -> None:
    made = new_message_id("support.example.com", 7)
    assert made.startswith("<maild.7.") and made.endswith("@support.example.com>")
    assert message_ids(f"References: {made}") == [made]
    assert new_message_id("support.example.com") != new_message_id("support.example.com")


# --- mailer daemons -----------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "MAILER-DAEMON@mx.example.com", "postmaster@example.org",
    "noreply-dmarc-support@google.com",
])
def test_mailer_daemons(address: str) -> None:
    assert is_mailer_daemon(address)


@pytest.mark.parametrize("address", ["daemon@example.com", "post@example.com",
                                     "ann@mailer-daemon.example"])
def test_people_are_no_mailer_daemons(address: str) -> None:
    assert not is_mailer_daemon(address)


# --- who receives staff mail --------------------------------------------------------------

_STAFF = StaffConfig(addresses=["dan@example.com", "eve@example.com"],
                     leads=["lee@example.com"])


def test_the_assignee_alone_receives_staff_mail() -> None:
    ticket = Ticket(assignee="eve@example.com")
    assert staff_recipients(ticket, _STAFF) == ["eve@example.com"]


def test_without_an_assignee_the_staff_list_does() -> None:
    assert staff_recipients(Ticket(assignee=None), _STAFF) == [
        "dan@example.com", "eve@example.com"]


def test_the_author_gets_no_copy_of_their_own_mail() -> None:
    ticket = Ticket(assignee=None)
    assert staff_recipients(ticket, _STAFF, author="dan@example.com") == ["eve@example.com"]
    assert staff_recipients(Ticket(assignee="dan@example.com"), _STAFF,
                            author="dan@example.com") == []


def test_escalations_go_to_the_leads_with_the_assignee_in_copy() -> None:
    assert escalation_recipients(Ticket(assignee="eve@example.com"), _STAFF) == (
        ["lee@example.com"], ["eve@example.com"])
    assert escalation_recipients(Ticket(assignee="lee@example.com"), _STAFF) == (
        ["lee@example.com"], [])
    no_leads = StaffConfig(addresses=["dan@example.com"])
    assert escalation_recipients(Ticket(assignee=None), no_leads) == (["dan@example.com"], [])


# --- the ticket model ---------------------------------------------------------------------


def test_the_status_sets_are_statuses_and_apart() -> None:
    assert set(WAITING_ON_US) | set(RESOLVED) < set(STATUSES)
    assert not set(WAITING_ON_US) & set(RESOLVED)


# --- the relay connection -----------------------------------------------------------------


def test_the_relay_is_reached_and_answers(sink: Sink) -> None:
    client = connect(OutboundConfig(host="127.0.0.1", port=sink.port, security="none"))
    try:
        assert client.noop()[0] == 250
    finally:
        client.quit()


def test_a_relay_without_starttls_is_never_used_unencrypted(sink: Sink) -> None:
    with pytest.raises(smtplib.SMTPNotSupportedError):
        connect(OutboundConfig(host="127.0.0.1", port=sink.port, security="starttls"))
