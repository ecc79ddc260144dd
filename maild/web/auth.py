"""Who may read the dashboard: whoever holds the token named by `[web] token_env`.

Scripts send it on every request (`Authorization: Bearer <token>`); a browser enters it
once in the login form and gets a session cookie instead. The cookie carries an expiry
and a signature keyed by the token, never the token itself, so a leaked cookie ends
with its expiry and every cookie ends when the token is changed. Everything is compared
in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from maild.config import WebConfig

SESSION_COOKIE = "maild_session"
SESSION_LENGTH = timedelta(hours=12)


class Authenticator:
    def __init__(self, token: str) -> None:
        self._token = token.encode()
        # The key that signs sessions: derived from the token, separate from it.
        self._session_key = hmac.new(self._token, b"maild web session", hashlib.sha256).digest()

    def token_matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self._token)

    def bearer_matches(self, authorization: str | None) -> bool:
        """An `Authorization: Bearer <token>` header holding the token."""
        if not authorization:
            return False
        scheme, _, offered = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(offered.strip())

    def new_session(self, now: datetime) -> str:
        expires = int((now + SESSION_LENGTH).timestamp())
        return f"{expires}.{self._sign(expires)}"

    def session_valid(self, cookie: str | None, now: datetime) -> bool:
        if not cookie:
            return False
        expires, _, signature = cookie.partition(".")
        if not expires.isdigit():
            return False
        if not hmac.compare_digest(signature.encode(), self._sign(int(expires)).encode()):
            return False
        return now.timestamp() < int(expires)

    def _sign(self, expires: int) -> str:
        return hmac.new(self._session_key, str(expires).encode(), hashlib.sha256).hexdigest()


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a path of this site only, never another host."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def token_missing(settings: WebConfig) -> str:
    """What `maild run` logs and `maild check` says when the token is not there."""
    return (f"the environment variable {settings.token_env} (web.token_env) is not set: "
            "the dashboard's pages need its token, so the web part does not start")
