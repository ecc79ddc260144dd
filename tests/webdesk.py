"""A real `maild run` serving [web] on a free loopback port, for the web tests: its
configuration, its environment, and requests to it with or without the token."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import config_text, free_port
from tests.waiting import wait_for

MAILD = [sys.executable, "-m", "maild"]
TOKEN = "t0ken-for-the-web-tests-0123456789"
NOW = "2026-11-23T10:00:00-08:00"  # a Monday, 10:00 in Los Angeles


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str

    @property
    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


@dataclass
class WebDesk:
    tmp_path: Path
    database_url: str
    outbound_port: int
    extra: str = ""  # more of the config: [inbound_smtp], [[mailboxes]] …
    env_extra: dict[str, str] = field(default_factory=dict)
    now: str = NOW
    token: str | None = TOKEN

    def __post_init__(self) -> None:
        self.port = free_port()
        self.config = self.tmp_path / "maild.toml"
        self.config.write_text(config_text(
            self.database_url, self.tmp_path / "storage", self.outbound_port,
            f"{self.extra}\n[web]\nenabled = true\nport = {self.port}\n"))
        self.env = {**os.environ, "MAILD_CONFIG": str(self.config), "MAILD_NOW": self.now,
                    **self.env_extra}
        self.env.pop("MAILD_WEB_TOKEN", None)
        if self.token is not None:
            self.env["MAILD_WEB_TOKEN"] = self.token
        self.log = self.tmp_path / "maild.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def maild(self, *args: str, stdin: bytes | None = None, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*MAILD, *args], env={**self.env, **(env or {})}, input=stdin,
                              capture_output=True, check=check)

    def start(self, *, wait: bool = True) -> None:
        """`maild run`; by default, until its web part answers."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([*MAILD, "run"], env=self.env, stderr=log)
        if wait:
            wait_for(self._answers, "the web part to answer", timeout=60)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"maild run exited: {self.log.read_text()}")
        try:
            self.get("/healthz")
        except OSError:
            return False
        return True

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def request(self, method: str, path: str, *, token: str | None = None,
                cookie: str | None = None, body: str | None = None) -> Answer:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = cookie
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, response.headers,
                          response.read().decode("utf-8", "replace"))
        finally:
            connection.close()

    def get(self, path: str, *, token: str | None = None,
            cookie: str | None = None) -> Answer:
        return self.request("GET", path, token=token, cookie=cookie)
