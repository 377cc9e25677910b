"""Compare an SDK suite's three runs (scripts/sdk-suites) and enforce the tier's invariants.

- direct: the SDK's generated tests against the mock of the provider's contract (the baseline);
- native: through recall with `state = "native"`: exactly the tests that pass directly pass;
- emulate: through recall with `state = "emulate"`: every test passes except those an entry of
  the allow-list (openai-emulate-allowlist.toml) names, and every test an entry names fails
  (an entry that no longer applies is removed, so that the list stays short and true).

Prints counts per way and any violation by test id; exits 1 on a violation.
Usage: python tests/sdk_suites/check.py --results DIR [--allowlist FILE] [--suite openai]
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class Allowed:
    """One allow-list entry: the tests it names (patterns over test ids) and why they fail."""

    tests: tuple[str, ...]
    reason: str
    provider: str

    def covers(self, test_id: str) -> bool:
        return any(fnmatch.fnmatchcase(test_id, pattern) for pattern in self.tests)


def case_id(case: ET.Element) -> str:
    """`tests/api_resources/x/test_y.py::TestY::test_z[param]` from a junit testcase."""
    module, _, cls = case.get("classname", "").rpartition(".")
    if not cls[:1].isupper():  # a module-level test function: no class in the classname
        module, cls = case.get("classname", ""), ""
    path = module.replace(".", "/") + ".py"
    return "::".join(part for part in (path, cls, case.get("name", "")) if part)


def outcomes(junit: Path) -> dict[str, str]:
    """Each test's outcome in one run: passed, failed (failure or error) or skipped."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = FAILED
        elif case.find("skipped") is not None:
            outcome = SKIPPED
        else:
            outcome = PASSED
        # A test reported twice (an error in teardown after a pass) counts as failed.
        if found.get(case_id(case)) != FAILED:
            found[case_id(case)] = outcome
    return found


def load_allowlist(path: Path) -> list[Allowed]:
    entries = tomllib.loads(path.read_text()).get("allow", [])
    allowed = []
    for number, entry in enumerate(entries, start=1):
        missing = [key for key in ("tests", "reason", "provider") if not entry.get(key)]
        if missing:
            raise SystemExit(f"{path}: entry {number} lacks {', '.join(missing)}")
        allowed.append(Allowed(tuple(entry["tests"]), entry["reason"].strip(), entry["provider"].strip()))
    return allowed


def count(results: dict[str, str]) -> str:
    tally = {kind: sum(1 for v in results.values() if v == kind) for kind in (PASSED, FAILED, SKIPPED)}
    return f"{tally[PASSED]} passed, {tally[FAILED]} failed, {tally[SKIPPED]} skipped"


def violations(direct: dict[str, str], native: dict[str, str] | None, emulate: dict[str, str] | None,
               allowed: list[Allowed]) -> list[str]:
    """Every broken invariant, one line each, naming the test."""
    found: list[str] = []
    passing = {t for t, v in direct.items() if v == PASSED}
    if not passing:
        found.append("direct: no test passed against the mock; the baseline itself is broken")
    for way, results in (("native", native), ("emulate", emulate)):
        if results is None:
            continue
        if set(results) != set(direct):
            gone = sorted(set(direct) - set(results))[:5]
            extra = sorted(set(results) - set(direct))[:5]
            found.append(f"{way}: ran other tests than direct (missing {gone}, extra {extra})")
    if native is not None:
        for test in sorted(passing - {t for t, v in native.items() if v == PASSED}):
            found.append(f"native: fails through recall but passes directly: {test}")
        for test in sorted({t for t, v in native.items() if v == PASSED} - passing):
            found.append(f"native: passes through recall but not directly (recall answered for the provider): {test}")
    if emulate is not None:
        for test, outcome in sorted(emulate.items()):
            covered = [entry for entry in allowed if entry.covers(test)]
            if outcome == FAILED and not covered:
                found.append(f"emulate: fails and is not allow-listed: {test}")
            elif outcome == PASSED and covered:
                found.append(f"emulate: allow-listed but passes (narrow or remove the entry): {test}")
        for entry in allowed:
            for pattern in entry.tests:
                if not any(fnmatch.fnmatchcase(test, pattern) for test in emulate):
                    found.append(f"emulate: allow-list pattern matches no test: {pattern}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="directory holding SUITE-{direct,native,emulate}.xml")
    parser.add_argument("--suite", default="openai")
    parser.add_argument("--allowlist", type=Path, help="default: tests/sdk_suites/SUITE-emulate-allowlist.toml")
    args = parser.parse_args(argv)
    allowlist = args.allowlist or HERE / f"{args.suite}-emulate-allowlist.toml"
    runs: dict[str, dict[str, str] | None] = {}
    for way in ("direct", "native", "emulate"):
        junit = args.results / f"{args.suite}-{way}.xml"
        runs[way] = outcomes(junit) if junit.exists() else None
    direct = runs["direct"]
    if direct is None:
        print(f"sdk-suites check: no {args.suite}-direct.xml in {args.results}", file=sys.stderr)
        return 1
    allowed = load_allowlist(allowlist)
    print(f"{args.suite} SDK suite:")
    for way, results in runs.items():
        print(f"  {way:<8} {count(results) if results is not None else 'not run'}")
    emulate = runs["emulate"]
    if emulate is not None:
        covered = sum(1 for t, v in emulate.items() if v == FAILED and any(e.covers(t) for e in allowed))
        print(f"  allow-listed in emulate: {covered} tests under {len(allowed)} entries ({allowlist.name})")
    found = violations(direct, runs["native"], emulate, allowed)
    if emulate is not None:
        # The allow-listed operations, on ids recall minted (openai_minted_ids.py): all must pass.
        minted_junit = args.results / f"{args.suite}-emulate-minted.xml"
        minted = outcomes(minted_junit) if minted_junit.exists() else {}
        print(f"  emulate, on ids recall minted: {count(minted) if minted else 'not run'}")
        if not minted:
            found.append(f"emulate: {minted_junit.name} is missing or empty: the allow-listed operations went unchecked")
        found.extend(f"emulate: fails on an id recall minted: {test}"
                     for test, outcome in sorted(minted.items()) if outcome != PASSED)
    if found:
        print(f"{len(found)} violations:")
        for line in found[:200]:
            print(f"  {line}")
        if len(found) > 200:
            print(f"  … and {len(found) - 200} more")
        return 1
    print("  invariants hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
