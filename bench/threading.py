"""Threading accuracy on mail as the world writes it (tests/realmail.py), through a real
Dovecot and `maild run --once`, for this checkout and, with --before, another one (main)
in the same run. See bench/README.md."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from maild.channels.sink import start_sink
from tests.conftest import free_port
from tests.dovecot import Dovecot
from tests.realmail import Corpus, Desk, Score, play

ROOT = Path(__file__).resolve().parent.parent


def config(storage: Path, sink_port: int, account: Any) -> str:
    return f"""
[support]
address = "support@example.com"
name = "Example Support"
[storage]
url = "sqlite:///{storage}/maild.db"
dir = "{storage}"
[outbound]
host = "127.0.0.1"
port = {sink_port}
[staff]
addresses = ["dan@example.com"]
[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {account.server.port}
security = "none"
username = "{account.username}"
password_env = "BENCH_IMAP_PASSWORD"
address = "support@example.com"
"""


def measure(checkout: Path, dovecot: Dovecot, work: Path, conversations: int, rounds: int,
            seed: int) -> tuple[Score, Corpus]:
    account = dovecot.add_account()
    sink_dir = work / "sink"
    port = free_port()
    sink = start_sink("127.0.0.1", port, sink_dir)
    try:
        path = work / "maild.toml"
        path.write_text(config(work / "storage", port, account))
        env = {**os.environ, "MAILD_CONFIG": str(path),
               "BENCH_IMAP_PASSWORD": account.password}
        env.pop("PYTHONPATH", None)
        python = checkout / ".venv" / "bin" / "python"
        desk = Desk([str(python), "-m", "maild"], env, account, sink_dir, cwd=checkout)
        corpus = Corpus(seed=seed)
        return play(corpus, desk, conversations, rounds), corpus
    finally:
        sink.stop()


def report(name: str, result: Score) -> None:
    print(f"{name}: {json.dumps(result.summary())}")
    wrong = Counter(line.split(" ", 1)[0] for line in result.wrong)
    if wrong:
        print(f"  wrong, by style: {dict(wrong.most_common())}")
    if result.tickets_opened_wrongly:
        opened = Counter(line.rsplit(" by ", 1)[1] for line in result.tickets_opened_wrongly)
        print(f"  tickets opened by: {dict(opened.most_common())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=500,
                        help="new conversations (about 4 mails each over 2 reply rounds)")
    parser.add_argument("--rounds", type=int, default=2, help="reply rounds")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--before", type=Path,
                        help="another checkout (with its .venv) to measure first, e.g. main")
    args = parser.parse_args()
    dovecot = Dovecot()
    dovecot.start()
    try:
        for name, checkout in [("before", args.before), ("after", ROOT)]:
            if checkout is None:
                continue
            with tempfile.TemporaryDirectory(prefix=f"maild-threading-{name}-") as work:
                result, corpus = measure(checkout.resolve(), dovecot, Path(work),
                                         args.conversations, args.rounds, args.seed)
            kinds = Counter(m.kind for m in {m.raw: m for m in corpus.mails}.values())
            print(f"{name} ({checkout}): {len(corpus.mails)} mails written, "
                  f"{dict(kinds)}, {len({m.style for m in corpus.mails})} styles")
            report(name, result)
            sys.stdout.flush()
    finally:
        dovecot.close()


if __name__ == "__main__":
    main()
