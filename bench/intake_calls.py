"""Where the intake spends its Python calls, by library, under cProfile.

    .venv/bin/python -m bench.intake_calls [--conversations 1000]

The first mails of `tests/realmail.py`'s corpus (seed 2026, as bench/backlog.py): new
conversations in every client's style, with the noise and duplicates that come with
them. They are taken in by `intake_batch`, fifty to a batch, into a fresh SQLite
database, parsed in this process. The first hundred warm up; the rest run under
cProfile. Printed: the time spent inside each library's own functions (tottime) as a
share of the whole, and its calls per message. A profile, not a speed: cProfile adds a
cost to every call.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import tempfile
from pathlib import Path

from maild.clock import FixedClock
from maild.config import parse_config
from maild.intake.pipeline import intake_batch
from maild.runtime.app import App, build_app
from tests.conftest import START, config_text, free_port
from tests.realmail import Corpus

BATCH = 50
WARM_UP = 100


def take_in(app: App, mails: list[bytes]) -> None:
    for first in range(0, len(mails), BATCH):
        with intake_batch(app.intake, "bench") as batch:
            for raw in mails[first:first + BATCH]:
                batch.ingest(raw)


def owner(filename: str) -> str:
    """The library a profiled function belongs to."""
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    if "/maild/" in filename:
        return "maild"
    if "/email/" in filename:
        return "email (standard library)"
    if filename.startswith("~") or not filename.startswith("/"):
        return "built-in functions"
    return "standard library, other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maild-bench-calls-") as temp:
        work = Path(temp)
        config = parse_config(config_text(f"sqlite:///{work}/maild.db", work / "storage",
                                          free_port()))
        app = build_app(config, FixedClock(START))
        mails = [mail.raw for mail in Corpus(seed=2026).first_round(args.conversations)]
        take_in(app, mails[:WARM_UP])
        profile = cProfile.Profile()
        profile.enable()
        take_in(app, mails[WARM_UP:])
        profile.disable()
        app.close()
    measured = len(mails) - WARM_UP
    seconds: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    # Keyed by (file, line, name): get_stats_profile() keys by name alone, which merges
    # the many functions called `execute` or `__init__`.
    table = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, count, own, _, _) in table.items():
        seconds[owner(filename)] += own
        calls[owner(filename)] += count
    total = sum(seconds.values())
    print(f"{measured} messages under cProfile: {total:.2f} s, "
          f"{sum(calls.values()) / measured:,.0f} calls a message")
    for name, spent in seconds.most_common(8):
        print(f"  {spent / total:6.1%}  {calls[name] / measured:7,.0f} calls a message  {name}")


if __name__ == "__main__":
    main()
