"""The SDK-suites checker (tests/sdk_suites/check.py) on small junit files: each invariant breaks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .sdk_suites import check

A = ("tests.api_resources.test_responses.TestResponses", "test_method_retrieve[strict]")
B = ("tests.api_resources.test_responses.TestResponses", "test_path_params_retrieve[strict]")
C = ("tests.api_resources.chat.test_completions.TestCompletions", "test_method_create[strict]")
A_ID = "tests/api_resources/test_responses.py::TestResponses::test_method_retrieve[strict]"
ALLOW = """
[[allow]]
tests = ["tests/api_resources/test_responses.py::Test*Responses::test_[mrs]*_retrieve*"]
reason = "an id only the provider holds"
provider = "OpenAI answers 404 for an id it does not hold"
"""


def junit(path: Path, failed: tuple[tuple[str, str], ...] = ()) -> None:
    cases = []
    for classname, name in (A, B, C):
        inner = '<failure message="boom"/>' if (classname, name) in failed else ""
        cases.append(f'<testcase classname="{classname}" name="{name}">{inner}</testcase>')
    path.write_text(f'<testsuites><testsuite>{"".join(cases)}</testsuite></testsuites>')


def minted(path: Path, *, failing: bool = False) -> None:
    inner = '<failure message="boom"/>' if failing else ""
    path.write_text(f'<testsuites><testsuite><testcase classname="openai_minted_ids" name="test_a_response">{inner}'
                    '</testcase></testsuite></testsuites>')


def run(tmp_path: Path, *, native: tuple = (), emulate: tuple = (), allow: str = ALLOW,
        minted_fails: bool | None = False) -> int:
    if minted_fails is not None:
        minted(tmp_path / "openai-emulate-minted.xml", failing=minted_fails)
    junit(tmp_path / "openai-direct.xml")
    junit(tmp_path / "openai-native.xml", native)
    junit(tmp_path / "openai-emulate.xml", emulate)
    (tmp_path / "allow.toml").write_text(allow)
    return check.main(["--results", str(tmp_path), "--allowlist", str(tmp_path / "allow.toml")])


def test_ids_name_path_class_and_test(tmp_path: Path) -> None:
    junit(tmp_path / "x.xml", (A,))
    assert check.outcomes(tmp_path / "x.xml")[A_ID] == check.FAILED


def test_invariants_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, emulate=(A,)) == 0
    assert "invariants hold" in capsys.readouterr().out


def test_a_native_failure_is_a_violation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, native=(C,), emulate=(A,)) == 1
    assert "native: fails through recall but passes directly: tests/api_resources/chat" in capsys.readouterr().out


def test_an_emulate_failure_not_allow_listed_is_a_violation(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, emulate=(A, C)) == 1
    assert "emulate: fails and is not allow-listed" in capsys.readouterr().out


def test_an_allow_listed_test_that_passes_is_a_violation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path) == 1
    assert f"allow-listed but passes (narrow or remove the entry): {A_ID}" in capsys.readouterr().out


def test_an_entry_without_its_provider_behaviour_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="lacks provider"):
        run(tmp_path, emulate=(A,), allow=ALLOW.replace('provider = "OpenAI answers 404 for an id it does not hold"',
                                                        ""))


def test_the_allow_listed_operations_must_pass_on_minted_ids(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, emulate=(A,), minted_fails=True) == 1
    assert "fails on an id recall minted: openai_minted_ids.py::test_a_response" in capsys.readouterr().out


def test_the_minted_ids_run_cannot_be_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, emulate=(A,), minted_fails=None) == 1
    assert "openai-emulate-minted.xml is missing" in capsys.readouterr().out
