"""Bad input on every front API route: property-based (hypothesis) and the classic cases.

For whatever an app sends, recall never answers 5xx, never shows a traceback,
answers every rejection in the front API's own error shape, and writes nothing
for a rejected request (row counts before and after). Valid bodies that happen
to be generated are accepted; the tests count both.

`--hypothesis-profile=thorough` (used by .ci/run) tries ten times as many.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support import figures
from .support.front_routes import FRONT_ROUTES, FrontRoute, assert_no_traceback, emulated, pair_id
from .support.rigs import Rig, RigFactory

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

LIMIT_MB = 1
LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
          | st.floats() | st.text(max_size=40))
JSON_VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(params=FRONT_ROUTES, ids=pair_id)
def rig(request: pytest.FixtureRequest, rig_factory: RigFactory) -> Rig:
    route: FrontRoute = request.param
    return rig_factory(route, emulated(route)[0], max_body_mb=LIMIT_MB)


def settle(rig: Rig, timeout: float = 10) -> None:
    """Wait until no run is still writing (an accepted background or streamed turn): no node
    in progress, and for a task run no more rows coming (its last event follows its node's commit)."""
    deadline = time.monotonic() + timeout
    seen = None
    while (now := (rig.recall.query("SELECT count(*) FROM interactions WHERE status = 'in_progress'"),
                   rig.counts() if rig.route.result_path else None)) != seen or now[0] != [(0,)]:
        assert time.monotonic() < deadline, "a run did not finish"
        seen = now
        time.sleep(0.02)


def judge(rig: Rig, response: httpx.Response, before: dict[str, int], *, expect: set[int] | None = None) -> bool:
    """The invariants for any answer; returns whether the input was rejected."""
    figures.add("bad inputs tried")
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    assert_no_traceback(response)
    if expect is not None:
        assert response.status_code in expect, f"{response.status_code}: {response.text[:300]}"
    if response.status_code < 400:
        figures.add("bad inputs accepted as valid")
        settle(rig)
        return False
    rig.route.check_error(response, response.status_code)
    assert rig.counts() == before, "a rejected request wrote to the store"
    figures.add("bad inputs rejected")
    return True


def post_create(rig: Rig, body: bytes, **headers: str) -> httpx.Response:
    return rig.post_raw(body, headers=headers or None)


# -- property-based -------------------------------------------------------------------


@SETTINGS
@given(body=st.binary(max_size=2000))
def test_any_bytes_as_a_create_body(rig: Rig, body: bytes) -> None:
    before = rig.counts()
    assert judge(rig, post_create(rig, body), before)


@SETTINGS
@given(value=JSON_VALUES)
def test_any_json_as_a_create_body(rig: Rig, value: Any) -> None:
    before = rig.counts()
    judge(rig, post_create(rig, json.dumps(value).encode()), before)


@st.composite
def broken_bodies(draw: st.DrawFn, route: FrontRoute) -> dict[str, Any]:
    """A valid create body with one thing wrong: a field of the wrong type, a required one missing, a stray one."""
    body = route.body(draw(st.text(max_size=30)))
    action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if action == "replace":
        body[draw(st.sampled_from(route.create_fields))] = draw(JSON_VALUES)
    elif action == "delete":
        body.pop(draw(st.sampled_from(route.required_fields)), None)
    else:
        body[draw(st.text(min_size=1, max_size=20))] = draw(JSON_VALUES)
    return body


@SETTINGS
@given(data=st.data())
def test_a_valid_body_with_one_thing_wrong(rig: Rig, data: st.DataObject) -> None:
    body = data.draw(broken_bodies(rig.route))
    before = rig.counts()
    judge(rig, post_create(rig, json.dumps(body).encode()), before)


ODD_IDS = st.text(min_size=1, max_size=300).filter(lambda s: "/" not in s and s not in (".", ".."))


@SETTINGS
@given(odd=ODD_IDS)
def test_odd_ids_on_every_item_operation_and_as_previous_id(rig: Rig, odd: str) -> None:
    route = rig.route
    before = rig.counts()
    for _, method, template in route.item_operations():
        answer = rig.http.request(method, rig.url(template.format(id=quote(odd, safe=""))), headers=rig.headers())
        judge(rig, answer, before, expect={404})
    body = json.dumps(route.body("hello", odd)).encode()
    judge(rig, post_create(rig, body), before, expect={route.previous_not_found_status})
    assert rig.upstream_requests() == []


# -- the classic cases ----------------------------------------------------------------

TRAVERSALS = ["..", ".", "../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%2e%2e%2f%2e%2e",
              "a/b", "v1_x/../../../models", "%00", "%ff%fe", "x" * 20000, quote("\u202e\u0000rtl", safe=""),
              quote("ünïcødé-🙂-名前", safe=""), quote("id with spaces\r\nX-Injected: 1", safe="")]


@pytest.mark.parametrize("odd", TRAVERSALS, ids=range(len(TRAVERSALS)))
def test_path_traversal_and_odd_ids_stay_inside_the_api(rig: Rig, odd: str) -> None:
    route = rig.route
    prefix = route.create_path.rsplit("/", 1)[0]
    before = rig.counts()
    # An API with no item paths still has paths beneath its create: relayed, they stay inside the API.
    operations = route.item_operations() or [("relay", "GET", route.create_path + "/{id}")]
    for _, method, template in operations:
        answer = rig.raw(method, template.format(id=odd))
        assert answer.status_code in (400, 404), answer.text[:300]
        if answer.headers.get("content-type", "").startswith("application/json"):
            # Recall's own answer, or the provider's for a path relayed under the API.
            assert route.error_message(answer.json())
        assert_no_traceback(answer)
        figures.add("bad inputs tried")
    after = rig.counts()
    assert (after["interactions"], after["stream_events"]) == (before["interactions"], before["stream_events"])
    # Whatever was relayed stayed under the API's own path at the provider.
    assert all(seen.path.startswith(prefix) for seen in rig.upstream_requests()), \
        [seen.path for seen in rig.upstream_requests()]


def _deep(depth: int) -> bytes:
    """JSON nested `depth` levels, alternating objects and lists (built as text: json.dumps would recurse)."""
    opening = b"".join(b'{"k": ' if n % 2 else b"[" for n in range(depth))
    closing = b"".join(b"}" if n % 2 else b"]" for n in reversed(range(depth)))
    return opening + b'"leaf"' + closing


@pytest.mark.parametrize("depth", [90, 101, 200, 254, 255, 256, 1000, 5000])
@pytest.mark.parametrize("where", ["unknown_field", "input", "config"])
def test_deep_nesting_is_a_clean_400(rig: Rig, depth: int, where: str) -> None:
    route = rig.route
    body = route.body("hello")
    if where == "unknown_field":
        body["nested"] = "@"
    elif where == "input":
        body[route.required_fields[-1]] = ["@"]
    else:
        body[route.create_fields[-1]] = "@"
    before = rig.counts()
    answer = post_create(rig, json.dumps(body).encode().replace(b'"@"', _deep(depth)))
    rejected = judge(rig, answer, before)
    levels = depth + 1 + (where == "input")
    if levels > 100:
        assert rejected and answer.status_code == 400
        message = route.error_message(answer.json())
        assert "nested" in message or "JSON" in message, message


@pytest.mark.parametrize("body", [
    "{\"model\": \"m\", \"input\": \"caf\u00e9\"}".encode("latin-1"),
    "{\"model\": \"m\", \"input\": \"hi\"}".encode("utf-16"),
    b'{"model": "m", "input": "\\ud800"}',
    b'\xef\xbb\xbf{"model": "m", "input": "hi"}',
    b'{"model": "m", "input": "hi"\x00}',
    b'{"model": "m", "input": "' + b"\xc3\x28" * 100 + b'"}',
], ids=["latin-1", "utf-16", "lone-surrogate", "utf-8-bom", "nul", "bad-continuation"])
def test_non_utf8_bodies_are_400(rig: Rig, body: bytes) -> None:
    before = rig.counts()
    assert judge(rig, post_create(rig, body), before, expect={400})


def test_non_utf8_headers_and_query_are_not_errors_of_recall(rig: Rig) -> None:
    before = rig.counts()
    body = json.dumps(rig.route.body("hello")).encode()
    answer = rig.http.post(rig.url(rig.route.create_path) + "?key=%ff%fe&x=%C3%28", content=body,
                           headers={"content-type": "application/json", "x-goog-api-key": b"\xff\xfe",
                                    "authorization": b"Bearer \xc3\x28", "x-api-key": b"\xc3\x28\xff",
                                    "x-recall-store": b"\xff"})
    judge(rig, answer, before)


@pytest.mark.parametrize("field_name", ["input", "model", "previous", "unknown"])
def test_huge_strings_under_the_limit(rig: Rig, field_name: str) -> None:
    route = rig.route
    huge = "ä" * (LIMIT_MB * 1024 * 1024 // 2 - 4096)  # two bytes each: just under the limit
    if field_name == "input":
        body = route.body(huge)
    elif field_name == "previous":
        body = route.body("hello", huge)
    else:
        body = route.body("hello")
        body[route.required_fields[0] if field_name == "model" else "unknown"] = huge
    before = rig.counts()
    judge(rig, post_create(rig, json.dumps(body, ensure_ascii=False).encode()), before)


def test_oversized_bodies_are_413_on_every_route(rig: Rig) -> None:
    route = rig.route
    big = b'{"input": "' + b"x" * (LIMIT_MB * 1024 * 1024) + b'"}'
    before = rig.counts()
    targets = [("POST", route.create_path)] + [(m, t.format(id="v1_x")) for _, m, t in route.item_operations()]
    for method, path in targets:
        for content in (big, iter([big[:1000], big[1000:]])):  # with a Content-Length, and chunked
            answer = rig.http.request(method, rig.url(path), content=content, headers=rig.headers())
            assert judge(rig, answer, before, expect={413})
            assert "max_body_mb" in route.error_message(answer.json())
    assert rig.upstream_requests() == []


def test_wrong_methods_and_content_types(rig: Rig) -> None:
    route = rig.route
    before = rig.counts()
    body = json.dumps(route.body("hello")).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        answer = rig.http.post(rig.url(route.create_path), content=body,
                               headers={**rig.headers(), "content-type": content_type})
        judge(rig, answer, before)
        before = rig.counts()
    answer = rig.http.put(rig.url(route.create_path), content=b"{}", headers=rig.headers())
    assert answer.status_code < 500
