"""A database for the viewer's tests, filled through a running recall by the real google-genai SDK.

On top of support.conversations (a thread with two branches, a generateContent
thread, an unstored call and a failed one): a turn with every kind of part
(an image, a thought, a function call and its result), a streamed turn, and a
conversation whose text is markup that must never run.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from .conversations import MODEL, Conversations, client, have_conversations

# Text that would run if a page treated stored strings as markup.
XSS_INPUT = '<script>window.__recall_xss = "script";alert("script")</script> and <img src=x onerror="window.__recall_xss=\'img\';alert(\'img\')"> end'


def tiny_png(width: int = 12, height: int = 8, rgb: tuple[int, int, int] = (220, 40, 40)) -> bytes:
    """A valid PNG of one colour, made here (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))


@dataclass
class ViewerData:
    convs: Conversations
    rich: Any  # input: text + image, a thought, a function call and its result
    streamed: Any  # the interaction a streamed create made
    stream_events: int  # events the SDK received
    xss: Any
    xss_reply: Any  # a follow-up to it, so that the markup also sits in a branch label


def fill(base: str) -> ViewerData:
    """Run the apps against recall at `base` (http://127.0.0.1:PORT)."""
    convs = have_conversations(base)
    gemini = client(f"{base}/gemini")
    image = base64.b64encode(tiny_png()).decode()
    rich = gemini.interactions.create(model=MODEL, input=[
        {"type": "user_input", "content": [{"type": "text", "text": "What is the weather where this photo was taken?"},
                                           {"type": "image", "data": image, "mime_type": "image/png"}]},
        {"type": "thought", "summary": [{"type": "text", "text": "The photo looks like Lima; ask the weather tool."}],
         "signature": "c2lnbmF0dXJl"},
        {"type": "function_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Lima"}},
        {"type": "function_result", "call_id": "call_1", "name": "get_weather", "result": {"temp_c": 18}},
        {"type": "user_input", "content": [{"type": "text", "text": "So, how warm is it?"}]},
    ])
    events = list(gemini.interactions.create(model=MODEL, input="Stream me a short answer please", stream=True))
    streamed = events[0].interaction
    xss = gemini.interactions.create(model=MODEL, input=XSS_INPUT)
    xss_reply = gemini.interactions.create(model=MODEL, input="and <b>bold</b>?", previous_interaction_id=xss.id)
    return ViewerData(convs=convs, rich=rich, streamed=streamed, stream_events=len(events), xss=xss,
                      xss_reply=xss_reply)
