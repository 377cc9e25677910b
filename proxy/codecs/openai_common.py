"""What OpenAI's two wire APIs (Responses, Chat Completions) share: the error
shape, the key header, and how their tools and tool choices read as neutral ones.
The values both APIs write the same way (data URLs, arguments) are in openai_formats.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from ..errors import ApiError
from ..model import FunctionTool
from .base import Codec, as_dict, expect, type_name

# The words of a neutral tool_choice (model.TurnRequest.generation).
TOOL_CHOICE_WORDS = ("auto", "none", "required")
# The upstream `api` whose Chat Completions take `prompt_cache_key` (OpenAI's own; openapi
# ModelResponseProperties). Chat-only servers (vLLM, Ollama, llama.cpp) are not sent one.
PROMPT_CACHE_APIS = frozenset({"openai"})


class OpenAICodec(Codec):
    """Base of the OpenAI codecs: key header, error shape and provider errors."""

    family: ClassVar[str] = "openai"
    replayed_headers: ClassVar[tuple[str, ...]] = ("x-request-id", "openai-model")
    key_pattern: ClassVar[str | None] = r"sk-[A-Za-z0-9_\-]{20,}"
    auth_header: ClassVar[str] = "authorization"
    auth_prefix: ClassVar[str] = "Bearer "

    def error_body(self, err: ApiError) -> dict[str, Any]:
        kind = "invalid_request_error" if err.status < 500 else "server_error"
        return {"error": {"message": err.message, "type": kind, "param": err.param, "code": err.code}}

    def upstream_error(self, upstream: str, status: int, body: bytes) -> ApiError:
        """The provider's error with its own code and param kept, so `e.code` still tells what happened."""
        error = _error_object(body)
        code = error.get("code")
        param = error.get("param")
        return ApiError(status, code if isinstance(code, str) else "upstream_error", f"upstream '{upstream}' answered {status}: {self.upstream_error_message(body)}",
                        param=param if isinstance(param, str) else None)


def _error_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return as_dict(as_dict(data).get("error"))


def function_tool(tool: dict[str, Any], where: str, *, strict_by_default: bool) -> FunctionTool:
    """A function tool of either OpenAI API; `strict` absent (or null) takes the API's default:
    Responses normalises an unmarked schema into strict mode, Chat Completions does not
    (docs/FIDELITY.md)."""
    expect(isinstance(tool.get("name"), str) and bool(tool["name"]), f"{where}.name: a function needs a name", "tools")
    parameters = tool.get("parameters")
    expect(parameters is None or isinstance(parameters, dict),
           f"{where}.parameters: expected a JSON schema object; got {type_name(parameters)}", "tools")
    strict = tool.get("strict")
    expect(strict is None or isinstance(strict, bool), f"{where}.strict: expected a boolean; got {type_name(strict)}",
           "tools")
    return FunctionTool(tool["name"], tool.get("description"), parameters,
                        strict=strict_by_default if strict is None else strict)


def neutral_tool_choice(value: Any, where: str) -> Any:
    """tool_choice of either API as the neutral form; None when absent."""
    if value is None or value in TOOL_CHOICE_WORDS:
        return value
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name") or (value.get("function") or {}).get("name")
        expect(isinstance(name, str), f"{where}: a function tool_choice needs the function's name", where)
        return {"name": name}
    expect(False, f"{where}: expected 'auto', 'none', 'required' or a function choice; got {value!r}", where)
    return None
