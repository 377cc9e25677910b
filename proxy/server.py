"""The HTTP front: app factory, the one catch-all route, auth and error shapes.

Every upstream is mounted at /<name>; behind the name the path is the
provider's own. recall's own endpoints live under /_recall/.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web

from . import __version__, routes, turns
from .auth import RECALL_TOKEN_HEADER, caller_key, fingerprint, token_ok
from .cache import AUTO, CACHE_HEADER, REPLAY, Cache, canonical_request, request_key
from .call import Call
from .cassette import load_cassette
from .codecs import Codec
from .config import Config
from .errors import ApiError, ReplayMiss, too_large, unauthorized
from .http_compat import TolerantAppRunner
from .relay import relay
from .retention import Retention
from .runs import Runs
from .services import Services
from .state import ConversationState
from .store.sqlite import SQLiteStore, copy_database
from .upstream import UpstreamClient
from .viewer import mount_viewer

log = logging.getLogger("recall")

SERVICES = web.AppKey("services", Services)
CACHE_STATUS = web.RequestKey("recall_cache", str)

Operation = Callable[[web.Request, Call, Services], Awaitable[web.StreamResponse]]
OPERATIONS: dict[str, Operation] = {
    routes.CREATE: turns.create,
    routes.GET: turns.get,
    routes.DELETE: turns.delete,
    routes.CANCEL: turns.cancel,
    routes.RELAY: relay,
}


def error_response(codec: Codec, err: ApiError) -> web.Response:
    return web.Response(body=orjson.dumps(codec.error_body(err)), status=err.status, content_type="application/json")


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return web.json_response(
        {"status": "ok", "version": __version__, "mode": services.config.mode,
         "upstreams": sorted(services.config.upstreams)},
        dumps=lambda v: orjson.dumps(v).decode(),
    )


async def handle(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    config = services.config
    name, _, rest = request.path.lstrip("/").partition("/")
    upstream = config.upstreams.get(name)
    if upstream is None:
        known = ", ".join(f"/{n}" for n in sorted(config.upstreams))
        raise web.HTTPNotFound(
            text=orjson.dumps({"error": {"code": "unknown_upstream", "message":
                f"no upstream is mounted at /{name}; configured: {known}"}}).decode(),
            content_type="application/json",
        )
    tail = "/" + rest
    route = routes.match(request.method, tail, upstream.api)
    codec = route.codec
    try:
        if config.tokens and not token_ok(request.headers, config.tokens):
            raise unauthorized(f"a valid {RECALL_TOKEN_HEADER} header is required by this recall server")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large(config.max_body_mb) from None
        raw_path = request.raw_path.split("?", 1)[0]
        call = Call(
            upstream=upstream,
            route=route,
            method=request.method,
            raw_tail=raw_path[len(name) + 1:] or "/",
            query=request.query,
            query_string=request.query_string,
            headers=request.headers,
            body=body,
            owner=fingerprint(caller_key(request.headers, request.query)),
            recording=request.headers.get("x-recall-store", "").lower() != "false",
        )
        cache = services.cache
        canonical = canonical_request(call, config.ignore_fields)
        call.cache_key = request_key(canonical)
        if cache.replaying:
            recording = await cache.find(call.cache_key)
            if recording is not None:
                request[CACHE_STATUS] = call.cache_status = "hit"
                response = await cache.serve(request, recording)
                # A metadata-only row, so that `recall stats` counts replay hits.
                hit = call.exchange(response.status, None, None)
                hit.model = recording.model
                await services.record(hit, content=False)
                return response
            # Replay answers what it can from the recorded store; auto forwards.
            call.cache_status = "miss" if cache.mode == AUTO else "hit"
        request[CACHE_STATUS] = call.cache_status
        try:
            return await OPERATIONS[route.operation](request, call, services)
        except ReplayMiss:
            request[CACHE_STATUS] = "miss"
            raise await cache.miss(call, canonical, call.cache_key) from None
        except ApiError as err:
            # Failed calls count in `recall stats`: keep a metadata-only row (no bodies).
            failed = call.exchange(err.status, None, None)
            failed.error = err.message
            await services.record(failed, content=False)
            raise
    except ApiError as err:
        return error_response(codec, err)


async def _cache_header(request: web.Request, response: web.StreamResponse) -> None:
    """X-Recall-Cache on every proxied answer: hit, miss or live."""
    status = request.get(CACHE_STATUS)
    if status is not None:
        response.headers[CACHE_HEADER] = status


def create_app(config: Config, db_path: Path) -> web.Application:
    app = web.Application(client_max_size=config.max_body_mb * 1024 * 1024)
    replaying = config.mode == REPLAY

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        with tempfile.TemporaryDirectory(prefix="recall-replay-") as scratch:
            path = db_path
            if replaying:
                # Replay never changes the recordings: it serves from a copy.
                path = Path(scratch) / "replay.db"
                if db_path.exists():
                    copy_database(db_path, path)
            store = await SQLiteStore.open(path)
            for cassette in config.cassettes:
                await load_cassette(store, Path(cassette))
            upstreams = UpstreamClient(offline=replaying)
            await upstreams.start()
            runs = Runs()
            app[SERVICES] = Services(
                config=config, store=store, upstreams=upstreams, runs=runs,
                state=ConversationState(store, shared=replaying),
                cache=Cache(store, config.mode, config.ignore_fields, timing=config.replay_timing),
            )
            # Replay serves a copy: purging it would only hide recordings.
            retention = Retention(store, 0 if replaying else config.retention_days)
            await retention.start()
            yield
            await retention.stop()
            # Running turns are stopped and recorded as failed before the store closes.
            await runs.shutdown()
            await upstreams.close()
            await store.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_response_prepare.append(_cache_header)
    app.router.add_get("/_recall/health", health)
    # The viewer reads the file the store opened (in replay mode, the store's copy).
    mount_viewer(app, tokens=config.tokens, database=lambda: app[SERVICES].store.path, mode=config.mode)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def start(config: Config, db_path: Path) -> tuple[TolerantAppRunner, int]:
    """Start serving on config.host:config.port (port 0 picks a free one); return the bound port."""
    runner = TolerantAppRunner(create_app(config, db_path), access_log=None, shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    server = site._server
    port = config.port
    if server is not None and server.sockets:  # type: ignore[union-attr]
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port
