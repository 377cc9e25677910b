"""Compressed request bodies (issue 16, item 5): some agent clients send `Content-Encoding:
gzip` (or deflate, br, zstd). recall reads the body decoded, so what it sends on is plain:
the provider must never be told it is compressed."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Callable

import brotli
import orjson
import pytest

try:  # Python 3.14 has zstd in the standard library; older ones get it from backports.zstd.
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

from .support.front_routes import FrontRoute, pair_id, route_upstream_pairs
from .support.front_routes import Upstream as RouteUpstream
from .support.rigs import RigFactory

ENCODINGS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstd.compress,
}


@pytest.mark.parametrize(("route", "upstream"), route_upstream_pairs(), ids=pair_id)
def test_compressed_bodies_reach_the_provider_plain(rig_factory: RigFactory, route: FrontRoute,
                                                    upstream: RouteUpstream) -> None:
    rig = rig_factory(route, upstream)
    for encoding, compress in ENCODINGS.items():
        seen = len(rig.upstream_requests())
        plain = orjson.dumps(route.body(f"Hello in {encoding}."))
        answer = rig.post_raw(compress(plain), headers={"content-encoding": encoding})
        assert answer.is_success, (encoding, answer.status_code, answer.text)
        deadline = time.monotonic() + 10  # a Parallel run in emulate mode asks the provider after its create answered
        while len(rig.upstream_requests()) == seen and time.monotonic() < deadline:
            time.sleep(0.02)
        sent = rig.upstream_requests()[seen:]
        assert sent, encoding
        for request in sent:
            names = {name.lower() for name in request.headers}
            assert "content-encoding" not in names, (encoding, request.headers)
        # What recall stored is the body the app meant, decoded.
        stored = rig.recall.query("SELECT request_headers, request_body FROM exchanges WHERE request_body IS NOT NULL")
        mine = [headers for headers, body in stored if f"Hello in {encoding}.".encode() in bytes(body)]
        assert mine, encoding
        assert all("content-encoding" not in orjson.loads(headers) for headers in mine), mine  # not mislabelled
