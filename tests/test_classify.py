"""Which mail a machine wrote, in the forms real systems write it (docs/design.md,
"Automatic mail"): such mail is never answered, never relayed, and changes nothing."""

from __future__ import annotations

import pytest

from maild.intake.classify import automatic_reason
from maild.intake.parse import parse
from maild.mail.policy import MailPolicies
from tests.mailbuilder import make_mail

READING = MailPolicies().reading

AUTOMATIC = {
    "rfc 3834": ("Re: Printer on fire", {"Auto-Submitted": "auto-replied"},
                 "Auto-Submitted: auto-replied"),
    "precedence": ("Re: Printer on fire", {"Precedence": "bulk"}, "Precedence: bulk"),
    "exchange out-of-office": ("Automatic reply: [#1] Printer on fire",
                               {"X-Auto-Response-Suppress": "All"},
                               "X-Auto-Response-Suppress: All"),
    "suppressing out-of-office replies": ("Re: [#1] Printer on fire",
                                          {"X-Auto-Response-Suppress": "DR, OOF, AutoReply"},
                                          "X-Auto-Response-Suppress: DR, OOF, AutoReply"),
    "english subject": ("Out of Office: Printer on fire", {}, "out-of-office subject"),
    "german subject": ("Abwesenheitsnotiz: Printer on fire", {}, "out-of-office subject"),
    "french subject": ("Réponse automatique : Printer on fire", {}, "out-of-office subject"),
    "notes subject": ("Out of Office AutoReply: Printer on fire", {}, "out-of-office subject"),
}


@pytest.mark.parametrize("form", AUTOMATIC)
def test_automatic_mail_in_its_forms(form: str) -> None:
    subject, headers, reason = AUTOMATIC[form]
    assert automatic_reason(parse(make_mail(subject=subject, headers=headers), READING)) == reason


@pytest.mark.parametrize("subject", ["Re: Printer on fire", "Automatic replies stopped working",
                                     "Out of office message not sent",
                                     "Our out of office settings are lost"])
def test_a_persons_mail_is_not_automatic(subject: str) -> None:
    mail = parse(make_mail(subject=subject, headers={"X-Auto-Response-Suppress": "DR, RN"}),
                 READING)
    assert automatic_reason(mail) is None
