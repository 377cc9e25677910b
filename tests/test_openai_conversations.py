"""The OpenAI Conversations API, emulated by recall on any upstream, with the openai SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from proxy.config import Upstream

from .conftest import Recall, RecallFactory
from .support.fake_openai import FakeOpenAI
from .support.openai_sdk import MODEL, client, user_texts_sent


@pytest.mark.parametrize("upstream", ["openai", "local"])
def test_a_conversation_of_three_turns(openai_recall: Recall, fake_openai: FakeOpenAI, chat_only_openai: FakeOpenAI,
                                       upstream: str) -> None:
    c = client(openai_recall, upstream)
    conversation = c.conversations.create(items=[{"type": "message", "role": "user", "content": "Hi, my name is Ada."}],
                                          metadata={"topic": "names"})
    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "names"}
    first = c.responses.create(model=MODEL, conversation=conversation.id, input="I like tea.")
    assert first.conversation.id == conversation.id and first.previous_response_id is None
    with c.responses.stream(model=MODEL, conversation={"id": conversation.id}, input="I live in Oslo.") as stream:
        second = stream.get_final_response()
    assert second.output_text.startswith("[3 user messages]")
    third = c.responses.create(model=MODEL, conversation=conversation.id, input="What is my name?")
    assert third.output_text == "[4 user messages] Your name is Ada."
    if upstream == "openai":
        sent = fake_openai.last_body()
        assert "conversation" not in sent and sent["store"] is False
        assert user_texts_sent(fake_openai) == ["Hi, my name is Ada.", "I like tea.", "I live in Oslo.",
                                                "What is my name?"]
    items = list(c.conversations.items.list(conversation.id, order="asc"))
    assert [(i.type, i.role) for i in items] == [("message", "user"), *[("message", "user"), ("message", "assistant")] * 3]
    assert items[-1].content[0].text == third.output_text
    assert items[-1].id == third.output[0].id  # the same item, as the response showed it


def test_items_api(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    conversation = c.conversations.create()
    added = c.conversations.items.create(conversation.id, items=[
        {"type": "message", "role": "user", "content": "My name is Zed."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Actually, my name is Priya."}]},
    ])
    assert [i.content[0].text for i in added.data] == ["My name is Zed.", "Actually, my name is Priya."]
    assert added.first_id == added.data[0].id and added.has_more is False
    page = c.conversations.items.list(conversation.id, limit=1)
    assert [i.id for i in page.data] == [added.data[1].id] and page.has_more  # newest first by default
    assert [i.id for i in c.conversations.items.list(conversation.id, limit=1)] == [i.id for i in reversed(added.data)]
    got = c.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id)
    assert got.content[0].text == "My name is Zed."
    after = c.conversations.items.delete(added.data[1].id, conversation_id=conversation.id)
    assert after.id == conversation.id and after.object == "conversation"
    answer = c.responses.create(model=MODEL, conversation=conversation.id, input="What is my name?")
    assert answer.output_text == "[2 user messages] Your name is Zed."
    updated = c.conversations.update(conversation.id, metadata={"topic": "u"})
    assert c.conversations.retrieve(conversation.id).metadata == updated.metadata == {"topic": "u"}
    with pytest.raises(openai.NotFoundError):
        c.conversations.items.retrieve(added.data[1].id, conversation_id=conversation.id)


def test_deleting_a_conversation_erases_it(openai_recall: Recall) -> None:
    c = client(openai_recall)
    marker = "Conversation-Ibis-2231"
    conversation = c.conversations.create(items=[{"role": "user", "content": f"Remember {marker}."}])
    assert marker.encode() in openai_recall.db_bytes()
    deleted = c.conversations.delete(conversation.id)
    assert deleted.deleted is True and deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        c.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model=MODEL, conversation=conversation.id, input="hi")
    assert marker.encode() not in openai_recall.db_bytes()


def test_another_key_cannot_use_the_conversation(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    mine, theirs = client(openai_recall, key="sk-A"), client(openai_recall, key="sk-B")
    conversation = mine.conversations.create(items=[{"role": "user", "content": "private"}])
    item = mine.conversations.items.list(conversation.id).data[0]
    for attempt in (
        lambda: theirs.conversations.retrieve(conversation.id),
        lambda: theirs.conversations.update(conversation.id, metadata={"a": "b"}),
        lambda: theirs.conversations.delete(conversation.id),
        lambda: theirs.conversations.items.list(conversation.id),
        lambda: theirs.conversations.items.create(conversation.id, items=[{"role": "user", "content": "x"}]),
        lambda: theirs.conversations.items.retrieve(item.id, conversation_id=conversation.id),
        lambda: theirs.responses.create(model=MODEL, conversation=conversation.id, input="x"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            attempt()
        assert caught.value.body["message"] == f"Conversation with id '{conversation.id}' not found."
    assert fake_openai.requests == []
    assert len(mine.conversations.items.list(conversation.id).data) == 1


def test_bad_conversation_requests(openai_recall: Recall, fake_openai: FakeOpenAI) -> None:
    c = client(openai_recall)
    with pytest.raises(openai.NotFoundError) as caught:
        c.responses.create(model=MODEL, conversation="conv_unknown", input="hi")
    assert caught.value.param == "conversation"
    conversation = c.conversations.create()
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model=MODEL, conversation=conversation.id, input="hi", store=False)
    assert caught.value.param == "store"
    with pytest.raises(openai.BadRequestError) as caught:
        c.conversations.create(items=[{"role": "robot", "content": "x"}])
    assert caught.value.param == "items"
    with pytest.raises(openai.BadRequestError) as caught:
        c.conversations.create(metadata={"n": 1})  # type: ignore[dict-item]
    assert caught.value.param == "metadata"
    answer = httpx.post(f"{openai_recall.base('openai')}/v1/conversations/{conversation.id}/items",
                        json={"items": "not a list"}, headers={"authorization": "Bearer sk-A"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "items"
    assert fake_openai.requests == []
    assert openai_recall.query("SELECT count(*) FROM openai_conversations") == [(1,)]


def test_native_mode_leaves_conversations_to_openai(recall_factory: RecallFactory, stateful_openai: FakeOpenAI) -> None:
    recall = recall_factory({"openai": Upstream("openai", stateful_openai.url, "openai", state="native")})
    c = client(recall)
    with pytest.raises(openai.NotFoundError) as caught:  # the fake has no Conversations: its own 404 comes back
        c.conversations.create(items=[{"role": "user", "content": "hi"}])
    assert "fake openai has no route POST /v1/conversations" in caught.value.body["message"]
    assert recall.query("SELECT count(*) FROM openai_conversations") == [(0,)]
    assert recall.query("SELECT path, status FROM exchanges") == [("/v1/conversations", 404)]
