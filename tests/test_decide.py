"""What a mail means for its ticket, decided without a database (maild/intake/decide.py)."""

from __future__ import annotations

from maild.intake.bounces import Bounce
from maild.intake.classify import Verdict
from maild.intake.decide import NO_TICKET, Decision, SentMail, TicketFacts, decide
from maild.intake.parse import ParsedMail
from maild.mail.addresses import Mailbox

OWN = frozenset({"support@example.com", "billing@example.com"})
CUSTOMER = "ann@customer.example"
SE = "dan@example.com"


def is_staff(address: str) -> bool:
    return address in (SE, "eve@example.com")


def mail(sender: str = CUSTOMER, to: tuple[str, ...] = ("support@example.com",),
         cc: tuple[str, ...] = (), text: str = "It is on fire.",
         bounce: Bounce | None = None) -> ParsedMail:
    return ParsedMail(
        message_id="<m@example.org>", subject="Printer on fire",
        sender=Mailbox(sender), to=[Mailbox(a) for a in to], cc=[Mailbox(a) for a in cc],
        date=None, in_reply_to=[], references=[], text=text, new_text=text, bounce=bounce,
    )


CUSTOMERS = Verdict(is_staff=False, automatic=None, loop=None)
STAFFS = Verdict(is_staff=True, automatic=None, loop=None)
OUT_OF_OFFICE = Verdict(is_staff=False, automatic="Auto-Submitted: auto-replied", loop=None)
SE_OUT_OF_OFFICE = Verdict(is_staff=True, automatic="Auto-Submitted: auto-replied", loop=None)
BOUNCE = Verdict(is_staff=False, automatic="empty Return-Path (bounce)", loop=None)

OPEN = TicketFacts(ticket_id=7, status="pending", requester=CUSTOMER,
                   participants=frozenset({CUSTOMER, "bob@customer.example", SE}))
CLOSED = TicketFacts(ticket_id=7, status="closed", requester=CUSTOMER)
SURVEYED = TicketFacts(ticket_id=7, status="solved", requester=CUSTOMER,
                       survey_sent=True, answers_survey=True)


def the(parsed: ParsedMail, verdict: Verdict, facts: TicketFacts) -> Decision:
    return decide(parsed, verdict, facts, own=OWN, is_staff=is_staff)


# --- a mail that belongs to no ticket ------------------------------------------------------


def test_a_customers_first_mail_is_a_new_conversation_with_the_others_in_copy() -> None:
    decision = the(mail(cc=("bob@customer.example", SE, "billing@example.com", CUSTOMER)),
                   CUSTOMERS, NO_TICKET)
    assert decision.kind == "new_conversation"
    assert decision.requester == CUSTOMER
    assert decision.cc == ("bob@customer.example",)  # neither us, nor staff, nor the sender


def test_automatic_mail_that_belongs_to_no_ticket_is_noise() -> None:
    decision = the(mail(), OUT_OF_OFFICE, NO_TICKET)
    assert decision.kind == "noise"
    assert decision.reason == ("automatic message that belongs to no ticket "
                               "(Auto-Submitted: auto-replied)")


def test_staff_writing_to_a_customer_with_support_in_cc_opens_the_customers_ticket() -> None:
    decision = the(mail(sender=SE, to=(CUSTOMER, "bob@customer.example"),
                        cc=("support@example.com", "eve@example.com", "carl@customer.example")),
                   STAFFS, NO_TICKET)
    assert decision.kind == "staff_brings_in_customer"
    assert decision.reason == "ticket opened by staff for the customer"
    assert decision.requester == CUSTOMER  # the first customer addressed
    assert decision.cc == ("bob@customer.example", "carl@customer.example")


def test_staff_writing_to_support_alone_opens_a_ticket_of_their_own() -> None:
    decision = the(mail(sender=SE, cc=(CUSTOMER,)), STAFFS, NO_TICKET)
    assert decision.kind == "new_conversation"  # no customer in To
    assert decision.requester == SE


UNPROVEN = Verdict(is_staff=False, automatic=None, loop=None,
                   unverified_staff="claims staff address dan@example.com, but answers no "
                                    "mail maild sent to that address")


