"""Reply extraction on a body past REPLY_SEARCH_CHARS that ends in many "From:" lines
(an mbox pasted in, or a hostile mail): CPU seconds of maild's `new_text` on it, against
the same body with those lines written "Sent by:" (no rule starts at them), measured in
the same run, best of `--rounds`.

    .venv/bin/python -m bench.reply_from_lines [--lines 50 100 200 400] [--rounds 3]
"""

from __future__ import annotations

import argparse

from bench.reply_extraction import best
from maild.intake.replies import REPLY_SEARCH_CHARS, new_text

LINE = "a line of the reply\n"


def body(lines: int, each: str) -> str:
    return "Hello\n" + LINE * (REPLY_SEARCH_CHARS // len(LINE) + 800) + each * lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("| From lines | body | `new_text` | the same without them | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for lines in args.lines:
        hostile, plain = body(lines, "From: someone\n"), body(lines, "Sent by: someone\n")
        took = best(args.rounds, lambda text=hostile: new_text(text))
        floor = best(args.rounds, lambda text=plain: new_text(text))
        print(f"| {lines} | {len(hostile) / 1024:.0f} KB | {took:.3f} s | {floor:.3f} s "
              f"| {took / max(floor, 1e-6):.1f} |")


if __name__ == "__main__":
    main()
