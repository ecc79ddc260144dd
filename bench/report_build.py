"""The report's build on a desk of 100,000 tickets (bench/web.py's), against another
version of the report, measured in the same run: CPU seconds of this process, best of
`--rounds`; with `--before`, the two versions' reports must be the same (the command
line's 30 days, and 8 and 52 weeks with their weekly figures).

    .venv/bin/python -m bench.report_build [--tickets 100000] [--before PATH/report.py]

`--before` names another version of maild/tickets/report.py (e.g. from
`git show main:maild/tickets/report.py > /tmp/report_before.py`); without it, only
this version is measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy.orm import Session

from bench.web import NOW, make_app, seed
from maild.tickets import report


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("report_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path)
    options = parser.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="maild-bench-report-"))
    app = make_app(f"sqlite:///{storage}/maild.db", storage, 18997)
    try:
        seed(app, options.tickets)
        versions = {"now": report}
        if options.before:
            versions["before"] = _load(options.before)
        print(f"{'':22} " + " ".join(f"{name:>10}" for name in versions)
              + ("   now/before" if options.before else ""))
        cases: list[tuple[str, Callable[[ModuleType, Session], Any]]] = [
            ("maild report, 30 days", lambda module, session: module.build_report(
                session, app.calendar, NOW - timedelta(days=30), NOW, NOW))]
        for weeks in (8, 52):
            starts = report.week_starts(app.calendar, NOW, weeks)
            cases.append((f"report of {weeks} weeks", partial(
                lambda module, session, starts: module.report_with_weeks(
                    session, app.calendar, starts, NOW), starts=starts)))
        for name, case in cases:
            took, made = {}, {}
            for version, module in versions.items():
                best = float("inf")
                for _ in range(options.rounds):
                    with app.db.reading() as session:
                        started = time.process_time()
                        made[version] = case(module, session)
                        best = min(best, time.process_time() - started)
                took[version] = best
            if options.before and made["now"] != made["before"]:
                raise SystemExit(f"{name}: this version's report differs from the other's")
            ratio = f"   {took['now'] / took['before']:.3f}" if options.before else ""
            print(f"{name:22} " + " ".join(f"{t * 1000:8.0f}ms" for t in took.values())
                  + ratio)
        if options.before:
            print("the reports of both versions are the same")
    finally:
        app.close()
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
