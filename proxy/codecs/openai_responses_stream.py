"""OpenAI Responses stream events: written to an app from neutral deltas, read from a
provider into them.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import ApiError
from ..model import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FUNCTION_CALL,
    INCOMPLETE,
    REQUIRES_ACTION,
    TEXT,
    THOUGHT,
    Interaction,
    Part,
    PartDelta,
    PartStart,
    PartStop,
    StreamDelta,
)
from ..sse import DONE, SSEEvent, frame
from .base import Codec, Frame, StreamDecoder, StreamEncoder, as_dict, as_int
from .openai_formats import stable_id
from .openai_responses_items import (
    NAME,
    STATUS_IN,
    content_part,
    conversation_id,
    item_kind,
    output_content,
    output_item,
    parts_of_output_item,
    usage_in,
)

# The event that ends a stream, by the node's status.
_TERMINAL_EVENT = {COMPLETED: "response.completed", REQUIRES_ACTION: "response.completed",
                   INCOMPLETE: "response.incomplete", CANCELLED: "response.incomplete", FAILED: "response.failed"}

# Lifecycle events whose `response` names the response, so a relayed one needs recall's id.
_LIFECYCLE = frozenset({"response.created", "response.queued", "response.in_progress", "response.completed",
                        "response.incomplete", "response.failed"})


class ResponsesStreamEncoder(StreamEncoder):
    """Writes Responses events in the order the SDK's `responses.stream()` helper checks:
    created first, each item added before its content and done after it, then the
    terminal event with the same response id; `sequence_number` from 0, no `id:` lines."""

    can_relabel = True
    # `response.completed` (and `response.failed`) carry the whole Response.
    renders_output_at_close = True

    def __init__(self, codec: Codec, body: dict[str, Any]) -> None:
        self._codec = codec
        self._body = body
        self._seq = 0
        self._node_id = ""
        self._items = 0  # output items opened so far: the next output_index
        self._message: dict[str, Any] | None = None  # the message item text parts are going into
        self._open: dict[int, dict[str, Any]] = {}  # part index -> what it is being written as

    def _frame(self, event_type: str, payload: dict[str, Any]) -> Frame:
        seq = self._seq
        self._seq += 1
        body = {"type": event_type, "sequence_number": seq, **payload}
        return Frame(str(seq), frame(orjson.dumps(body), event_type))

    def _response(self, node: Interaction, *, final: bool) -> dict[str, Any]:
        response = self._codec.render(node)
        response["store"] = self._body.get("store", True) is not False
        if not final:
            response["status"], response["output"] = "in_progress", []
            response.pop("usage", None)  # none yet; `usage` is an object when present, never null
        return response

    def opening(self, node: Interaction) -> list[Frame]:
        self._node_id = node.id
        response = self._response(node, final=False)
        return [self._frame("response.created", {"response": response}),
                self._frame("response.in_progress", {"response": response})]

    def delta(self, delta: StreamDelta) -> list[Frame]:
        if isinstance(delta, PartStart):
            return self._start(delta.index, delta.part)
        state = self._open.get(delta.index)
        if state is None:
            return []
        if isinstance(delta, PartDelta):
            return self._more(state, delta)
        del self._open[delta.index]
        return self._stop(state)

    def _start(self, index: int, part: Part) -> list[Frame]:
        kind = item_kind(part)
        if kind is None:
            return []
        frames: list[Frame] = []
        if kind == "message" and self._message is not None:
            message = self._message
        else:
            frames += self._close_message()
            output_index = self._items
            self._items += 1
            if kind == "message":
                message = self._message = {"id": stable_id("msg_", self._node_id, output_index),
                                           "output_index": output_index, "content": []}
                shell = {"id": message["id"], "type": "message", "role": "assistant", "status": "in_progress",
                         "content": []}
                frames.append(self._frame("response.output_item.added", {"output_index": output_index, "item": shell}))
            else:
                item = self._item(kind, part, output_index)
                self._open[index] = {"kind": kind, "part": part, "output_index": output_index, "item": item,
                                     "text": [], "arguments": [], "signature": []}
                if kind == FUNCTION_CALL:
                    item = {**item, "arguments": "", "status": "in_progress"}
                elif kind == "reasoning":
                    item = {**item, "summary": []}
                    item.pop("encrypted_content", None)
                return [*frames, self._frame("response.output_item.added",
                                             {"output_index": output_index, "item": item})]
        content_index = len(message["content"])
        state = {"kind": "message", "part": part, "message": message, "content_index": content_index, "text": []}
        message["content"].append(state)
        self._open[index] = state
        shell_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        frames.append(self._frame("response.content_part.added", {
            "item_id": message["id"], "output_index": message["output_index"], "content_index": content_index,
            "part": shell_part}))
        return frames

    def _item(self, kind: str, part: Part, output_index: int) -> dict[str, Any]:
        return output_item(kind, [part], self._node_id, output_index, self._codec)

    def _more(self, state: dict[str, Any], delta: PartDelta) -> list[Frame]:
        kind = state["kind"]
        if kind == "message" and delta.text:
            message = state["message"]
            state["text"].append(delta.text)
            return [self._frame("response.output_text.delta", {
                "item_id": message["id"], "output_index": message["output_index"],
                "content_index": state["content_index"], "delta": delta.text, "logprobs": []})]
        frames: list[Frame] = []
        where = {"item_id": state["item"]["id"], "output_index": state["output_index"]}
        if kind == "reasoning":
            if delta.signature:
                state["signature"].append(delta.signature)
            if delta.text:
                if not state["text"]:
                    frames.append(self._frame("response.reasoning_summary_part.added", {
                        **where, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}))
                state["text"].append(delta.text)
                frames.append(self._frame("response.reasoning_summary_text.delta",
                                          {**where, "summary_index": 0, "delta": delta.text}))
        elif kind == FUNCTION_CALL and delta.arguments:
            state["arguments"].append(delta.arguments)
            frames.append(self._frame("response.function_call_arguments.delta", {**where, "delta": delta.arguments}))
        return frames

    def _stop(self, state: dict[str, Any]) -> list[Frame]:
        kind = state["kind"]
        if kind == "message":
            message = state["message"]
            where = {"item_id": message["id"], "output_index": message["output_index"],
                     "content_index": state["content_index"]}
            part = state["part"]
            text = "".join(state["text"])
            state["final"] = output_content(Part(TEXT, text=text, native=part.native, origin=part.origin))
            return [self._frame("response.output_text.done", {**where, "text": text, "logprobs": []}),
                    self._frame("response.content_part.done", {**where, "part": state["final"]})]
        part, output_index = state["part"], state["output_index"]
        where = {"item_id": state["item"]["id"], "output_index": output_index}
        frames: list[Frame] = []
        if kind == "reasoning":
            text = "".join(state["text"])
            finished = Part(THOUGHT, text=text or part.text, signature="".join(state["signature"]) or part.signature,
                            native=part.native, origin=part.origin)
            if text:
                summary = {"type": "summary_text", "text": text}
                frames += [self._frame("response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}),
                           self._frame("response.reasoning_summary_part.done", {**where, "summary_index": 0, "part": summary})]
            item = self._item(kind, finished, output_index)
        elif kind == FUNCTION_CALL:
            arguments = "".join(state["arguments"])
            item = {**state["item"], "arguments": arguments}
            frames.append(self._frame("response.function_call_arguments.done",
                                      {**where, "name": part.name, "arguments": arguments}))
        else:
            item = state["item"]
        return [*frames, self._frame("response.output_item.done", {"output_index": output_index, "item": item})]

    def _close_message(self) -> list[Frame]:
        message, self._message = self._message, None
        if message is None:
            return []
        content = [state.get("final") or output_content(state["part"]) for state in message["content"]]
        item = {"id": message["id"], "type": "message", "role": "assistant", "status": "completed", "content": content}
        return [self._frame("response.output_item.done", {"output_index": message["output_index"], "item": item})]

    def closing(self, node: Interaction) -> list[Frame]:
        frames = self._close_message()
        event_type = _TERMINAL_EVENT.get(node.status, "response.completed")
        return [*frames, self._frame(event_type, {"response": self._response(node, final=True)})]

    def failure(self, node: Interaction, err: ApiError) -> list[Frame]:
        response = self._response(node, final=True)
        # A Response's error.code is one of ResponseErrorCode; recall's own failures are server errors
        # there (the `error` event before it carries recall's code).
        response["status"], response["error"] = FAILED, {"code": "server_error", "message": err.message}
        return [self._frame("error", {"code": err.code, "message": err.message, "param": err.param}),
                self._frame("response.failed", {"response": response})]

    def relabel(self, event: SSEEvent, node: Interaction) -> Frame | None:
        if event.data == DONE:
            return Frame(None, event.raw)
        body = event.json()
        if not isinstance(body, dict):
            return None
        seq = body.get("sequence_number")
        event_id = str(seq) if isinstance(seq, int) else None
        if isinstance(seq, int):
            self._seq = max(self._seq, seq + 1)  # recall's own closing events follow the provider's
        event_type = body.get("type")
        response = body.get("response")
        if event_type not in _LIFECYCLE or not isinstance(response, dict):
            return Frame(event_id, event.raw)  # item and content events pass untouched
        # The provider saw a stateless call; the app sees the response it asked for.
        conversation = conversation_id(self._body.get("conversation"))
        response["id"] = node.id
        response["previous_response_id"] = None if conversation else node.parent_id
        response["store"] = self._body.get("store", True) is not False
        response["conversation"] = {"id": conversation} if conversation else None
        if "background" in self._body:
            response["background"] = self._body["background"]
        return Frame(event_id, frame(orjson.dumps(body), event_type))


class ResponsesStreamDecoder(StreamDecoder):
    """Reads a provider's Responses events into neutral deltas."""

    def __init__(self) -> None:
        super().__init__()
        self._next = 0
        self._parts: dict[int, Part] = {}  # our part index -> the part being assembled
        self._by_item: dict[int, int] = {}  # output_index -> part (reasoning, call, other item)
        self._by_content: dict[tuple[int, int], int] = {}  # (output_index, content_index) -> text part
        self._streamed: set[int] = set()  # parts whose text or arguments arrived as deltas
        self._summaries: dict[int, int] = {}  # reasoning part -> summary_index of its last delta

    def _open(self, part: Part) -> tuple[int, list[StreamDelta]]:
        index = self._next
        self._next += 1
        self._parts[index] = part
        return index, [PartStart(index, part)]

    def decode(self, event: SSEEvent) -> list[StreamDelta]:
        body = event.json()
        if not isinstance(body, dict):
            return []
        event_type = body.get("type")
        output_index = as_int(body.get("output_index"))
        if event_type in _LIFECYCLE:
            return self._lifecycle(event_type, as_dict(body.get("response")))
        if event_type == "response.output_item.added":
            item = as_dict(body.get("item"))
            return self._item_added(output_index, item)
        if event_type == "response.content_part.added":
            index, out = self._open(Part(TEXT))
            self._by_content[(output_index, as_int(body.get("content_index")))] = index
            return out
        if event_type in ("response.output_text.delta", "response.refusal.delta"):
            return self._more(self._by_content.get((output_index, as_int(body.get("content_index")))),
                              text=str(body.get("delta") or ""))
        if event_type == "response.content_part.done":
            return self._content_done(output_index, body)
        if event_type == "response.function_call_arguments.delta":
            return self._more(self._by_item.get(output_index), arguments=str(body.get("delta") or ""))
        if event_type == "response.reasoning_summary_text.delta":
            thought = self._by_item.get(output_index)
            summary_index = as_int(body.get("summary_index"))
            # Summary parts are joined into one thought text, a blank line apart.
            separator = "\n\n" if thought in self._summaries and self._summaries[thought] != summary_index else ""
            if thought is not None:
                self._summaries[thought] = summary_index
            return self._more(thought, text=separator + str(body.get("delta") or ""))
        if event_type == "response.output_item.done":
            item = as_dict(body.get("item"))
            return self._item_done(output_index, item)
        if event_type == "error":
            self.failure = str(body.get("message") or "the provider reported an error")
        return []

    def _lifecycle(self, event_type: str, response: dict[str, Any]) -> list[StreamDelta]:
        self.assembler.provider_id = response.get("id") or self.assembler.provider_id
        self.assembler.model = response.get("model") or self.assembler.model
        if event_type in ("response.completed", "response.incomplete", "response.failed"):
            self.finished = True
            self.assembler.status = STATUS_IN.get(response.get("status") or "", COMPLETED)
            self.assembler.usage = usage_in(response.get("usage"))
            if event_type == "response.failed":
                error = as_dict(response.get("error"))
                self.failure = str(error.get("message") or "the response failed")
        return []

    def _item_added(self, output_index: int, item: dict[str, Any]) -> list[StreamDelta]:
        kind = item.get("type")
        if kind == "message":
            return []  # its parts open with their content
        if kind == "function_call":
            part = Part(FUNCTION_CALL, call_id=item.get("call_id"), name=item.get("name"), origin=NAME)
        elif kind == "reasoning":
            part = Part(THOUGHT, origin=NAME)
        else:
            part = Part(str(kind), origin=NAME)
        index, out = self._open(part)
        self._by_item[output_index] = index
        return out

    def _more(self, index: int | None, *, text: str | None = None, arguments: str | None = None) -> list[StreamDelta]:
        if index is None:
            return []
        self._streamed.add(index)
        return [PartDelta(index, text=text, arguments=arguments)]

    def _content_done(self, output_index: int, body: dict[str, Any]) -> list[StreamDelta]:
        index = self._by_content.pop((output_index, as_int(body.get("content_index"))), None)
        if index is None:
            return []
        element = as_dict(body.get("part"))
        try:
            finished = content_part(element, "output", "output")
        except ApiError:  # a content part recall cannot read: keep what the deltas said
            finished = Part(TEXT)
        part = self._parts[index]
        part.native, part.origin = finished.native, finished.origin
        out: list[StreamDelta] = []
        if index not in self._streamed and finished.text:
            out.append(PartDelta(index, text=finished.text))
        return [*out, PartStop(index)]

    def _item_done(self, output_index: int, item: dict[str, Any]) -> list[StreamDelta]:
        if item.get("type") == "message":
            open_parts = [i for (o, _), i in self._by_content.items() if o == output_index]
            self._by_content = {k: i for k, i in self._by_content.items() if k[0] != output_index}
            return [PartStop(i) for i in open_parts]
        index = self._by_item.pop(output_index, None)
        out: list[StreamDelta] = []
        if index is None:
            index, out = self._open(Part(str(item.get("type")), origin=NAME))
        finished = parts_of_output_item(item)[0]
        part = self._parts[index]
        part.native, part.call_id, part.name = finished.native, finished.call_id or part.call_id, finished.name or part.name
        if index not in self._streamed:
            if finished.kind == FUNCTION_CALL:
                out.append(PartDelta(index, arguments=item.get("arguments") or ""))
            elif finished.text:
                out.append(PartDelta(index, text=finished.text))
        if finished.signature:
            out.append(PartDelta(index, signature=finished.signature))
        return [*out, PartStop(index)]
