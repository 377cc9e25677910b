"""What every wire-API codec provides, and helpers they share.

A codec translates one wire API to and from the neutral model (proxy.model),
in both directions: as the front API an app calls (parse a create, render an
interaction, shape an error) and as the upstream API recall calls (build a
self-contained request from history, read the reply). n codecs give the whole
n x n matrix: decode with one, encode with another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from ..errors import ApiError, bad_request, not_found
from ..model import FUNCTION_CALL, MODEL, Interaction, ModelReply, Part, Turn, TurnRequest


@dataclass(slots=True)
class UpstreamCall:
    """A request for the provider: path (with query) under its root URL, and JSON body."""

    method: str
    path: str
    body: dict[str, Any]


class Codec:
    """Base class: one subclass per wire API, in its own module."""

    #: Name of the wire API as a front API, e.g. "gemini-interactions".
    name: ClassVar[str]
    #: The `api` value of an upstream that speaks this same wire API natively.
    speaks: ClassVar[str]
    #: Provider family: opaque signatures travel only between codecs of one family.
    family: ClassVar[str]
    #: Prefix of the ids recall mints for this front API.
    id_prefix: ClassVar[str] = "rc_"
    #: How this API's provider takes a key: header name and value prefix.
    auth_header: ClassVar[str] = "authorization"
    auth_prefix: ClassVar[str] = "Bearer "

    # -- front side -------------------------------------------------------------

    def parse_create(self, body: Any) -> TurnRequest:
        raise NotImplementedError

    def render(self, it: Interaction, *, include_input: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def error_body(self, err: ApiError) -> dict[str, Any]:
        raise NotImplementedError

    def previous_not_found(self, previous_id: str) -> ApiError:
        return not_found(f"interaction '{previous_id}' was not found", param="previous_interaction_id")

    # -- upstream side ----------------------------------------------------------

    def upstream_call(self, req: TurnRequest, history: list[Turn]) -> UpstreamCall:
        raise NotImplementedError

    def parse_reply(self, body: Any) -> ModelReply:
        raise NotImplementedError

    def upstream_error_message(self, body: bytes) -> str:
        """The provider's own message from an error body of this API."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body.decode("utf-8", "replace")[:500] or "(empty body)"
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        return body.decode("utf-8", "replace")[:500]

    def refuse_untranslatable(self, req: TurnRequest) -> None:
        """A request that holds what this API cannot carry gets a 400 naming it."""
        if req.front != self.name and req.untranslatable:
            raise bad_request(
                f"{', '.join(req.untranslatable)} cannot be carried from the {req.front} API to an upstream"
                f" that speaks {self.speaks}; remove it or use an upstream with api = \"{_speaks_of(req.front)}\""
            )


def _speaks_of(front: str) -> str:
    from . import FRONT_CODECS  # local: the registry imports this module

    codec = FRONT_CODECS.get(front)
    return codec.speaks if codec else front


def carries(part: Part, target: Codec) -> bool:
    """Whether a part's opaque provider data may be sent to `target`."""
    if part.origin is None:
        return True
    from . import FAMILY_OF  # local: the registry imports this module

    return FAMILY_OF.get(part.origin) == target.family


def reply_status(output: list[Turn], finished: str) -> str:
    """`requires_action` when the model ended its turn by calling a function."""
    parts = [p for t in output if t.role == MODEL for p in t.parts]
    if finished == "completed" and parts and parts[-1].kind == FUNCTION_CALL:
        return "requires_action"
    return finished


def iso_time(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def expect(condition: bool, message: str, param: str | None = None) -> None:
    if not condition:
        raise bad_request(message, param=param)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def optional_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    expect(isinstance(value, bool), f"{key}: expected true or false; got {type_name(value)}", key)
    return value


def optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    expect(value is None or isinstance(value, str), f"{key}: expected a string; got {type_name(value)}", key)
    return value
