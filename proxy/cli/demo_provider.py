"""A demo model server, to try recall with no provider key: `python -m proxy.cli.demo_provider`.

NOT A MODEL. It speaks OpenAI's Chat Completions (`POST /v1/chat/completions`,
plain or streamed), the API vLLM, Ollama and llama.cpp speak, and answers by
rule from the whole conversation it is sent: it remembers a name ("my name is
…") and counts the user messages. That is enough to see recall keep a
conversation for a stateless server, record it, and replay it.

    python -m proxy.cli.demo_provider --port 8650 &
    python -m proxy.cli.demo_provider --print-config > recall.toml
    recall serve
"""

from __future__ import annotations

import re
import time
from typing import Any

import click
import orjson
from aiohttp import web

from .common import run_until_stopped, serve_on_loopback

DEMO_CONFIG = """\
# A demo: the fake model server that ships with recall (python -m proxy.cli.demo_provider), no key needed.
[upstreams.demo]
url = "http://127.0.0.1:{port}"
api = "openai-chat"      # a Chat-Completions-only server: recall keeps every conversation
"""

_NAME = re.compile(r"\bmy name is ([A-Z][\w-]*)", re.IGNORECASE)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def demo_answer(messages: list[dict[str, Any]]) -> str:
    """The rule-based reply: it can only know a name if the earlier turns were sent along."""
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    latest = users[-1] if users else ""
    names = [found.group(1) for text in users for found in _NAME.finditer(text)]
    if "name" in latest.lower() and "?" in latest:
        return f"Your name is {names[-1]}." if names else "I don't know your name: nobody told me."
    if names and _NAME.search(latest):
        return f"Nice to meet you, {names[-1]}."
    return f"(demo model) You have sent {len(users)} message(s); the last one had {len(latest.split())} word(s)."


def _usage(messages: list[dict[str, Any]], reply: str) -> dict[str, int]:
    prompt = sum(len(_text(m.get("content")).split()) for m in messages)
    completion = len(reply.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def create_app() -> web.Application:
    served = {"count": 0}

    async def complete(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            messages = body["messages"]
            model = str(body.get("model") or "demo")
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": {"message": "send a JSON body with `messages`", "type":
                                                "invalid_request_error", "param": "messages", "code": None}},
                                     status=400)
        served["count"] += 1
        reply = demo_answer(messages)
        ident, created = f"chatcmpl-demo{served['count']}", int(time.time())
        if not body.get("stream"):
            return web.json_response({
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
                "usage": _usage(messages, reply),
            })
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

        await send({"role": "assistant", "content": ""})
        for word in reply.split(" "):
            await send({"content": word + " "})
        await send({}, "stop", usage=_usage(messages, reply))
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    return app


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8650, show_default=True,
              help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--print-config", is_flag=True, help="Print a recall.toml that mounts this server as /demo, and exit.")
def main(port: int, print_config: bool) -> None:
    """A fake Chat Completions server for trying recall without a provider key (a demo, not a model)."""
    if print_config:
        click.echo(DEMO_CONFIG.format(port=port), nl=False)
        return

    def announce(bound: int) -> None:
        click.echo(f"http://127.0.0.1:{bound}")  # on stdout alone, for scripts: URL=$(python -m proxy.cli.demo_provider --port 0)
        click.echo(f"demo model server (not a model) on http://127.0.0.1:{bound}; Ctrl-C stops it", err=True)

    run_until_stopped(serve_on_loopback(create_app(), port, announce))


if __name__ == "__main__":
    main()
