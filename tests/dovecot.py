"""A private Dovecot for the tests: own config, passwd-file users, maildirs in a temp
directory, a free loopback port, and OAuth2 logins checked against a local token
introspection endpoint. Installed by scripts/ensure-dovecot (Debian's dovecot-imapd)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from imapclient import IMAPClient

from tests.waiting import child_pids, wait_for

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Introspection:
    """RFC 7662 token introspection, as Dovecot's oauth2 passdb asks it (mode post)."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}  # access token -> username
        self.asked: list[str] = []
        introspection = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                token = parse_qs(self.rfile.read(length).decode()).get("token", [""])[0]
                introspection.asked.append(token)
                username = introspection.tokens.get(token)
                body = {"active": "true", "username": username} if username else {
                    "active": "false"}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def issue(self, username: str) -> str:
        token = f"tok-{uuid.uuid4().hex}"
        self.tokens[token] = username
        return token

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _accounts() -> tuple[str, str, str]:
    """(login user, internal user, mail user): Dovecot refuses to run any of them as root."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        return me, me, me
    return "dovenull", "dovecot", "nobody"


@dataclass
class Account:
    server: Dovecot
    username: str
    password: str

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.server.port, ssl=False, timeout=10)
        client.login(self.username, self.password)
        return client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        client = self.client()
        try:
            client.append(folder, raw)
        finally:
            client.logout()

    def uids(self, folder: str) -> list[int]:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return list(client.search(["NOT", "DELETED"]))
        finally:
            client.logout()

    def count(self, folder: str) -> int:
        return len(self.uids(folder))

    def flags(self, folder: str) -> list[tuple[bytes, ...]]:
        client = self.client()
        try:
            client.select_folder(folder, readonly=True)
            return [data[b"FLAGS"] for data in client.fetch(client.search(), ["FLAGS"]).values()]
        finally:
            client.logout()


class Dovecot:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="maild-dovecot-"))
        self.root.chmod(0o755)  # the mail user must reach its maildirs
        self.port = free_port()
        self.introspection = Introspection()
        # One passwd-file per user: a new file is read fresh, where appending to one shared
        # file within the same second can go unnoticed by Dovecot's cache.
        self.users = self.root / "users"
        self.users.mkdir()
        login_user, internal_user, self.mail_user = _accounts()
        mail = self.root / "mail"
        mail.mkdir()
        shutil.chown(mail, user=self.mail_user)
        (self.root / "oauth2.conf").write_text(
            f"introspection_mode = post\nintrospection_url = {self.introspection.url}\n"
            "force_introspection = yes\nusername_attribute = username\n"
            "active_attribute = active\nactive_value = true\n"
        )
        self.config = self.root / "dovecot.conf"
        self.config.write_text(f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
instance_name = maild-test-{self.port}
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
log_path = {self.root}/dovecot.log
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:{mail}/%u
# IDLE hears of new mail through inotify, and every test Dovecot on the machine runs its
# imap processes as the same user, whose inotify instances (128 by default) another
# run's many sessions can use up: Dovecot then logs "Inotify instance limit ... exceeded,
# disabling" and announces new mail only at this check, 30 s by default, later than a
# test waits. Checked every second, IDLE announces mail within about a second either way.
mailbox_idle_check_interval = 1 secs
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users}/%u
  mechanisms = plain login
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {self.root}/oauth2.conf
}}
userdb {{
  driver = static
  args = uid={self.mail_user} gid={pwd.getpwnam(self.mail_user).pw_gid} home={mail}/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""")

    def add_account(self) -> Account:
        username = f"support-{uuid.uuid4().hex[:10]}@example.com"
        password = uuid.uuid4().hex
        (self.users / username).write_text(f"{username}:{{PLAIN}}{password}::::::\n")
        return Account(self, username, password)

    def _accepting(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def _master_pid(self) -> int | None:
        try:
            return int((self.root / "run" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        # Not captured: the daemon's children would hold the pipe open forever.
        with open(self.root / "start.log", "ab") as log:
            subprocess.run([DOVECOT, "-c", str(self.config)], check=True,
                           stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_for(self._accepting, f"dovecot to start (see {self.root}/dovecot.log)")

    def crash(self) -> None:
        """SIGKILL the master and every process it started, as a crashed or rebooted
        server: open connections die without a goodbye. (A plain `dovecot stop` lets
        the imap processes serving open connections live on.)"""
        pid = self._master_pid()
        if pid is None:
            return
        for victim in [pid, *_descendants(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not _alive(pid) and not self._accepting(), "dovecot to die")
        (self.root / "run" / "master.pid").unlink(missing_ok=True)

    def restart(self) -> None:
        self.crash()
        self.start()

    def close(self) -> None:
        self.crash()
        self.introspection.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        children = child_pids(queue.pop())
        found += children
        queue += children
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; its state in /proc tells.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
