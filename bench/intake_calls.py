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
import io
import pstats
import re
import tempfile
from collections.abc import Iterator
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


# A row of pstats' table: ncalls (primitive calls after a slash, for recursion),
# tottime, percall, cumtime, percall, then where the function is.
_ROW = re.compile(r"^\s*(\d+)(?:/\d+)?\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(.+)$")


def functions(profile: cProfile.Profile) -> Iterator[tuple[str, int, float]]:
    """(file, calls, own seconds) of every function profiled, read from the table pstats
    prints: its only public form that keeps apart functions of the same name
    (`get_stats_profile` keys them by name alone, merging every `__init__`). The table
    gives times to the millisecond, so a function under half a millisecond counts as
    none: about 2% of the whole here (3.41 against 3.49 s, 200 conversations)."""
    table = io.StringIO()
    pstats.Stats(profile, stream=table).print_stats()
    for line in table.getvalue().splitlines():
        row = _ROW.match(line)
        if row is None:
            continue
        where = row[3]
        # "{built-in method ...}" has no file; "path:line(name)" has one.
        filename = "~" if where.startswith("{") else where.rsplit(":", 1)[0]
        yield filename, int(row[1]), float(row[2])


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
    seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()
    for filename, count, own in functions(profile):
        seconds[owner(filename)] += own
        calls[owner(filename)] += count
    total = sum(seconds.values())
    print(f"{measured} messages under cProfile: {total:.2f} s, "
          f"{sum(calls.values()) / measured:,.0f} calls a message")
    for name, spent in sorted(seconds.items(), key=lambda item: -item[1])[:8]:
        print(f"  {spent / total:6.1%}  {calls[name] / measured:7,.0f} calls a message  {name}")


if __name__ == "__main__":
    main()
