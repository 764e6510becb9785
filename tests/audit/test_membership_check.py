"""The membership audit check: findings, severities from vouched-for odds, the log-log ROC, the report schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from modelshield.attacks.metrics import roc_summary
from modelshield.audit import AuditOptions, Auditor
from modelshield.audit.checks.membership import ODDS_THRESHOLDS, odds, severity_of
from modelshield.data import load_bundled, train_test_split
from modelshield.findings import Report, Severity
from modelshield.models.retrain import SklearnTrainer
from modelshield.models.sklearn_classifier import SklearnClassifier
from modelshield.reporting import load_report_schema, render_html
from modelshield.target import Target


def _forest_target(with_trainer: bool) -> Target:
    split = train_test_split(load_bundled("digits"), test_size=0.5, seed=0)
    model = RandomForestClassifier(n_estimators=40, random_state=0).fit(split.train.flat(), split.train.y)
    trainer = SklearnTrainer(RandomForestClassifier(n_estimators=40), n_jobs=2) if with_trainer else None
    clf = SklearnClassifier(model, input_shape=(1, 8, 8))
    return Target("forest", clf, test=split.test, train=split.train, trainer=trainer)


def test_severity_follows_the_documented_odds() -> None:
    assert severity_of(ODDS_THRESHOLDS[0][0]) is Severity.HIGH
    assert severity_of(3.0) is Severity.MEDIUM
    assert severity_of(1.5) is Severity.LOW
    assert severity_of(1.0) is Severity.INFO
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    assert odds(roc_summary(rng.normal(size=4000), labels)) < 1.0  # no signal, no odds


def test_check_reports_leakage_of_a_memorising_model(tmp_path: Path) -> None:
    report = Auditor(AuditOptions(checks=("membership",), seed=0, cache_dir=tmp_path)).run(_forest_target(True))
    (finding,) = report.findings
    assert finding.id == "membership.leakage" and finding.owasp.value == "ML04"
    assert finding.atlas == ("AML.T0024.000",)
    assert finding.severity >= Severity.MEDIUM, finding.description
    assert finding.metrics["reference_models"] == 8
    assert "recipe" in finding.metrics
    roc = finding.charts[0]
    assert roc.scale == "log" and "chance" in roc.series
    data = json.loads(json.dumps(report.to_dict()))
    jsonschema.Draft202012Validator(load_report_schema()).validate(data)
    assert Report.from_dict(data).findings[0].charts[0].scale == "log"
    html = render_html(report)
    assert "Membership inference ROC (log-log)" in html and ">0.001<" in html  # log ticks


def test_check_without_a_recipe_runs_the_reference_free_attacks() -> None:
    report = Auditor(AuditOptions(checks=("membership",), seed=0)).run(_forest_target(False))
    (finding,) = report.findings
    assert "needs a training recipe" in finding.description
    assert set(finding.metrics["attacks"]) == {"loss", "population", "label-only"}  # type: ignore[arg-type]


@pytest.mark.slow
def test_overfit_reference_target_leaks(zoo_cache: Path, tmp_path: Path) -> None:
    from modelshield.zoo import load_target

    target = load_target("zoo:cancer-mlp-overfit", cache_dir=zoo_cache, device="cpu")
    options = AuditOptions(checks=("membership",), budget="standard", seed=0, cache_dir=tmp_path)
    (finding,) = Auditor(options).run(target).findings
    recipe = finding.metrics["recipe"]
    assert recipe["tpr_at_0.1%_fpr_supported"]  # type: ignore[index]
    assert recipe["tpr_at_0.1%_fpr_interval"][0] > 0.001  # type: ignore[index]
    assert finding.severity >= Severity.LOW
