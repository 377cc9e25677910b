"""The contracts of the providers that publish no machine-readable description:
Anthropic, Parallel and Gemini. Their official SDK packages ship the response
models the SDKs parse answers with; those models are the contract, validated
strictly with pydantic (extra fields pass where the SDK lets them pass).

The statuses come from the providers' API references; each is listed with its
source in docs/FIDELITY.md ("Provider facts the fakes rely on").
"""

from __future__ import annotations

import functools
from typing import Any

import anthropic.types as anthropic_types
import anthropic.types.beta as anthropic_beta_types
import parallel.types as parallel_types
from google.genai import types as genai_types
from google.genai._gaos import errors as gaos_errors
from google.genai._gaos.types import interactions as gaos_interactions
from google.genai._gaos.types.basemodel import UnrecognizedStr
from pydantic import BaseModel, TypeAdapter, ValidationError

from . import openai
from .core import Contract, Model, Operation


def _first_error(exc: ValidationError, ignore: frozenset[str]) -> str | None:
    errors = [e for e in exc.errors() if e["type"] not in ignore]
    if not errors:
        return None
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


#: Fields whose SDK enum lists the known values of an open set: any model or agent name is
#: a valid `model` (the API serves models newer than the SDK, and tuned ones).
_OPEN_SETS = frozenset({"model", "agent"})


def _unknown_member(value: Any, where: str = "") -> str | None:
    """Where a parsed value holds a member of an open union or enum the SDK did not recognise.

    google-genai's interaction models parse an unknown `type` / `event_type` into an
    `Unknown…` fallback, and an unknown enum value (`status: "done"`) into an
    `UnrecognizedStr` (forward compatibility with newer servers). An answer of ours
    must use the members its SDK knows, so either is a violation here."""
    if isinstance(value, UnrecognizedStr):
        if where.rsplit(".", 1)[-1] in _OPEN_SETS:
            return None
        return f"{where or '(root)'}: {str(value)!r} is none of the values the SDK's enum knows"
    if isinstance(value, BaseModel):
        if type(value).__name__.startswith("Unknown"):
            return f"{where or '(root)'}: a member no {type(value).__name__.removeprefix('Unknown')} variant knows"
        for name, item in vars(value).items():  # the parsed fields, without deprecated properties
            found = _unknown_member(item, f"{where}.{name}".lstrip("."))
            if found:
                return found
    elif isinstance(value, dict):
        for name, item in value.items():
            found = _unknown_member(item, f"{where}.{name}".lstrip("."))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _unknown_member(item, f"{where}.{i}".lstrip("."))
            if found:
                return found
    return None


def pydantic_model(name: str, target: Any, *, ignore: frozenset[str] = frozenset(),
                   closed_unions: bool = False) -> Model:
    """A Model checked by pydantic against an SDK's type (a model class or an annotated union)."""
    adapter: TypeAdapter[Any] = TypeAdapter(target)

    def check(value: object) -> str | None:
        try:
            parsed = adapter.validate_python(value)
        except ValidationError as exc:
            return _first_error(exc, ignore)
        return _unknown_member(parsed) if closed_unions else None

    return Model(name, check)


# -- Anthropic Messages (anthropic.types) --------------------------------------------------


def _anthropic_event_hook(event: str | None, data: object) -> tuple[bool, str | None]:
    """`ping` and `error` are documented stream events outside RawMessageStreamEvent: the SDK
    skips a ping and raises an error event's `error` as an APIStatusError."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "ping":
        return True, None
    if kind == "error":
        return True, _anthropic_error(data)
    return False, None


_sdk_anthropic_error = pydantic_model("anthropic.types.ErrorResponse", anthropic_types.ErrorResponse)
#: Error types Anthropic's API reference documents ("Errors": 413 request_too_large, returned before
#: the request reaches the API servers) that the SDK's closed ErrorObject union lacks. Same shape.
_ANTHROPIC_DOCUMENTED_ERROR_TYPES = frozenset({"request_too_large"})


def _check_anthropic_error(value: object) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("error"), dict) \
            and value["error"].get("type") in _ANTHROPIC_DOCUMENTED_ERROR_TYPES:
        # Checked as the same object with a type the SDK knows: only the type differs.
        value = {**value, "error": {**value["error"], "type": "invalid_request_error"}}
    return _sdk_anthropic_error(value)


_anthropic_error = Model("anthropic.types.ErrorResponse", _check_anthropic_error)


def _or_beta(stable: Model, beta: Model) -> Model:
    """An answer to a Messages call that asked for beta features (context management, compaction:
    `anthropic-beta`), which the SDK's beta client parses with its Beta models: the stable model
    or, failing it, the beta one; the stable model's complaint when neither holds."""

    def check(value: object) -> str | None:
        problem = stable(value)
        return None if problem is None or beta(value) is None else problem

    return Model(stable.name, check)


