"""`maild report` as text: the figures of report.py, readable in 80 columns.

Times are shown in the business time zone, as maild's mails show them; spans as people
say them ("2 days 4 h"); every percentage with the counts it is made of.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from maild.tickets.durations import spoken_span

WIDTH = 80
FIGURES = 18  # the column the figures start in, after their labels
SUBJECT = 40  # a subject is cut to this many characters in a list


# Joins the words of one figure ("66.7 % (2 of 3)", "2 days 4 h") so that no line
# break falls inside it; a space again once the lines are made.
_JOINED = "\u00a0"


def _joined(figure: str) -> str:
    return figure.replace(" ", _JOINED)


def _wrap(text: str, indent: str, label: str = "", hang: int = 2) -> list[str]:
    """`label` then `text`, wrapped to WIDTH, continued under the text (or, without a
    label, `hang` columns further in than the first line)."""
    head = f"{indent}{label}".ljust(FIGURES) if label else indent
    rest = " " * len(head) if label else indent + " " * hang
    lines = textwrap.wrap(text, WIDTH, initial_indent=head, subsequent_indent=rest,
                          break_on_hyphens=False, break_long_words=True) or [head.rstrip()]
    return [line.replace(_JOINED, " ") for line in lines]


def _subject(subject: str) -> str:
    return subject if len(subject) <= SUBJECT else subject[:SUBJECT - 1] + "…"


def _local(value: str, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(value).astimezone(zone).strftime("%a %d %b %H:%M")


def _span(hours: float) -> str:
    return _joined(spoken_span(timedelta(hours=hours)))


def _range(report: dict[str, Any], zone: ZoneInfo) -> str:
    since = datetime.fromisoformat(report["since"]).astimezone(zone)
    until = datetime.fromisoformat(report["until"]).astimezone(zone)
    if since.time() == until.time() == datetime.min.time():
        last = until - timedelta(days=1)
        return f"{since:%a %d %b %Y} to {last:%a %d %b %Y}"
    return f"{since:%a %d %b %Y %H:%M} to {until:%a %d %b %Y %H:%M}"


def _times(block: dict[str, Any]) -> str:
    count = block["count"]
    if not count:
        return "none in the range"
    median = _joined(f"median {block['median_hours']} h")
    p90 = _joined(f"p90 {block['p90_hours']} h ({block['p90_within']} of {count})")
    return (f"{count} ticket{'s' if count != 1 else ''}; {median} "
            f"({block['median_within']} of {count} within), {p90}, "
            f"slowest {block['max_hours']} h")


def share(block: dict[str, Any]) -> str:
    """"75.0 % (3 of 4)": a percentage and what it is made of."""
    return _joined(f"{block['percent']} % ({block['met']} of {block['total']})")


def _attainment(name: str, block: dict[str, Any], zone: ZoneInfo) -> list[str]:
    every = block["all"]
    if not every["total"]:
        return _wrap("nothing came due or was met in the range", "  ", name)
    lines = _wrap(f"{share(every)} met, {every['missed']} missed", "  ", name)
    for group, label in (("by_plan", "by plan"), ("by_severity", "by severity"),
                         ("by_engineer", "by engineer")):
        parts = [f"{key}: {share(value)}" for key, value in block[group].items()]
        lines += _wrap(", ".join(parts), "    ", label)
    for missed in block["breaching_tickets"]:
        late = f"{_span(missed['late_hours'])} late"
        still = ", still open" if missed["open"] else ""
        lines += _wrap(f"#{missed['ticket']} {_subject(missed['subject'])}: due "
                       f"{_local(missed['due_at'], zone)}, {late}{still}", "      ")
    return lines


_TARGET_NAMES = {"first_response": "first response", "resolution": "resolution",
                 "internal_first_response": "our own target"}


def _open_breaches(breaches: list[dict[str, Any]]) -> list[str]:
    """One entry per ticket, with each of its targets that is overdue."""
    if not breaches:
        return ["  none"]
    by_ticket: dict[int, list[dict[str, Any]]] = {}
    for breach in breaches:
        by_ticket.setdefault(breach["ticket"], []).append(breach)
    lines = []
    for ticket, overdue in by_ticket.items():
        first = overdue[0]
        targets = ", ".join(f"{_TARGET_NAMES[b['target']]} overdue {_span(b['overdue_hours'])}"
                            for b in overdue)
        lines += _wrap(f"#{ticket} {_subject(first['subject'])}: {targets}; "
                       f"{first['priority']}, {first['status']}, "
                       f"{first['assignee'] or 'unassigned'}", "  ")
    return lines


def _csat(block: dict[str, Any]) -> str:
    if not block["answers"]:
        return "no answers"
    return (_joined(f"{block['satisfied_percent']} % satisfied ({block['satisfied']} of "
                    f"{block['answers']})") + f", average {block['average']} of 5")


def _engineers(engineers: dict[str, Any]) -> list[str]:
    if not engineers:
        return ["  none in the range"]
    lines = []
    for name, figures in engineers.items():
        answered = figures["first_responses"]
        times = (f" (median {answered['median_hours']} h, p90 {answered['p90_hours']} h)"
                 if answered["count"] else "")
        lines += _wrap(name, "  ")
        lines += _wrap(f"assigned {figures['assigned']}, first responses "
                       f"{answered['count']}{times}, solved {figures['solved']}, "
                       f"CSAT {_csat(figures['satisfaction'])}, backlog {figures['backlog']}",
                       "    ")
    return lines


def report_text(report: dict[str, Any]) -> str:
    zone = ZoneInfo(report["timezone"])
    tickets, sla, backlog = report["tickets"], report["sla"], report["backlog"]
    csat = report["satisfaction"]
    staff = tickets["opened_by_staff"]
    lines = [
        f"maild report: {_range(report, zone)}",
        *_wrap(f"Times of day in {report['timezone']}; durations in business hours; "
               f"percentiles by {report['percentile_method']}, with how many tickets are "
               "within them.", "", hang=0),
        "",
        "Tickets",
        *_wrap(f"opened {tickets['opened']}"
               + (f" ({staff} by staff writing to a customer, left out of the times and "
                  "SLA figures)" if staff else "")
               + f", solved {tickets['solved']}", "  "),
        *_wrap(_times(report["first_response"]), "  ", "first response"),
        *_wrap(_times(report["resolution"]), "  ", "resolution"),
        "",
        "Customer SLA (a target whose due time passed unmet is missed, solved or not)",
        *_attainment("first response", sla["first_response"], zone),
        *_attainment("resolution", sla["resolution"], zone),
        "Internal target",
        *_attainment("first response", sla["internal_first_response"], zone),
        f"Escalated to the leads: {sla['escalations']}",
        "",
        "Open breaches now (any age)",
        *_open_breaches(sla["open_breaches"]),
        "",
        "Engineers (backlog as of now)",
        *_engineers(report["engineers"]),
        "",
        *_wrap(f"{backlog['total']}: " + ", ".join(
            _joined(f"{k} {v}") for k, v in backlog["by_status"].items())
            + f"; unassigned {backlog['unassigned']}", "", "Backlog now"),
        *_wrap(", ".join(_joined(f"{k} {v}") for k, v in backlog["by_age"].items()), "  ",
               "by age"),
        *_wrap(f"{report['followups']['nudges_sent']} nudges sent, "
               f"{report['followups']['auto_solved']} tickets auto-solved", "", "Follow-ups"),
        *_wrap(_csat(csat), "", "Satisfaction"),
    ]
    for comment in csat["comments"]:
        rating = f"{comment['rating']}/5" if comment["rating"] is not None else "no rating"
        lines += _wrap(f"#{comment['ticket']} {_subject(comment['subject'])} ({rating}, "
                       f"{comment['engineer'] or 'unassigned'}): \u201c{comment['comment']}\u201d",
                       "  ")
    return "\n".join(lines)
