"""Whether and when to try a failed delivery again: a pure function of the error and the count."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from datetime import timedelta

from maild.errors import PermanentError

BASE_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: timedelta
    reason: str


def describe_smtp_error(error: BaseException) -> tuple[bool, str]:
    """(temporary?, what happened) for any error a delivery attempt can raise."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        temporary = all(400 <= code < 500 for code in codes)
        detail = "; ".join(
            f"{rcpt}: {code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"
            for rcpt, (code, msg) in error.recipients.items()
        )
        return temporary, f"recipients refused: {detail}"
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
        return 400 <= error.smtp_code < 500, f"{error.smtp_code} {text}"
    if isinstance(error, (smtplib.SMTPServerDisconnected, OSError)):  # timeouts, refusals
        return True, f"relay unreachable: {error}"
    if isinstance(error, PermanentError):  # maild knows this mail can never go
        return False, str(error)
    # Anything else is maild's own fault, not the mail's: worth another try, and it
    # must never count against the mails after it.
    return True, f"internal error: {type(error).__name__}: {error}"


def decide(error: BaseException, attempts: int, max_attempts: int) -> RetryDecision:
    temporary, reason = describe_smtp_error(error)
    if not temporary:
        return RetryDecision(False, timedelta(0), f"permanent: {reason}")
    if attempts >= max_attempts:
        return RetryDecision(False, timedelta(0), f"gave up after {attempts} attempts: {reason}")
    delay = min(BASE_DELAY * 2 ** (attempts - 1), MAX_DELAY)
    return RetryDecision(True, delay, reason)
