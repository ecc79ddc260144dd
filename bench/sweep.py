"""The scheduler's sweep over many pending tickets: seconds per sweep as the database
grows from 10,000 to 100,000 tickets, on SQLite (or PostgreSQL with --url).

    .venv/bin/python -m bench.sweep [--sizes 10000 30000 100000] [--url postgresql+psycopg://…]

Each database holds N tickets: 85% pending and not due for days, 1% pending and due
for their first nudge and their week-three escalation now, 9% solved long ago (due to
be closed), 5% solved yesterday (still waiting to be closed, as on any live desk). Two
figures per size: the steady-state sweep when nothing is due (what runs every minute),
and the sweep that sends the due nudges and closes the due tickets. The ratio to the 10,000-ticket
figure shows how each grows: 1.0 means flat, 10.0 means linear in the table size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from maild.clock import FixedClock
from maild.config import parse_config
from maild.db.models import Message, Participant, Ticket
from maild.runtime.app import App, build_app
from maild.runtime.sweeps import run_sweeps

NOW = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Los Angeles


def make_app(url: str, storage: Path) -> App:
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
"""
    return build_app(parse_config(text_config, {}), FixedClock(NOW))


def fill(app: App, size: int) -> int:
    """Insert `size` tickets in bulk; returns how many are due a nudge."""
    tickets, participants, messages = [], [], []
    due = 0
    for n in range(1, size + 1):
        kind = n % 100
        base = {"id": n, "subject": f"Question {n}", "priority": "p2",
                "requester": f"c{n}@customer.example", "created_at": NOW - timedelta(days=20),
                "updated_at": NOW - timedelta(days=3), "nudges_sent": 0}
        if kind == 0:  # due for its first nudge
            due += 1
            tickets.append({**base, "status": "pending", "pending_since": NOW - timedelta(days=4),
                            "followup_due_at": NOW - timedelta(hours=1),
                            "sla_alert_at": NOW - timedelta(days=6)})
        elif kind < 10:  # solved long ago: due to be closed
            tickets.append({**base, "status": "solved", "solved_at": NOW - timedelta(days=10),
                            "survey_sent_at": NOW - timedelta(days=10)})
        elif kind < 15:  # solved yesterday: still inside close_after_solved
            tickets.append({**base, "status": "solved", "solved_at": NOW - timedelta(days=1),
                            "survey_sent_at": NOW - timedelta(days=1)})
        else:
            tickets.append({**base, "status": "pending", "pending_since": NOW,
                            "followup_due_at": NOW + timedelta(days=2),
                            "sla_alert_at": NOW + timedelta(days=2)})
        participants.append({"ticket_id": n, "address": base["requester"], "role": "requester"})
        messages.append({"ticket_id": n, "message_id": f"<{uuid.uuid4().hex}@customer.example>",
                         "direction": "in", "kind": "public", "author": base["requester"],
                         "created_at": base["created_at"], "subject": base["subject"],
                         "body": "Help.", "channel": "bench", "attachments": []})
    with app.db.transaction() as session:
        for model, rows in ((Ticket, tickets), (Participant, participants), (Message, messages)):
            for start in range(0, len(rows), 5000):
                session.execute(insert(model), rows[start:start + 5000])
    return due


def timed_sweep(app: App) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    done = run_sweeps(app)
    return time.perf_counter() - started, done


def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS maild_bench CASCADE"))
        connection.execute(text("CREATE SCHEMA maild_bench"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--url", help="a PostgreSQL URL (schema maild_bench is recreated)")
    args = parser.parse_args()

    print(f"{'tickets':>8} {'due':>6} {'idle sweep':>11} {'x':>5} {'due sweep':>10} {'x':>5}")
    baseline: tuple[float, float] | None = None
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmp:
            if args.url:
                reset_postgres(args.url)
                url = f"{args.url}?options=-csearch_path%3Dmaild_bench"
            else:
                url = f"sqlite:///{tmp}/maild.db"
            app = make_app(url, Path(tmp) / "storage")
            due = fill(app, size)
            busy, done = timed_sweep(app)
            assert done["nudged"] == due and done["sla_alerts"] == due, done
            idle, quiet = timed_sweep(app)
            assert not any(quiet.values()), quiet
            app.close()
        baseline = baseline or (idle, busy)
        print(f"{size:>8} {due:>6} {idle:>10.3f}s {idle / baseline[0]:>5.1f} "
              f"{busy:>9.2f}s {busy / baseline[1]:>5.1f}")


if __name__ == "__main__":
    main()
