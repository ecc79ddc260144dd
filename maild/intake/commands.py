"""The commands an SE may put on the first lines of a reply: #note, #status S, #solve …"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from maild.mail.addresses import InvalidAddress, normalise
from maild.tickets.model import PRIORITIES, STATUSES

_COMMAND_LINE = re.compile(r"^#([a-z_]+)\b\s*(.*)$", re.IGNORECASE)
_SETTABLE_STATUSES = tuple(s for s in STATUSES if s != "closed")


@dataclass(frozen=True)
class Commands:
    internal: bool = False
    status: str | None = None
    priority: str | None = None
    assign: str | None = None  # an address, or "me" for #take
    cause: str | None = None
    cc: tuple[str, ...] = ()  # people to make participants (#cc ADDR)
    errors: list[str] = field(default_factory=list)
    text: str = ""  # what is left for the customer, commands removed

    @property
    def any(self) -> bool:
        return bool(self.internal or self.status or self.priority or self.assign or self.cause
                    or self.cc)


def parse_commands(text: str) -> Commands:
    """Read commands from the leading lines; the first line that is not one ends them.
    `#note` may be anywhere among them, with its words on its line or below: the
    commands after it are commands all the same, never note text."""
    internal = False
    status = priority = assign = cause = None
    cc: list[str] = []
    errors: list[str] = []
    note: list[str] = []  # the words on #note lines, the start of the note
    lines = text.split("\n")
    consumed = 0
    for line in lines:
        stripped = line.strip()
        if not stripped:
            consumed += 1
            continue
        match = _COMMAND_LINE.match(stripped)
        if not match:
            break
        consumed += 1
        name, argument = match.group(1).lower(), match.group(2).strip()
        if name == "note":
            internal = True
            # "#note the customer is on the old plan" keeps its words as the note.
            if argument:
                note.append(argument)
        elif name == "status":
            value = argument.lower().replace("-", "_").replace(" ", "_")
            if value in _SETTABLE_STATUSES:
                status = value
            else:
                errors.append(
                    f"#status {argument}: the status must be one of {', '.join(_SETTABLE_STATUSES)}"
                )
        elif name == "priority":
            if argument.lower() in PRIORITIES:
                priority = argument.lower()
            else:
                errors.append(
                    f"#priority {argument}: the priority must be one of {', '.join(PRIORITIES)}"
                )
        elif name == "assign":
            if "@" in argument and " " not in argument:
                assign = argument.lower()
            else:
                errors.append(f"#assign {argument}: name the assignee by mail address")
        elif name == "solve":
            status = "solved"
        elif name == "hold":
            status = "on_hold"
        elif name == "take":
            assign = "me"
        elif name == "cc":
            cc += _addresses("#cc", argument, errors)
        elif name == "cause":
            if argument:
                cause = argument
            else:
                errors.append("#cause: say what the cause is, e.g. #cause expired TLS certificate")
        else:
            errors.append(f"#{name}: unknown command (known: #note #status #priority "
                          "#assign #solve #hold #take #cause #cc)")
    remaining = "\n".join([*note, *lines[consumed:]]).strip()
    return Commands(internal, status, priority, assign, cause, tuple(dict.fromkeys(cc)), errors,
                    remaining)


def _addresses(command: str, argument: str, errors: list[str]) -> list[str]:
    """The addresses of `#cc a@example.com, b@example.com`; each bad one is an error."""
    found = []
    words = [w for w in argument.replace(",", " ").replace(";", " ").split() if w]
    if not words:
        errors.append(f"{command}: name the person by mail address, e.g. {command} "
                      "bob@customer.example")
    for word in words:
        try:
            found.append(normalise(word.strip("<>")))
        except InvalidAddress:
            errors.append(f"{command} {word}: not a mail address")
    return found


def command_lines(text: str) -> list[str]:
    """The leading lines that read as commands, as written: what a mail that may not
    command (unproven staff mail) would have commanded."""
    found = []
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            continue
        if not _COMMAND_LINE.match(stripped):
            break
        found.append(stripped)
    return found
