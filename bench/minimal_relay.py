"""The floor: a minimal hand-written aiohttp relay, for benchmarks (run by hand).

Forwards method, path, headers and body to one upstream over a keep-alive
session and streams the answer back. No parsing, no recording.

    python bench/minimal_relay.py --port 9102 --upstream http://127.0.0.1:9101 [--uvloop]

`--uvloop` runs it on uvloop's event loop (the one `recall serve` picks where it is installed),
to set the ratios against a relay on the same loop beside the ratios against asyncio's.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from aiohttp import web

_HOP = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}


def make_app(upstream: str) -> web.Application:
    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with request.app["session"].request(request.method, upstream + request.rel_url.path_qs,
                                                  headers=headers, data=body) as answer:
            out = web.StreamResponse(status=answer.status)
            out.content_type = answer.content_type
            await out.prepare(request)
            async for chunk in answer.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop(uvloop.new_event_loop())
    web.run_app(make_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None, print=None)
