"""``audit --policy``, ``registry promote --policy`` and ``audit diff``, run in-process through main(argv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_output import one_error_line

from modelshield.cli import main
from modelshield.findings import CheckRun, CheckStatus, Finding, Report, Severity, TargetInfo

POLICY = """
fail_on = "medium"
require_signature = true

[[rule]]
name = "near-perfect accuracy"
finding = "baseline.performance"
metric = "test_accuracy"
min = 0.999

[[rule]]
finding = "membership.leakage"
metric = "tpr_at_0.1%_fpr"
max = 0.01
"""


@pytest.fixture(autouse=True)
def _cache(zoo_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(zoo_cache))


def test_a_bad_policy_is_one_line_and_exit_2_before_any_audit_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import modelshield.zoo

    def no_work(*_a: object, **_k: object) -> None:
        raise AssertionError("the audit started before the policy was checked")

    monkeypatch.setattr(modelshield.zoo, "load_target", no_work)
    policy = tmp_path / "policy.toml"
    policy.write_text('max_severity = "medium"\n')
    assert main(["audit", "--target", "zoo:cancer-gbm", "--policy", str(policy)]) == 2
    line = one_error_line(capsys)
    assert "unknown key 'max_severity'" in line
    assert "Fix:" in line
    assert main(["audit", "--target", "zoo:cancer-gbm", "--policy", str(tmp_path / "missing.toml")]) == 2
    assert "Cannot read the release policy" in one_error_line(capsys)


def test_a_failed_policy_names_each_rule_and_promote_refuses_the_same_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelshield.supply_chain.keys import generate_keypair, write_keypair
    from modelshield.supply_chain.signing import sign_model

    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    out = tmp_path / "report"
    args = ["audit", "--target", "zoo:cancer-gbm", "--checks", "baseline,signature", "--quiet", "--out", str(out)]
    assert main([*args, "--policy", str(policy)]) == 1
    err = capsys.readouterr().err
    assert "policy policy.toml: FAILED, 4 of 5 rules" in err
    for rule in ("fail_on: measured medium", "require_signature:", "near-perfect accuracy: measured 0.9",
                 "membership.leakage tpr_at_0.1%_fpr <= 0.01: measured not measured"):  # fmt: skip
        assert rule in err
    report = json.loads((out / "report.json").read_text())
    assert report["policy"]["passed"] is False
    assert next(r["rule"] for r in report["policy"]["rules"] if not r["passed"]) == "fail_on"
    sarif = json.loads((out / "report.sarif").read_text())
    assert sum(r["ruleId"] == "policy.rule-failed" for r in sarif["runs"][0]["results"]) == 4
    assert "Release policy" in (out / "report.html").read_text()
    assert main([*args]) == 0  # without a policy, --fail-on high decides as before

    # the same model, signed and registered with that report: promote --policy refuses it, rule by rule
    model = Path(report["target"]["model_path"])
    private, public = write_keypair(generate_keypair("ed25519"), tmp_path / "keys")
    from modelshield.supply_chain.keys import load_private_key

    signature = tmp_path / "model.sig"
    sign_model(model, load_private_key(private), signature)
    registry = ["--registry", str(tmp_path / "registry")]
    add = ["registry", "add", "gbm", str(model), "--signature", str(signature), "--audit-report"]
    assert main([*add, str(out / "report.json"), *registry]) == 0
    capsys.readouterr()
    promote = ["registry", "promote", "gbm", "1", "--public-key", str(public), "--fail-on", "critical", *registry]
    assert main([*promote, "--policy", str(policy)]) == 1
    err = capsys.readouterr().err
    assert "refused: gbm v1" in err
    assert "policy rule fail_on failed" in err
    assert "policy rule near-perfect accuracy failed" in err
    assert "policy rule membership.leakage tpr_at_0.1%_fpr <= 0.01 failed" in err
    assert "require_signature" not in err  # the registry verified the signature with the key itself
    lenient = tmp_path / "lenient.toml"
    lenient.write_text('fail_on = "high"\n')
    assert main([*promote, "--policy", str(lenient)]) == 0


def test_promote_refuses_a_bad_policy_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\nfinding = "a.b"\nmetric = "x"\n')
    registry = tmp_path / "registry"
    promote = ["registry", "promote", "m", "1", "--public-key", str(tmp_path / "k.pub"), "--registry", str(registry)]
    assert main([*promote, "--policy", str(policy)]) == 2
    assert not registry.exists()  # refused before the registry is opened
    assert "[[rule]] #1" in one_error_line(capsys)


def _report(path: Path, *findings: Finding, name: str = "zoo:t") -> Path:
    report = Report(
        target=TargetInfo(name, "skops", "00" * 32, 2, (4,), "SklearnClassifier", False),
        findings=findings,
        checks=(CheckRun("membership", CheckStatus.PASSED, 0.1),),
        seed=0,
        budget="quick",
        started_at="2026-01-01T00:00:00+00:00",
        duration_s=1.0,
        versions={"modelshield": "0"},
    )
    path.write_text(report.to_json())
    return path


def _leak(tpr: float, low: float, high: float) -> Finding:
    metrics = {"tpr_at_0.1%_fpr": tpr, "tpr_at_0.1%_fpr_interval": [low, high]}
    return Finding(id="membership.leakage", check="membership", title="t", severity="info", description="d",
                   metrics=metrics)  # fmt: skip


def test_audit_diff_exit_codes_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _report(tmp_path / "old.json", _leak(0.01, 0.0, 0.02))
    same = _report(tmp_path / "same.json", _leak(0.012, 0.0, 0.03))
    worse = _report(tmp_path / "worse.json", _leak(0.2, 0.15, 0.25))
    assert main(["audit", "diff", str(old), str(same)]) == 0
    assert "no regression beyond noise" in capsys.readouterr().out
    assert main(["audit", "diff", str(old), str(worse)]) == 1
    text = capsys.readouterr().out
    assert "worse beyond noise" in text
    assert "1 regression(s) beyond noise" in text
    assert main(["audit", "diff", str(old), str(worse), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["regressed"] is True
    assert data["metrics"][0]["metric"] == "tpr_at_0.1%_fpr"


def test_audit_diff_refuses_what_is_not_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _report(tmp_path / "old.json")
    (tmp_path / "other.json").write_text('{"findings": []}')
    assert main(["audit", "diff", str(old), str(tmp_path / "other.json")]) == 2
    assert "is not a modelshield audit report" in one_error_line(capsys)
    assert main(["audit", "diff", str(old), str(tmp_path / "missing.json")]) == 2
    assert "Cannot read the new report" in one_error_line(capsys)


def test_audit_diff_escapes_report_strings_on_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _report(tmp_path / "old.json", name="zoo:t")
    hostile = Finding(id="baseline.x", check="baseline", title="t", severity=Severity.HIGH, description="d",
                      location="m\x1b[2J.skops")  # fmt: skip
    new = _report(tmp_path / "new.json", hostile, name="evil\x1b]0;owned\x07")
    assert main(["audit", "diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "different models" in out
