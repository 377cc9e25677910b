"""The codec registry: one module per wire API, one row per codec here.

Adding a provider is one new codec module and a row in CODECS.
"""

from __future__ import annotations

from .anthropic_messages import AnthropicMessages
from .base import Codec, UpstreamCall
from .gemini_generate import GeminiGenerate
from .gemini_interactions import GeminiInteractions
from .openai_chat import OpenAIChat
from .openai_responses import OpenAIResponses
from .parallel_tasks import ParallelTasks

CODECS: tuple[Codec, ...] = (
    GeminiInteractions(),
    GeminiGenerate(),
    OpenAIResponses(),
    OpenAIChat(),
    AnthropicMessages(),
    ParallelTasks(),
)

#: Codec by front API name ("gemini-interactions", ...).
FRONT_CODECS: dict[str, Codec] = {codec.name: codec for codec in CODECS}
#: The codec recall uses to call an upstream, by the upstream's `api` value.
UPSTREAM_CODECS: dict[str, Codec] = {codec.speaks: codec for codec in CODECS}
#: Provider family of each codec, for opaque signatures (thoughts, reasoning).
FAMILY_OF: dict[str, str] = {codec.name: codec.family for codec in CODECS}



def upstream_codec_for(front: Codec, upstream_api: str) -> Codec:
    """The codec recall calls an upstream with for a request made in `front`'s API:
    the front API itself where the provider accepts it, else the provider's own."""
    return front if upstream_api in front.same_wire else UPSTREAM_CODECS[upstream_api]


__all__ = ["CODECS", "FAMILY_OF", "FRONT_CODECS", "UPSTREAM_CODECS", "Codec", "UpstreamCall", "upstream_codec_for"]
