"""`maild quarantine …`: what was set aside, and its replay after a fix."""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.orm import Session

from maild.cli.context import (
    EX_DATAERR,
    EX_TEMPFAIL,
    Context,
    handles_errors,
    json_option,
    known_id,
    print_json,
)
from maild.errors import NotFound, PermanentError, TemporaryError
from maild.runtime.app import App


@click.group()
def quarantine() -> None:
    """Mail that could not be processed: see why, and run it again after a fix."""


@quarantine.command("list")
@click.option("--all", "everything", is_flag=True, help="Released and ignored messages too.")
@click.option("--ignored", is_flag=True,
              help="Only the automatic mail for no ticket that was filed as ignored.")
@json_option
@click.pass_obj
@handles_errors
def quarantine_list(obj: Context, everything: bool, ignored: bool, as_json: bool) -> None:
    from maild.intake.quarantine import entry_json, held

    status = "ignored" if ignored else "held"
    entries = obj.read(lambda app, session: [
        entry_json(session, app.raw_store, e)
        for e in held(session, everything=everything, status=status)])
    if as_json:
        print_json(entries)
        return
    if not entries:
        click.echo("nothing ignored" if ignored else
                   "nothing in quarantine" if not everything else "the quarantine is empty")
        return
    for entry in entries:
        headers = entry["headers"]
        who = headers.get("from", "(no From)")
        click.echo(f"{entry['id']:>5} {entry['status']:<8} {entry['received_at'][:16]} "
                   f"{entry['channel']:<12} {who[:40]}")
        click.echo(f"      {entry['reason']}")


@quarantine.command("show")
@click.argument("entry_id", type=int)
@json_option
@click.option("--raw", is_flag=True, help="Write the message's raw bytes to stdout.")
@click.pass_obj
@handles_errors
def quarantine_show(obj: Context, entry_id: int, as_json: bool, raw: bool) -> None:
    from maild.db.raw_mail import read_raw
    from maild.intake.quarantine import entry_json, get_entry

    def shown(app: App, session: Session) -> tuple[dict[str, Any], bytes | None]:
        missing = f"there is no quarantined message {entry_id}"
        entry = get_entry(session, known_id(entry_id, missing))
        if not raw:
            return entry_json(session, app.raw_store, entry), None
        try:
            return {}, read_raw(session, app.raw_store, entry.raw_sha256)
        except OSError as exc:
            raise PermanentError(f"raw message missing from storage: {exc.strerror}") from None

    data, raw_bytes = obj.read(shown)
    if raw_bytes is not None:
        sys.stdout.buffer.write(raw_bytes)
        return
    if as_json:
        print_json(data)
        return
    click.echo(f"quarantined message {data['id']}, {data['status']}")
    click.echo(f"reason: {data['reason']}")
    click.echo(f"received {data['received_at']} through {data['channel']}, "
               f"{data['size'] if data['size'] is not None else '?'} bytes "
               f"{'at ' + data['raw_path'] if data['raw_path'] else 'in the database'}")
    for name, value in data["headers"].items():
        click.echo(f"{name}: {value}")
    if data["replays"]:
        click.echo(f"replayed {data['replays']} time(s), last {data['replayed_at']}")
    if data["outcome"]:
        click.echo(f"outcome: {data['outcome']}")


@quarantine.command("replay")
@click.argument("entry_ids", nargs=-1, type=int)
@click.option("--all", "everything", is_flag=True, help="Every held message.")
@click.pass_obj
@handles_errors
def quarantine_replay(obj: Context, entry_ids: tuple[int, ...], everything: bool) -> None:
    """Run held messages through the intake again, as if they had just arrived.

    Exit 0 when every one was stored, 65 when some are still quarantined, 75 when some
    could not be tried (storage or database unavailable).
    """
    from maild.intake.quarantine import held, replay

    if bool(entry_ids) == everything:
        raise PermanentError("name the messages to replay, or give --all")
    app = obj.app()
    if everything:
        with app.db.transaction() as session:
            entry_ids = tuple(e.id for e in held(session))
    worst = 0
    for entry_id in entry_ids:
        try:
            result = replay(app.intake, known_id(
                entry_id, f"there is no quarantined message {entry_id}")).result
        except TemporaryError as exc:
            click.echo(f"{entry_id}: not tried, try again later: {exc}", err=True)
            worst = max(worst, EX_TEMPFAIL)
            continue
        except (PermanentError, NotFound) as exc:
            click.echo(f"{entry_id}: {exc}", err=True)
            worst = max(worst, EX_DATAERR)
            continue
        if result.outcome == "quarantined":
            click.echo(f"{entry_id}: still quarantined: {result.reason}")
            worst = max(worst, EX_DATAERR)
        elif result.outcome == "duplicate":
            click.echo(f"{entry_id}: released, a duplicate of {result.message_id}")
        elif result.outcome == "ignored":
            click.echo(f"{entry_id}: released, ignored: {result.reason}")
        else:
            click.echo(f"{entry_id}: released, ticket #{result.ticket_id}: {result.reason}")
    sys.exit(worst)


