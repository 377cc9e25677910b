"""The HTTP front: app factory, the one catch-all route, auth and error shapes.

Every upstream is mounted at /<name>; behind the name the path is the
provider's own. recall's own endpoints live under /_recall/.
"""

from __future__ import annotations

import gc
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestPayloadError

from .. import __version__, limits
from ..auth import RECALL_TOKEN_HEADER, caller_key, fingerprint, token_ok
from ..codecs import Codec
from ..config import Config
from ..endpoints import compaction, conversations, stored_turns, tasks, token_counts
from ..errors import ApiError, ReplayMiss, bad_request, store_unavailable, too_large, unauthorized
from ..origin import OriginPolicy, Refusal, guard
from ..pipeline import turn
from ..pipeline.cache import AUTO, CACHE_HEADER, REPLAY, Cache
from ..pipeline.call import Call
from ..pipeline.client import UpstreamClient
from ..pipeline.relay import relay
from ..pipeline.running import Runs
from ..pipeline.services import Services
from ..pipeline.state import ConversationState
from ..replay.cassette import load_cassette
from ..seal import Sealer
from ..store import StoreUnavailable
from ..store.backend import open_store
from ..store.retention import Retention
from ..viewer import mount_viewer
from . import routes
from .compat import TolerantAppRunner
from .request_log import CACHE_STATUS, log_path, log_requests

log = logging.getLogger("recall")

SERVICES = web.AppKey("services", Services)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Operation = Callable[[web.Request, Call, Services], Awaitable[web.StreamResponse]]
OPERATIONS: dict[str, Operation] = {
    routes.CREATE: turn.create,
    routes.GET: stored_turns.get,
    routes.DELETE: stored_turns.delete,
    routes.CANCEL: stored_turns.cancel,
    routes.INPUT_ITEMS: stored_turns.input_items,
    routes.COUNT_TOKENS: token_counts.count_tokens,
    routes.COMPACT: compaction.compact,
    routes.CONVERSATION: conversations.conversation,
    routes.CONVERSATION_ITEMS: conversations.conversation_items,
    routes.RELAY: relay,
    routes.TASK_GET: tasks.get,
    routes.TASK_RESULT: tasks.result,
    routes.TASK_INPUT: tasks.input_of,
    routes.TASK_EVENTS: tasks.events,
}


_DOT_SEGMENT = re.compile(r"/\.\.?/")


def error_response(codec: Codec, err: ApiError) -> web.Response:
    headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s is not None else None
    return web.Response(body=orjson.dumps(codec.error_body(err)), status=err.status, content_type="application/json",
                        headers=headers)


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
        if _DOT_SEGMENT.search(f"/{rest}/"):
            # The provider's URL would resolve `..` away, out of the path the app named and
            # possibly out of the upstream's configured prefix; no SDK sends such a path.
            raise bad_request("the path must not contain '.' or '..' segments; name the resource directly")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large(config.max_body_mb) from None
        except ConnectionResetError:
            raise bad_request("the connection closed before the whole request body arrived") from None
        except RequestPayloadError as exc:
            raise bad_request(f"the request body could not be read: {exc}") from None
        raw_path = request.raw_path.split("?", 1)[0]
        call = Call(
            upstream=upstream,
            route=route,
            method=request.method,
            # The raw path without its first segment (the mount, possibly percent-encoded).
            raw_tail="/" + raw_path.lstrip("/").partition("/")[2],
            query=request.query,
            query_string=request.query_string,
            headers=request.headers,
            body=body,
            owner=fingerprint(caller_key(request.headers, request.query)),
            recording=request.headers.get("x-recall-store", "").lower() != "false",
            ignore_fields=config.ignore_fields,
        )
        cache = services.cache
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
            raise await cache.miss(call.canonical(), call.cache_key) from None
        except ApiError as err:
            # Failed calls count in `recall stats`: keep a metadata-only row (no bodies).
            failed = call.exchange(err.status, None, None)
            failed.error = err.message
            await services.record(failed, content=False)
            raise
    except ApiError as err:
        return error_response(codec, err)
    except StoreUnavailable as trouble:
        trouble.report()
        return error_response(codec, store_unavailable(trouble.cause))
    except web.HTTPException:
        raise
    except Exception as exc:
        if limits.out_of_files(exc):
            raise  # not a bug: out of file descriptors, a 503 (_connection_limit)
        # A bug of recall's own: the app still gets an answer in its API's shape,
        # and the traceback goes to the log only (which never holds credentials).
        log.exception("unexpected error on %s %s", request.method, log_path(request))
        return error_response(codec, ApiError(500, "internal_error",
                                              "recall failed on this request; its log has the details"))


def _front_error(config: Config, request: web.Request, err: ApiError) -> web.StreamResponse:
    """An error recall answers before routing, in the shape of the front API the path names
    (so that the SDK raises its usual exception); recall's own paths answer as the viewer does."""
    name, _, rest = request.path.lstrip("/").partition("/")
    upstream = config.upstreams.get(name)
    if upstream is None:
        return web.json_response({"error": {"code": err.code, "message": err.message}}, status=err.status,
                                 dumps=lambda v: orjson.dumps(v).decode())
    return error_response(routes.match(request.method, "/" + rest, upstream.api).codec, err)


