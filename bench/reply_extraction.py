"""Reply extraction on bodies of several MB: CPU seconds of maild's `new_text`, against
mail-parser-reply over the whole body (what maild ran before, and still runs on its
first REPLY_SEARCH_CHARS) and a floor, `email.message_from_bytes` of the same mail
(what reading it at all costs), measured in the same run: best of `--rounds`. Then the
whole intake of each mail (parse, thread, store on a new ticket in SQLite, acknowledge),
in this process (no parser process), once each: CPU seconds.

    .venv/bin/python -m bench.reply_extraction [--mb 6.5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mailparser_reply import EmailReplyParser

from maild.clock import FixedClock
from maild.config import parse_config
from maild.intake.pipeline import ingest
from maild.intake.replies import REPLY_SEARCH_CHARS, new_text
from maild.runtime.app import build_app
from tests.conftest import START, config_text
from tests.mailbuilder import make_mail

LINE = "2026-11-30 10:00:01,123 ERROR worker-7 export failed: code 42 at step 17\n"
# As maild/intake/replies.py builds it.
LIBRARY = EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl"])
ATTRIBUTION = "On Mon, 30 Nov 2026 at 10:00, Dan <dan@example.com> wrote:\n"


def bodies(size: int) -> dict[str, str]:
    log = LINE * (size // len(LINE))
    return {
        "a log pasted in": "The export fails; the log:\n\n" + log,
        "a reply over a quoted log": "Thanks, that fixed it.\n\n" + ATTRIBUTION
        + "".join(f"> {line}\n" for line in log.splitlines()),
        "signed, then a log": "The log is below.\n\nBest regards,\nAnn\n\n" + log,
    }


def best(rounds: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=6.5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    print(f"bodies of {args.mb} MB; the library reads {REPLY_SEARCH_CHARS // 1024} KB of "
          f"each; CPU seconds, best of {args.rounds}")
    print(f"{'body':<28}{'floor':>8}{'library, whole':>16}{'new_text':>10}"
          f"{'new_text/floor':>16}{'whole/floor':>13}")
    for name, body in bodies(size).items():
        raw = ("From: ann@customer.example\nTo: support@example.com\nSubject: Export\n"
               "Content-Type: text/plain; charset=utf-8\n\n" + body).encode()
        floor = best(args.rounds, lambda raw=raw: email.message_from_bytes(
            raw, policy=email.policy.default).get_content())
        whole = best(args.rounds, lambda body=body: LIBRARY.parse_reply(body))
        bounded = best(args.rounds, lambda body=body: new_text(body))
        print(f"{name:<28}{floor:>8.2f}{whole:>16.2f}{bounded:>10.2f}"
              f"{bounded / floor:>16.2f}{whole / floor:>13.2f}")
    print("the whole intake of each mail, CPU seconds:")
    with tempfile.TemporaryDirectory() as directory:
        config = parse_config(config_text(f"sqlite:///{directory}/maild.db",
                                          Path(directory) / "storage", 2525))
        config = config.model_copy(update={"intake": config.intake.model_copy(
            update={"parse_in_second_process": False})})
        app = build_app(config, FixedClock(START))
        try:
            for n, (name, body) in enumerate(bodies(size).items()):
                raw = make_mail(body=body, sender=f"c{n}@customer.example",
                                message_id=f"<big{n}@customer.example>")
                started = time.process_time()
                outcome = ingest(app.intake, raw, "bench").outcome
                print(f"{name:<28}{time.process_time() - started:>8.2f}  ({outcome})")
        finally:
            app.close()


if __name__ == "__main__":
    main()
