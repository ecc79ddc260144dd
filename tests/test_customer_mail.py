"""What a customer reads: the engineer's replies quote what was asked, a follow-up says
what it follows, the acknowledgment says who answers and when, and an operator's own
templates are used as written, from the next mail on.

Told through the command line and the sink (a running daemon where a restart matters).
"""

from __future__ import annotations

import os
from email.message import EmailMessage
from pathlib import Path

import jinja2
import jinja2.meta
import pytest

from maild.intake.parse import html_to_text
from maild.outbound.templates import SHIPPED_TEMPLATES, TEMPLATE_NAMES
from tests.conftest import Sink
from tests.helpers import maild
from tests.mailbuilder import make_mail, plain_text
from tests.test_end_to_end import Desk
from tests.test_headers import assert_well_formed
from tests.test_outgoing_mail import ingest_at, run_at, sent, show

MONDAY = "2026-11-23T{}:00-08:00"


def at(clock: str) -> str:
    return MONDAY.format(clock)


def mails_to(sink: Sink, address: str) -> list[EmailMessage]:
    return [s.mail for s in sent(sink) if s.to == address]


def answer(config_file: Path, sink: Sink, mail: EmailMessage, body: str, n: int,
           now: str) -> EmailMessage:
    """Dan answers `mail` (a notification) from his own client; the relay it makes."""
    before = len(mails_to(sink, "ann@customer.example"))
    ingest_at(config_file, make_mail(
        sender="Dan Engineer <dan@example.com>", subject=f"Re: {mail['Subject']}",
        message_id=f"<dan.{n}@example.com>", in_reply_to=mail["Message-ID"],
        references=[*mail["References"].split(), mail["Message-ID"]], body=body), now)
    run_at(config_file, now)
    relays = mails_to(sink, "ann@customer.example")
    assert len(relays) == before + 1
    return relays[-1]


def quoted(mail: EmailMessage) -> list[str]:
    return [line for line in plain_text(mail).splitlines() if line.startswith(">")]


def test_each_relay_quotes_the_message_the_engineer_answered_never_an_out_of_office(
    config_file: Path, sink: Sink
) -> None:
    ingest_at(config_file, make_mail(body="It is on fire.\n"), at("10:00"))
    run_at(config_file, at("10:00"))
    [first_notice] = mails_to(sink, "dan@example.com")
    relay = answer(config_file, sink, first_notice, "Unplug it.\n", 1, at("10:10"))
    assert quoted(relay) == ["> It is on fire."]

    ingest_at(config_file, make_mail(
        subject="Re: [#1] Printer on fire", message_id="<second@customer.example>",
        in_reply_to=relay["Message-ID"], body="Unplugged, still smoking.\n"), at("10:20"))
    ingest_at(config_file, make_mail(
        subject="Automatic reply: Re: [#1] Printer on fire", message_id="<ooo@customer.example>",
        in_reply_to=relay["Message-ID"], headers={"Auto-Submitted": "auto-replied"},
        body="I am out of the office until Monday.\n"), at("10:25"))
    run_at(config_file, at("10:25"))
    second_notice = mails_to(sink, "dan@example.com")[-1]
    assert "Unplugged, still smoking." in plain_text(second_notice)

    later = answer(config_file, sink, second_notice, "Open a window.\n", 2, at("10:30"))
    assert quoted(later) == ["> Unplugged, still smoking."]
    assert later["In-Reply-To"] == "<second@customer.example>"
    # An answer to the first notification, sent after all that, quotes the first mail.
    back = answer(config_file, sink, first_notice, "About the model: XR-7?\n", 3, at("10:40"))
    assert quoted(back) == ["> It is on fire."]
    html = back.get_body(("html",))
    assert html is not None and "It is on fire." in html.get_content()
    assert "out of the office" not in html.get_content()


def test_a_follow_up_gets_a_clean_subject_and_its_acknowledgment_names_the_earlier_ticket(
    config_file: Path, sink: Sink
) -> None:
    ingest_at(config_file, make_mail(), at("10:00"))
    run_at(config_file, at("10:00"))
    [first_ack] = mails_to(sink, "ann@customer.example")
    closed = maild(config_file, "tickets", "set", "1", "--status", "closed", now=at("11:00"))
    assert closed.exit_code == 0, closed.output

    ingest_at(config_file, make_mail(
        subject=f"RE: {first_ack['Subject']}", message_id="<again@customer.example>",
        in_reply_to=first_ack["Message-ID"], body="It is on fire again.\n"),
        "2026-11-30T10:00:00-08:00")
    run_at(config_file, "2026-11-30T10:00:00-08:00")

    assert show(config_file, 2)["subject"] == "Printer on fire"
    ack = mails_to(sink, "ann@customer.example")[-1]
    assert ack["Subject"] == "Re: [#2] Printer on fire"
    assert ('It follows up on your earlier ticket #1, "Printer on fire", which was closed on '
            "23 November 2026.") in plain_text(ack)
    html = ack.get_body(("html",))
    assert html is not None and "earlier ticket #1" in html.get_content()
    assert mails_to(sink, "dan@example.com")[-1]["Subject"] == "[#2] Printer on fire"


