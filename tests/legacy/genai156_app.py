"""An app written against google-genai 1.56 (the Interactions launch material).

Run by tests/test_gemini_legacy_sdk.py in a second virtual environment that
has google-genai==1.56.0; prints one JSON object with what the app saw.
Usage: python genai156_app.py BASE_URL
"""

import json
import sys

from google import genai

base_url = sys.argv[1]
client = genai.Client(api_key="legacy-key", http_options={"base_url": base_url})
seen = {}

first = client.interactions.create(model="gemini-3-flash-preview",
                                   input="Hi, my name is Karthik. I like to play cricket.")
second = client.interactions.create(model="gemini-3-flash-preview", input="What is my name?",
                                    previous_interaction_id=first.id)
seen["first_id"] = first.id
seen["second_text"] = second.outputs[-1].text
seen["second_status"] = second.status

got = client.interactions.get(second.id)
seen["got_text"] = got.outputs[-1].text

# The stateless flow of the launch notebook: history as {role, content} turns,
# the model's turn sent back as its previous outputs.
history = [{"role": "user", "content": "My name is Ada."}]
reply = client.interactions.create(model="gemini-3-flash-preview", input=history)
history.append({"role": "model", "content": reply.outputs})
history.append({"role": "user", "content": "What is my name?"})
again = client.interactions.create(model="gemini-3-flash-preview", input=history)
seen["stateless_text"] = again.outputs[-1].text

# Streaming in the earlier revision's event vocabulary (content.* events).
events = list(client.interactions.create(model="gemini-3-flash-preview", input="Stream to me, I am Karthik.",
                                         stream=True))
seen["stream_types"] = [e.event_type for e in events]
seen["stream_text"] = "".join(e.delta.text for e in events if e.event_type == "content.delta" and e.delta.type == "text")
seen["stream_final_id"] = events[-1].interaction.id

client.interactions.delete(first.id)
try:
    client.interactions.get(first.id)
    seen["deleted_get"] = "found"
except Exception as exc:  # the 1.56 error classes differ from 3.x; the status is what counts
    seen["deleted_get"] = getattr(exc, "status_code", None) or getattr(exc, "code", None)

print(json.dumps(seen))
