"""Figures the reliability tests measure (requests, chains, kills, bad inputs...),
added up over a run and printed at its end, for docs/RELIABILITY.md."""

from __future__ import annotations

from collections import Counter
from typing import Any

FIGURES: Counter[str] = Counter()


def add(name: str, amount: int = 1) -> None:
    FIGURES[name] += amount


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "recall reliability figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {value}")
