"""What a message of a batch may read of the messages before it that are not written yet.

The intake writes a batch's rows together (pipeline.IntakeBatch), so a message's steps
do not see in the database what the messages before it in the batch did. They need to
only when they look up something those messages wrote: the same Message-ID, a mail it
answers, a ticket it names, an address whose tickets, automatic mail or notifications
are counted, a registered customer whose other tickets a notification lists, the same
raw mail set aside. Each is a key; a message whose keys meet those of the unwritten
messages has them written first, and so does one whose ticket, once found, names what
they hold (its requester, its customer: whose other tickets a notification counts)
(docs/architecture.md, "The intake's writes").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlalchemy.orm import Session

from maild.db.models import Message, OutboxMail, Participant, QuarantinedMail, Ticket
from maild.intake.parse import ParsedMail
from maild.intake.thread import bounced_ids
from maild.mail.subject import tags_in
from maild.tickets.service import customer_id_for

Key = tuple[Literal["raw", "id", "ticket", "address", "customer"], str | int]


def reads(session: Session, mail: ParsedMail | None, raw_sha256: str,
          own_addresses: frozenset[str]) -> set[Key]:
    """Everything the steps of this message may look up (maild/intake/thread.py, caps,
    customer_context): by its raw mail, its Message-ID and those it answers or reports
    bounced, the tickets its subject names, the addresses it comes from and is written
    to (ours apart: every mail names them), and the customer its sender belongs to."""
    keys: set[Key] = {("raw", raw_sha256)}
    if mail is None:  # set aside unparsed: only its raw mail is looked up
        return keys
    keys.add(("id", mail.message_id))
    keys.update(("id", message_id) for message_id in [*mail.thread_ids, *bounced_ids(mail)])
    keys.update(("ticket", number) for number in tags_in(mail.subject))
    addresses = {box.address for box in [mail.sender, *mail.to, *mail.cc]} - own_addresses
    keys.update(("address", address) for address in addresses)
    customer = customer_id_for(session, mail.sender.address)
    if customer is not None:
        keys.add(("customer", customer))
    return keys


def written(objects: Iterable[object]) -> set[Key]:
    """What later messages could look up of these rows, added or changed by a message.
    Not a ticket's thread: a mail that answers it finds the ticket by a stored message,
    or by one of these rows, and the ticket found is checked in turn (pipeline)."""
    keys: set[Key] = set()
    for row in objects:
        if isinstance(row, Ticket):
            keys.add(("ticket", row.id))
            keys.add(("address", row.requester))
            customer = row.customer_id if row.customer_id is not None else (
                row.customer.id if row.customer is not None else None)  # not written yet
            if customer is not None:
                keys.add(("customer", customer))
        elif isinstance(row, Message):
            keys.add(("id", row.message_id))
            keys.add(("address", row.author))
        elif isinstance(row, OutboxMail):
            keys.add(("id", row.message_id))
            keys.update(("address", address) for address in row.recipients)
        elif isinstance(row, Participant):
            keys.add(("address", row.address))
        elif isinstance(row, QuarantinedMail):
            keys.add(("raw", row.raw_sha256))
    return keys
