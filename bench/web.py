"""The web part on a desk of 100,000 tickets: how long each page takes to answer, next to a
route that does no work, measured in the same run.

    .venv/bin/python -m bench.web [--tickets 100000] [--url postgresql+psycopg://…]

The desk is seeded straight into the database (Core inserts): three years of tickets,
about 640 a week, nearly all closed; of the last fortnight's, three in seven waiting on us
(new or open: the queue) and the rest pending, solved or closed; a tail of older ones
still open, pending or on hold; three messages and four or five events each, a
satisfaction answer on one in five of the solved, 300 organisations of every tier. One
ticket has a thread of 12 received mails whose raw bytes are in the raw store (the page
parses them again for their quoted history).

The server is maild's own (`WebServer`, aiohttp on its thread) in this process; requests go
over one keep-alive connection from http.client. Each route is asked `--rounds` times after
two warm-up requests; the median and the slowest are printed, and the median's ratio to
the baseline: `/static/maild.css`, a file served without a token check or the database.
The web part is started twice on the desk. The first start works out the report's closed
weeks and keeps them in the database (once in a desk's life: timed as the first view of
the report, which waits for it); the second, as after a restart, reads them and the week
under way (timed alone, "a start's reading") and, `--settle` seconds later, gets the
first views of the report's ranges and of a ticket, each timed on its own before the
rounds that find them ready.
"""

from __future__ import annotations

import argparse
import http.client
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from maild.clock import FixedClock
from maild.config import parse_config
from maild.db.models import Customer, Event, Message, Participant, Ticket
from maild.runtime.app import App, build_app
from maild.runtime.daemon import web_sources
from maild.tickets.desk import open_by_status
from maild.tickets.model import TIERS
from maild.tickets.report import report_with_weeks, week_starts
from maild.tickets.report_rollup import WeekRollup
from maild.tickets.triage import queue_length
from maild.web.pages import MAX_REPORT_WEEKS, PAGE_SIZE
from maild.web.server import WebServer

NOW = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Los Angeles
TOKEN = "bench-token-" + "x" * 20
SPAN = timedelta(days=3 * 365)
THREAD = 12  # received mails on the ticket the ticket page shows
SUBJECTS = ("The export stops at 2 GB", "SSO login loops back to the start page",
            "Invoice shows the wrong VAT number", "Webhook retries flood our endpoint",
            "Cannot invite a second admin", "API answers 502 under load",
            "How do we move a workspace to another region?",
            "Password reset mail never arrives", "Severity 1: production down")


def make_app(url: str, storage: Path, port: int) -> App:
    text_config = f"""
[support]
address = "support@example.com"
[storage]
url = "{url}"
dir = "{storage}"
[staff]
addresses = ["dan@example.com"]
[business_hours]
timezone = "America/Los_Angeles"
[web]
enabled = true
port = {port}
"""
    return build_app(parse_config(text_config, {"MAILD_WEB_TOKEN": TOKEN}), FixedClock(NOW))


def _ticket(n: int, size: int, rng: random.Random, customers: int) -> dict[str, Any]:
    """Ticket n of `size`, the newest last: old ones closed, recent ones in every state."""
    created = NOW - SPAN * (size - n) / size - timedelta(minutes=rng.randint(0, 59))
    age = NOW - created
    share = n % 200
    status = "closed"
    if age < timedelta(days=14):
        # The last fortnight holds about 1,300 tickets: the queue's 1,500, the pending
        # and on hold, the solved are drawn from them and the weeks before.
        status = ("new", "open", "open", "pending", "solved", "solved", "closed")[share % 7]
    elif share < 3 and age < timedelta(days=120):  # the backlog's tail: waiting for weeks
        status = ("open", "pending", "on_hold")[share]
    priority = ("p0", "p1", "p1", "p2", "p2", "p2", "p2", "p3")[n % 8]
    severity = 1 if priority in ("p0", "p1") else 2
    answered = status not in ("new",) and rng.random() < 0.97
    first_response = created + timedelta(minutes=rng.randint(5, 60 * 30)) if answered else None
    solved = (created + timedelta(hours=rng.randint(2, 24 * 10))
              if status in ("solved", "closed") else None)
    if solved is not None and solved > NOW:
        solved = NOW - timedelta(minutes=5)
    if first_response is not None and first_response > NOW:
        first_response = None
    return {
        "id": n, "subject": SUBJECTS[n % len(SUBJECTS)], "status": status,
        "priority": priority, "severity": severity,
        "requester": f"c{n % 20000}@customer{n % customers}.example",
        "assignee": f"se{n % 7}@example.com" if answered else None,
        "customer_id": (n % customers) + 1 if n % 10 < 7 else None,
        "created_at": created, "updated_at": solved or first_response or created,
        "first_response_at": first_response, "solved_at": solved,
        "closed_at": solved + timedelta(days=3) if status == "closed" and solved else None,
        "response_due_at": created + (timedelta(hours=24) if severity == 1 else timedelta(days=7)),
        "resolution_due_at": created + timedelta(hours=72) if severity == 1 else None,
        "internal_response_due_at": created + timedelta(hours=1),
        "sla_paused_at": NOW if status in ("pending", "on_hold") else None,
        "nudges_sent": 0, "sla_alerts_sent": [],
        "satisfaction": rng.randint(1, 5) if solved and n % 5 == 0 else None,
    }


