"""``modelshield scan``: exit codes, formats, directories, exclusions and policies."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import jsonschema
import pytest

from modelshield.cli import main
from modelshield.reporting import load_scan_schema


class Payload:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("id",))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "clean.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    (tmp_path / "sub" / "evil.bin").write_bytes(pickle.dumps(Payload()))
    for i in range(4):  # enough files to use the worker processes
        (tmp_path / f"more{i}.pkl").write_bytes(pickle.dumps(list(range(i))))
    return tmp_path


def test_scan_directory_finds_the_payload_and_exits_1(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(tree), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(load_scan_schema()).validate(report)
    assert report["summary"]["files"] == 6
    bad = [f for scan in report["files"] for f in scan["findings"]]
    assert [f["id"] for f in bad] == ["pickle.dangerous-call"]
    assert bad[0]["location"].endswith("evil.bin")


def test_exclude_and_fail_on(tree: Path) -> None:
    assert main(["scan", str(tree), "--exclude", "sub/*", "--format", "json"]) == 0
    assert main(["scan", str(tree), "--fail-on", "never"]) == 0


def test_sarif_output_to_a_file(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.sarif"
    assert main(["scan", str(tree / "sub"), "--format", "sarif", "--output", str(out)]) == 1
    sarif = json.loads(out.read_text())
    assert sarif["runs"][0]["results"][0]["ruleId"] == "pickle.dangerous-call"


def test_policy_file_can_allow_a_callable(tmp_path: Path) -> None:
    import collections

    path = tmp_path / "custom.pkl"
    path.write_bytes(pickle.dumps(collections.ChainMap({"a": 1})))
    assert main(["scan", str(path), "--fail-on", "medium"]) == 1
    policy = tmp_path / "policy.toml"
    policy.write_text('allow = ["collections.ChainMap"]\n')
    assert main(["scan", str(path), "--fail-on", "medium", "--policy", str(policy)]) == 0


def test_missing_path_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "/nonexistent/model.pt"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_text_output_to_a_file(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.txt"
    assert main(["scan", str(tree / "sub"), "--output", str(out)]) == 1
    text = out.read_text()
    assert "critical" in text and "Loading runs" in text
    assert "1 file(s) scanned" in text
    assert "\x1b[" not in text  # plain text, no terminal styles
