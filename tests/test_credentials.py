"""Every credential shape is redacted and isolating (issue 16, item 4).

Azure OpenAI's `api-key` (sent by the openai SDK's AzureOpenAI client), Azure API
Management's `Ocp-Apim-Subscription-Key`, `?access_token=` and `?apikey=`: none may reach
the database, `recall show --raw` or the request log, and each identifies its caller, so
that one Azure key never reads another's responses.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner

from proxy.auth import ANONYMOUS, looks_secret
from proxy.cli.main import main
from proxy.config import Upstream

API_VERSION = "2025-04-01-preview"
KEY_A = "azure-key-A-Secret0101"
KEY_B = "azure-key-B-Secret0202"
APIM = "apim-subscription-Secret0303"
ACCESS_TOKEN = "oauth-access-token-Secret0404"
APIKEY = "query-apikey-Secret0505"
CUSTOM = "custom-header-Secret0606"
SECRETS = (KEY_A, KEY_B, APIM, ACCESS_TOKEN, APIKEY, CUSTOM)


@pytest.fixture
def azure(recall_factory, fake_openai):  # type: ignore[no-untyped-def]
    """recall with a mount `az` keeping the conversations itself (zero data retention), in front of the fake OpenAI."""
    return recall_factory({"az": Upstream("az", fake_openai.url, "openai", state="emulate")})


def azure_client(recall, key: str, **kwargs) -> openai.AzureOpenAI:  # type: ignore[no-untyped-def]
    return openai.AzureOpenAI(api_key=key, azure_endpoint=f"{recall.url}/az", api_version=API_VERSION,
                              max_retries=0, **kwargs)


def test_azure_keys_are_owners_and_never_stored(azure, fake_openai, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    alice = azure_client(azure, KEY_A, default_headers={"Ocp-Apim-Subscription-Key": APIM})
    bob = azure_client(azure, KEY_B)
    first = alice.responses.create(model="gpt-test", input="Hi, my name is Ada.",
                                   extra_query={"access_token": ACCESS_TOKEN, "apikey": APIKEY})
    assert first.id.startswith("resp_")
    # The provider got Alice's key (it is hers to send)...
    assert any(KEY_A in " ".join(r.headers.values()) for r in fake_openai.requests)
    # ...and recall filed the response under it: another Azure key cannot read or chain onto it.
    owner = azure.query("SELECT owner FROM interactions WHERE id = ?", first.id)[0][0]
    assert owner != ANONYMOUS
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError):
        bob.responses.create(model="gpt-test", input="What is my name?", previous_response_id=first.id)
    assert alice.responses.retrieve(first.id).id == first.id
    second = alice.responses.create(model="gpt-test", input="What is my name?", previous_response_id=first.id)
    assert "Ada" in second.output_text
    # Chat Completions through Azure's deployment path, too.
    chat = alice.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello"}])
    assert chat.choices[0].message.content
    assert azure.query("SELECT count(*) FROM exchanges WHERE owner = ?", ANONYMOUS) == [(0,)]

    raw = CliRunner().invoke(main, ["show", first.id, "--raw", "--db", str(azure.db_path)])
    assert raw.exit_code == 0, raw.output
    assert "api-version" in raw.output  # the raw record is there, without its secrets
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records if r.name.startswith(("recall", "proxy")))
    stored = azure.db_bytes()
    for secret in SECRETS:
        assert secret.encode() not in stored, secret
        assert secret not in raw.output, secret
        assert secret not in logged, secret


@pytest.mark.parametrize("carrier", [
    {"headers": {"api-key": KEY_A}},
    {"headers": {"Ocp-Apim-Subscription-Key": APIM}},
    {"params": {"access_token": ACCESS_TOKEN}},
    {"params": {"apikey": APIKEY}},
    {"params": {"api-key": APIKEY}},
    {"headers": {"X-Custom-Api-Key": CUSTOM}},  # no table row: the conservative default still isolates it
], ids=lambda c: next(iter(next(iter(c.values())))))
def test_a_request_with_a_credential_is_never_anonymous(azure, carrier: dict) -> None:  # type: ignore[no-untyped-def]
    body = {"model": "gpt-test", "input": "Remember heliotrope."}
    made = httpx.post(f"{azure.url}/az/v1/responses", json=body, **carrier)
    assert made.status_code == 200, made.text
    response_id = made.json()["id"]
    owner = azure.query("SELECT owner FROM interactions WHERE id = ?", response_id)[0][0]
    assert owner != ANONYMOUS
    assert httpx.get(f"{azure.url}/az/v1/responses/{response_id}").status_code == 404  # no credential at all
    assert httpx.get(f"{azure.url}/az/v1/responses/{response_id}", **carrier).status_code == 200
    stored = azure.db_bytes()
    for secret in SECRETS:
        assert secret.encode() not in stored, secret


def test_the_conservative_default_reads_names_by_their_words() -> None:
    for name in ("x-goog-api-key", "api-key", "X-Custom-Token", "pageToken", "X-Amz-Signature", "client_secret",
                 "x-auth", "Proxy-Authorization", "sig", "access_token"):
        assert looks_secret(name), name
    for name in ("x-ratelimit-remaining-tokens", "anthropic-ratelimit-input-tokens-limit", "keep-alive",
                 "content-type", "api-version", "x-stainless-retry-count", "monkeys"):
        assert not looks_secret(name), name


def test_request_log_has_no_query_secret(azure, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="recall.access")
    httpx.get(f"{azure.url}/az/v1/models", params={"access_token": ACCESS_TOKEN, "apikey": APIKEY, "limit": "3"})
    # The line is written when recall's handler returns, which for a relayed answer may be just
    # after the app has read all of it.
    deadline = time.monotonic() + 5
    while not (lines := [r.getMessage() for r in caplog.records if r.name == "recall.access"]):
        assert time.monotonic() < deadline, "no access line within 5 s"
        time.sleep(0.01)
    assert len(lines) == 1 and re.search(r"/az/v1/models\?limit=3 ", lines[0]), lines
