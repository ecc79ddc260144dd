"""Finding maild's parser processes in /proc, for the tests and the benchmark."""

from __future__ import annotations

import os
from pathlib import Path


def parser_pids(parent: int | None = None) -> set[int]:
    """The parser processes that `parent` (by default this process) started."""
    parent = parent or os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if f"PPid:\t{parent}\n" in status and b"maild.intake.parser_process" in command:
            found.add(int(entry.name))
    return found
