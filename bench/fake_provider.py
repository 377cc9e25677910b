"""A fast fake Gemini Interactions provider for benchmarks (run by hand).

Answers every create at once with a small interaction, or, with "stream": true,
with N text-delta events. Accepts everything (store, previous ids), so it
serves native and emulate mode alike.

    python bench/fake_provider.py --port 9101 [--chunks 100]
"""

from __future__ import annotations

import argparse
import itertools

import orjson
from aiohttp import web

_ids = itertools.count(1)


def make_app(chunks: int) -> web.Application:
    async def create(request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        interaction_id = f"v1_bench{next(_ids)}"
        if not body.get("stream"):
            return web.Response(content_type="application/json", body=orjson.dumps({
                "id": interaction_id, "object": "interaction", "status": "completed", "model": body.get("model"),
                "steps": [{"type": "model_output", "content": [{"type": "text", "text": "Hello from the bench."}]}],
                "usage": {"total_input_tokens": 5, "total_output_tokens": 5, "total_tokens": 10},
            }))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def event(payload: dict) -> bytes:
            return b"event: " + payload["event_type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

        await response.write(event({"event_type": "interaction.created", "event_id": "p0",
                                    "interaction": {"id": interaction_id, "status": "in_progress"}}))
        await response.write(event({"event_type": "step.start", "index": 0, "step": {"type": "model_output"}}))
        for n in range(chunks):
            await response.write(event({"event_type": "step.delta", "event_id": f"p{n + 1}", "index": 0,
                                        "delta": {"type": "text", "text": "token "}}))
        await response.write(event({"event_type": "step.stop", "index": 0}))
        await response.write(event({"event_type": "interaction.completed",
                                    "interaction": {"id": interaction_id, "status": "completed"}}))
        await response.write(b"event: done\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application(client_max_size=512 * 1024 * 1024)  # a 10,000-turn history is megabytes
    app.router.add_post("/{tail:.*}", create)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=100)
    args = parser.parse_args()
    web.run_app(make_app(args.chunks), host="127.0.0.1", port=args.port, access_log=None, print=None)