def test_the_acknowledgment_greets_by_name_and_says_when_a_person_answers(
    config_file: Path, sink: Sink
) -> None:
    ingest_at(config_file, make_mail(sender="Zoë Müller <zoe@customer.example>"), at("10:00"))
    ingest_at(config_file, make_mail(sender="ann@customer.example",
                                     message_id="<nameless@customer.example>"), at("10:00"))
    run_at(config_file, at("10:00"))

    [ack] = mails_to(sink, "zoe@customer.example")
    text = " ".join(plain_text(ack).split())
    assert text.startswith("Hello Zoë Müller, Thank you for writing to Example Support.")
    assert ("an engineer reads your message and answers you personally. We aim to answer "
            "within 1 business hour (our support hours are Monday to Friday, 09:00 to 24:00 "
            "UTC), that is by Monday 23 November, 11:00 PST. You will have a first answer by "
            "Monday 30 November, 10:00 PST at the latest: that is our commitment for "
            "severity 2.") in text
    [nameless] = mails_to(sink, "ann@customer.example")
    assert plain_text(nameless).startswith("Hello,\n\nThank you")


def test_the_acknowledgment_html_says_what_the_text_says_and_escapes_the_mail(
    config_file: Path, sink: Sink
) -> None:
    ingest_at(config_file, make_mail(
        sender='"Zoë <b>Müller</b>" <zoe@customer.example>',
        subject='<script>alert("x")</script> & <img src=x onerror=alert(1)>'), at("10:00"))
    run_at(config_file, at("10:00"))

    [ack] = [s for s in sent(sink) if s.to == "zoe@customer.example"]
    assert_well_formed(ack.raw)
    html_part = ack.mail.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<script>" not in html and "<img" not in html and "<b>Müller" not in html
    assert "&lt;script&gt;" in html
    assert " ".join(html_to_text(html).split()) == " ".join(plain_text(ack.mail).split())


def _with_templates(config_file: Path, directory: Path) -> None:
    config_file.write_text(config_file.read_text() + f'\n[templates]\ndir = "{directory}"\n')


def test_a_text_template_overridden_alone_is_sent_without_the_shipped_html(
    config_file: Path, sink: Sink, tmp_path: Path
) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "ack.txt.j2").write_text(
        "Subject: Re: [#{{ ticket.id }}] {{ ticket.subject }}\n\nGot it, thanks.\n")
    _with_templates(config_file, overrides)
    ingest_at(config_file, make_mail(), at("10:00"))
    run_at(config_file, at("10:00"))

    [ack] = mails_to(sink, "ann@customer.example")
    assert ack.get_content_type() == "text/plain"
    assert plain_text(ack) == "Got it, thanks.\n"


def test_templates_added_changed_or_removed_count_without_a_restart(
    tmp_path: Path, database_url: str
) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    desk = Desk(tmp_path, database_url)
    _with_templates(desk.config, overrides)
    desk.start()
    try:
        def acknowledged(n: int) -> EmailMessage:
            customer = f"c{n}@customer.example"
            desk.send(make_mail(sender=customer, message_id=f"<m{n}@customer.example>"),
                      customer, ["support@example.com"])
            [ack] = desk.wait_for_mail(1, to=customer)
            return ack

        shipped = acknowledged(1)
        assert shipped.get_content_type() == "multipart/alternative"

        text = overrides / "ack.txt.j2"
        text.write_text("Subject: Got it: {{ ticket.subject }}\n\nWe have it.\n")
        added = acknowledged(2)
        assert added["Subject"] == "[#2] Got it: Printer on fire"
        assert added.get_content_type() == "text/plain"

        text.write_text("Subject: Got it: {{ ticket.subject }}\n\nWe have it, really.\n")
        os.utime(text, (text.stat().st_atime, text.stat().st_mtime + 10))
        (overrides / "ack.html.j2").write_text("<p>We have it, really.</p>\n")
        changed = acknowledged(3)
        assert plain_text(changed) == "We have it, really.\n"
        html = changed.get_body(("html",))
        assert html is not None
        assert html.get_content().replace("\r\n", "\n") == "<p>We have it, really.</p>\n"

        text.unlink()
        (overrides / "ack.html.j2").unlink()
        assert "When you will hear from us" in plain_text(acknowledged(4))
    finally:
        desk.stop()


def _documented(readme: str) -> dict[str, set[str]]:
    """The variables templates/README.md lists under each template's heading."""
    found: dict[str, set[str]] = {}
    names: set[str] = set()
    for line in readme.splitlines():
        if line.startswith("## "):
            names = {n.strip("` ") for n in line[3:].split(",")}
            for name in names:
                found.setdefault(name, set())
        elif line.startswith("| `") and names:
            variable = line.split("`")[1]
            for name in names:
                found[name].add(variable)
    return found


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_variable_a_template_uses_is_documented(name: str) -> None:
    readme = (SHIPPED_TEMPLATES / "README.md").read_text()
    documented = _documented(readme)
    common = documented.get("every template", set())
    environment = jinja2.Environment()
    environment.filters.update(dict.fromkeys(("datetime", "span", "hours", "working_hours"), str))
    for path in sorted(SHIPPED_TEMPLATES.glob(f"{name}.*.j2")):
        used = jinja2.meta.find_undeclared_variables(environment.parse(path.read_text()))
        missing = used - common - documented.get(name, set())
        assert not missing, f"{path.name} uses {sorted(missing)}, not in templates/README.md"
