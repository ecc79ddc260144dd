"""The error hierarchy: one root, and the three ways a failure can be meant.

Temporary errors are worth retrying (the database is locked, the disk is full,
the relay said 4xx). Permanent errors will fail the same way every time (a
message that can never be accepted). Configuration errors stop the start.
"""

from __future__ import annotations


class MaildError(Exception):
    """Root of every error maild raises on purpose."""


class TemporaryError(MaildError):
    """Try again later; nothing was lost."""


class PermanentError(MaildError):
    """This will never succeed; set it aside with the reason."""


class ConfigError(MaildError):
    """The configuration cannot be used. One problem per line in `problems`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class NotFound(MaildError):
    """A ticket, customer or quarantined message that does not exist."""


class TemplateFailed(PermanentError):
    """A template could not make its mail: one mail fails, never the change that caused it.

    `template` is the file ("ack.txt.j2"), `path` where it was read from, `line` the line
    in it (None when Jinja cannot tell), `reason` what went wrong ("'customer' has no
    attribute 'nmae'")."""

    def __init__(self, template: str, path: str, line: int | None, reason: str) -> None:
        self.template = template
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path} line {line}" if line is not None else path
        super().__init__(f"{where}: {reason}")