def seed(app: App, size: int) -> int:
    """The desk; returns the number of the ticket with the long thread."""
    rng = random.Random(20)
    customers = 300
    rows: dict[Any, list[dict[str, Any]]] = {Customer: [], Ticket: [], Participant: [],
                                            Message: [], Event: []}
    for c in range(1, customers + 1):
        rows[Customer].append({"id": c, "name": f"Customer {c}", "tier": TIERS[c % len(TIERS)],
                               "plan": ("basic", "business", "premium")[c % 3],
                               "created_at": NOW - SPAN})
    for n in range(1, size + 1):
        ticket = _ticket(n, size, rng, customers)
        # As maild keeps them when a ticket is answered and solved (sla.py).
        for moment, column in (("first_response_at", "first_response_business_seconds"),
                               ("solved_at", "resolution_business_seconds")):
            ticket[column] = (app.calendar.business_time_between(
                ticket["created_at"], ticket[moment]).total_seconds() if ticket[moment] else None)
        rows[Ticket].append(ticket)
        rows[Participant].append({"ticket_id": n, "address": ticket["requester"],
                                  "role": "requester"})
        created = ticket["created_at"]
        said = [("in", ticket["requester"], created, "The export stops at 2 GB."),
                ("out", "support@example.com", created, "Your message is now a ticket.")]
        if ticket["first_response_at"]:
            said.append(("out", ticket["assignee"], ticket["first_response_at"],
                         "Try the streaming export."))
        for direction, author, at, body in said:
            rows[Message].append({
                "ticket_id": n, "message_id": f"<{uuid.uuid4().hex}@bench.example>",
                "direction": direction, "kind": "public" if author != "support@example.com"
                else "system", "author": author, "created_at": at,
                "subject": ticket["subject"], "body": body, "channel": "bench",
                "attachments": []})
        events = [("status", None, "new", created)]
        if ticket["first_response_at"]:
            events.append(("status", "new", "pending", ticket["first_response_at"]))
        if ticket["solved_at"]:
            events.append(("status", "pending", "solved", ticket["solved_at"]))
            if ticket["satisfaction"]:
                events.append(("satisfaction", None, str(ticket["satisfaction"]),
                               ticket["solved_at"] + timedelta(hours=5)))
        if ticket["closed_at"]:
            events.append(("status", "solved", "closed", ticket["closed_at"]))
        for kind, old, new, at in events:
            rows[Event].append({"ticket_id": n, "at": at, "actor": "bench", "kind": kind,
                                "old": old, "new": new})
    shown = size - 3  # a recent ticket, in the queue's first fortnight
    with app.db.transaction() as session:
        connection = session.connection()  # Core executemany: one statement per table
        for model in (Customer, Ticket, Participant, Message, Event):
            batch = rows[model]
            for start in range(0, len(batch), 10000):
                connection.execute(insert(model.__table__), batch[start:start + 10000])
        for k in range(THREAD):
            raw = (f"From: Ann <ann@customer1.example>\r\nTo: support@example.com\r\n"
                   f"Subject: Re: [#{shown}] Question\r\nMessage-ID: <thread{k}@bench.example>\r\n"
                   f"\r\nStill stuck, attempt {k}.\r\n\r\nOn Mon, 30 Nov 2026 at 10:00, Dan "
                   f"<dan@example.com> wrote:\r\n" + "> the earlier answer, quoted\r\n" * 40)
            connection.execute(insert(Message.__table__), [{
                "ticket_id": shown, "message_id": f"<thread{k}@bench.example>",
                "direction": "in", "kind": "public", "author": "ann@customer1.example",
                "created_at": NOW - timedelta(hours=THREAD - k), "subject": "Re: Question",
                "body": f"Still stuck, attempt {k}.", "channel": "bench", "attachments": [],
                "raw_sha256": app.raw_store.put(raw.encode())}])
    return shown


