"""`recall env`: the environment variables that point each official SDK at recall."""

from __future__ import annotations

import ipaddress
import shlex

from .codecs import SDK_BASE_URLS
from .config import Config


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


def env_lines(config: Config) -> list[str]:
    """`export NAME=URL` lines for each SDK, and a comment for every other upstream."""
    base = listen_url(config)
    lines = [f"export {var}={shlex.quote(f'{base}/{name}{suffix}')}" for name, var, suffix in SDK_BASE_URLS]
    builtin = {name for name, _, _ in SDK_BASE_URLS}
    for name, upstream in sorted(config.upstreams.items()):
        if name not in builtin:
            lines.append(f"# {name} ({upstream.api}): set your SDK's base_url to {base}/{name}")
    if config.tokens:
        lines.append("# this recall requires a proxy token: have your SDK send the header X-Recall-Token")
    return lines
