"""A long streamed reply is kept once, in its recorded events, and read back from them
(pipeline/spill.py): the app, a GET, a follow-up, a resume, replay and the audit
commands all get every byte, while the node's row holds none of its text."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest
from click.testing import CliRunner

from proxy.cli.main import main
from proxy.codecs import CODECS, Codec
from proxy.config import Upstream
from proxy.model import COMPLETED, IN_PROGRESS, TEXT, Interaction, Part, PartDelta, PartStart, PartStop, Turn
from proxy.model import MODEL as MODEL_ROLE
from proxy.pipeline import spill
from proxy.sse import SSEParser

from .conftest import Recall, RecallFactory
from .support.fake_gemini import FakeGemini
from .support.fake_openai import FakeOpenAI
from .support.openai_sdk import MODEL as OPENAI_MODEL
from .support.openai_sdk import client as openai_client
from .test_gemini_interactions import MODEL, client

# Kept low so that a reply of a few MB passes it many times over; the default is 1,000,000.
SPILL_AT = 20_000


@pytest.fixture(autouse=True)
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spill, "SPILL_AFTER_CHARS", SPILL_AT)
    monkeypatch.setattr(spill, "PAGE_EVENTS", 64)  # several pages even for a short test stream


def long_text(size: int) -> str:
    """About `size` characters in words of ~1,000 (the fakes stream a word a delta), each one numbered."""
    return " ".join(f"w{n:05d}-" + "é" * 5 + "x" * 990 for n in range(size // 1000))


def node_output(recall: Recall, interaction_id: str) -> str:
    return recall.query("SELECT output FROM interactions WHERE id = ?", interaction_id)[0][0]


def cli(recall: Recall, *args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--db", str(recall.database)])
    assert result.exit_code == 0, result.output
    return result.output


def test_long_gemini_stream_is_kept_once_and_read_back(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    upstreams = {"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")}
    recall = recall_factory(upstreams)
    said = long_text(2_000_000)
    reply = f"[1 user messages] You said: {said}"
    body = {"model": MODEL, "input": said, "stream": True}
    with httpx.stream("POST", f"{recall.base('gemini')}/v1/interactions", headers={"x-goog-api-key": "key-A"},
                      json=body, timeout=60) as answer:
        streamed = answer.read()
    events = [json.loads(line[6:]) for line in streamed.decode().split("\n") if line.startswith("data: {")]
    interaction_id = events[0]["interaction"]["id"]
    assert "".join(e["delta"]["text"] for e in events if e["event_type"] == "step.delta") == reply

    # The node holds none of the text: it is in the recorded events, once.
    stored = node_output(recall, interaction_id)
    assert '"spilled":true' in stored and "w00001-" not in stored and len(stored) < 1000
    recorded = recall.query("SELECT frame FROM stream_events WHERE interaction_id = ? ORDER BY seq", interaction_id)
    assert b"".join(row[0] for row in recorded) == streamed

    # GET streams the whole output back, as the SDK reads it.
    c = client(recall)
    assert c.interactions.get(interaction_id).output_text == reply

    # Resume after an event: the rest, byte for byte.
    with httpx.stream("GET", f"{recall.base('gemini')}/v1/interactions/{interaction_id}",
                      params={"stream": "true", "last_event_id": events[2]["event_id"]},
                      headers={"x-goog-api-key": "key-A"}) as resumed:
        rest = resumed.read()
    assert streamed.endswith(rest) and len(rest) > len(streamed) // 2

    # A follow-up sends the whole reply upstream as history.
    follow = c.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=interaction_id)
    assert follow.output_text == "[2 user messages] I do not know your name."
    assert reply in json.dumps(fake_gemini.last_body(), ensure_ascii=False)

    # The audit commands print it whole.
    assert reply in cli(recall, "show", interaction_id)
    exported = [json.loads(line) for line in cli(recall, "export").splitlines()]
    first = next(record for record in exported if record["id"] == interaction_id)
    assert first["output"][0]["parts"][0]["text"] == reply and "spilled" not in first["output"][0]["parts"][0]

    # Replay serves the recorded stream byte for byte.
    replaying = recall_factory(upstreams, mode="replay")
    with httpx.stream("POST", f"{replaying.base('gemini')}/v1/interactions", headers={"x-goog-api-key": "dummy"},
                      json=body, timeout=60) as answer:
        assert answer.headers["x-recall-cache"] == "hit"
        assert answer.read() == streamed


def test_short_reply_is_kept_in_its_node(recall_factory: RecallFactory, fake_gemini: FakeGemini) -> None:
    recall = recall_factory({"gemini": Upstream("gemini", fake_gemini.url, "gemini", state="emulate")})
    with httpx.stream("POST", f"{recall.base('gemini')}/v1/interactions", headers={"x-goog-api-key": "key-A"},
                      json={"model": MODEL, "input": "hello there", "stream": True}) as answer:
        first = json.loads(answer.read().split(b"data: ", 1)[1].split(b"\n", 1)[0])
    stored = node_output(recall, first["interaction"]["id"])
    assert "You said: hello there" in stored and "spilled" not in stored


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_long_openai_stream_get_and_follow_up(openai_recall: Recall, fake_openai: FakeOpenAI,
                                              chat_only_openai: FakeOpenAI, upstream: str) -> None:
    """Responses over Responses (events relabelled) and over Chat Completions (events encoded)."""
    c = openai_client(openai_recall, upstream)
    said = long_text(300_000)
    with c.responses.stream(model=OPENAI_MODEL, input=said) as stream:
        final = stream.get_final_response()
    reply = f"[1 user messages] You said: {said}"
    assert final.output_text == reply
    assert "w00001-" not in node_output(openai_recall, final.id)
    assert c.responses.retrieve(final.id).output_text == reply
    raw = httpx.get(f"{openai_recall.base(upstream)}/v1/responses/{final.id}",
                    headers={"authorization": "Bearer sk-A"})
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.json()["output"][0]["content"][0]["text"] == reply
    follow = c.responses.create(model=OPENAI_MODEL, input="What is my name?", previous_response_id=final.id)
    assert follow.output_text == "[2 user messages] I do not know your name."
    fake = fake_openai if upstream == "openai" else chat_only_openai
    assert reply in json.dumps(fake.last_body(), ensure_ascii=False)


def _encoded_and_read_back(codec: Codec, pieces: list[str]) -> str:
    """The text of a reply written as `codec`'s front stream, read back by its own stream decoder."""
    node = Interaction(id="v1_spill", owner="o", upstream="up", front=codec.name, mode="emulate", model="m",
                       status=IN_PROGRESS, input=[], output=[], created=1.0, updated=1.0)
    encoder = codec.stream_encoder({}, {"model": "m"})
    deltas = [PartStart(0, Part(TEXT)), *(PartDelta(0, text=piece) for piece in pieces), PartStop(0)]
    frames = encoder.opening(node) + [f for d in deltas for f in encoder.delta(d)]
    finished = replace(node, status=COMPLETED, output=[Turn(MODEL_ROLE, [Part(TEXT, text="".join(pieces))])])
    frames += encoder.closing(finished)
    decoder = codec.stream_decoder()
    for event in SSEParser().feed(b"".join(f.data for f in frames)):
        decoder.feed(event)
    return "".join(turn.text for turn in decoder.assembler.reply().output)


# Every front API recall writes streams of, and reads streams of.
STREAMING = [c for c in CODECS if c.reads_streams and type(c).stream_encoder is not Codec.stream_encoder]


@pytest.mark.parametrize("codec", STREAMING, ids=lambda c: c.name)
def test_each_front_stream_reads_back_its_own_text(codec: Codec) -> None:
    """What spilling rests on: a front API's recorded events give its text back through its decoder."""
    pieces = ["Grüße ", 'and "quotes"\n', "x" * 5000, " 😀"]
    assert _encoded_and_read_back(codec, pieces) == "".join(pieces)