def test_unproven_staff_writing_to_a_customer_opens_the_customers_ticket_unassigned() -> None:
    decision = the(mail(sender=SE, to=(CUSTOMER,), cc=("support@example.com",),
                        text="#assign dan@example.com\nHello Ann"), UNPROVEN, NO_TICKET)
    assert decision.kind == "staff_brings_in_customer_unproven"
    assert decision.requester == CUSTOMER
    assert decision.unproven_staff == UNPROVEN.unverified_staff
    assert decision.ignored_commands == ("#assign dan@example.com",)


def test_unproven_staff_writing_to_support_alone_is_their_own_new_conversation() -> None:
    decision = the(mail(sender=SE), UNPROVEN, NO_TICKET)
    assert decision.kind == "new_conversation"  # they ask as anyone may: nothing to prove
    assert decision.requester == SE
    assert decision.unproven_staff is None


# --- a mail on a ticket --------------------------------------------------------------------


def test_a_customers_reply_on_an_open_ticket() -> None:
    decision = the(mail(), CUSTOMERS, OPEN)
    assert (decision.kind, decision.reason) == ("customer_reply", "customer reply")


def test_an_out_of_office_on_an_open_ticket_is_kept_and_reopens_nothing() -> None:
    decision = the(mail(), OUT_OF_OFFICE, OPEN)
    assert decision.kind == "automatic_reply"
    assert decision.reason == "automatic reply stored (Auto-Submitted: auto-replied)"


def test_automatic_mail_on_a_closed_ticket_stays_on_it() -> None:
    decision = the(mail(), OUT_OF_OFFICE, CLOSED)
    assert decision.kind == "automatic_reply"


def test_a_customer_writing_on_a_closed_ticket_opens_a_follow_up() -> None:
    decision = the(mail(), CUSTOMERS, CLOSED)
    assert decision.kind == "follow_up"
    assert decision.reason == "follow-up of closed ticket #7"
    assert decision.requester == CUSTOMER


def test_a_staff_reply_carries_its_commands() -> None:
    decision = the(mail(sender=SE, text="#priority p1\nTry the other tray."), STAFFS, OPEN)
    assert decision.kind == "staff_reply"
    assert decision.commands is not None
    assert decision.commands.priority == "p1"
    assert decision.commands.text == "Try the other tray."


def test_a_staff_reply_with_a_bad_command_changes_nothing() -> None:
    decision = the(mail(sender=SE, text="#status gone\nDone."), STAFFS, OPEN)
    assert (decision.kind, decision.reason) == ("commands_rejected",
                                                "commands rejected, nothing changed")
    assert decision.commands is not None and decision.commands.errors


def test_an_ses_out_of_office_is_kept_internal() -> None:
    decision = the(mail(sender=SE), SE_OUT_OF_OFFICE, OPEN)
    assert decision.kind == "automatic_staff_mail"
    assert decision.reason == "automatic staff mail kept internal (Auto-Submitted: auto-replied)"


def test_a_reply_from_someone_who_takes_no_part_is_an_outside_message() -> None:
    for verdict in (CUSTOMERS, OUT_OF_OFFICE):
        decision = the(mail(sender="mallory@attacker.example"), verdict, OPEN)
        assert decision.kind == "outside_message"
        assert decision.reason == ("from mallory@attacker.example, who takes no part in "
                                   "ticket #7: kept, nothing sent, nothing changed")
        assert decision.cc == ()


def test_an_outsider_on_a_closed_ticket_opens_no_follow_up() -> None:
    assert the(mail(sender="mallory@attacker.example"), CUSTOMERS, CLOSED).kind == \
        "outside_message"


def test_an_outsider_cannot_answer_the_survey() -> None:
    decision = the(mail(sender="mallory@attacker.example", text="1 terrible"), CUSTOMERS,
                   SURVEYED)
    assert decision.kind == "outside_message"


def test_an_unproven_staff_address_is_handled_as_a_customers_reply() -> None:
    unverified = Verdict(is_staff=False, automatic=None, loop=None,
                         unverified_staff="no passing dkim, spf or dmarc")
    facts = TicketFacts(ticket_id=7, status="open", requester=CUSTOMER,
                        participants=frozenset({CUSTOMER}))
    assert the(mail(sender="eve@example.com"), unverified, facts).kind == "customer_reply"


def test_a_cc_replies_as_a_participant() -> None:
    decision = the(mail(sender="bob@customer.example"), CUSTOMERS, OPEN)
    assert (decision.kind, decision.cc) == ("customer_reply", ())


