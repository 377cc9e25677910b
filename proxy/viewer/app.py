"""Mounting the viewer: on recall's own listener (`recall serve`) or alone (`recall ui`).

Every route is under /_recall/, registered before the proxy's catch-all, so
nothing here is ever forwarded upstream, in any mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from ..config import Config
from ..origin import OriginPolicy, Refusal, guard
from ..store.readers import Readers
from . import api
from .access import SECURITY_HEADERS, ViewerError, check_access
from .api import VIEWER, Viewer
from .pages import Pages

PREFIX = "/_recall"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


def _guarded(handler: Handler, *, reads_data: bool) -> Handler:
    """The access rules before the handler; errors as JSON; the security headers on every answer."""

    async def answer(request: web.Request) -> web.StreamResponse:
        viewer = request.app[VIEWER]
        try:
            check_access(request, viewer.tokens, api=reads_data)
            response = await handler(request)
        except ViewerError as err:
            response = api.json_answer({"error": {"code": err.code, "message": err.message}}, err.status)
        response.headers.update(SECURITY_HEADERS)
        if reads_data:
            response.headers["Cache-Control"] = "no-store"
        return response

    return answer


def mount_viewer(app: web.Application, *, tokens: list[str], database: Callable[[], Path | str],
                 mode: str | None) -> None:
    """Add the viewer's routes to `app`; its readers open at start-up on the database `database()`
    names, a SQLite file or a postgresql:// URL (called then, so that a server can point it at the
    store it has just opened)."""
    viewer = Viewer(tokens=tokens, mode=mode)
    app[VIEWER] = viewer

    async def readers(app: web.Application) -> AsyncIterator[None]:
        viewer.readers = await Readers.open(database())
        yield
        await viewer.readers.close()

    app.cleanup_ctx.append(readers)
    pages = Pages()
    add = app.router.add_get
    add(PREFIX, _to_page)
    add(f"{PREFIX}/", _guarded(pages.index, reads_data=False))
    add(PREFIX + "/static/{name}", _guarded(pages.asset, reads_data=False))
    add(f"{PREFIX}/api/info", _guarded(api.info, reads_data=True))
    add(f"{PREFIX}/api/conversations", _guarded(api.conversations, reads_data=True))
    add(PREFIX + "/api/conversations/{id}", _guarded(api.conversation, reads_data=True))
    add(f"{PREFIX}/api/search", _guarded(api.search, reads_data=True))
    add(PREFIX + "/api/interactions/{id}/exchanges", _guarded(api.exchanges, reads_data=True))
    add(PREFIX + "/api/interactions/{id}/events", _guarded(api.events, reads_data=True))
    add(f"{PREFIX}/api/stats", _guarded(api.stats, reads_data=True))
    app.router.add_route("*", PREFIX + "/api/{tail:.*}", _guarded(api.unknown, reads_data=True))
    app.router.add_route("*", PREFIX + "/{tail:.*}", _guarded(api.unknown, reads_data=False))


def create_viewer_app(config: Config, database: Path | str) -> web.Application:
    """The viewer on its own (`recall ui`): the same routes, and / leads to the page."""
    app = web.Application()
    # The same rule as recall serve's routes (proxy/origin.py): Host, cross-origin pages, preflights.
    guard(app, OriginPolicy.of(config.allowed_hosts, config.cors_origins), _refused)
    app.router.add_get("/", _to_page)
    mount_viewer(app, tokens=config.tokens, database=lambda: database, mode=None)
    return app


def _refused(request: web.Request, refused: Refusal) -> web.StreamResponse:
    response = api.json_answer({"error": {"code": refused.code, "message": refused.message}}, 403)
    response.headers.update(SECURITY_HEADERS)
    return response
