"""The report's build on a desk of 100,000 tickets (bench/web.py's), against the report
as `maild` built it before (one whole report per week of the charts), measured in the
same run: CPU seconds of this process, best of `--rounds`.

    .venv/bin/python -m bench.report_build [--tickets 100000] [--before PATH/report.py]

`--before` names another version of maild/tickets/report.py (e.g. from
`git show 5a43ac3:maild/tickets/report.py > /tmp/report_before.py`); without it, only
this version is measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

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
        print(f"{'weeks':>5} " + " ".join(f"{name:>10}" for name in versions)
              + ("   now/before" if options.before else ""))
        for weeks in (8, 52):
            starts = report.week_starts(app.calendar, NOW, weeks)
            took = {}
            for name, module in versions.items():
                best = float("inf")
                for _ in range(options.rounds):
                    with app.db.reading() as session:
                        started = time.process_time()
                        module.report_with_weeks(session, app.calendar, starts, NOW)
                        best = min(best, time.process_time() - started)
                took[name] = best
            ratio = f"   {took['now'] / took['before']:.3f}" if options.before else ""
            print(f"{weeks:>5} " + " ".join(f"{t * 1000:8.0f}ms" for t in took.values())
                  + ratio)
    finally:
        app.close()
        shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":
    main()
