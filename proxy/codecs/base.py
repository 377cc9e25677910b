"""What every wire-API codec provides, and helpers they share.

A codec translates one wire API to and from the neutral model (proxy.model),
in both directions: as the front API an app calls (parse a create, render an
interaction, shape an error) and as the upstream API recall calls (build a
self-contained request from history, read the reply). n codecs give the whole
n x n matrix: decode with one, encode with another.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from ..errors import ApiError, bad_request, not_found
from ..model import (
    MEDIA_KINDS,
    Assembler,
    Destination,
    Interaction,
    ModelReply,
    Part,
    PartStart,
    StreamDelta,
    Turn,
    TurnRequest,
    give_call_id,
)
from ..sse import SSEEvent


@dataclass(slots=True)
class Frame:
    """One SSE event written to an app: its resume id (if the API has one) and its bytes."""

    event_id: str | None
    data: bytes


class StreamDecoder:
    """Reads one upstream stream: events in, neutral deltas out, the reply assembled."""

    def __init__(self) -> None:
        self.assembler = Assembler()
        #: The provider's own words when it reported a failure inside the stream.
        self.failure: str | None = None
        #: Set once the provider's closing event (completion, finish reason) has arrived.
        self.finished = False

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        """The deltas an event holds, already applied to the assembled reply."""
        deltas = self.decode(event)
        for delta in deltas:
            if isinstance(delta, PartStart):
                give_call_id(delta.part)
            self.assembler.apply(delta)
        return deltas

    def decode(self, event: SSEEvent) -> list[StreamDelta]:
        raise NotImplementedError


class StreamEncoder:
    """Writes one front stream from neutral deltas, with resume ids of its own."""

    #: Whether events of this same API from a provider can be passed on (see relabel).
    can_relabel = False
    #: Whether `closing` or `failure` carry the node's output (its text whole), so that a node
    #: whose text was left to its recorded events (pipeline/spill.py) is read back for them.
    renders_output_at_close = False

    def opening(self, node: Interaction) -> list[Frame]:
        raise NotImplementedError

    def delta(self, delta: StreamDelta) -> list[Frame]:
        raise NotImplementedError

    def closing(self, node: Interaction) -> list[Frame]:
        raise NotImplementedError

    def failure(self, node: Interaction, err: ApiError) -> list[Frame]:
        raise NotImplementedError

    def relabel(self, event: SSEEvent, node: Interaction) -> Frame | None:
        """A provider event of this same API passed on, ids rewritten to the node's.

        None means the event cannot pass as it is and must be re-encoded."""
        return None


@dataclass(slots=True)
class UpstreamCall:
    """A request for the provider: path (with query) under its root URL, and JSON body (None: no body)."""

    method: str
    path: str
    body: dict[str, Any] | None


class Codec:
    """Base class: one subclass per wire API, in its own module."""

    #: Name of the wire API as a front API, e.g. "gemini-interactions".
    name: ClassVar[str]
    #: The upstream `api` value this codec is the caller for (its row in UPSTREAM_CODECS).
    speaks: ClassVar[str]
    #: Upstream `api` values that accept this wire API as it is (default: {speaks}).
    #: Over these, recall calls the provider with this same codec, fields intact.
    same_wire: ClassVar[frozenset[str]] = frozenset()
    #: Upstream `api` values whose provider keeps this API's conversation state
    #: itself, so `state = "native"` can leave chaining to it. Empty for stateless APIs.
    stateful_on: ClassVar[frozenset[str]] = frozenset()
    #: A stateless wire API (every call carries its whole history): a call with no
    #: recall previous id is self-contained, and is relayed as it is to a same-wire upstream.
    stateless: ClassVar[bool] = False
    #: Headers this API's provider requires, added to calls recall makes when the app did not send them.
    required_headers: ClassVar[dict[str, str]] = {}
    #: Provider family: opaque signatures travel only between codecs of one family.
    family: ClassVar[str]
    #: Prefix of the ids recall mints for this front API.
    id_prefix: ClassVar[str] = "rc_"
    #: How this API's provider takes a key: header name and value prefix.
    auth_header: ClassVar[str] = "authorization"
    auth_prefix: ClassVar[str] = "Bearer "
    #: The create field that names the turn to continue, as errors should call it.
    previous_field: ClassVar[str] = "previous_interaction_id"
    #: The create field that says whether the provider keeps the turn (None: the API has
    #: none that concerns recall, e.g. Chat Completions' `store` is only OpenAI's retention flag).
    store_field: ClassVar[str | None] = "store"
    #: Body fields a node does not keep in `request` (see echoed).
    not_echoed: ClassVar[frozenset[str]] = frozenset({"input", "stream", "store", "background", "model"})
    #: Query parameter that resumes a stream after an event id (GET …?stream=true).
    resume_param: ClassVar[str] = "last_event_id"
    #: The provider reads a key from `auth_header` only: a key an app sent another
    #: way (a Bearer token to Parallel) is moved there, relays included. False keeps
    #: the app's own choice where the provider reads several (OAuth tokens to Google).
    reads_key_header_only: ClassVar[bool] = False
    #: Statuses with which this API's provider says of a result fetched through
    #: `pending_result` that it is not ready yet (ask again), e.g. Parallel's 408.
    not_ready_statuses: ClassVar[frozenset[int]] = frozenset()
    #: The provider's facts, on the codec recall calls it with (its row in UPSTREAM_CODECS):
    #: its root URL when recall mounts it by default under the name of its `api` value;
    builtin_url: ClassVar[str | None] = None
    #: the environment variable its official SDK reads its base URL from, and the path
    #: the SDK expects under it (`recall env`, the pytest fixture);
    sdk_base_url: ClassVar[tuple[str, str] | None] = None
    #: the variables its SDK reads a key from (the first is set to a placeholder for replay);
    sdk_key_env: ClassVar[tuple[str, ...]] = ()
    #: response headers its SDK reads (request ids), kept when a recording is replayed;
    replayed_headers: ClassVar[tuple[str, ...]] = ()
    #: and the shape of its API keys, masked wherever a cassette export finds one.
    key_pattern: ClassVar[str | None] = None
    #: Whether recall reads this API's streams from a provider. An upstream API that
    #: cannot stream (Parallel's task runs) is asked whole, and recall streams the
    #: finished turn to an app that asked for a stream.
    reads_streams: ClassVar[bool] = True
    #: Whether this API takes system or developer messages inside the conversation; for
    #: one that does not, recall moves them into its system instruction.
    instruction_messages: ClassVar[bool] = False
    #: Neutral generation settings (TurnRequest.generation keys) this API carries as an
    #: upstream. A binding one it does not carry is refused (SETTINGS); others are dropped.
    carries_settings: ClassVar[frozenset[str]] = frozenset()
    #: What this front API calls a neutral setting, for errors in the app's own terms.
    setting_fields: ClassVar[dict[str, str]] = {}
    #: Media kinds (model.MEDIA_KINDS) this API takes from recall as an upstream:
    #: inline (base64 data) and by URL. Other media is refused by name (check_carriage).
    media_inline: ClassVar[frozenset[str]] = frozenset()
    media_by_url: ClassVar[frozenset[str]] = frozenset()

    #: What an app of this front API can do when its conversation outgrows the model's window
    #: (said with a provider's context-length error); None when the API has no such option.
    truncation_hint: ClassVar[str | None] = None

    #: A turn of this front API also gets a run id with this prefix (Parallel's `run_id`).
    run_id_prefix: ClassVar[str | None] = None
    #: A turn of this front API asks its upstream for the whole reply even in the background:
    #: its events report states, not deltas (Parallel's task runs).
    asks_whole: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.same_wire and hasattr(cls, "speaks"):
            cls.same_wire = frozenset({cls.speaks})

    def __init__(self, peers: Mapping[str, type[Codec]]) -> None:
        #: Every wire API's codec class by name, this one's included: requests and parts name the
        #: API they came in (TurnRequest.front, Part.origin), and the registry that built this
        #: codec is the one that knows them all.
        self.peers = peers

    # -- front side -------------------------------------------------------------

    def parse_create(self, body: Any) -> TurnRequest:
        raise NotImplementedError

    def relay_view(self, body: Any) -> TurnRequest:
        """What recall needs of a create it may relay as it is (the previous id, `store`,
        `stream`, the model it records), read leniently: a field of the wrong type is left
        for the provider to judge, never refused here."""
        fields = body if isinstance(body, dict) else {}

        def text(key: str) -> str | None:
            value = fields.get(key)
            return value if isinstance(value, str) and value else None

        def flag(key: str | None, default: bool) -> bool:
            value = fields.get(key) if key else None
            return value if isinstance(value, bool) else default

        return TurnRequest(front=self.name, model=text("model"), input=[], previous_id=text(self.previous_field),
                           store=flag(self.store_field, True), stream=flag("stream", False),
                           background=flag("background", False), raw=fields)

    def render(self, it: Interaction, *, include_input: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def truncates(self, req: TurnRequest) -> bool:
        """Whether the app lets recall drop middle turns of a chain too long for the model's window."""
        return False

    def error_body(self, err: ApiError) -> dict[str, Any]:
        raise NotImplementedError

    def previous_not_found(self, previous_id: str) -> ApiError:
        return not_found(f"interaction '{previous_id}' was not found", param="previous_interaction_id")

    def not_found(self, resource_id: str) -> ApiError:
        """The answer to GET, DELETE or cancel of an id the caller cannot see."""
        return not_found(f"interaction '{resource_id}' was not found")

    def echoed(self, req: TurnRequest) -> dict[str, Any]:
        """The request fields a node keeps to show again (system instruction, tools, config):
        the body without the conversation itself, which the node holds as turns."""
        return {k: v for k, v in req.raw.items() if k not in self.not_echoed}

    def input_items(self, it: Interaction) -> list[dict[str, Any]]:
        """A node's own input as the items of an input-item list, for APIs that have one."""
        raise bad_request(f"the {self.name} API has no input item lists")

    def reply_body(self, node: Interaction, provider_body: bytes | None, *, stored: bool) -> bytes:
        """The body of a create's answer for a node committed (or not, `stored`).

        `provider_body` is the provider's own answer when it speaks this same
        API, for an API that can pass it on nearly as it came."""
        return orjson.dumps(self.render(node))

    def created_answer(self, node: Interaction) -> tuple[int, dict[str, Any]]:
        """The status and body of a create that goes on in the background, answered at once."""
        return 200, self.render(node)

    def finish_output(self, node: Interaction) -> str | None:
        """Give a finished node's output the shape this API promises; why it cannot, if so
        (the turn then fails with that reason)."""
        return None

    def conversation_items(self, node: Interaction) -> list[dict[str, Any]]:
        """The items a committed turn adds to a conversation object, for APIs that have them."""
        raise bad_request(f"the {self.name} API has no conversation objects")

    def turns_of_conversation(self, items: Any, where: str = "conversation") -> list[Turn]:
        """A conversation object's items as the history a turn continues (also how items an
        app adds are checked); `where` names them in an error."""
        raise bad_request(f"the {self.name} API has no conversation objects")

    def continuing(self, req: TurnRequest, chain: list[Interaction]) -> TurnRequest:
        """The request as a turn after `chain` (its stored nodes, root first): for an API whose
        clients may name or re-send items the chain already holds, without them. Others: as is."""
        return req

    # -- upstream side ----------------------------------------------------------

    def same_wire_on(self, upstream_api: str, model: str | None) -> bool:
        """Whether a request in this API for `model` goes to that upstream as it is (same_wire);
        a codec whose provider serves its API for some models only says so here."""
        return upstream_api in self.same_wire

    def keeps_state_on(self, upstream_api: str, body: bytes) -> bool:
        """Whether that upstream's provider keeps this API's conversations (stateful_on) for the
        request `body` (read only by a codec that says so for some models only)."""
        return upstream_api in self.stateful_on

    def upstream_call(self, req: TurnRequest, history: list[Turn], to: Destination) -> UpstreamCall:
        raise NotImplementedError

    def parse_reply(self, body: Any) -> ModelReply:
        raise NotImplementedError

    def pending_result(self, reply: ModelReply, wait_s: int) -> UpstreamCall | None:
        """How to await an asynchronous provider: the call that fetches the finished
        reply (holding up to `wait_s` seconds) while `reply` is a run still going,
        or None when `reply` is final. Synchronous APIs answer finished replies."""
        return None

    def stream_decoder(self) -> StreamDecoder:
        raise bad_request(f"streaming from an upstream that speaks {self.speaks} is not supported")

    def stream_encoder(self, headers: Mapping[str, str], body: Any) -> StreamEncoder:
        """An encoder for one stream to an app whose request had these headers and body."""
        raise bad_request(f"the {self.name} API cannot stream", param="stream")

    def upstream_error_message(self, body: bytes) -> str:
        """The provider's own message from an error body of this API."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body.decode("utf-8", "replace")[:500] or "(empty body)"
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str):
            return message
        if isinstance(error, str):
            return error
        return body.decode("utf-8", "replace")[:500]

    def upstream_error(self, upstream: str, status: int, body: bytes) -> ApiError:
        """A provider's error answer to a call recall made, as the app will see it."""
        return ApiError(status, "upstream_error",
                        f"upstream '{upstream}' answered {status}: {self.upstream_error_message(body)}")

    def cannot_carry(self, part: Part) -> tuple[str, str] | None:
        """What a part of the conversation is and why this API cannot take it, or None when it can.

        Thoughts and provider-only parts of another API are not refused: they are
        dropped (another provider could not verify or use them). Media is content,
        so media this API cannot take is refused."""
        if part.kind not in MEDIA_KINDS:
            return None
        if part.data is None and part.uri is None:  # a provider's file id: meaningful to its own API only
            if part.origin == self.name:
                return None
            return f"{_article(part.kind)} {part.kind} given as a file id", "file ids belong to the API that issued them"
        inline = part.data is not None
        if part.kind in (self.media_inline if inline else self.media_by_url):
            return None
        plural = _PLURAL.get(part.kind, part.kind + "s")
        other = self.media_by_url if inline else self.media_inline
        why = (f"it takes {plural} {'by URL' if inline else 'inline (base64)'} only" if part.kind in other
               else f"it takes no {plural}")
        return f"{_article(part.kind)} {part.kind} given {'inline' if inline else 'by URL'}", why

    def refuse_untranslatable(self, req: TurnRequest) -> None:
        """A request that holds what this API cannot carry gets a 400 naming it."""
        if req.front != self.name and req.untranslatable:  # same codec: carried verbatim
            raise bad_request(
                f"{', '.join(req.untranslatable)} cannot be carried from the {req.front} API to an upstream"
                f" that speaks {self.speaks}; remove it or use an upstream with api = \"{self._speaks_of(req.front)}\"",
                code="untranslatable")

    def _speaks_of(self, front: str) -> str:
        codec = self.peers.get(front)
        return codec.speaks if codec else front

    def carries(self, part: Part) -> bool:
        """Whether a part's opaque provider data may be sent to this API: only within the family
        of the API that made it."""
        if part.origin is None:
            return True
        origin = self.peers.get(part.origin)
        return origin is not None and origin.family == self.family


