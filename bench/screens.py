"""The dashboard's three pages as pictures for the README (docs/screens/*.png): a desk of
a few thousand tickets seeded as bench/web.py seeds its 100,000, served by maild's own web
part, photographed by Debian's headless Chromium (scripts/ensure-chromium).

    .venv/bin/python -m bench.screens [--tickets 5000] [--out docs/screens]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By

from bench.web import TOKEN, make_app, seed
from maild.runtime.daemon import web_sources
from maild.web.server import WebServer
from tests.browser import chromium
from tests.conftest import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("docs/screens"))
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    storage = Path(tempfile.mkdtemp(prefix="maild-screens-"))
    port = free_port()
    app = make_app(f"sqlite:///{storage}/maild.db", storage, port)
    shown = seed(app, options.tickets)
    server = WebServer(web_sources(app), lambda: [])
    server.start()
    browser = chromium(storage / "profile", width=1280, height=1000)
    try:
        base = f"http://127.0.0.1:{port}"
        browser.get(base + "/")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "login").click()
        browser.find_element(By.ID, "queue")
        browser.save_screenshot(str(options.out / "queue.png"))
        browser.get(f"{base}/tickets/{shown}")
        browser.find_element(By.CSS_SELECTOR, "details.quoted summary").click()
        browser.save_screenshot(str(options.out / "ticket.png"))
        browser.set_window_size(1280, 1500)
        browser.get(f"{base}/report?weeks=13")
        browser.find_element(By.ID, "charts")
        browser.save_screenshot(str(options.out / "report.png"))
    finally:
        browser.quit()
        server.stop()
        app.close()
        shutil.rmtree(storage, ignore_errors=True)
    for name in ("queue", "ticket", "report"):
        print(options.out / f"{name}.png")


if __name__ == "__main__":
    main()
