"""The composition root builds everything and hands each service what it uses; nothing
holds state from import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from maild.mail.policy import MailPolicies

MAILD = Path(__file__).resolve().parent.parent / "maild"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_only_the_runtime_and_the_command_line_see_the_whole_app() -> None:
    seeing = sorted(
        str(path.relative_to(MAILD)) for path in MAILD.rglob("*.py")
        if "maild.runtime.app" in _imports(path)
    )
    assert seeing
    assert [p for p in seeing if not p.startswith(("runtime/", "cli/"))] == []


_RENDER = """
from datetime import UTC, datetime
import sys
from maild.mail.policy import MailPolicies
from maild.outbound.compose import OutgoingAttachment, OutgoingMail, Party, render_mail
mail = OutgoingMail(sender=Party("support@example.com"), to=[Party("ann@customer.example")],
                    subject="Hello", text="Hi\\n", html="<p>Hi</p>", message_id="<m@example.com>",
                    date=datetime(2026, 11, 23, tzinfo=UTC),
                    attachments=[OutgoingAttachment("a.pdf", "application/pdf", b"%PDF")])
sys.stdout.buffer.write(render_mail(mail, MailPolicies().writing))
"""


def test_every_process_writes_the_same_mail_to_the_same_bytes() -> None:
    """Nothing drawn at import: the multipart boundaries are the same in every process."""
    written = [subprocess.run([sys.executable, "-c", _RENDER], capture_output=True,
                              check=True).stdout for _ in range(2)]
    assert b"multipart/mixed" in written[0]
    assert written[0] == written[1]


def test_what_the_policies_keep_belongs_to_them() -> None:
    """Two maild in one process (as the tests run) share nothing through the policies."""
    first, second = MailPolicies(), MailPolicies()
    assert first.reading.header_factory is not second.reading.header_factory
    assert first.writing.header_factory is not second.writing.header_factory