def check_carriage(target: Codec, req: TurnRequest, history: list[Turn]) -> None:
    """A 400 in the front API's shape when the request holds what `target` cannot carry (what
    the front codec marked untranslatable, a binding setting, or media anywhere in the
    conversation), naming what and where, before anything is sent."""
    target.refuse_untranslatable(req)
    if req.front != target.name:  # the same API carries its own settings as they came
        # A front API whose provider may take the model from elsewhere (a stored prompt) leaves
        # it out; another API's provider needs one named.
        expect(bool(req.model), f"model: is required to call an upstream that speaks {target.speaks}", "model")
        _check_settings(target, req)
    # The request's own parts in its own API go back as they came; earlier turns may
    # come from any API (a chain can change front API and upstream at every turn).
    own_input = [] if req.front == target.name else req.input
    for where, turns in (("the conversation this request continues", history), ("this request's input", own_input)):
        for number, turn in enumerate(turns, start=1):
            for position, part in enumerate(turn.parts, start=1):
                refused = target.cannot_carry(part)
                if refused is not None:
                    what, why = refused
                    raise bad_request(
                        f"{what} (turn {number}, part {position} of {where}) cannot be carried from the {req.front}"
                        f" API to an upstream that speaks {target.speaks} ({why}); remove it or use an upstream"
                        " that takes it", code="untranslatable")