def measure(connection: http.client.HTTPConnection, path: str, rounds: int,
            headers: dict[str, str], warm: int = 2) -> list[float]:
    took = []
    for n in range(rounds + warm):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"{path}: {response.status} {body[:200]!r}")
        if n >= warm:
            took.append(elapsed)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--url", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--port", type=int, default=18931)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds between the second start and its first views")
    options = parser.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="maild-bench-web-"))
    url = options.url or f"sqlite:///{storage}/maild.db"
    app = make_app(url, storage, options.port)
    started = time.perf_counter()
    shown = seed(app, options.tickets)
    with app.db.reading() as session:
        waiting = queue_length(session)
        backlog = sum(open_by_status(session).values())
    print(f"seeded {options.tickets:,} tickets in {time.perf_counter() - started:.1f} s "
          f"({app.db.engine.dialect.name}): {waiting:,} waiting on us, {backlog:,} not resolved")
    last = max(1, -(-waiting // PAGE_SIZE))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        # The web part's first start on this desk: the report's closed weeks are worked
        # out and kept (a view waits for that once, on a database that never had them).
        server = WebServer(web_sources(app), lambda: [])
        server.start()
        connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=120)
        first_start = measure(connection, "/report?weeks=8", 1, auth, warm=0)[0]
        connection.close()
        server.stop()
        # What the next start reads before its first report (the weeks kept), here alone.
        started = time.perf_counter()
        WeekRollup(app.db, app.calendar).weeks(week_starts(app.calendar, NOW,
                                                           MAX_REPORT_WEEKS), NOW)
        start_reading = time.perf_counter() - started
        # A new web part on the same desk, as after a restart: its first views.
        server = WebServer(web_sources(app), lambda: [])
        server.start()
        time.sleep(options.settle)
        connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=60)
        routes = [("baseline: /static/maild.css", "/static/maild.css"),
                  ("/healthz", "/healthz"), ("/metrics", "/metrics"),
                  ("/ (queue, page 1)", "/"),
                  (f"/?page={last} (the queue's last)", f"/?page={last}"),
                  (f"/tickets/{shown} ({THREAD + 3} messages)", f"/tickets/{shown}"),
                  ("/report?weeks=8", "/report?weeks=8"),
                  ("/report?weeks=52", "/report?weeks=52")]
        cold = {}  # first views in this process: nothing of these pages read before
        for path in ("/report?weeks=8", "/report?weeks=52", "/report?weeks=13",
                     f"/tickets/{shown}"):
            cold[path] = measure(connection, path, 1, auth, warm=0)[0]
        baseline = 0.0
        print(f"{'route':40} {'median':>9} {'slowest':>9} {'x baseline':>11}")
        for name, path in routes:
            took = measure(connection, path, options.rounds, auth)
            median = statistics.median(took)
            baseline = baseline or median
            print(f"{name:40} {median * 1000:7.1f}ms {max(took) * 1000:7.1f}ms "
                  f"{median / baseline:10.1f}x")
        for path, took in cold.items():
            print(f"{path + ', first view':40} {took * 1000:7.1f}ms "
                  f"{'':>9} {took / baseline:10.1f}x")
        for name, took in (("first start: weeks worked out, kept", first_start),
                           ("a start's reading, weeks kept", start_reading)):
            print(f"{name:40} {took * 1000:7.1f}ms {'':>9} {took / baseline:10.1f}x")
        for weeks in (8, 52):  # the full report's build, as `maild report` makes it
            starts = week_starts(app.calendar, NOW, weeks)
            with app.db.reading() as session:
                started = time.perf_counter()
                report_with_weeks(session, app.calendar, starts, NOW)
                took = time.perf_counter() - started
            print(f"{f'full report build, {weeks} weeks':40} {took * 1000:7.1f}ms "
                  f"{'':>9} {took / baseline:10.1f}x")
        connection.close()
        server.stop()
    finally:
        app.close()
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
