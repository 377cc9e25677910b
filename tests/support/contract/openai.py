"""OpenAI's contract: its published OpenAPI 3.1 description (shared/specs/openapi/), read once.

Every operation the description has under /v1 is in the table, with the 2xx
statuses and the schemas it names for `application/json` and
`text/event-stream`; errors are `ErrorResponse` (`{"error": Error}`), the body
the SDK unwraps. Schemas are checked with jsonschema (Draft 2020-12, OpenAPI
3.1's dialect), `$ref`s resolved by `referencing` inside the description.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .core import Contract, Model, Operation

#: The repository's clone sits beside shared/ (CI lays it out so too); RECALL_SPECS_DIR overrides.
SPEC_PATH = Path(os.environ.get("RECALL_SPECS_DIR", Path(__file__).parents[3] / ".." / "shared" / "specs")) \
    / "openapi" / "openai-v3.3.1.yml"
_URI = "urn:openai-openapi"
_METHODS = ("get", "post", "delete", "put", "patch")


OPENAI = "openai"
#: Parallel's Responses API (`/v1/responses` under a Parallel upstream): OpenAI's description with
#: the one departure Parallel documents for its answers (docs.parallel.ai/responses-api/openai-
#: compatibility, "Response fields"): `text` (like `reasoning`, already nullable) comes back null.
PARALLEL = "parallel"


@functools.cache
def _spec(variant: str = OPENAI) -> dict[str, Any]:
    if variant == PARALLEL:
        spec = copy.deepcopy(_spec(OPENAI))
        properties = spec["components"]["schemas"]["ResponseProperties"]["properties"]
        properties["text"] = {"anyOf": [properties["text"], {"type": "null"}]}
        return spec
    with open(SPEC_PATH, "rb") as handle:
        # The C loader: the description is 2.8 MB; the pure-Python one takes ten times as long.
        spec = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    _honour_nullable(spec)
    return spec


def _honour_nullable(node: Any) -> None:
    """Some schemas of the 3.1 description still say `nullable: true` (OpenAPI 3.0's keyword,
    e.g. a chat stream choice's `logprobs` and `finish_reason`), which JSON Schema 2020-12
    ignores. The description means null is allowed there, as in its 3.1-style `anyOf [.., null]`
    elsewhere, so it is rewritten to the 3.1 form (what openapi-schema-validator does for 3.0)."""
    if isinstance(node, list):
        for item in node:
            _honour_nullable(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("nullable") is True:
        kind = node.get("type")
        if isinstance(kind, str):
            node["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            node["type"] = [*kind, "null"]
        if isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    for value in node.values():
        _honour_nullable(value)


@functools.cache
def _registry(variant: str) -> Registry:
    return Registry().with_resource(_URI, Resource(contents=_spec(variant), specification=DRAFT202012))


def _ref_name(schema: dict[str, Any]) -> str:
    return schema["$ref"].rsplit("/", 1)[-1]


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = _spec()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


@functools.cache
def _validator(name: str, variant: str) -> Draft202012Validator:
    # Each component compiles once per session; validators are thread-safe to reuse.
    return Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{name}"}, registry=_registry(variant))


@functools.cache
def _fast(name: str, variant: str) -> Any:
    """The same schema compiled by jsonschema-rs, which answers "valid?" some hundred times faster:
    the check runs on the servers' event loop for every streamed event (a 6000-word stream is 6000
    events per server), where jsonschema's ~100 µs each stalled the other requests of a test.
    jsonschema (with referencing) still gives the message of an answer found invalid. Formats are
    annotations in Draft 2020-12, as jsonschema treats them by default."""
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": _spec(variant)["components"]}, validate_formats=False)


def _type_of(schema: dict[str, Any]) -> list[str]:
    """The `type` values a union member admits (its `type` property's enum), following allOf."""
    if "$ref" in schema:
        schema = _resolve(schema["$ref"])
    values = ((schema.get("properties") or {}).get("type") or {}).get("enum") or []
    for part in schema.get("allOf") or []:
        values = values or _type_of(part)
    return list(values)


@functools.cache
def _union_index(name: str) -> dict[str, str] | None:
    """For a union with `discriminator: type` (ResponseStreamEvent has 58 members): type value ->
    member schema, so an event is checked against its own member and its error names it. The
    description gives no `mapping`; each member pins its `type` with a one-value enum."""
    schema = _spec()["components"]["schemas"][name]
    if (schema.get("discriminator") or {}).get("propertyName") != "type":
        return None
    index: dict[str, str] = {}
    for member in schema.get("anyOf") or schema.get("oneOf") or []:
        if "$ref" in member:
            for value in _type_of(member):
                index.setdefault(value, _ref_name(member))
    return index


def schema_model(name: str, variant: str = OPENAI) -> Model:
    def check(value: object) -> str | None:
        if _fast(name, variant).is_valid(value):
            return None
        target = name
        index = _union_index(name)
        if index is not None and isinstance(value, dict):
            kind = value.get("type")
            if kind not in index:
                return f"type {kind!r} is none of {name}'s members ({', '.join(sorted(index))})"
            target = index[kind]
        error = best_match(_validator(target, variant).iter_errors(value))
        if error is None:  # the two validators disagree: say so rather than let it pass
            return f"{name}: {next(iter(_fast(name, variant).iter_errors(value))).message[:400]} (jsonschema-rs; jsonschema " \
                   "found no error)"
        at = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"{target} at {at}: {error.message[:400]}"
    return Model(name, check)


def compacted_window_model() -> Model:
    """CompactResource, as the description's own example of `POST /responses/compact` answers it:
    its output is "a list of all user messages, followed by a single compaction item", each user
    message with `input_text` content, which OutputItem's OutputMessage (role `assistant`, output
    content) does not admit. So a message of another role is held to `Message`, the description's
    item for a message of any role; everything else to CompactResource as written."""
    whole, message = schema_model("CompactResource"), schema_model("Message")

    def check(value: object) -> str | None:
        if not isinstance(value, dict) or not isinstance(value.get("output"), list):
            return whole.check(value)
        others = [item for item in value["output"]
                  if isinstance(item, dict) and item.get("type") == "message" and item.get("role") != "assistant"]
        problems = [message.check(item) for item in others]
        problems.append(whole.check({**value, "output": [item for item in value["output"] if item not in others]}))
        return next((problem for problem in problems if problem), None)

    return Model("CompactResource", check)


@functools.cache
def contract(variant: str = OPENAI) -> Contract:
    """Every operation of the description, its paths prefixed with /v1 as the SDK sends them."""
    operations = []
    for template, item in _spec(variant)["paths"].items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            statuses, body, event = set(), None, None
            for status, answer in (op.get("responses") or {}).items():
                if not status.isdigit() or not 200 <= int(status) < 300:
                    continue
                statuses.add(int(status))
                content = answer.get("content") or {}
                json_schema = (content.get("application/json") or {}).get("schema")
                sse_schema = (content.get("text/event-stream") or {}).get("schema")
                if json_schema and "$ref" in json_schema:
                    name = _ref_name(json_schema)
                    body = compacted_window_model() if name == "CompactResource" else schema_model(name, variant)
                if sse_schema and "$ref" in sse_schema:
                    event = schema_model(_ref_name(sse_schema), variant)
            if event is None and any(p.get("name") == "stream" and p.get("in") == "query"
                                     for p in op.get("parameters") or []):
                # GET /responses/{id} takes `stream=true` (and `starting_after`) and then streams, but
                # names only its JSON answer; the events are the create's (the SDK parses them so).
                event = schema_model("ResponseStreamEvent", variant) if template.startswith("/responses/") else None
            operations.append(Operation(method.upper(), "/v1" + template, frozenset(statuses), body, event))
    # Literal paths first: `/v1/responses/input_tokens` is not `/v1/responses/{response_id}`.
    operations.sort(key=lambda op: op.template.count("{"))
    error = schema_model("ErrorResponse", variant)

    def stream_error(event: str | None, data: object) -> tuple[bool, str | None]:
        # A stream that fails after it began sends `data: {"error": {...}}` (no `type`); the SDK
        # raises it as an APIError (openai/_streaming.py, Stream.__stream__). Responses streams
        # have their own `type: "error"` event, which the stream event schema covers.
        if isinstance(data, dict) and "error" in data and "type" not in data:
            return True, error(data)
        return False, None

    provider = "Parallel (OpenAI Responses)" if variant == PARALLEL else "OpenAI"
    return Contract(provider, tuple(operations), error, sentinels=frozenset({b"[DONE]"}), event_hook=stream_error)
