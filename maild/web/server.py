"""The web part of a `maild run`: aiohttp's own server, on an event loop in a thread of its
own beside the roles' threads, from the daemon's start to its stop."""

from __future__ import annotations

import asyncio
import logging
import threading

from aiohttp import web

from maild.errors import ConfigError, TemporaryError
from maild.web.auth import token_missing
from maild.web.metrics import DeskCollector
from maild.web.routes import Health, make_web_app
from maild.web.sources import WebSources

log = logging.getLogger(__name__)

START_SECONDS = 10.0
STOP_SECONDS = 10.0


class WebServer:
    def __init__(self, app: WebSources, health: Health, port: int | None = None) -> None:
        settings = app.config.web
        if not settings.token:
            raise ConfigError([f"web: {token_missing(settings)}"])
        self.app = app
        self.host = settings.host
        self.port = port or settings.port
        self._web_app = make_web_app(app, settings.token, health)
        self._collector = DeskCollector(app)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self._web_app, access_log=None, handle_signals=False)
        self._thread = threading.Thread(target=self._loop.run_forever, name="web", daemon=True)

    def start(self) -> None:
        """Listen, or raise TemporaryError saying why not (the port is taken, say)."""
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        try:
            started.result(timeout=START_SECONDS)
        except OSError as exc:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(
                timeout=STOP_SECONDS)
            self._end_loop()
            raise TemporaryError(
                f"web: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.app.metrics.registry.register(self._collector)
        log.info("web: serving /healthz, /metrics and the dashboard on http://%s:%s/",
                 self.host, self.port)

    async def _start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    def stop(self) -> None:
        self.app.metrics.registry.unregister(self._collector)
        stopped = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            stopped.result(timeout=STOP_SECONDS)
        except Exception:  # stopping anyway: the process is on its way out
            log.exception("web: did not stop cleanly")
        self._end_loop()
        log.info("web: stopped")

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=STOP_SECONDS)
        if not self._thread.is_alive():
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()