def _refusal(config: Config) -> Callable[[web.Request, Refusal], web.StreamResponse]:
    def render(request: web.Request, refused: Refusal) -> web.StreamResponse:
        return _front_error(config, request, ApiError(403, refused.code, refused.message))

    return render


def _connection_limit(config: Config) -> Middleware:
    """Past [server] max_connections requests at once, a 503 that closes its connection:
    recall must not run out of file descriptors (proxy/limits.py). Requests being answered
    are counted, not open connections: under a burst every connection is open at once, and
    counting them would refuse everyone rather than answer the first ones."""
    limit = limits.max_connections(config.max_connections)
    busy = 0

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal busy
        if busy >= limit:
            return _overloaded(config, request, limit)
        busy += 1
        try:
            return await handler(request)
        except Exception as exc:
            if not limits.out_of_files(exc):
                raise
            log.warning("out of file descriptors on %s %s", request.method, log_path(request))
            return _overloaded(config, request, limit)
        finally:
            busy -= 1

    return check


def _overloaded(config: Config, request: web.Request, limit: int) -> web.StreamResponse:
    response = _front_error(config, request, limits.overloaded(limit))
    response.headers["Retry-After"] = limits.RETRY_AFTER_S
    # Closing this connection gives its descriptor back at once.
    response.force_close()
    return response


async def _cache_header(request: web.Request, response: web.StreamResponse) -> None:
    """X-Recall-Cache on every proxied answer: hit, miss or live."""
    status = request.get(CACHE_STATUS)
    if status is not None:
        response.headers[CACHE_HEADER] = status


AppHook = Callable[[web.Application], None]


def create_app(config: Config, database: str | Path, extend: AppHook | None = None) -> web.Application:
    """The app on the database at `database` (a SQLite file's path, or a postgresql:// URL);
    `extend`, if given, is called with it before it starts (an extension hook: the test suite
    adds its check of every answer against the providers' contracts with it)."""
    app = web.Application(client_max_size=config.max_body_mb * 1024 * 1024, middlewares=[log_requests])
    replaying = config.mode == REPLAY

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        with tempfile.TemporaryDirectory(prefix="recall-replay-") as scratch:
            # Replay never changes the recordings (proxy/store/backend.py says how, per backend).
            store = await open_store(database, replaying=replaying, scratch=Path(scratch),
                                     replay_session=config.replay_session, warm_chains=config.warm_chains)
            for cassette in config.cassettes:
                await load_cassette(store, Path(cassette))
            upstreams = UpstreamClient(offline=replaying, max_connections=limits.max_connections(config.max_connections))
            await upstreams.start()
            runs = Runs()
            # Another instance on the same database asks this one to cancel the runs it holds.
            store.watch_cancels(runs.cancel)
            app[SERVICES] = Services(
                config=config, store=store, upstreams=upstreams, runs=runs,
                state=ConversationState(store, shared=replaying),
                cache=Cache(store, config.mode, config.ignore_fields, timing=config.replay_timing,
                            hint=config.miss_hint),
                sealer=Sealer.beside(database),
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
    # Before any route: only this machine's programs, and the web origins the operator named.
    guard(app, OriginPolicy.of(config.allowed_hosts, config.cors_origins), _refusal(config))
    app.middlewares.append(_connection_limit(config))
    app.on_response_prepare.append(_cache_header)
    app.router.add_get("/_recall/health", health)
    # The viewer reads the database the store opened: in replay mode on SQLite, the store's copy;
    # on PostgreSQL, the URL as given (the store's location masks its password).
    mount_viewer(app, tokens=config.tokens, mode=config.mode,
                 database=lambda: database if isinstance(database, str) else app[SERVICES].store.location)
    app.router.add_route("*", r"/{tail:[\s\S]*}", handle)  # [\s\S]: a path may hold an encoded newline
    if extend is not None:
        extend(app)
    return app


async def start(config: Config, database: str | Path, extend: AppHook | None = None, *,
                settle_heap: bool = False) -> tuple[TolerantAppRunner, int]:
    """Start serving on config.host:config.port (port 0 picks a free one); return the bound port.
    `extend`: see create_app. `settle_heap`: the process is this server's alone (`recall serve`)."""
    # Request lines and headers up to 64 KiB reach recall (aiohttp stops at 8 KiB), so that
    # a long id or header gets an answer in the front API's shape rather than aiohttp's.
    runner = TolerantAppRunner(create_app(config, database, extend), access_log=None, shutdown_timeout=config.shutdown_grace_s,
                               max_line_size=65536, max_field_size=65536)
    await runner.setup()
    if settle_heap:
        # What start-up made (modules, the app, the store) lives as long as the process: collected
        # once here, before listening, then kept out of every later collection. Else the first full
        # collection (~25 ms over the server's ~100k objects) falls on the first turn that allocates
        # enough, typically one decoding a long chain: most of a cold first turn at depth 1,000 (issue 21).
        gc.collect()
        gc.freeze()
    limits.quiet_accept_errors()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()  # the store and its writer are open: left running, the process would hang
        raise
    return runner, runner.addresses[0][1]  # the bound port, whichever config.port asked for
