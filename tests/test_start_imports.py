"""`maild run --once` imports what its work needs, not what a start of another kind needs:
every start of an operator's cron job pays for each import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from maild.intake.parse import PARSING_LIBRARIES
from tests.conftest import START

_RUN_ONCE = """
import gc, json, sys
from maild.cli import main
try:
    main.main(["--config", sys.argv[1], "run", "--once"], standalone_mode=False)
finally:
    print(json.dumps({"modules": sorted(sys.modules), "frozen": gc.get_freeze_count()}))
"""

# The inbound SMTP listener's server, the weekly report, the trial of the templates in
# their sample situations, and with no mail to parse, what parses it.
NOT_FOR_AN_EMPTY_RUN = ("aiosmtpd", "maild.channels.smtp_listener", "maild.tickets.report",
                        "maild.runtime.checks", "maild.outbound.samples", *PARSING_LIBRARIES)


def _run(config_file: Path) -> dict[str, Any]:
    """What a `maild run --once` imported, and how many objects it froze."""
    ran = subprocess.run([sys.executable, "-c", _RUN_ONCE, str(config_file)],
                         env={"MAILD_NOW": START.isoformat(), "PATH": ""},
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_a_run_with_nothing_to_do_imports_only_what_it_uses(config_file: Path) -> None:
    _run(config_file)  # the first start tries the templates
    imported = set(_run(config_file)["modules"])
    assert "maild.intake.pipeline" in imported  # it did run
    assert imported.isdisjoint(NOT_FOR_AN_EMPTY_RUN), imported & set(NOT_FOR_AN_EMPTY_RUN)


def test_a_run_leaves_what_its_start_made_to_no_full_collection(config_file: Path) -> None:
    """Every module, class and the app: tens of thousands of objects that each of the
    collector's full passes would walk again, for as long as the process lives."""
    assert _run(config_file)["frozen"] > 10_000
