"""Known context windows (in tokens) of the models the specs and tests name, and the
providers' context-length errors read back into figures.

The windows are the providers' published figures (docs/CONTEXT.md gives each source); a
model that is not listed has no known window until `[upstreams.NAME] context_window`
gives one. A name matches its entry exactly or as a dated or suffixed variant
(`gpt-4o-2024-08-06` is `gpt-4o`); the longest matching entry wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

KNOWN_WINDOWS: dict[str, int] = {
    # OpenAI (platform.openai.com/docs/models)
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "gpt-5.1": 400_000,
    "gpt-5.4": 1_050_000,
    "gpt-5.5": 1_000_000,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
    # Anthropic (platform.claude.com/docs/models)
    "claude-sonnet-4-5": 200_000,
    # Google (ai.google.dev/gemini-api/docs/models): the input token limit
    "gemini-2.0-flash": 1_048_576,
    "gemini-2.5-flash": 1_048_576,
    "gemini-3-flash-preview": 1_048_576,
    # Hugging Face SmolLM2 (its config.json: max_position_embeddings); a llama.cpp server may run it smaller (-c)
    "smollm2": 8192,
}


def known_window(model: str | None) -> int | None:
    """The published window of `model`, or None when recall does not know it."""
    if not model:
        return None
    name = model.lower().rsplit("/", 1)[-1]  # "HuggingFaceTB/SmolLM2-360M" names SmolLM2 too
    best = ""
    for known in KNOWN_WINDOWS:
        if (name == known or name.startswith(known + "-")) and len(known) > len(best):
            best = known
    return KNOWN_WINDOWS[best] if best else None


@dataclass(frozen=True, slots=True)
class Overflow:
    """A provider's answer that the input does not fit its model's window: the tokens it
    counted and its limit, where its message says them."""

    tokens: int | None = None
    limit: int | None = None


# Each provider's words for "too long", with the figures they carry (docs/CONTEXT.md has the sources).
_FIGURES = (
    # OpenAI Chat Completions, vLLM: "This model's maximum context length is 8192 tokens. However, your
    # messages resulted in 8227 tokens." (or "you requested 4222 tokens (…)")
    # (llama-cpp-python and vLLM add "(N in the messages, M in the completion)": the input's share)
    re.compile(r"maximum context length is (?P<limit>\d+) tokens.*?(?:resulted in|requested) (?:about )?"
               r"(?P<requested>\d+) tokens(?: \((?P<tokens>\d+) in the messages, (?P<output>\d+) in the"
               r" completion\))?", re.S),
    # Anthropic: "prompt is too long: 209353 tokens > 199999 maximum"
    re.compile(r"prompt is too long: (?P<tokens>\d+) tokens > (?P<limit>\d+) maximum"),
    # Anthropic: "input length and `max_tokens` exceed context limit: 189136 + 20000 > 204648"
    re.compile(r"exceed context limit: (?P<tokens>\d+) \+ (?P<output>\d+) > (?P<limit>\d+)"),
    # Gemini: "The input token count (3475108) exceeds the maximum number of tokens allowed (1048576)."
    re.compile(r"input token count \((?P<tokens>\d+)\) exceeds the maximum number of tokens allowed "
               r"\((?P<limit>\d+)\)"),
    # llama.cpp: "request (65561 tokens) exceeds the available context size (65536 tokens)"
    re.compile(r"request \((?P<tokens>\d+) tokens\) exceeds the available context size \((?P<limit>\d+) tokens\)"),
)
# OpenAI Responses says it with no figures: "Your input exceeds the context window of this model."
_WORDS = re.compile(r"exceeds the context window|context length exceeded", re.I)
_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})


def read_overflow(status: int, body: bytes) -> Overflow | None:
    """The figures of a provider's context-length refusal, or None when `body` is another error."""
    if status not in (400, 413):
        return None
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, list) and error:  # Google sometimes wraps its error in a list
        error = error[0].get("error") if isinstance(error[0], dict) else None
    if not isinstance(error, dict):  # vLLM's envelope is the error itself ({"object": "error", "message": …})
        error = data if isinstance(data, dict) and isinstance(data.get("message"), str) else None
    if error is None:
        return None
    message = error.get("message")
    message = message if isinstance(message, str) else ""
    for pattern in _FIGURES:
        found = pattern.search(message)
        if found:
            # Where the limit holds the output too, the input's share is what is left of it.
            figures = found.groupdict()
            output = int(figures.get("output") or 0)
            return Overflow(int(figures.get("tokens") or figures["requested"]), int(figures["limit"]) - output)
    if error.get("code") in _CODES or error.get("type") in _CODES or _WORDS.search(message):
        counted, limit = error.get("n_prompt_tokens"), error.get("n_ctx")  # llama.cpp adds them as fields
        return Overflow(counted if isinstance(counted, int) else None, limit if isinstance(limit, int) else None)
    return None
