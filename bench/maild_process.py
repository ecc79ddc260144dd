"""A `maild` command started as an operator starts it, and the peak memory of it and of
the helper processes it starts (the parser process, a start's migration): what the
memory benchmarks share.

Peaks are `VmHWM`, read from /proc while a process runs, or `ru_maxrss` from `wait4`
for a command that ends on its own. A child's `ru_maxrss` starts at the RSS of the
process that forked it, so such a command is started by a small launcher rather than
by the benchmark, which holds hundreds of MB of mail.
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PARSER = b"maild.intake.parser_process"
MIGRATION = b"maild.db.migrate"


def maild_command(code: Path | None = None) -> list[str]:
    """The `maild` command; with `code`, the maild package in that checkout, with this
    virtualenv's libraries."""
    if code is None:
        return [sys.executable, "-m", "maild"]
    # Ahead of this checkout's editable install, which PYTHONPATH does not outrank.
    run = (f"import sys, runpy; sys.path.insert(0, {str(code)!r}); "
           "runpy.run_module('maild', run_name='__main__')")
    return [sys.executable, "-c", run]


def vm_hwm_mb(pid: int) -> float:
    """A live process's own high-water mark, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def _vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Helpers:
    """The peaks of the processes a maild process started, as seen while they ran."""

    parser_mb: float = 0.0
    migration_mb: float = 0.0
    # maild's own RSS while its migration ran: the two are alive together.
    during_migration_mb: float = 0.0
    _seen: set[int] = field(default_factory=set)

    def look(self, parent: int) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if f"PPid:\t{parent}\n" not in (entry / "status").read_text():
                    continue
                command = (entry / "cmdline").read_bytes()
                peak = vm_hwm_mb(int(entry.name))
                if MIGRATION in command:
                    self.migration_mb = max(self.migration_mb, peak)
                    self.during_migration_mb = max(self.during_migration_mb,
                                                   _vm_rss_mb(parent))
                elif PARSER in command:
                    self.parser_mb = max(self.parser_mb, peak)
            except (OSError, RuntimeError):
                continue  # gone meanwhile: its last figure seen stands

    def watch(self, parent: int, running: threading.Event, every: float = 0.05) -> None:
        while running.is_set():
            self.look(parent)
            time.sleep(every)


@dataclass
class Finished:
    peak_mb: float  # the maild process's own
    exit_code: int
    seconds: float
    helpers: Helpers


# Forks the command, says its pid, waits for it and says its peak (ru_maxrss, KB) and
# exit code. Its output goes to the file named first.
_LAUNCHER = """\
import os, subprocess, sys
with open(sys.argv[1], "ab") as log:
    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
print(child.pid, flush=True)
_, status, usage = os.wait4(child.pid, 0)
child.returncode = os.waitstatus_to_exitcode(status)
print(usage.ru_maxrss, child.returncode, flush=True)
"""


def run_measured(command: list[str], log: Path) -> Finished:
    """Run `command` (a maild command that ends on its own) to its end: its peak, its
    helpers' and its wall-clock time. Its output is appended to `log`."""
    started = time.perf_counter()
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(log), *command],
                                stdout=subprocess.PIPE, text=True)
    assert launcher.stdout is not None
    pid = int(launcher.stdout.readline())
    helpers, running = Helpers(), threading.Event()
    running.set()
    watcher = threading.Thread(target=helpers.watch, args=(pid, running), daemon=True)
    watcher.start()
    peak_kb, exit_code = launcher.stdout.readline().split()
    seconds = time.perf_counter() - started
    running.clear()
    watcher.join()
    launcher.wait()
    return Finished(int(peak_kb) / 1024, int(exit_code), seconds, helpers)


def wait_until_listening(port: int, daemon: subprocess.Popen[bytes],
                         timeout: float = 60) -> None:
    """Until the SMTP listener on `port` answers (a first start migrates before)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as probe:
                probe.noop()
            return
        except OSError:
            if daemon.poll() is not None:
                raise RuntimeError(f"maild ended with exit code {daemon.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
