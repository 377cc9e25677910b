"""Serving a fake provider on loopback, the same way for every fake."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .contract.tap import contract_tap

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve_on_loopback(handler: Handler, name: str, *, checked: bool = True) -> tuple[web.AppRunner, str]:
    """Every request to `handler`, on a free loopback port: the runner and the base URL.

    Every answer is checked against the contract of the provider API its path belongs to
    (tests/support/contract): a fake must answer what the provider documents. `name` says
    which fake, in the violations reported. `checked=False` is for a provider that misbehaves
    in every answer on purpose (a test of how recall bears it), never for a fake that plays one."""
    app = web.Application(client_max_size=64 * 1024 * 1024)  # recall's own limit is what tests exercise
    # [\s\S]: a path may hold an encoded newline; it is the fake's to answer, in its provider's shape.
    app.router.add_route("*", r"/{tail:[\s\S]*}", handler)
    if checked:
        app.on_response_prepare.append(contract_tap(name, lambda request: request.path))
    # Paused answers end with the test. Request lines up to 64 KiB reach the handler, as they reach
    # recall: a long id is then a 404 in the provider's shape, not aiohttp's text/plain 400.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, max_line_size=65536, max_field_size=65536)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"
