"""Helpers for tests that drive recall with the official openai SDK."""

from __future__ import annotations

from typing import Any

import openai

from .fake_openai import FakeOpenAI

MODEL = "gpt-5.5"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function", "name": "get_weather", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False},
}


def client(recall: Any, upstream: str = "openai", key: str = "sk-A") -> openai.OpenAI:
    """An OpenAI client whose base_url is recall's mount of `upstream` (it ends in /v1, as the SDK expects)."""
    return openai.OpenAI(api_key=key, base_url=f"{recall.base(upstream)}/v1", max_retries=0)


def user_texts_sent(fake: FakeOpenAI) -> list[str]:
    """The user messages in the last self-contained Responses request recall sent."""
    texts = []
    for item in fake.last_body()["input"]:
        if item.get("role") != "user":
            continue
        content = item["content"]
        texts.append(content if isinstance(content, str) else "".join(c["text"] for c in content))
    return texts