def test_a_colleague_of_the_requesters_organisation_joins_by_replying() -> None:
    facts = TicketFacts(ticket_id=7, status="pending", requester=CUSTOMER,
                        participants=frozenset({CUSTOMER}), colleague=True)
    decision = the(mail(sender="carl@customer.example"), CUSTOMERS, facts)
    assert decision.kind == "customer_reply"
    assert decision.cc == ("carl@customer.example",)
    assert decision.reason == "customer reply from the requester's organisation, who joins"


def test_whom_the_requester_copies_on_a_reply_take_part() -> None:
    decision = the(mail(cc=("bob@customer.example", "dora@partner.example", SE,
                            "support@example.com")), CUSTOMERS, OPEN)
    assert decision.cc == ("dora@partner.example",)  # bob already takes part


def test_whom_a_cc_copies_do_not_take_part() -> None:
    decision = the(mail(sender="bob@customer.example", cc=("dora@partner.example",)),
                   CUSTOMERS, OPEN)
    assert decision.cc == ()


def test_an_engineer_adds_people_with_cc_and_by_copying_them() -> None:
    decision = the(mail(sender=SE, cc=("dora@partner.example", CUSTOMER),
                        text="#cc erin@partner.example, support@example.com\nHello all."),
                   STAFFS, OPEN)
    assert decision.kind == "staff_reply"
    assert decision.cc == ("dora@partner.example", "erin@partner.example")
def test_unproven_staff_mail_on_a_ticket_is_a_customers_with_its_commands_ignored() -> None:
    decision = the(mail(sender=SE, text="#solve\n#assign eve@example.com\nAll done."),
                   UNPROVEN, OPEN)
    assert (decision.kind, decision.reason) == ("customer_reply",
                                                "staff address unproven: a customer's mail")
    assert decision.unproven_staff == UNPROVEN.unverified_staff
    assert decision.ignored_commands == ("#solve", "#assign eve@example.com")
    assert decision.commands is None


def test_an_answer_to_the_confirmation_notice_confirms() -> None:
    facts = TicketFacts(ticket_id=7, status="new", requester=CUSTOMER,
                        answers_confirmation=True)
    decision = the(mail(sender=SE, text="Yes, that was me.\n"), STAFFS, facts)
    assert decision.kind == "staff_confirms"
    assert decision.commands is not None and decision.commands.text == "Yes, that was me."
    assert the(mail(sender=SE), UNPROVEN, facts).kind == "customer_reply"


def test_staff_who_asked_themselves_reply_as_the_customer() -> None:
    decision = the(mail(sender=SE), STAFFS, TicketFacts(ticket_id=7, status="open",
                                                        requester=SE))
    assert decision.kind == "customer_reply"
    unproven = the(mail(sender=SE), UNPROVEN, TicketFacts(ticket_id=7, status="open",
                                                          requester=SE))
    assert (unproven.kind, unproven.unproven_staff) == ("customer_reply", None)


# --- surveys -------------------------------------------------------------------------------


def test_a_survey_answer_with_a_rating_and_a_comment() -> None:
    decision = the(mail(text="4 - quick, but the first answer missed"), CUSTOMERS, SURVEYED)
    assert decision.kind == "survey_answer"
    assert (decision.rating, decision.comment) == (4, "quick, but the first answer missed")
    assert decision.reason == "satisfaction 4 of 5"


def test_a_survey_answer_in_words() -> None:
    decision = the(mail(text="Good"), CUSTOMERS, SURVEYED)
    assert (decision.kind, decision.rating, decision.comment) == ("survey_answer", 5, "")


def test_an_answer_to_the_survey_without_a_rating_is_an_answer_all_the_same() -> None:
    decision = the(mail(text="Thanks a lot!"), CUSTOMERS, SURVEYED)
    assert (decision.kind, decision.rating, decision.comment, decision.reopens) == (
        "survey_answer", None, "Thanks a lot!", False)


def test_an_answer_to_the_survey_saying_the_problem_is_back_reopens() -> None:
    decision = the(mail(text="1 - not fixed at all"), CUSTOMERS, SURVEYED)
    assert (decision.kind, decision.rating, decision.reopens) == ("survey_answer", 1, True)
    assert decision.reason == ("satisfaction 1 of 5, saying the problem is back: "
                               "the ticket reopened")


