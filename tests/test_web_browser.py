"""The dashboard in a real browser (headless Chromium): log in, the queue, a ticket's
thread, the report's charts drawn; a subject full of markup shown as text, running nothing."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.browser import CHROMEDRIVER, CHROMIUM, chromium
from tests.conftest import Sink
from tests.mailbuilder import make_mail
from tests.waiting import wait_for
from tests.webdesk import TOKEN, WebDesk

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Chromium is missing: scripts/ensure-chromium installs it")

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = chromium(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


def printer_mail() -> bytes:
    """A reply-style first mail with quoted history below it, and a PDF attached."""
    mail = EmailMessage()
    mail["From"] = "Ann Customer <ann@customer.example>"
    mail["To"] = "support@example.com"
    mail["Subject"] = "Printer on fire"
    mail["Message-ID"] = "<first@customer.example>"
    mail.set_content("It is on fire again.\n\nOn Mon, 16 Nov 2026 at 10:00, Bob "
                     "<bob@customer.example> wrote:\n> Have you tried turning it off?\n")
    mail.add_attachment(b"%PDF-1.4 smoke", maintype="application", subtype="pdf",
                        filename="photo-of-the-smoke.pdf")
    return mail.as_bytes()


def no_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert.text  # noqa: B018 (asking is the test)
    except NoAlertPresentException:
        return True
    return False


def test_an_engineer_reads_the_desk_in_a_browser(
    tmp_path: Path, database_url: str, sink: Sink, browser: WebDriver
) -> None:
    desk = WebDesk(tmp_path, database_url, sink.port)
    desk.maild("ingest", "-", stdin=printer_mail())
    desk.maild("tickets", "note", "1", "Called Ann: it is the fuser, not the paper.")
    desk.maild("ingest", "-", stdin=make_mail(subject=HOSTILE, message_id="<x@bad.example>",
                                              body="<script>alert(2)</script>\n"))
    desk.start()
    try:
        browser.get(desk.url + "/")
        assert browser.title.startswith("Log in")
        browser.find_element(By.ID, "token").send_keys("not the token")
        browser.find_element(By.ID, "login").click()
        wait_for(lambda: browser.find_elements(By.ID, "login-failed"), "the refusal")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "login").click()
        wait_for(lambda: browser.find_elements(By.ID, "queue"), "the queue")

        session = browser.get_cookie("maild_session")
        assert session is not None
        assert session["httpOnly"] is True and session["sameSite"] == "Strict"
        assert TOKEN not in session["value"]

        # The queue, in `tickets next` order; the hostile subject is text, nothing ran.
        subjects = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.subject")]
        assert sorted(subjects) == sorted(["Printer on fire", HOSTILE])
        assert browser.find_elements(By.TAG_NAME, "img") == []
        assert browser.find_elements(By.TAG_NAME, "script") == []
        assert no_alert(browser)
        assert "first response in 7 days" in browser.find_element(By.ID, "queue").text
        assert browser.find_element(By.ID, "next").text.startswith("Next: #1")

        # A ticket's thread as engineers see it.
        browser.find_element(By.LINK_TEXT, "Printer on fire").click()
        wait_for(lambda: browser.find_elements(By.ID, "thread"), "the ticket")
        assert browser.find_element(By.ID, "subject").text == "Printer on fire"
        [received] = browser.find_elements(By.CSS_SELECTOR, ".message.in")
        assert "It is on fire again." in received.text
        assert "photo-of-the-smoke.pdf" in received.find_element(By.CLASS_NAME,
                                                                 "attachments").text
        quoted = received.find_element(By.CSS_SELECTOR, "details.quoted pre")
        assert not quoted.is_displayed()  # folded
        received.find_element(By.CSS_SELECTOR, "details.quoted summary").click()
        assert "> Have you tried turning it off?" in quoted.text
        [note] = browser.find_elements(By.CSS_SELECTOR, ".message.internal")
        assert "internal note" in note.text.lower()
        assert "it is the fuser" in note.text
        assert "note" in browser.find_element(By.ID, "events").text

        # The hostile ticket's page: its subject and body are text as well.
        browser.get(desk.url + "/tickets/2")
        assert browser.find_element(By.ID, "subject").text == HOSTILE
        assert "<script>alert(2)</script>" in browser.find_element(By.ID, "thread").text
        assert browser.find_elements(By.TAG_NAME, "img") == []
        assert no_alert(browser)

        # The report: its charts are drawn.
        browser.find_element(By.LINK_TEXT, "Report").click()
        wait_for(lambda: browser.find_elements(By.ID, "charts"), "the report")
        charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")
        assert len(charts) == 6
        assert all(chart.size["height"] > 100 and chart.size["width"] > 300 for chart in charts)
        opened = browser.find_elements(By.CSS_SELECTOR, "#chart-1 rect.bar.series-0")
        assert len(opened) == 8  # a bar a week
        heights = [float(bar.get_attribute("height") or 0) for bar in opened]
        assert heights[-1] > 100 and heights[:-1] == [0.0] * 7  # both tickets came this week
        assert opened[-1].size["height"] > 50  # drawn, not only in the markup
        assert "2 opened" in browser.find_element(By.ID, "summary").text

        browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
        wait_for(lambda: browser.title.startswith("Log in"), "the login form")
        browser.get(desk.url + "/")
        assert browser.title.startswith("Log in")
    finally:
        assert desk.stop() == 0
