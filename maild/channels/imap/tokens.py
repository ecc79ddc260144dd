"""OAuth2 access tokens for IMAP, from a command or a file the operator keeps fresh.

Microsoft 365 and Gmail refuse passwords over IMAP. maild does not run an OAuth2 flow
itself: the operator names a command (e.g. a helper that holds the refresh token) or a
file (kept fresh by such a helper). Either yields the access token alone, or JSON with
`access_token` and `expires_in` (seconds) or `expires_at` (ISO-8601 or epoch seconds).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from maild.clock import Clock
from maild.errors import TemporaryError

# A token is renewed this long before it says it expires, so no login races the expiry.
EXPIRY_MARGIN = timedelta(seconds=60)
COMMAND_TIMEOUT_SECONDS = 60


class TokenUnavailable(TemporaryError):
    """No access token could be obtained right now; the reader tries again later."""


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: datetime | None = None

    def fresh(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at - EXPIRY_MARGIN


def parse_token(text: str, now: datetime) -> AccessToken:
    text = text.strip()
    if not text:
        raise TokenUnavailable("the token source gave nothing")
    if not text.startswith("{"):
        return AccessToken(text.splitlines()[0].strip())
    try:
        data = json.loads(text)
        value = str(data["access_token"]).strip()
    except (ValueError, KeyError, TypeError):
        raise TokenUnavailable("the token source gave JSON without an access_token") from None
    return AccessToken(value, _expiry(data, now))


def _expiry(data: dict[str, object], now: datetime) -> datetime | None:
    if isinstance(data.get("expires_in"), int | float):
        return now + timedelta(seconds=float(data["expires_in"]))  # type: ignore[arg-type]
    expires_at = data.get("expires_at")
    if isinstance(expires_at, int | float):
        return datetime.fromtimestamp(expires_at, UTC)
    if isinstance(expires_at, str):
        try:
            parsed = datetime.fromisoformat(expires_at)
        except ValueError:
            raise TokenUnavailable(f"expires_at {expires_at!r} is not a timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class TokenSource(Protocol):
    def token(self) -> AccessToken: ...

    def invalidate(self) -> None: ...


class CommandTokens:
    """Runs the command for a token; keeps it while it is known to be fresh."""

    def __init__(self, command: str, clock: Clock) -> None:
        self.argv = shlex.split(command)
        self.clock = clock
        self._cached: AccessToken | None = None

    def token(self) -> AccessToken:
        now = self.clock.now()
        if self._cached is not None and self._cached.expires_at and self._cached.fresh(now):
            return self._cached
        try:
            done = subprocess.run(
                self.argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TokenUnavailable(f"token command {self.argv[0]!r} could not run: {exc}") from None
        if done.returncode != 0:
            said = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise TokenUnavailable(
                f"token command {self.argv[0]!r} failed with exit code {done.returncode}: {said}"
            )
        self._cached = parse_token(done.stdout, now)
        return self._cached

    def invalidate(self) -> None:
        self._cached = None


class FileTokens:
    """Reads the file at every login: whatever refreshes it, the newest token is used."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock

    def token(self) -> AccessToken:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenUnavailable(f"cannot read token file {self.path}: {exc.strerror}") from None
        token = parse_token(text, self.clock.now())
        if not token.fresh(self.clock.now()):
            raise TokenUnavailable(
                f"the token in {self.path} has expired; is whatever refreshes it running?"
            )
        return token

    def invalidate(self) -> None:
        """Nothing is cached: the next login reads the file again."""