@functools.cache
def anthropic() -> Contract:
    return Contract("Anthropic", (
        Operation("POST", "/v1/messages", frozenset({200}),
                  _or_beta(pydantic_model("anthropic.types.Message", anthropic_types.Message),
                           pydantic_model("anthropic.types.beta.BetaMessage", anthropic_beta_types.BetaMessage)),
                  _or_beta(pydantic_model("anthropic.types.RawMessageStreamEvent", anthropic_types.RawMessageStreamEvent),
                           pydantic_model("anthropic.types.beta.BetaRawMessageStreamEvent",
                                          anthropic_beta_types.BetaRawMessageStreamEvent))),
        Operation("POST", "/v1/messages/count_tokens", frozenset({200}),
                  pydantic_model("anthropic.types.MessageTokensCount", anthropic_types.MessageTokensCount)),
    ), _anthropic_error, event_hook=_anthropic_event_hook)


# -- Parallel Task API (parallel.types) ------------------------------------------------------


@functools.cache
def parallel() -> Contract:
    run = pydantic_model("parallel.types.TaskRun", parallel_types.TaskRun)
    return Contract("Parallel", (
        # Create answers 202 Accepted with the queued run (API reference, "Create Task Run").
        Operation("POST", "/v1/tasks/runs", frozenset({202}), run),
        Operation("GET", "/v1/tasks/runs/{run_id}", frozenset({200}), run),
        # 200 when done; while a `timeout` wait runs out the answer is a 408 error (an ErrorResponse).
        Operation("GET", "/v1/tasks/runs/{run_id}/result", frozenset({200}),
                  pydantic_model("parallel.types.TaskRunResult", parallel_types.TaskRunResult)),
        Operation("GET", "/v1/tasks/runs/{run_id}/input", frozenset({200}),
                  pydantic_model("parallel.types.RunInput", parallel_types.RunInput)),
        Operation("GET", "/v1/tasks/runs/{run_id}/events", frozenset({200}), None,
                  pydantic_model("parallel.types.TaskRunEventsResponse", parallel_types.TaskRunEventsResponse)),
    ), pydantic_model("parallel.types.ErrorResponse", parallel_types.ErrorResponse))


@functools.cache
def parallel_chat() -> Contract:
    """Parallel's Chat API is OpenAI's Chat Completions (the openai SDK is its client; the
    parallel SDK ships no chat types), with `interaction_id` and `basis` added: OpenAI's schemas."""
    chat = openai.contract().operation("POST", "/v1/chat/completions")
    assert chat is not None
    return Contract("Parallel Chat (OpenAI Chat Completions)", tuple(
        Operation("POST", path, chat.statuses, chat.body, chat.event)
        for path in ("/v1beta/chat/completions", "/chat/completions")
    ), openai.contract().error, sentinels=frozenset({b"[DONE]"}))


# -- Gemini Interactions (google-genai's generated interactions models) ------------------------


@functools.cache
def gemini_interactions() -> Contract:
    interaction = pydantic_model("google.genai interactions.Interaction", gaos_interactions.Interaction,
                                 closed_unions=True)
    event = pydantic_model("google.genai interactions.InteractionSSEEvent", gaos_interactions.InteractionSSEEvent,
                           closed_unions=True)
    return Contract("Gemini Interactions", (
        Operation("POST", "/{version}/interactions", frozenset({200}), interaction, event),
        Operation("GET", "/{version}/interactions/{id}", frozenset({200}), interaction, event),
        Operation("DELETE", "/{version}/interactions/{id}", frozenset({200})),
        Operation("POST", "/{version}/interactions/{id}/cancel", frozenset({200}), interaction),
    ), pydantic_model("google.genai CreateInteractionClientErrorData", gaos_errors.CreateInteractionClientErrorData),
        sentinels=frozenset({b"[DONE]"}))


# -- Gemini generateContent (google.genai.types) ------------------------------------------------


class GoogleApiError(BaseModel):
    """The fields google.genai.errors.APIError reads from `{"error": {...}}` (google/genai/errors.py):
    Google's error body (`code` the HTTP status, `message`, `status` the canonical code name)."""

    class Body(BaseModel):
        code: int
        message: str
        status: str

    error: Body


@functools.cache
def gemini_generate() -> Contract:
    # The SDK drops fields its types do not know before validating (_common._remove_extra_fields),
    # so extra fields are allowed here as there; google.genai.types forbid them otherwise.
    response = pydantic_model("google.genai.types.GenerateContentResponse", genai_types.GenerateContentResponse,
                              ignore=frozenset({"extra_forbidden"}))
    error = pydantic_model("google.genai.errors.APIError body", GoogleApiError)

    def error_event(event: str | None, data: object) -> tuple[bool, str | None]:
        # A stream that fails after it began carries Google's error body as an event; the SDK
        # raises it as an APIError (google/genai/_api_client.py reads `error` in each chunk).
        if isinstance(data, dict) and "error" in data:
            return True, error(data)
        return False, None

    return Contract("Gemini generateContent", (
        Operation("POST", "/{version}/models/{model}:generateContent", frozenset({200}), response),
        Operation("POST", "/{version}/models/{model}:streamGenerateContent", frozenset({200}), response, response),
    ), error, event_hook=error_event)
