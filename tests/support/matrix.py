"""The translation matrix's two sides, for tests that run every front API over every upstream.

Front side: one driver per stateful front API, each calling recall through that
API's real SDK and reading the answer back in neutral terms (`Reply`).
Upstream side: one fake per upstream `api`, and `sent_conversation`, which
reads the conversation out of the last request a fake received, in its API's
own shape, so a test can tell which earlier turns reached the model.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import parallel
from google import genai
from google.genai import _interactions as gi
from parallel import Parallel
from parallel.types import TaskSpecParam, TextSchemaParam

from proxy.codecs.parallel_tasks import CONTEXT_HEADER, REQUEST_HEADER

from .fake_anthropic import FakeAnthropic
from .fake_gemini import FakeGemini
from .fake_openai import FakeOpenAI
from .fake_parallel import FakeParallel

UPSTREAM_APIS = ("gemini", "gemini-generate", "openai", "openai-chat", "anthropic", "parallel")
TOOL = {"name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def model_for(api: str, thinking: bool = False) -> str:
    """A model name for an upstream: Parallel's processors, else the fakes' own."""
    if api == "parallel":
        return "lite"
    return "fake-thinking-1" if thinking else "fake-model-1"


# -- what an app sends ---------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Media:
    """An image or document, inline (`data`, base64) or by `url`."""

    kind: str
    mime_type: str
    data: str | None = None
    url: str | None = None

    @property
    def data_url(self) -> str:
        return f"data:{self.mime_type};base64,{self.data}"


@dataclass(frozen=True)
class Result:
    """A function's result, answering the call `call_id`."""

    call_id: str
    name: str
    value: dict[str, Any]


Item = Text | Media | Result


@dataclass
class Reply:
    """A front API's answer in neutral terms."""

    text: str
    id: str  # the id a follow-up names
    calls: list[dict[str, Any]] = field(default_factory=list)  # [{id, name, arguments}]
    usage: dict[str, Any] = field(default_factory=dict)  # the front API's own usage fields
    finish: str | None = None  # the front API's own finish reason or status
    thoughts: int = 0  # thought or reasoning items the front API showed


class Front:
    """A driver for one front API through its official SDK."""

    name: str
    #: The prefix of the ids recall mints for this front API.
    id_prefix: str
    has_tools = True
    has_media = True

    def ask(self, base: str, model: str, items: list[Item], previous: str | None, *, stream: bool,
            tools: bool = False, key: str = "key-A", extra: dict[str, Any] | None = None) -> Reply:
        raise NotImplementedError


class InteractionsFront(Front):
    name, id_prefix = "interactions", "v1_"

    def ask(self, base, model, items, previous, *, stream, tools=False, key="key-A", extra=None):  # type: ignore[no-untyped-def]
        c = _client(genai.Client, key, base)
        args: dict[str, Any] = {"model": model, "input": _interactions_input(items), **(extra or {})}
        if previous:
            args["previous_interaction_id"] = previous
        if tools:
            args["tools"] = [{"type": "function", **TOOL}]
        if not stream:
            it = c.interactions.create(**args)
            calls = [{"id": s.id, "name": s.name, "arguments": s.arguments} for s in it.steps if s.type == "function_call"]
            return Reply(it.output_text or "", it.id, calls, _dump(it.usage), it.status,
                         sum(s.type == "thought" for s in it.steps))
        events = list(c.interactions.create(stream=True, **args))
        text, calls, arguments, thoughts = "", [], {}, 0
        for e in events:
            if e.event_type == "step.start" and e.step.type == "function_call":
                calls.append({"id": e.step.id, "name": e.step.name, "index": e.index})
            elif e.event_type == "step.start" and e.step.type == "thought":
                thoughts += 1
            elif e.event_type == "step.delta" and e.delta.type == "text":
                text += e.delta.text
            elif e.event_type == "step.delta" and e.delta.type == "arguments_delta":
                arguments[e.index] = arguments.get(e.index, "") + e.delta.arguments
        for call in calls:
            call["arguments"] = json.loads(arguments.pop(call.pop("index"), "") or "{}")
        final = events[-1].interaction
        assert events[-1].event_type == "interaction.completed" and final.id == events[0].interaction.id
        return Reply(text, final.id, calls, _dump(final.usage), final.status, thoughts)


