"""`recall env`: the environment variables that point each official SDK at recall."""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping

from .codecs import SDK_BASE_URLS, SDK_KEY_VARIABLES
from .config import Config

# What the SDKs get for a key in replay: they refuse to start without one, and replay
# never sends it anywhere (credentials are not part of a recording's key).
PLACEHOLDER_KEY = "recall-replay-placeholder-key"


def listen_url(config: Config) -> str:
    """Where apps reach this recall: a wildcard listen address is reached on loopback."""
    try:
        address = ipaddress.ip_address(config.host)
    except ValueError:  # a host name
        return f"http://{config.host}:{config.port}"
    if address.is_unspecified:
        address = ipaddress.ip_address("127.0.0.1" if address.version == 4 else "::1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{shown}:{config.port}"


def base_urls(config: Config) -> dict[str, str]:
    """Each SDK's base-URL variable and the URL under this recall it should hold."""
    base = listen_url(config)
    return {var: f"{base}/{name}{suffix}" for name, var, suffix in SDK_BASE_URLS}


def env_lines(config: Config) -> list[str]:
    """`export NAME=URL` lines for each SDK, and a comment for every other upstream."""
    base = listen_url(config)
    lines = [f"export {var}={shlex.quote(url)}" for var, url in base_urls(config).items()]
    builtin = {name for name, _, _ in SDK_BASE_URLS}
    for name, upstream in sorted(config.upstreams.items()):
        if name not in builtin:
            lines.append(f"# {name} ({upstream.api}): set your SDK's base_url to {base}/{name}")
    if config.tokens:
        lines.append("# this recall requires a proxy token: have your SDK send the header X-Recall-Token")
    return lines


def placeholder_keys(environ: Mapping[str, str]) -> dict[str, str]:
    """The key variables to set for replay: one per SDK that has none of its own set.

    A key that is set is never overridden (a record run may need it)."""
    return {variables[0]: PLACEHOLDER_KEY for variables in SDK_KEY_VARIABLES
            if not any(environ.get(name) for name in variables)}


def placeholder_key_lines() -> list[str]:
    """Shell lines that set each SDK's placeholder key only where none is set, checked when eval'd."""
    lines = []
    for variables in SDK_KEY_VARIABLES:
        already = "".join(f"${{{name}:-}}" for name in variables)
        lines.append(f'[ -n "{already}" ] || export {variables[0]}={PLACEHOLDER_KEY}')
    return lines
