"""What a provider's contract is made of, and how an answer is held against it.

A contract is a table of operations (method and path template -> the statuses it
answers on success, the model of its JSON body, the model of each streamed
event) and one error model for every 4xx/5xx. The models come from the
providers' own published material (tests/support/contract/openai.py: the
OpenAPI description; sdk_models.py: the response models inside the official
SDK packages), never from what our fakes or recall happen to send.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

#: A validator takes a decoded JSON value and returns an error message, or None if it conforms.
Check = Callable[[object], "str | None"]


@dataclass(frozen=True)
class Model:
    """One schema or model of the contract, named as the provider's material names it."""

    name: str
    check: Check

    def __call__(self, value: object) -> str | None:
        return self.check(value)


@dataclass(frozen=True)
class Operation:
    method: str
    #: Path template with {name} segments, as the provider writes it (`/v1/tasks/runs/{run_id}`).
    template: str
    #: The 2xx statuses the provider documents for this operation.
    statuses: frozenset[int]
    #: Model of a JSON success body (None: the provider documents no body, any JSON passes).
    body: Model | None = None
    #: Model of each SSE event's `data:` JSON (None: this operation does not stream).
    event: Model | None = None
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.template))
        object.__setattr__(self, "_pattern", re.compile(regex + r"\Z"))

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self._pattern.match(path) is not None

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(frozen=True)
class Contract:
    """One provider API: its operations and its error model."""

    provider: str
    operations: tuple[Operation, ...]
    error: Model
    #: Event `data:` values that are not JSON and that the provider documents (OpenAI's `[DONE]`).
    sentinels: frozenset[bytes] = frozenset()
    #: Checks an SSE event as a whole (its `event:` line and data), before the operation's event model;
    #: returns a message, or None to go on to the model. For events a provider documents outside its
    #: union of event models (Anthropic's `ping` and `error`).
    event_hook: Callable[[str | None, object], tuple[bool, str | None]] | None = None

    def operation(self, method: str, path: str) -> Operation | None:
        return next((op for op in self.operations if op.matches(method, path)), None)


@dataclass(frozen=True)
class Violation:
    """One answer off its contract: where it was sent, by whom, against what, and why."""

    side: str
    method: str
    path: str
    status: int
    contract: str
    error: str

    def __str__(self) -> str:
        path = self.path if len(self.path) <= 160 else self.path[:160] + "…"
        return f"{self.side}: {self.method} {path} -> {self.status}: off contract {self.contract}: {self.error}"