def _interactions_input(items: list[Item]) -> Any:
    if len(items) == 1 and isinstance(items[0], Text):
        return items[0].text
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Text):
            out.append({"type": "text", "text": item.text})
        elif isinstance(item, Media):
            out.append({"type": item.kind, "mime_type": item.mime_type,
                        **({"data": item.data} if item.data else {"uri": item.url})})
        else:
            out.append({"type": "function_result", "call_id": item.call_id, "name": item.name, "result": item.value})
    return out


class ResponsesFront(Front):
    name, id_prefix = "responses", "resp_"

    def ask(self, base, model, items, previous, *, stream, tools=False, key="key-A", extra=None):  # type: ignore[no-untyped-def]
        c = _client(openai.OpenAI, key, f"{base}/v1")
        args: dict[str, Any] = {"model": model, "input": _responses_input(items), **(extra or {})}
        if previous:
            args["previous_response_id"] = previous
        if tools:
            args["tools"] = [{"type": "function", **TOOL}]
        if stream:
            # The helper's get_final_response() knows response.completed only; an answer cut off
            # ends with response.incomplete (as at OpenAI), whose response the helper also fills in.
            with c.responses.stream(**args) as events:
                r = [e.response for e in events if e.type in ("response.completed", "response.incomplete")][-1]
        else:
            r = c.responses.create(**args)
        calls = [{"id": o.call_id, "name": o.name, "arguments": json.loads(o.arguments)}
                 for o in r.output if o.type == "function_call"]
        return Reply(r.output_text, r.id, calls, _dump(r.usage), r.status, sum(o.type == "reasoning" for o in r.output))


def _responses_input(items: list[Item]) -> Any:
    if len(items) == 1 and isinstance(items[0], Text):
        return items[0].text
    content: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Text):
            content.append({"type": "input_text", "text": item.text})
        elif isinstance(item, Media) and item.kind == "image":
            content.append({"type": "input_image", "image_url": item.data_url if item.data else item.url})
        elif isinstance(item, Media):
            content.append({"type": "input_file", "filename": "doc.pdf",
                            **({"file_data": item.data_url} if item.data else {"file_url": item.url})})
        else:
            results.append({"type": "function_call_output", "call_id": item.call_id, "output": json.dumps(item.value)})
    return [*results, *([{"role": "user", "content": content}] if content else [])]


class ChatFront(Front):
    name, id_prefix = "chat", "chatcmpl-"

    def ask(self, base, model, items, previous, *, stream, tools=False, key="key-A", extra=None):  # type: ignore[no-untyped-def]
        c = _client(openai.OpenAI, key, f"{base}/v1")
        args: dict[str, Any] = {"model": model, "messages": _chat_messages(items), **(extra or {})}
        if previous:
            args["extra_body"] = {"previous_interaction_id": previous}
        if tools:
            args["tools"] = [{"type": "function", "function": TOOL}]
        if not stream:
            r = c.chat.completions.create(**args)
            message = r.choices[0].message
            calls = [{"id": t.id, "name": t.function.name, "arguments": json.loads(t.function.arguments)}
                     for t in message.tool_calls or []]
            return Reply(message.content or "", r.interaction_id, calls, _dump(r.usage), r.choices[0].finish_reason)
        chunks = list(c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args))
        text, calls, finish = "", {}, None
        for chunk in chunks:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
                for t in choice.delta.tool_calls or []:
                    call = calls.setdefault(t.index, {"id": t.id, "name": t.function.name, "arguments": ""})
                    call["arguments"] += t.function.arguments or ""
        marked = {ch.interaction_id for ch in chunks if getattr(ch, "interaction_id", None)}
        assert len(marked) == 1 and chunks[0].interaction_id in marked
        for call in calls.values():
            call["arguments"] = json.loads(call["arguments"] or "{}")
        return Reply(text, marked.pop(), list(calls.values()), _dump(chunks[-1].usage), finish)


def _chat_messages(items: list[Item]) -> list[dict[str, Any]]:
    if len(items) == 1 and isinstance(items[0], Text):
        return [{"role": "user", "content": items[0].text}]
    content: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Text):
            content.append({"type": "text", "text": item.text})
        elif isinstance(item, Media) and item.kind == "image":
            content.append({"type": "image_url", "image_url": {"url": item.data_url if item.data else item.url}})
        elif isinstance(item, Media):
            assert item.data, "Chat Completions takes files inline only"
            content.append({"type": "file", "file": {"filename": "doc.pdf", "file_data": item.data_url}})
        else:
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": json.dumps(item.value)})
    return [*messages, *([{"role": "user", "content": content}] if content else [])]


