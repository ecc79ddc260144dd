"""What this process counts as it works: mail taken in, deliveries, sweeps.

The intake, the sender and the sweeps call these few methods; nothing else of maild
knows Prometheus. /metrics (maild/web/metrics.py) shows them with the figures that
describe the desk, which are read from the database when scraped, so that every maild
sharing a PostgreSQL database reports the same desk and only its own counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

DELIVERY_RESULTS = ("sent", "deferred", "failed")
# A message is taken in within milliseconds alone, within seconds as part of a batch.
INTAKE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """The counters of one maild process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._messages = Counter(
            "maild_messages", "Messages taken in, by channel and outcome",
            ["channel", "outcome"], registry=self.registry)
        self._intake_seconds = Histogram(
            "maild_intake_seconds",
            "Seconds from the start of taking a message until its batch was committed",
            ["channel"], buckets=INTAKE_BUCKETS, registry=self.registry)
        self._deliveries = Counter(
            "maild_deliveries", "Outbox mail handed to the relay, by result",
            ["result"], registry=self.registry)
        self._sweep_seconds = Histogram(
            "maild_sweep_seconds", "Seconds each scheduled sweep took",
            ["sweep"], buckets=SWEEP_BUCKETS, registry=self.registry)
        self._sweep_failures = Counter(
            "maild_sweep_failures", "Scheduled sweeps that ended with an error",
            ["sweep"], registry=self.registry)
        for result in DELIVERY_RESULTS:
            self._deliveries.labels(result)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def taken_in(self, channel: str, taken: Iterable[tuple[str, float]]) -> None:
        """Messages of `channel` are committed now: each (outcome, time.monotonic() when
        taking it began)."""
        committed = time.monotonic()
        for outcome, started in taken:
            self._messages.labels(channel, outcome).inc()
            self._intake_seconds.labels(channel).observe(max(0.0, committed - started))

    def delivered(self, result: str) -> None:
        self._deliveries.labels(result).inc()

    @contextmanager
    def sweep(self, name: str) -> Iterator[None]:
        """Time one sweep; one that raises is counted as failed (and still raises)."""
        started = time.monotonic()
        try:
            yield
        except Exception:
            self._sweep_failures.labels(name).inc()
            raise
        finally:
            self._sweep_seconds.labels(name).observe(time.monotonic() - started)
