"""Adding a provider is one codec module and a row in CODECS: nothing else names a provider.

Every table that depends on the providers (config `api` values, built-in mounts,
`recall env`, key headers, replayed headers, key patterns) is derived from the
codecs; this test keeps it that way by failing on a provider's name written in
code anywhere but the codecs and the route table.
"""

from __future__ import annotations

import ast
from pathlib import Path

from proxy.codecs import BUILTIN_URLS, CODECS, FRONT_CODECS, KEY_HEADERS, SDK_BASE_URLS, STATEFUL_APIS, UPSTREAM_CODECS
from proxy.config import BUILTIN_UPSTREAMS, UPSTREAM_APIS, Upstream

PROXY = Path(__file__).resolve().parent.parent / "proxy"
# Where provider names belong: the codecs, and the route table that maps paths to them.
# Nothing else is excepted: the endpoints of one API's extra operations (Parallel's task-run
# reads, OpenAI's Conversations) ask the codec they are routed with for what is the API's own.
ALLOWED = {"codecs", "http/routes.py"}
# The registry and the codec base are what the rest of recall may import from the codecs.
SHARED_CODEC_MODULES = {"proxy.codecs", "proxy.codecs.base"}
NAMES = {*UPSTREAM_CODECS, *FRONT_CODECS}


def test_no_provider_is_named_outside_the_codecs_and_the_route_table() -> None:
    found = []
    for path in sorted(PROXY.rglob("*.py")):
        relative = path.relative_to(PROXY)
        if relative.parts[0] in ALLOWED or relative.as_posix() in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES:
                found.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert found == []


def test_the_tables_follow_the_codecs() -> None:
    assert UPSTREAM_APIS == tuple(codec.speaks for codec in CODECS)
    assert BUILTIN_UPSTREAMS == {api: Upstream(api, url, api) for api, url in BUILTIN_URLS.items()}
    assert set(BUILTIN_UPSTREAMS) == {"gemini", "openai", "anthropic", "parallel"}
    assert [mount for mount, _, _ in SDK_BASE_URLS] == list(BUILTIN_UPSTREAMS)
    assert KEY_HEADERS == ("x-goog-api-key", "x-api-key", "authorization")
    assert STATEFUL_APIS == {"gemini", "openai", "parallel"}
    # recall keeps the state of every api whose provider cannot keep it, whatever `state` says.
    assert [api for api in UPSTREAM_APIS if Upstream(api, "http://x", api).emulates] == [
        "gemini-generate", "openai-chat", "anthropic"]


def test_no_module_outside_the_codecs_imports_one_providers_codec() -> None:
    """Provider-specific behaviour lives in its codec: the pipeline, endpoints, store and CLI
    reach a codec through the registry and the Codec interface, never one API's module."""
    found = []
    for path in sorted(PROXY.rglob("*.py")):
        relative = path.relative_to(PROXY)
        if relative.parts[0] in ALLOWED or relative.as_posix() in ALLOWED:
            continue
        package = ["proxy", *relative.parts[:-1]]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            targets = [module] if module != "proxy.codecs" else [f"{module}.{a.name}" for a in node.names]
            for target in targets:
                if target.startswith("proxy.codecs.") and target not in SHARED_CODEC_MODULES \
                        and (PROXY / "codecs" / f"{target.rsplit('.', 1)[1]}.py").exists():
                    found.append(f"{relative}:{node.lineno}: imports {target}")
    assert found == []
