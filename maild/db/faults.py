"""Is a database error an outage, or the database refusing one thing we asked?

An outage (the server is away or refuses connections, the database is locked beyond
the busy timeout, the disk is full, the schema is missing) says nothing about the mail
in hand: it is tried again later, and everything waits. A refusal (too many SQL
variables, a value too long or malformed, a constraint we broke) will come back the
same for that mail however often it is tried: it is that mail's permanent failure,
and the mail is set aside while the others go on. Answering such a mail "try later"
would hold it, and over IMAP the batch behind it, for ever.

What cannot be told apart counts as an outage: retrying loses nothing.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError

# SQLite's primary result codes (https://sqlite.org/rescode.html) that mean the database
# cannot be used right now, whatever is asked of it.
_SQLITE_OUTAGES = frozenset({
    5,   # SQLITE_BUSY: locked by another process beyond the busy timeout
    6,   # SQLITE_LOCKED
    7,   # SQLITE_NOMEM
    8,   # SQLITE_READONLY: the file or its directory cannot be written
    9,   # SQLITE_INTERRUPT
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL: the disk is full
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
    23,  # SQLITE_AUTH
    26,  # SQLITE_NOTADB
})
# SQLITE_ERROR is what SQLite says both of a statement it refuses (too many SQL
# variables) and of a schema that is not there; the latter is no single mail's fault.
_SQLITE_SCHEMA_MISSING = ("no such table", "no such column")

# PostgreSQL's SQLSTATE classes and codes that are a refusal of what was asked
# (https://www.postgresql.org/docs/current/errcodes-appendix.html): data exceptions,
# integrity constraint violations, program limits (a row or index entry too large), and
# syntax or access-rule errors of a statement, except those that mean the schema or the
# rights are not what maild was set up with.
_POSTGRESQL_REFUSALS = ("22", "23", "54", "42")
# What libpq refuses to send, with no SQLSTATE as the server never saw it; any other error
# without one is a connection that failed.
_POSTGRESQL_UNSENDABLE = ("number of parameters must be between",)
_POSTGRESQL_ENVIRONMENT = frozenset({
    "42P01",  # undefined_table
    "42703",  # undefined_column
    "42501",  # insufficient_privilege
})


def is_outage(exc: DBAPIError) -> bool:
    """True when the database is away or unusable; False when it refused this request."""
    if exc.connection_invalidated:
        return True
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        code = getattr(original, "sqlite_errorcode", None)
        if code is None:
            return True
        if code & 0xFF in _SQLITE_OUTAGES:  # extended codes carry the primary one low
            return True
        return any(text in str(original) for text in _SQLITE_SCHEMA_MISSING)
    state = getattr(original, "sqlstate", None)
    if not isinstance(state, str):
        return not any(text in str(original) for text in _POSTGRESQL_UNSENDABLE)
    if state in _POSTGRESQL_ENVIRONMENT:
        return True
    return not state.startswith(_POSTGRESQL_REFUSALS)
