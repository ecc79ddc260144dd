"""The web part of a real `maild run`: the token in front of every page but /healthz and
/metrics, the metrics as Prometheus parses them, /healthz following a real Dovecot down and
back up, and a web part without its token refused (docs/design.md, "The web part")."""

from __future__ import annotations

import json
import smtplib
import socket
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

from maild.channels.smtp_listener import who_listens
from tests.conftest import Sink, free_port, mailbox_toml
from tests.dovecot import Dovecot
from tests.mailbuilder import make_mail
from tests.waiting import wait_for
from tests.webdesk import NOW, TOKEN, WebDesk

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(desk: WebDesk) -> Samples:
    answer = desk.get("/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.body)
            for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_every_page_asks_for_the_token_and_health_and_metrics_do_not(
    tmp_path: Path, database_url: str, sink: Sink
) -> None:
    desk = WebDesk(tmp_path, database_url, sink.port)
    desk.maild("ingest", "-", stdin=make_mail(subject="Printer on fire"))
    desk.start()
    try:
        for path in ("/", "/?page=2", "/tickets/1", "/tickets/404", "/report", "/nowhere"):
            refused = desk.get(path)
            assert refused.status == 401, path
            assert refused.headers["WWW-Authenticate"] == 'Bearer realm="maild"'
            assert 'name="token"' in refused.body  # the login form, for a browser
            assert "Printer on fire" not in refused.body
            assert desk.get(path, token="wrong").status == 401
            assert desk.get(path, token=TOKEN[:-1]).status == 401
            assert desk.get(path, token=TOKEN + "x").status == 401
        queue = desk.get("/", token=TOKEN)
        assert queue.status == 200
        assert "Printer on fire" in queue.body
        assert desk.get("/tickets/1", token=TOKEN).status == 200
        assert desk.get("/report", token=TOKEN).status == 200
        assert desk.get("/tickets/404", token=TOKEN).status == 404
        assert desk.get("/nowhere", token=TOKEN).status == 404
        assert desk.get("/report?weeks=0", token=TOKEN).status == 400
        # Nothing writes through the web.
        assert desk.request("POST", "/tickets/1", token=TOKEN).status == 405
        assert desk.request("POST", "/", token=TOKEN).status == 405

        health = desk.get("/healthz")
        assert (health.status, json.loads(health.body)) == (200, {"status": "ok"})
        assert desk.get("/metrics").status == 200
        for answer in (queue, health, desk.get("/")):
            assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
            assert "script-src" not in answer.headers["Content-Security-Policy"]
        assert queue.headers["Cache-Control"] == "no-store"

        # A browser logs in once and gets a session cookie, not the token.
        wrong = desk.request("POST", "/login", body=urlencode({"token": "nope", "next": "/"}))
        assert (wrong.status, wrong.cookies) == (401, [])
        right = desk.request("POST", "/login",
                             body=urlencode({"token": TOKEN, "next": "/tickets/1"}))
        assert (right.status, right.headers["Location"]) == (303, "/tickets/1")
        [cookie] = right.cookies
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        session = cookie.split(";")[0]
        assert TOKEN not in session
        assert desk.get("/tickets/1", cookie=session).status == 200
        forged = session[:-1] + ("0" if session[-1] != "0" else "1")
        assert desk.get("/tickets/1", cookie=forged).status == 401
        later = session.split("=", 1)[0] + "=" + "9" * 12 + "." + session.split(".", 1)[1]
        assert desk.get("/", cookie=later).status == 401  # the expiry is signed too
        # After logging in, a browser goes to a page of this site, never elsewhere.
        away = desk.request("POST", "/login",
                            body=urlencode({"token": TOKEN, "next": "//evil.example/"}))
        assert away.headers["Location"] == "/"
    finally:
        assert desk.stop() == 0


EARLIER = "2026-11-09T10:00:00-08:00"  # two weeks before NOW: their week to answer has passed


def test_metrics_count_what_this_process_did_and_read_the_desk_from_the_database(
    tmp_path: Path, database_url: str, sink: Sink
) -> None:
    smtp_port = free_port()
    desk = WebDesk(tmp_path, database_url, sink.port,
                   extra=f"[inbound_smtp]\nenabled = true\nport = {smtp_port}\n")
    # Taken in by another process, two weeks ago: on the desk, not in this process's counts.
    for n in (1, 2):
        desk.maild("ingest", "-", stdin=make_mail(subject=f"Old question {n}",
                                                  message_id=f"<old{n}@customer.example>"),
                   env={"MAILD_NOW": EARLIER})
    desk.start()
    try:
        # The web part answers first: the listener may still be starting.
        wait_for(lambda: who_listens("127.0.0.1", smtp_port) == "in use by a running maild",
                 "the listener", timeout=60)
        mails = [make_mail(subject=f"Question {n}", message_id=f"<q{n}@customer.example>")
                 for n in (1, 2, 3)]
        mails.append(mails[0])  # a duplicate
        mails.append(b"Subject: no sender at all\r\n\r\nWho wrote this?\r\n")  # quarantined
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as smtp:
            for raw in mails:
                smtp.sendmail("ann@customer.example", ["support@example.com"], raw)

        # Until every mail the sink holds is counted: the sweeps' alerts may still be on
        # their way when the outbox was first seen empty.
        samples = wait_for(lambda: (s := scrape(desk)) and value(
            s, "maild_outbox_queued") == 0 and value(
            s, "maild_sweep_seconds_count", sweep="sla_alerts") and value(
            s, "maild_deliveries_total", result="sent") == len(sink.files()) and s,
            "the outbox to be delivered and the sweeps to run", timeout=60)
        stored = value(samples, "maild_messages_total", channel="smtp", outcome="stored")
        assert stored == 3
        assert value(samples, "maild_messages_total", channel="smtp", outcome="duplicate") == 1
        assert value(samples, "maild_messages_total", channel="smtp", outcome="quarantined") == 1
        assert value(samples, "maild_intake_seconds_count", channel="smtp") == 5
        assert not [key for key in samples if ("channel", "ingest") in key[1]]

        assert value(samples, "maild_database_up") == 1
        assert value(samples, "maild_open_tickets", status="new") == 5
        assert value(samples, "maild_open_tickets", status="pending") == 0
        # The two old ones are past their week to a first response; the new three are not.
        assert value(samples, "maild_sla_breached_tickets", target="first_response") == 2
        assert value(samples, "maild_sla_breached_tickets", target="resolution") == 0
        assert value(samples, "maild_quarantine_held") == 1
        assert value(samples, "maild_outbox_oldest_age_seconds") == 0
        assert value(samples, "maild_outbox_failed") == 0
        # Every mail the sink holds was delivered by this process, and counted.
        delivered = value(samples, "maild_deliveries_total", result="sent")
        assert delivered == len(sink.files()) >= 5  # at least the five acknowledgments
        assert value(samples, "maild_deliveries_total", result="failed") == 0
        for sweep in ("followups", "surveys", "close_solved_tickets", "sla_alerts"):
            assert (value(samples, "maild_sweep_seconds_count", sweep=sweep) or 0) >= 1
        assert not [key for key in samples if key[0] == "maild_sweep_failures_total"]
        assert value(samples, "process_resident_memory_bytes")
    finally:
        assert desk.stop() == 0


def test_healthz_follows_the_imap_server_down_and_back_up(
    tmp_path: Path, database_url: str, sink: Sink
) -> None:
    server = Dovecot()  # a Dovecot of its own: this test stops it
    server.start()
    try:
        account = server.add_account()
        desk = WebDesk(tmp_path, database_url, sink.port, extra=mailbox_toml(account),
                       env_extra={"MAILD_TEST_IMAP_SUPPORT": account.password})
        desk.start()
        try:
            wait_for(lambda: desk.get("/healthz").status == 200, "the reader to connect",
                     timeout=60)
            samples = scrape(desk)
            assert value(samples, "maild_imap_connected", mailbox="support") == 1
            assert value(samples, "maild_imap_last_poll_timestamp_seconds",
                         mailbox="support") == datetime.fromisoformat(NOW).timestamp()

            server.crash()
            down = wait_for(lambda: (a := desk.get("/healthz")).status == 503 and a,
                            "/healthz to notice", timeout=60)
            reason = json.loads(down.body)["reason"]
            assert reason.startswith("mailbox support: not connected: "), reason
            assert "\n" not in down.body
            assert value(scrape(desk), "maild_imap_connected", mailbox="support") == 0

            server.start()
            wait_for(lambda: desk.get("/healthz").status == 200, "the reader to reconnect",
                     timeout=90)
            assert value(scrape(desk), "maild_imap_connected", mailbox="support") == 1
        finally:
            assert desk.stop() == 0
    finally:
        server.close()


def test_a_web_part_without_its_token_is_refused_and_maild_check_says_why(
    tmp_path: Path, database_url: str, sink: Sink
) -> None:
    desk = WebDesk(tmp_path, database_url, sink.port, token=None)
    checked = desk.maild("check", check=False)
    assert checked.returncode == 1
    assert ("FAIL web: the environment variable MAILD_WEB_TOKEN (web.token_env) is not set"
            in checked.stdout.decode())

    desk.env["MAILD_WEB_TOKEN"] = TOKEN
    assert "ok   web: http://127.0.0.1:" in desk.maild("check").stdout.decode()
    del desk.env["MAILD_WEB_TOKEN"]

    desk.start(wait=False)
    wait_for(lambda: "maild running" in desk.log.read_text(), "maild to run", timeout=60)
    assert "MAILD_WEB_TOKEN (web.token_env) is not set" in desk.log.read_text()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", desk.port)) != 0  # nothing serves there
    assert desk.stop() == 0