class MessagesFront(Front):
    name, id_prefix = "messages", "msg_"

    def ask(self, base, model, items, previous, *, stream, tools=False, key="key-A", extra=None):  # type: ignore[no-untyped-def]
        c = _client(anthropic.Anthropic, key, base)
        args: dict[str, Any] = {"model": model, "max_tokens": 256, "messages": _anthropic_messages(items), **(extra or {})}
        if previous:
            args["extra_body"] = {"previous_interaction_id": previous}
        if tools:
            args["tools"] = [{"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}]
        if stream:
            with c.messages.stream(**args) as events:
                m = events.get_final_message()
        else:
            m = c.messages.create(**args)
        text = "".join(b.text for b in m.content if b.type == "text")
        calls = [{"id": b.id, "name": b.name, "arguments": b.input} for b in m.content if b.type == "tool_use"]
        # A first turn over Anthropic is relayed as it is: its message id is the node's id.
        return Reply(text, getattr(m, "interaction_id", None) or m.id, calls, _dump(m.usage), m.stop_reason,
                     sum(b.type == "thinking" for b in m.content))


def _anthropic_messages(items: list[Item]) -> list[dict[str, Any]]:
    if len(items) == 1 and isinstance(items[0], Text):
        return [{"role": "user", "content": items[0].text}]
    blocks: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Text):
            blocks.append({"type": "text", "text": item.text})
        elif isinstance(item, Media):
            source = ({"type": "base64", "media_type": item.mime_type, "data": item.data} if item.data
                      else {"type": "url", "url": item.url})
            blocks.append({"type": item.kind, "source": source})
        else:
            blocks.append({"type": "tool_result", "tool_use_id": item.call_id, "content": json.dumps(item.value)})
    return [{"role": "user", "content": blocks}]


class TasksFront(Front):
    """Parallel task runs: no tools, no media; the streamed form follows the run's events."""

    name, id_prefix = "tasks", "itr_"
    has_tools = has_media = False

    def ask(self, base, model, items, previous, *, stream, tools=False, key="key-A", extra=None):  # type: ignore[no-untyped-def]
        assert not tools and all(isinstance(i, Text) for i in items), "task runs take text (or JSON) input"
        c = _client(Parallel, key, base)
        run = c.task_run.create(input="\n".join(i.text for i in items), processor=model,  # type: ignore[union-attr]
                                **{"task_spec": TaskSpecParam(output_schema=TextSchemaParam()), **(extra or {})},
                                **({"previous_interaction_id": previous} if previous else {}))
        assert run.status == "queued" and run.run_id.startswith("trun_")
        if stream:
            states = [e for e in c.task_run.events(run.run_id) if e.type == "task_run.state"]
            final = states[-1]
            return Reply(final.output.content, run.interaction_id, finish=final.run.status)
        result = c.task_run.result(run.run_id, api_timeout=30)
        return Reply(result.output.content, run.interaction_id, finish=result.run.status)


def refusal(front_name: str, action: Callable[[], Any]) -> str:
    """The message of the 400 `action` got, checked to be in the front API's own error shape
    (so that the SDK raised its own BadRequestError)."""
    raised, shape = _BAD_REQUEST[front_name]
    try:
        action()
    except raised as exc:
        body = exc.body
        assert isinstance(body, dict) and shape(body), body
        return body["message"] if front_name in ("responses", "chat") else body["error"]["message"]
    raise AssertionError("expected a 400")


_BAD_REQUEST: dict[str, tuple[type[Exception], Callable[[dict[str, Any]], bool]]] = {
    "interactions": (gi.BadRequestError, lambda b: isinstance(b.get("error"), dict) and "code" in b["error"]),
    "responses": (openai.BadRequestError, lambda b: b.get("type") == "invalid_request_error" and "param" in b),
    "chat": (openai.BadRequestError, lambda b: b.get("type") == "invalid_request_error" and "param" in b),
    "messages": (anthropic.BadRequestError, lambda b: b.get("type") == "error"
                 and b["error"]["type"] == "invalid_request_error"),
    "tasks": (parallel.BadRequestError, lambda b: b.get("type") == "error" and "ref_id" in b["error"]),
}


FRONTS: dict[str, Front] = {f.name: f for f in (InteractionsFront(), ResponsesFront(), ChatFront(), MessagesFront(),
                                                 TasksFront())}


@functools.cache
def _client(sdk: type, key: str, base: str) -> Any:
    """One SDK client per base URL and key, kept for the session (building one costs an SSL context)."""
    if sdk is genai.Client:
        return sdk(api_key=key, http_options={"base_url": base, "retry_options": {"attempts": 1}})
    return sdk(api_key=key, base_url=base, max_retries=0)


def _dump(usage: Any) -> dict[str, Any]:
    return usage.model_dump(exclude_none=True) if usage is not None else {}


# -- what the provider received -------------------------------------------------------


def fakes_by_api() -> dict[str, Any]:
    """One fake provider per upstream `api`, each stateless (zero data retention)."""
    return {"gemini": FakeGemini(), "gemini-generate": FakeGemini(), "openai": FakeOpenAI(),
            "openai-chat": FakeOpenAI(chat_only=True), "anthropic": FakeAnthropic(), "parallel": FakeParallel()}


def last_body(fake: Any) -> dict[str, Any]:
    """The last request body the model behind a fake received (result polls and reads left out)."""
    return [r for r in fake.requests if r.method == "POST"][-1].body


def sent_conversation(api: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The conversation an upstream request of `api` carried, as (user|model, text) turns.

    System instructions and parts without text (calls, results, media) are left
    out; a turn's text pieces are joined."""
    return _EXTRACTORS[_shape(api, body)](body)


def _shape(api: str, body: dict[str, Any]) -> str:
    # OpenAI and Parallel serve Chat Completions too, which Chat apps reach as they are.
    if api in ("openai", "parallel") and "messages" in body:
        return "chat"
    if api == "parallel":
        return "task"
    return {"gemini": "interactions", "gemini-generate": "generate", "openai": "responses",
            "openai-chat": "chat", "anthropic": "messages"}[api]


def _interactions(body: dict[str, Any]) -> list[tuple[str, str]]:
    roles = {"user_input": "user", "model_output": "model"}
    return [(roles[s["type"]], "".join(c.get("text", "") for c in s["content"]))
            for s in body["input"] if s["type"] in roles]


def _generate(body: dict[str, Any]) -> list[tuple[str, str]]:
    turns = [(c["role"], "".join(p["text"] for p in c["parts"] if "text" in p and not p.get("thought")))
             for c in body["contents"]]
    return [t for t in turns if t[1]]


def _responses(body: dict[str, Any]) -> list[tuple[str, str]]:
    turns = []
    for item in body["input"]:
        if item.get("type", "message") == "message" and item.get("role") in ("user", "assistant"):
            content = item["content"]
            text = content if isinstance(content, str) else "".join(c.get("text", "") for c in content)
            turns.append(("user" if item["role"] == "user" else "model", text))
    return turns


def _chat(body: dict[str, Any]) -> list[tuple[str, str]]:
    turns = []
    for message in body["messages"]:
        if message["role"] in ("user", "assistant") and message.get("content"):
            content = message["content"]
            text = content if isinstance(content, str) else "".join(c.get("text", "") for c in content)
            turns.append(("user" if message["role"] == "user" else "model", text))
    return turns


def _messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    turns = []
    for message in body["messages"]:
        content = message["content"]
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        if text:
            turns.append(("user" if message["role"] == "user" else "model", text))
    return turns


_FOLDED = re.compile(r"^(User|Assistant): ", re.MULTILINE)


def _task(body: dict[str, Any]) -> list[tuple[str, str]]:
    """A task input folded by recall's rule: a context block of `User:`/`Assistant:` paragraphs, then the request."""
    text = body["input"]
    if REQUEST_HEADER not in text:
        return [("user", text)]
    context, _, request = text.partition(f"\n\n{REQUEST_HEADER}\n")
    context = context.split(CONTEXT_HEADER, 1)[-1]
    pieces = _FOLDED.split(context)[1:]
    turns = [("user" if who == "User" else "model", said.strip()) for who, said in zip(pieces[::2], pieces[1::2],
                                                                                         strict=True)]
    return [*turns, ("user", request)]


_EXTRACTORS: dict[str, Callable[[dict[str, Any]], list[tuple[str, str]]]] = {
    "interactions": _interactions, "generate": _generate, "responses": _responses, "chat": _chat,
    "messages": _messages, "task": _task,
}


# -- function calls and results the provider received -------------------------------------


def sent_tool_traffic(api: str, body: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The function calls and results an upstream request carried, in order, as
    ("call", call id, arguments) and ("result", call id, value), values decoded from JSON text."""
    shape = _shape(api, body)
    out: list[tuple[str, str, Any]] = []
    if shape == "interactions":
        for step in body["input"]:
            if step["type"] == "function_call":
                out.append(("call", step["id"], step["arguments"]))
            elif step["type"] == "function_result":
                out.append(("result", step["call_id"], step["result"]))
    elif shape == "generate":
        for part in (p for c in body["contents"] for p in c["parts"]):
            if "functionCall" in part:
                out.append(("call", part["functionCall"].get("id"), part["functionCall"]["args"]))
            elif "functionResponse" in part:
                out.append(("result", part["functionResponse"].get("id"), part["functionResponse"]["response"]))
    elif shape == "responses":
        for item in body["input"]:
            if item.get("type") == "function_call":
                out.append(("call", item["call_id"], item["arguments"]))
            elif item.get("type") == "function_call_output":
                out.append(("result", item["call_id"], item["output"]))
    elif shape == "chat":
        for message in body["messages"]:
            for call in message.get("tool_calls") or []:
                out.append(("call", call["id"], call["function"]["arguments"]))
            if message["role"] == "tool":
                out.append(("result", message["tool_call_id"], message["content"]))
    elif shape == "messages":
        for block in (b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]):
            if block["type"] == "tool_use":
                out.append(("call", block["id"], block["input"]))
            elif block["type"] == "tool_result":
                out.append(("result", block["tool_use_id"], block["content"]))
    return [(kind, call_id, _decoded(value)) for kind, call_id, value in out]


def _decoded(value: Any) -> Any:
    """A value as JSON text decoded, and Gemini's `{"result": …}` wrapper of a non-object result taken off."""
    if isinstance(value, dict) and set(value) == {"result"}:
        value = value["result"]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# -- media the provider received ----------------------------------------------------------


def sent_media(api: str, body: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """The images and documents an upstream request carried, in order, as (kind, how, mime type),
    `how` being "inline" or the URL."""
    shape = _shape(api, body)
    out: list[tuple[str, str, str | None]] = []
    if shape == "interactions":
        for item in (c for s in body["input"] if s["type"] == "user_input" for c in s["content"]):
            if item["type"] in ("image", "document"):
                out.append((item["type"], "inline" if "data" in item else item["uri"], item.get("mime_type")))
    elif shape == "generate":
        for part in (p for c in body["contents"] for p in c["parts"]):
            if "inlineData" in part:
                out.append((_kind_of(part["inlineData"]["mimeType"]), "inline", part["inlineData"]["mimeType"]))
            elif "fileData" in part:
                data = part["fileData"]
                out.append((_kind_of(data.get("mimeType")), data["fileUri"], data.get("mimeType")))
    elif shape in ("responses", "chat"):
        key = "input" if shape == "responses" else "messages"
        for element in (c for m in body[key] if isinstance(m.get("content"), list) for c in m["content"]):
            url = element.get("image_url")
            url = url["url"] if isinstance(url, dict) else url
            file = element.get("file") or element
            if element["type"] in ("input_image", "image_url"):
                out.append(("image", *_how(url)))
            elif element["type"] in ("input_file", "file"):
                out.append(("document", *_how(file.get("file_data") or file.get("file_url"))))
    elif shape == "messages":
        for block in (b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]):
            if block["type"] in ("image", "document"):
                source = block["source"]
                how = "inline" if source["type"] == "base64" else source["url"]
                out.append((block["type"], how, source.get("media_type")))
    return out


def _how(url: str) -> tuple[str, str | None]:
    if url.startswith("data:"):
        return "inline", url[5:].split(";", 1)[0]
    return url, None


def _kind_of(mime_type: str | None) -> str:
    return "image" if (mime_type or "").startswith("image/") else "document"
