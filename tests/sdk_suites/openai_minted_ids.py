"""The operations the emulate allow-list excuses, on ids recall did mint.

The SDK's generated tests retrieve, delete, list and update responses and conversations by ids
only a provider's state could hold (tests/sdk_suites/openai-emulate-allowlist.toml), so in
emulate mode they cannot reach recall's own answers. These make the same calls with the same SDK
(openai 3.3.1, strict response validation: every answer must parse as the SDK's types, which
the published contract generated) on ids recall minted. scripts/sdk-suites runs this module in
the SDK's venv against recall in emulate mode (RECALL_SDK_SUITE_URL) and the checker requires
every test in it to pass. Not a test of recall's own suite: its name does not start with test_.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import openai
import pytest
from openai.types.conversations import Conversation, ConversationDeletedResource
from openai.types.responses import Response

MODEL = "gpt-5.1"


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=os.environ["RECALL_SDK_SUITE_URL"], api_key="sk-sdk-suite",
                       _strict_response_validation=True, max_retries=0) as sdk:
        yield sdk


def test_a_response_and_its_chain(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="Hi, my name is Karthik.")
    assert isinstance(first, Response) and first.id.startswith("resp_")
    second = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    again = client.responses.retrieve(second.id)
    assert isinstance(again, Response) and again.id == second.id
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_a_streamed_response_can_be_retrieved(client: openai.OpenAI) -> None:
    with client.responses.create(model=MODEL, input="hi", stream=True) as stream:
        events = list(stream)
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    made = events[-1].response
    again = client.responses.retrieve(made.id)
    assert again.id == made.id and again.status == "completed" and again.output_text == made.output_text


def test_a_conversation_and_its_items(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(items=[{"type": "message", "role": "user", "content": "Hi"}],
                                               metadata={"topic": "sdk-suite"})
    assert isinstance(conversation, Conversation) and conversation.id.startswith("conv_")
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "sdk-suite"}
    updated = client.conversations.update(conversation.id, metadata={"topic": "updated"})
    assert updated.metadata == {"topic": "updated"}
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "What is my name?"}])
    assert len(added.data) == 1
    listed = client.conversations.items.list(conversation.id)
    assert len(listed.data) == 2
    item_id = added.data[0].id
    assert client.conversations.items.retrieve(item_id, conversation_id=conversation.id).id == item_id
    after = client.conversations.items.delete(item_id, conversation_id=conversation.id)
    assert isinstance(after, Conversation)
    turn = client.responses.create(model=MODEL, input="And now?", conversation=conversation.id)
    assert isinstance(turn, Response)
    assert len(client.conversations.items.list(conversation.id).data) >= 2
    deleted = client.conversations.delete(conversation.id)
    assert isinstance(deleted, ConversationDeletedResource) and deleted.deleted
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)
