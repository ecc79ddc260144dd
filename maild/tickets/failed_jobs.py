"""A scheduled job that belongs to no ticket (the weekly digest) and fails is held back
in `failed_jobs`, as a ticket's failed step is in `failed_steps`: tried again after 5,
10, 20, 40 minutes, then hourly, however often the sweep runs and across restarts, and
listed by `maild tickets list --failing`. Once the job succeeds, its row goes.

Each function works in the caller's transaction. The failure is recorded in a
transaction of its own, after the job's own was rolled back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from maild.db.models import FailedJob
from maild.tickets.failed_steps import reason, retry_delay

log = logging.getLogger(__name__)

DIGEST = "digest"


def held_back(session: Session, job: str, now: datetime) -> FailedJob | None:
    """The job's failure record while it is held back at `now`; None when it may run."""
    failed = session.get(FailedJob, job)
    return failed if failed is not None and failed.retry_at > now else None


def hold_back(session: Session, job: str, exc: BaseException, now: datetime) -> FailedJob:
    """Count one more failure of `job` and hold it back for the next wait."""
    failed = session.get(FailedJob, job, with_for_update=True)
    if failed is None:
        failed = FailedJob(job=job, attempts=0, first_failed_at=now)
        session.add(failed)
    failed.attempts += 1
    failed.last_error = reason(exc)
    failed.last_failed_at = now
    failed.retry_at = now + retry_delay(failed.attempts)
    return failed


def recovered(session: Session, job: str) -> None:
    """The job succeeded: forget its failures, and say after how many."""
    failed = session.get(FailedJob, job)
    if failed is None:
        return
    log.info("%s done after %d failed attempt%s", job, failed.attempts,
             "s" if failed.attempts != 1 else "")
    session.delete(failed)


def failing_jobs(session: Session) -> list[dict[str, Any]]:
    """Every job held back, in the shape of failed_steps.failing_steps (no ticket: `id`,
    `status` and `requester` are None), the longest-failing first."""
    return [{
        "id": None, "subject": f"the weekly {failed.job}" if failed.job == DIGEST
        else failed.job, "status": None, "requester": None, "step": failed.job,
        "attempts": failed.attempts, "last_error": failed.last_error,
        "failing_since": failed.first_failed_at.isoformat(),
        "last_failed_at": failed.last_failed_at.isoformat(),
        "retry_at": failed.retry_at.isoformat(),
    } for failed in session.scalars(select(FailedJob).order_by(FailedJob.first_failed_at))]