ASKING_AND_INVITING = TicketFacts(ticket_id=7, status="solved", requester=CUSTOMER,
                                  survey_sent=True, answers_survey=True,
                                  survey_invites_reopen=True)


def test_words_to_a_mail_that_also_invites_a_reply_to_reopen_are_a_reply() -> None:
    """A mail asking for a rating that also says "reply and the ticket opens again" (the
    auto-solve notice): a rating, or thanks alone, is an answer; other words reopen."""
    logs = the(mail(text="Sorry for the delay, here are the logs you wanted."), CUSTOMERS,
               ASKING_AND_INVITING)
    assert logs.kind == "customer_reply"
    thanks = the(mail(text="Thanks a lot, all good!"), CUSTOMERS, ASKING_AND_INVITING)
    assert (thanks.kind, thanks.rating, thanks.reopens) == ("survey_answer", None, False)
    rated = the(mail(text="5 thanks"), CUSTOMERS, ASKING_AND_INVITING)
    assert (rated.kind, rated.rating) == ("survey_answer", 5)


def test_a_rating_that_answers_another_mail_is_a_reply() -> None:
    facts = TicketFacts(ticket_id=7, status="solved", requester=CUSTOMER, survey_sent=True)
    assert the(mail(text="5"), CUSTOMERS, facts).kind == "customer_reply"


def test_neither_staff_nor_a_machine_answers_the_survey() -> None:
    assert the(mail(sender=SE, text="5"), STAFFS, SURVEYED).kind == "staff_reply"
    assert the(mail(text="5"), OUT_OF_OFFICE, SURVEYED).kind == "automatic_reply"


# --- bounces -------------------------------------------------------------------------------

OURS_TO_THE_CUSTOMER = SentMail("<ours@example.com>", frozenset({CUSTOMER}))


def test_a_bounce_of_our_mail_marks_its_delivery_failed() -> None:
    bounce = Bounce(["<ours@example.com>"], failed=True, recipients=[CUSTOMER])
    facts = TicketFacts(ticket_id=7, status="closed", requester=CUSTOMER,
                        bounced=(OURS_TO_THE_CUSTOMER,))
    decision = the(mail(sender="mailer-daemon@mx.example", bounce=bounce), BOUNCE, facts)
    assert decision.kind == "delivery_failed"  # on a closed ticket too: no follow-up
    assert decision.bounced == "<ours@example.com>"
    assert decision.bounced_to == (CUSTOMER,)
    assert decision.reason == "bounce: delivery of <ours@example.com> failed"


def test_a_bounce_for_someone_we_did_not_send_that_mail_to_fails_nothing() -> None:
    for reported in (["mallory@attacker.example"], []):
        bounce = Bounce(["<ours@example.com>"], failed=True, recipients=reported)
        facts = TicketFacts(ticket_id=7, status="pending", requester=CUSTOMER,
                            bounced=(OURS_TO_THE_CUSTOMER,))
        decision = the(mail(sender="mailer-daemon@evil.example", bounce=bounce), BOUNCE, facts)
        assert decision.kind == "bounce"
        assert decision.bounced is None
        assert decision.reason == ("bounce stored: it reports no recipient of the mail it "
                                   "names, whose delivery stays as it was")


def test_a_delay_warning_is_only_kept() -> None:
    bounce = Bounce(["<ours@example.com>"], failed=False, recipients=[CUSTOMER])
    facts = TicketFacts(ticket_id=7, status="pending", requester=CUSTOMER,
                        bounced=(OURS_TO_THE_CUSTOMER,))
    decision = the(mail(sender="mailer-daemon@mx.example", bounce=bounce), BOUNCE, facts)
    assert (decision.kind, decision.reason) == ("bounce", "delivery delay warning stored")


def test_a_bounce_of_a_mail_we_do_not_know_is_only_kept() -> None:
    bounce = Bounce(["<theirs@example.org>"], failed=True)
    decision = the(mail(sender="mailer-daemon@mx.example", bounce=bounce), BOUNCE, OPEN)
    assert (decision.kind, decision.reason) == ("bounce", "bounce stored")


def test_a_bounce_that_belongs_to_no_ticket_is_noise() -> None:
    bounce = Bounce(["<ours@example.com>"], failed=True)
    decision = the(mail(sender="mailer-daemon@mx.example", bounce=bounce), BOUNCE, NO_TICKET)
    assert decision.kind == "noise"
