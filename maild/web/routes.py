"""The web part's routes: /healthz and /metrics for machines, open; the dashboard's pages
for people, behind the token. Nothing here writes to the desk: the only POSTs log a
browser in and out.

Handlers run on the web part's event loop; what reads the database or renders a page
runs in the loop's worker threads, so a slow page never holds up /healthz.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from maild.errors import NotFound, TemporaryError
from maild.web.auth import SESSION_COOKIE, SESSION_LENGTH, Authenticator, safe_next
from maild.web.metrics import exposition
from maild.web.pages import MAX_REPORT_WEEKS, REPORT_WEEKS, Pages
from maild.web.sources import WebSources

log = logging.getLogger(__name__)

STATIC = Path(str(files("maild.web") / "static"))
OPEN_PATHS = ("/healthz", "/metrics", "/login")
# Pages carry customer mail: nothing from elsewhere, no script at all, never in a frame.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

Health = Callable[[], list[str]]  # what keeps this process's roles from working; [] if none
T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

APP = web.AppKey("app", WebSources)
PAGES = web.AppKey("pages", Pages)
AUTH = web.AppKey("auth", Authenticator)
HEALTH: web.AppKey[Health] = web.AppKey("health")


async def _in_thread(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, work)


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html",
                            charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and errors are raised, and answered too
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


@web.middleware
async def needs_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS or request.path.startswith("/static/"):
        return await handler(request)
    auth = request.app[AUTH]
    now = request.app[APP].clock.now()
    if auth.bearer_matches(request.headers.get("Authorization")) or auth.session_valid(
            request.cookies.get(SESSION_COOKIE), now):
        return await handler(request)
    page = await _in_thread(partial(request.app[PAGES].login, request.path_qs))
    response = _html(page, status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="maild"'
    return response


async def healthz(request: web.Request) -> web.Response:
    """200 when this process can do its work; 503 with the first reason otherwise."""
    app = request.app[APP]

    def problems() -> list[str]:
        found = []
        try:
            app.db.ping()
        except TemporaryError as exc:
            found.append(str(exc))
        return found + request.app[HEALTH]()

    found = await _in_thread(problems)
    if found:
        return web.Response(text=json.dumps({"status": "unavailable", "reason": found[0]}),
                            status=503, content_type="application/json")
    return web.Response(text=json.dumps({"status": "ok"}), content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    body = await _in_thread(partial(exposition, request.app[APP]))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def login_form(request: web.Request) -> web.Response:
    page = await _in_thread(partial(request.app[PAGES].login,
                                             safe_next(request.query.get("next"))))
    return _html(page)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token, next_path = form.get("token"), safe_next(str(form.get("next") or "/"))
    auth = request.app[AUTH]
    if not isinstance(token, str) or not auth.token_matches(token):
        log.warning("web: a login from %s with a wrong token", request.remote)
        page = await _in_thread(partial(request.app[PAGES].login, next_path,
                                                 failed=True))
        return _html(page, status=401)
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(SESSION_COOKIE, auth.new_session(request.app[APP].clock.now()),
                        max_age=int(SESSION_LENGTH.total_seconds()), path="/",
                        httponly=True, samesite="Strict", secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def _number(request: web.Request, name: str, default: int, largest: int) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= largest:
        raise web.HTTPBadRequest(text=f"{name} must be a number from 1 to {largest}")
    return int(value)


async def queue_page(request: web.Request) -> web.Response:
    page = _number(request, "page", 1, 1_000_000)
    return _html(await _in_thread(partial(request.app[PAGES].queue, page)))


async def ticket_page(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    pages = request.app[PAGES]
    try:
        return _html(await _in_thread(partial(pages.ticket, int(number))))
    except NotFound as exc:
        return _html(await _in_thread(partial(pages.not_found, str(exc))), 404)


async def report_page(request: web.Request) -> web.Response:
    weeks = _number(request, "weeks", REPORT_WEEKS, MAX_REPORT_WEEKS)
    return _html(await _in_thread(partial(request.app[PAGES].report, weeks)))


async def prepare_pages(web_app: web.Application) -> None:
    """The report's figures read, and a ticket shown once, while nobody waits for them."""
    web_app[PAGES].prepare()


def make_web_app(app: WebSources, token: str, health: Health) -> web.Application:
    web_app = web.Application(middlewares=[security_headers, needs_token])
    web_app[APP] = app
    web_app[PAGES] = Pages(app)
    web_app[AUTH] = Authenticator(token)
    web_app[HEALTH] = health
    web_app.add_routes([
        web.get("/healthz", healthz),
        web.get("/metrics", metrics),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/", queue_page),
        web.get(r"/tickets/{number:\d{1,18}}", ticket_page),
        web.get("/report", report_page),
        web.static("/static", STATIC),
    ])
    web_app.on_startup.append(prepare_pages)
    return web_app
