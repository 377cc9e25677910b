"""The codec registry: one module per wire API, one row per codec here.

Adding a provider is one new codec module and a row in CODEC_CLASSES: every
table below (and the config's `api` values, built-in mounts, `recall env`) follows.
"""

from __future__ import annotations

from .anthropic_messages import AnthropicMessages
from .base import Codec, UpstreamCall
from .counting import COUNTERS, Counter
from .gemini_generate import GeminiGenerate
from .gemini_interactions import GeminiInteractions
from .openai_chat import OpenAIChat
from .openai_responses import OpenAIResponses
from .parallel_tasks import ParallelTasks
from .windows import Overflow, known_window, read_overflow

CODEC_CLASSES: tuple[type[Codec], ...] = (
    GeminiInteractions,
    GeminiGenerate,
    OpenAIResponses,
    OpenAIChat,
    AnthropicMessages,
    ParallelTasks,
)
_CLASS_OF: dict[str, type[Codec]] = {kind.name: kind for kind in CODEC_CLASSES}
#: One codec per wire API, each told the others by name (a request or a part names the API it came in).
CODECS: tuple[Codec, ...] = tuple(kind(_CLASS_OF) for kind in CODEC_CLASSES)

#: Codec by front API name ("gemini-interactions", ...).
FRONT_CODECS: dict[str, Codec] = {codec.name: codec for codec in CODECS}
#: The codec recall uses to call an upstream, by the upstream's `api` value.
UPSTREAM_CODECS: dict[str, Codec] = {codec.speaks: codec for codec in CODECS}
#: Upstream `api` values whose provider can keep conversations itself (`state = "native"`);
#: recall keeps every other one's.
STATEFUL_APIS: frozenset[str] = frozenset().union(*(codec.stateful_on for codec in CODECS))
#: Providers mounted by default, by `api` value (which is also the mount name): their root URL.
BUILTIN_URLS: dict[str, str] = {codec.speaks: codec.builtin_url for codec in UPSTREAM_CODECS.values()
                                if codec.builtin_url}
#: (mount, the SDK's base-URL variable, the path the SDK expects under it) for each built-in provider.
SDK_BASE_URLS: tuple[tuple[str, str, str], ...] = tuple(
    (codec.speaks, *codec.sdk_base_url) for codec in UPSTREAM_CODECS.values() if codec.sdk_base_url)
#: The variables each built-in provider's SDK reads its key from (any one will do), for replay placeholders.
SDK_KEY_VARIABLES: tuple[tuple[str, ...], ...] = tuple(
    codec.sdk_key_env for codec in UPSTREAM_CODECS.values() if codec.sdk_key_env)
#: Headers providers read keys from, in the order they identify a caller (a bearer token last).
KEY_HEADERS: tuple[str, ...] = tuple(sorted(dict.fromkeys(codec.auth_header for codec in CODECS),
                                            key=lambda name: name == "authorization"))
#: Response headers the providers' SDKs read, kept when a recording is replayed.
REPLAYED_HEADERS: tuple[str, ...] = tuple(dict.fromkeys(h for codec in CODECS for h in codec.replayed_headers))
#: The shapes of the providers' API keys, by family, masked in cassette exports.
KEY_PATTERNS: dict[str, str] = {f"{codec.family} api key": codec.key_pattern for codec in CODECS if codec.key_pattern}


def upstream_codec_for(front: Codec, upstream_api: str, model: str | None) -> Codec:
    """The codec recall calls an upstream with for a request made in `front`'s API for `model`:
    the front API itself where the provider accepts it, else the provider's own."""
    return front if front.same_wire_on(upstream_api, model) else UPSTREAM_CODECS[upstream_api]


__all__ = ["BUILTIN_URLS", "CODEC_CLASSES", "CODECS", "COUNTERS", "FRONT_CODECS", "KEY_HEADERS", "KEY_PATTERNS",
           "REPLAYED_HEADERS", "SDK_BASE_URLS", "SDK_KEY_VARIABLES", "STATEFUL_APIS", "UPSTREAM_CODECS", "Codec", "Counter",
           "Overflow", "UpstreamCall", "known_window", "read_overflow", "upstream_codec_for"]
