"""`maild tickets search`: past tickets by the words in their subjects and messages.

One interface over each database's own full-text search (maild/db/fulltext.py): FTS5's
bm25 on SQLite, ts_rank on PostgreSQL. Every word asked for must be in one message (a
subject and a body together). A ticket ranks by its best message, the subject counting
more than the body; among equals the newest ticket comes first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session, selectinload

from maild.db.fulltext import PG_COLUMN, SQLITE_TABLE
from maild.db.models import CustomerDomain, Message, Ticket
from maild.errors import PermanentError
from maild.tickets.model import STATUSES

_WORD = re.compile(r"\w+")
EXCERPT_CHARS = 160


@dataclass(frozen=True)
class Found:
    ticket: Ticket
    score: float  # higher is better; comparable within one search only
    matching_messages: int
    excerpt: str  # around the first word found, in the newest matching message


def words_of(query: str) -> list[str]:
    return _WORD.findall(query)


def search_tickets(session: Session, query: str, *, status: str | None = None,
                   customer_domain: str | None = None, limit: int = 20) -> list[Found]:
    """The tickets whose messages hold every word of `query`, best first."""
    words = words_of(query)
    if not words:
        raise PermanentError("give a word to search for")
    if status is not None and status not in STATUSES:
        raise PermanentError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    hits = _hits(session, words).subquery("hits")
    ranked = (
        select(Message.ticket_id, func.max(hits.c.score).label("score"),
               func.count().label("matching"), func.max(Message.id).label("newest"))
        .join(hits, hits.c.message_row == Message.id)
        .group_by(Message.ticket_id)
        .subquery("ranked")
    )
    chosen = (
        select(Ticket, ranked.c.score, ranked.c.matching, ranked.c.newest)
        .join(ranked, ranked.c.ticket_id == Ticket.id)
        .options(selectinload(Ticket.customer))
        .order_by(ranked.c.score.desc(), Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
    )
    if status is not None:
        chosen = chosen.where(Ticket.status == status)
    if customer_domain is not None:
        domain = customer_domain.strip().lower().lstrip("@")
        chosen = chosen.where(or_(
            Ticket.customer_id.in_(select(CustomerDomain.customer_id)
                                   .where(CustomerDomain.domain == domain)),
            Ticket.requester.endswith(f"@{domain}", autoescape=True),
        ))
    rows = session.execute(chosen).all()
    newest = {m.id: m for m in session.scalars(
        select(Message).where(Message.id.in_([row.newest for row in rows])))}
    return [Found(row.Ticket, float(row.score), int(row.matching),
                  excerpt(newest[row.newest], words))
            for row in rows]


def _hits(session: Session, words: list[str]) -> Select[Any]:
    """(message_row, score) of every message that holds all `words`."""
    if session.connection().dialect.name == "sqlite":
        # Each word quoted: a phrase of one, so that nothing typed is FTS5 syntax.
        match = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        # bm25 is lower for better matches; the subject weighs twice the body.
        # Materialised: bm25 works only in the full-text query itself, never in the
        # grouping SQLite would otherwise fold it into.
        fts = text(
            f"SELECT rowid AS message_row, -bm25({SQLITE_TABLE}, 2.0, 1.0) AS score "
            f"FROM {SQLITE_TABLE} WHERE {SQLITE_TABLE} MATCH :match"
        ).bindparams(match=match).columns(message_row=Integer, score=Float).cte(
            "fts").prefix_with("MATERIALIZED")
        return select(fts.c.message_row, fts.c.score)
    document: ColumnElement[Any] = literal_column(f"messages.{PG_COLUMN}")
    asked = func.plainto_tsquery(literal_column("'simple'::regconfig"), " ".join(words))
    return (
        select(Message.id.label("message_row"),
               func.ts_rank(document, asked).label("score"))
        .where(document.op("@@")(asked))
    )


def excerpt(message: Message, words: list[str]) -> str:
    """A line of the message around the first of `words` in it (its subject if the body
    has none of them)."""
    body = " ".join((message.body or "").split())
    lowered = body.casefold()
    found = [at for at in (lowered.find(w.casefold()) for w in words) if at >= 0]
    if not found:
        return " ".join((message.subject or "").split())[:EXCERPT_CHARS]
    start = max(0, min(found) - EXCERPT_CHARS // 3)
    end = start + EXCERPT_CHARS
    return ("…" if start else "") + body[start:end].strip() + ("…" if end < len(body) else "")


def found_json(found: Found) -> dict[str, Any]:
    ticket = found.ticket
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "requester": ticket.requester,
        "organization": ticket.customer.name if ticket.customer else None,
        "assignee": ticket.assignee,
        "created_at": ticket.created_at.isoformat(),
        "solved_at": ticket.solved_at.isoformat() if ticket.solved_at else None,
        "cause": ticket.cause,
        "score": round(found.score, 6),
        "matching_messages": found.matching_messages,
        "excerpt": found.excerpt,
    }