_PLURAL = {"audio": "audio", "video": "video"}

#: Neutral settings whose loss would change what the app gets back (the rest are
#: tuning hints an upstream without them does without), and what each one is.
SETTINGS = {"stop_sequences": "stop sequences", "response_format": "structured output",
            "tool_choice": "a forced tool choice"}


def _check_settings(target: Codec, req: TurnRequest) -> None:
    for key, what in SETTINGS.items():
        value = req.generation.get(key)
        if value is None or key in target.carries_settings or (key == "tool_choice" and value in ("auto", "none")):
            continue
        front = target.peers.get(req.front)
        field = front.setting_fields.get(key, key) if front else key
        raise bad_request(f"{field} cannot be carried from the {req.front} API to an upstream that speaks"
                          f" {target.speaks} (it has no {what}); remove it or use an upstream that has it",
                          code="untranslatable", param=field)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


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


def mark_provider_only(body: dict[str, Any], fields: tuple[str, ...], req: TurnRequest) -> None:
    """Fields only this front API's provider understands (its caches, containers, servers):
    carried to it as they are, refused by name for any other."""
    req.untranslatable.extend(name for name in fields if body.get(name) is not None)


def optional_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{key}: expected true or false; got {type_name(value)}", param=key)
    return value


def optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    expect(value is None or isinstance(value, str), f"{key}: expected a string; got {type_name(value)}", key)
    return value


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON value that should be an object, or an empty one: providers leave fields out."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
