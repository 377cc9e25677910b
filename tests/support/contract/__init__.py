"""Every answer a fake provider or recall sends, held against the provider's published contract.

    contract_for(path)      which provider API a path belongs to (the front path recall serves,
                            or the provider path a fake serves), and that API's Contract
    check_answer(...)       a whole answer: status, content type, JSON body
    StreamCheck             a streamed answer, each SSE event as it is written
    VIOLATIONS              what was found off contract; tests/conftest.py fails the test that
                            provoked an answer if anything was found during it

tests/support/contract/tap.py hooks these into aiohttp apps (the fakes' and recall's).
The contracts themselves: openai.py (the OpenAPI description) and sdk_models.py (the
SDKs' response models). docs/FIDELITY.md says what is validated against what.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

import orjson

from . import openai, sdk_models
from .core import Contract, Model, Operation, Violation

__all__ = ["Contract", "Model", "Operation", "Violation", "StreamCheck", "VIOLATIONS", "check_answer",
           "contract_for", "load_all", "record"]

_INTERACTIONS = re.compile(r"/[^/]+/interactions(/|\Z)")
_GENERATE = re.compile(r"/[^/]+/models/[^/]+:(stream)?[gG]enerateContent\Z")


def contract_for(path: str, upstream_api: str | None = None) -> Contract | None:
    """The provider API a request path belongs to, by the provider's own path (recall's front
    path behind the mount is the provider's path: that is how recall routes too), and, where
    two providers serve one path, by the provider (`upstream_api`: the mount's, or the fake's)."""
    if upstream_api == "parallel" and (path == "/v1/responses" or path.startswith("/v1/responses/")):
        return openai.contract(openai.PARALLEL)
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return sdk_models.anthropic()
    if path == "/v1/tasks/runs" or path.startswith("/v1/tasks/runs/"):
        return sdk_models.parallel()
    if path in ("/v1beta/chat/completions", "/chat/completions"):
        return sdk_models.parallel_chat()
    if _INTERACTIONS.match(path):
        return sdk_models.gemini_interactions()
    if _GENERATE.match(path):
        return sdk_models.gemini_generate()
    if path.startswith("/v1/"):
        return openai.contract()
    return None


def load_all() -> None:
    """Read every contract now (OpenAI's description takes over a second to load and compile):
    done lazily on the servers' event loop, it would stall every server of a test for that long."""
    for contract in (openai.contract(), openai.contract(openai.PARALLEL), sdk_models.anthropic(), sdk_models.parallel(), sdk_models.parallel_chat(),
                     sdk_models.gemini_interactions(), sdk_models.gemini_generate()):
        for op in contract.operations:
            for model in (op.body, op.event):
                if model is not None and not contract.provider.startswith(("OpenAI", "Parallel (OpenAI")):
                    model({})  # builds the pydantic validators too
    for name in ("Response", "ResponseStreamEvent", "CreateChatCompletionResponse", "CreateChatCompletionStreamResponse",
                 "ErrorResponse"):
        openai.schema_model(name)({})
    for name in ("Response", "ResponseStreamEvent", "ErrorResponse"):
        openai.schema_model(name, openai.PARALLEL)({})


class _Found:
    """Violations, from whichever thread the servers answer on; cleared and read per test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Violation] = []

    def add(self, items: Iterable[Violation]) -> None:
        with self._lock:
            self._items.extend(items)

    def take(self) -> list[Violation]:
        with self._lock:
            items, self._items = self._items, []
            return items


VIOLATIONS = _Found()


def record(items: Iterable[Violation]) -> None:
    VIOLATIONS.add(items)


def _decode(body: bytes) -> tuple[object, str | None]:
    try:
        return orjson.loads(body), None
    except orjson.JSONDecodeError as exc:
        return None, f"body is not JSON ({exc}): {body[:120]!r}"


def _is_sse(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


def _is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


def check_status(side: str, method: str, path: str, status: int, content_type: str,
                 contract: Contract) -> list[Violation]:
    """What the status and content type alone say (the body is checked by check_body)."""
    op = contract.operation(method, path)

    def off(model: str, error: str) -> list[Violation]:
        return [Violation(side, method, path, status, f"{contract.provider} {model}", error)]

    if 200 <= status < 300:
        if op is None:
            return []  # an operation the contract does not describe: recall relays any path unchanged
        if status not in op.statuses:
            return off(op.name, f"status {status}; the provider answers {sorted(op.statuses)}")
        if _is_sse(content_type) and op.event is None:
            return off(op.name, "a stream; the provider does not stream this operation")
        if not _is_sse(content_type) and op.body is not None and not _is_json(content_type):
            return off(op.name, f"content type {content_type!r}; the provider answers application/json")
        return []
    if status >= 400:
        if _is_sse(content_type) or not _is_json(content_type):
            return off(contract.error.name, f"an error with content type {content_type!r}, not application/json")
        return []
    return off(op.name if op else "(any operation)", f"status {status} is neither a success nor an error")


def check_body(side: str, method: str, path: str, status: int, body: bytes, contract: Contract) -> list[Violation]:
    """A whole JSON body: the operation's model on a 2xx, the error model on a 4xx/5xx."""
    op = contract.operation(method, path)
    if 200 <= status < 300:
        model = op.body if op else None
    elif status >= 400:
        model = contract.error
    else:
        model = None
    if model is None or (not body and status < 300 and method == "DELETE"):
        return []
    value, error = _decode(body)
    error = error or model(value)
    return [Violation(side, method, path, status, f"{contract.provider} {model.name}", error)] if error else []


def check_answer(side: str, method: str, path: str, status: int, content_type: str, body: bytes,
                 contract: Contract | None = None) -> list[Violation]:
    """An answer that is not a stream, whole."""
    contract = contract or contract_for(path)
    if contract is None:
        return []
    found = check_status(side, method, path, status, content_type, contract)
    if not found and not _is_sse(content_type):
        found = check_body(side, method, path, status, body, contract)
    return found


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class StreamCheck:
    """A streamed answer's SSE events, each checked once it is whole (as the SDKs read them)."""

    def __init__(self, side: str, method: str, path: str, status: int, contract: Contract) -> None:
        self.side, self.method, self.path, self.status, self.contract = side, method, path, status, contract
        op = contract.operation(method, path)
        self._model = op.event if op else None
        self._buffer = b""
        self.events = 0

    def feed(self, data: bytes) -> list[Violation]:
        # One scan of the new bytes (a write holds up to hundreds of events): no re-slicing of the rest.
        buffer = self._buffer + data if self._buffer else data
        found: list[Violation] = []
        at = 0
        for end in _EVENT_END.finditer(buffer):
            found += self._event(buffer[at:end.start()])
            at = end.end()
        self._buffer = buffer[at:]
        return found

    def _event(self, block: bytes) -> list[Violation]:
        name: str | None = None
        data: list[bytes] = []
        for line in re.split(rb"\r\n|\n|\r", block):
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"event":
                name = value.decode("utf-8", "replace")
            elif field == b"data":
                data.append(value)
        if not data:
            return []  # a comment (keep-alive) or an empty block: the SDKs skip both
        self.events += 1
        payload = b"\n".join(data)
        if payload in self.contract.sentinels:
            return []
        value, error = _decode(payload)
        model_name = self._model.name if self._model else "(stream)"
        if error is None and self.contract.event_hook is not None:
            handled, error = self.contract.event_hook(name, value)
            if handled and error is None:
                return []
        if error is None and self._model is not None:
            error = self._model(value)
        if error is None:
            return []
        return [Violation(self.side, self.method, self.path, self.status,
                          f"{self.contract.provider} {model_name} (event {self.events})", error)]
