"""The intake alone, in one process: this checkout against another, run after run.

    git worktree add --detach /tmp/intake-before main
    .venv/bin/python -m bench.intake_time --before /tmp/intake-before [--rounds 3]

The first mails of `tests/realmail.py`'s corpus (seed 2026, as bench/backlog.py): new
conversations in every client's style, with their noise and duplicates. They are taken
in by `intake_batch`, fifty to a batch, each batch parsed ahead in the parser process as
the IMAP reader has it done, into a fresh SQLite database (PostgreSQL with `--database
postgresql`) and a fresh storage directory. No IMAP and no sending: what a change to the
intake's own work moves, which the whole backlog's noise hides. Each run is a process of
its own; printed per run: the wall clock of the intake, the CPU its process used in it,
user and kernel, and the parser process's CPU (its warm-up included). Checkouts
alternate, so that a machine growing slower or faster weighs on both alike.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

BATCH = 50
WARM_UP = 100
POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def run_here(conversations: int, database: str) -> dict[str, float]:
    """Take the corpus in, in this process; what it cost."""
    from maild.clock import FixedClock
    from maild.config import parse_config
    from maild.intake.pipeline import intake_batch
    from maild.runtime.app import App, build_app
    from tests.conftest import START, config_text, free_port
    from tests.realmail import Corpus

    def take_in(app: App, mails: list[bytes]) -> None:
        for first in range(0, len(mails), BATCH):
            chunk = mails[first:first + BATCH]
            with intake_batch(app.intake, "bench") as batch:
                batch.parse_ahead(chunk)
                for raw in chunk:
                    batch.ingest(raw)

    mails = [mail.raw for mail in Corpus(seed=2026).first_round(conversations)]
    with tempfile.TemporaryDirectory(prefix="maild-bench-intake-") as temp:
        work = Path(temp)
        url = f"sqlite:///{work}/maild.db" if database == "sqlite" else _fresh_postgresql()
        app = build_app(parse_config(config_text(url, work / "storage", free_port())),
                        FixedClock(START))
        migrated = resource.getrusage(resource.RUSAGE_CHILDREN)  # the start's migration
        try:
            take_in(app, mails[:WARM_UP])
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            take_in(app, mails[WARM_UP:])
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            app.close()  # waits for the parser process, so its CPU is counted below
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"messages": len(mails) - WARM_UP, "wall": wall,
            "user": after.ru_utime - before.ru_utime,
            "kernel": after.ru_stime - before.ru_stime,
            "parser": children.ru_utime + children.ru_stime
            - migrated.ru_utime - migrated.ru_stime}


def _fresh_postgresql() -> str:
    engine = create_engine(POSTGRESQL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return POSTGRESQL


def run_checkout(code: Path | None, conversations: int, database: str) -> dict[str, float]:
    """One run in a process of its own, with `code`'s maild (this checkout's without)."""
    here = Path(__file__).resolve()
    prelude = f"import sys; sys.path.insert(0, {str(code)!r}); " if code else ""
    program = (f"{prelude}import json, runpy; "
               f"module = runpy.run_path({str(here)!r}, run_name='bench_intake_time'); "
               f"print(json.dumps(module['run_here']({conversations}, {database!r})))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          cwd=code or here.parent.parent, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--before", type=Path, help="another checkout to measure too")
    args = parser.parse_args()
    checkouts: list[tuple[str, Path | None]] = [("this checkout", None)]
    if args.before:
        checkouts.insert(0, ("before", args.before.resolve()))
    totals: dict[str, list[float]] = {name: [] for name, _ in checkouts}
    for _ in range(args.rounds):
        for name, code in checkouts:
            cost = run_checkout(code, args.conversations, args.database)
            totals[name].append(cost["wall"])
            print(f"  {name:<14} {cost['messages']:.0f} messages in {cost['wall']:5.2f} s; "
                  f"CPU {cost['user']:5.2f} s user + {cost['kernel']:4.2f} s kernel, "
                  f"parser process {cost['parser']:4.2f} s (warm-up included)", flush=True)
    for name, walls in totals.items():
        print(f"{name}: {min(walls):.2f}–{max(walls):.2f} s, "
              f"median {sorted(walls)[len(walls) // 2]:.2f} s")
    if args.before:
        ratio = sorted(totals["this checkout"])[args.rounds // 2] / \
            sorted(totals["before"])[args.rounds // 2]
        print(f"this checkout / before, medians: {ratio:.2f}")


if __name__ == "__main__":
    main()
