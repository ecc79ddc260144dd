"""`maild run --once` imports what its work needs, not what a start of another kind needs:
every start of an operator's cron job pays for each import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from maild.intake.parse import PARSING_LIBRARIES
from tests.conftest import START

_RUN_ONCE = """
import json, sys
from maild.cli import main
try:
    main.main(["--config", sys.argv[1], "run", "--once"], standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)))
"""

# The inbound SMTP listener's server, the weekly report, the trial of the templates in
# their sample situations, and with no mail to parse, what parses it.
NOT_FOR_AN_EMPTY_RUN = ("aiosmtpd", "maild.channels.smtp_listener", "maild.tickets.report",
                        "maild.runtime.checks", "maild.outbound.samples", *PARSING_LIBRARIES)


def _modules_of_a_run(config_file: Path) -> set[str]:
    ran = subprocess.run([sys.executable, "-c", _RUN_ONCE, str(config_file)],
                         env={"MAILD_NOW": START.isoformat(), "PATH": ""},
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    return set(json.loads(ran.stdout.splitlines()[-1]))


def test_a_run_with_nothing_to_do_imports_only_what_it_uses(config_file: Path) -> None:
    _modules_of_a_run(config_file)  # the first start tries the templates
    imported = _modules_of_a_run(config_file)
    assert "maild.intake.pipeline" in imported  # it did run
    assert imported.isdisjoint(NOT_FOR_AN_EMPTY_RUN), imported & set(NOT_FOR_AN_EMPTY_RUN)
