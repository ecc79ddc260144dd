"""Capped exponential backoff with jitter, for reconnecting to servers that went away."""

from __future__ import annotations

import random


class Backoff:
    """1, 2, 4 … seconds up to `cap`, each drawn from the upper half of its step.

    The jitter keeps several daemons (or mailboxes) that lost the same server from all
    knocking again in the same second.
    """

    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        step = min(self.cap, self.base * 2 ** min(self.failures, 32))
        self.failures += 1
        return self.rng.uniform(step / 2, step)

    def reset(self) -> None:
        self.failures = 0
