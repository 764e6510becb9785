"""The membership audit check: severities from vouched-for odds at each boundary on hand-made measurements, the
pooled figures, the report's charts and schema; then measured on a tiny target (fast) and on real data (slow)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier

from modelshield.attacks.metrics import RocSummary, TprAtFpr, roc_summary
from modelshield.audit import AuditOptions, Auditor, CheckRegistry
from modelshield.audit.checks.membership import (
    MEMBERSHIP,
    ODDS_THRESHOLDS,
    ROC_GRID,
    AttackFigures,
    ExposedRecord,
    MembershipMeasurement,
    MembershipSettings,
    odds,
    severity_of,
)
from modelshield.audit.interface import Budget
from modelshield.data import load_bundled, train_test_split
from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding, Report, Severity
from modelshield.models.retrain import SklearnTrainer
from modelshield.models.sklearn_classifier import SklearnClassifier
from modelshield.reporting import load_report_schema, render_html
from modelshield.target import Target
from modelshield.testing.targets import tiny_target

UPPER = 1 / 16  # an FPR upper bound that makes the odds exact in binary floating point


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The caller's choice, made once: tiny models train fastest on one thread (the library leaves it alone)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _summary(low: float, *, auc: float = 0.6, tpr: float | None = None, supported: bool = True) -> RocSummary:
    """A summary whose vouched-for odds are ``low / UPPER`` (at 0.1% FPR; the 1% point vouches for nothing)."""
    first = TprAtFpr(0.001, low if tpr is None else tpr, (low, min(1.0, low + 0.1)), 0.0, UPPER, 1.0, supported)
    second = TprAtFpr(0.01, 0.0, (0.0, 0.05), 0.0, 0.5, 2.0, supported)
    return RocSummary(auc=auc, accuracy=auc, advantage=auc - 0.5, at_fpr=(first, second), n_members=300,
                      n_non_members=300)  # fmt: skip


def _figures(attack: str, summary: RocSummary) -> AttackFigures:
    return AttackFigures(attack, summary, tuple(min(1.0, 2 * f) for f in ROC_GRID))


def _judge(m: MembershipMeasurement) -> Finding:
    (finding,) = MEMBERSHIP.judge(m)
    assert finding.id == "membership.leakage"
    return finding


@pytest.mark.parametrize(
    ("vouched", "severity"),
    [
        (10.0, Severity.HIGH),
        (math.nextafter(10.0, 0.0), Severity.MEDIUM),
        (3.0, Severity.MEDIUM),
        (math.nextafter(3.0, 0.0), Severity.LOW),
        (math.nextafter(1.0, 2.0), Severity.LOW),
        (1.0, Severity.INFO),
        (0.0, Severity.INFO),
    ],
)
def test_severity_follows_the_documented_odds(vouched: float, severity: Severity) -> None:
    assert ODDS_THRESHOLDS == ((10.0, Severity.HIGH), (3.0, Severity.MEDIUM))
    assert severity_of(vouched) is severity


@pytest.mark.parametrize(
    ("low", "severity"),
    [(10 * UPPER, Severity.HIGH), (9.5 * UPPER, Severity.MEDIUM), (3 * UPPER, Severity.MEDIUM),
     (2.5 * UPPER, Severity.LOW), (1.5 * UPPER, Severity.LOW), (UPPER, Severity.INFO)],
)  # fmt: skip
def test_judge_at_each_odds_boundary(low: float, severity: Severity) -> None:
    finding = _judge(MembershipMeasurement(attacks=(_figures("loss", _summary(low)),)))
    assert finding.severity is severity
    assert finding.metrics["vouched_odds"] == round(low / UPPER, 3)
    assert ("No measurable membership leakage" in finding.title) is (severity is Severity.INFO)


def test_odds_are_vouched_for_by_the_data() -> None:
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    assert odds(roc_summary(rng.normal(size=4000), labels)) < 1.0  # no signal, no odds
    assert odds(_summary(5 * UPPER)) == 5.0


def test_the_pooled_figures_decide_when_they_vouch_for_more() -> None:
    own = _figures("loss", _summary(2 * UPPER))
    pooled = _figures("rmia (recipe, 8 models pooled)", _summary(12 * UPPER))
    m = MembershipMeasurement(attacks=(own,), pooled=pooled, reference_models=8)
    assert m.decisive is pooled.summary
    finding = _judge(m)
    assert finding.severity is Severity.HIGH
    assert finding.metrics["recipe"]["attack"] == pooled.attack  # type: ignore[index,call-overload]
    assert "pooled over 8 models" in finding.description
    assert "recipe (pooled)" in finding.charts[0].series
    weaker = _judge(dataclasses.replace(m, pooled=_figures("rmia (recipe)", _summary(0.0))))
    assert weaker.severity is Severity.LOW  # the target's own odds of 2 then decide


def test_the_best_attack_is_the_one_with_the_highest_tpr_at_the_lowest_fpr() -> None:
    attacks = (
        _figures("loss", _summary(0.1, auc=0.9)),
        _figures("lira-online", _summary(0.2, auc=0.6)),
        _figures("label-only", _summary(0.2, auc=0.55)),
    )
    m = MembershipMeasurement(attacks=attacks, exposed=(ExposedRecord(4, 1, 3.25),), queries=600,
                              skipped=("rmia: needs a training recipe for reference models (none given)",))  # fmt: skip
    assert m.best.attack == "lira-online"  # ties on TPR go to the higher AUC
    finding = _judge(m)
    assert finding.metrics["best_attack"] == "lira-online" and finding.metrics["queries"] == 600
    assert set(finding.metrics["attacks"]) == {"loss", "lira-online", "label-only"}  # type: ignore[arg-type]
    assert finding.evidence["most_exposed_records"] == [{"train_index": 4, "label": 1, "score": 3.25}]
    assert "Not run: rmia: needs a training recipe" in finding.description
    roc, bars = finding.charts
    assert roc.scale == "log" and roc.series["chance"] == ROC_GRID and "recipe (pooled)" not in roc.series
    assert bars.x == ("loss", "lira-online", "label-only")
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding


def test_unsupported_low_fpr_figures_are_said_to_be() -> None:
    finding = _judge(MembershipMeasurement(attacks=(_figures("loss", _summary(0.0, supported=False)),)))
    assert "measured at zero false positives and its interval is wide" in finding.description


def test_malformed_measurements_are_refused() -> None:
    with pytest.raises(InvalidParameterError):
        MembershipMeasurement(attacks=())
    with pytest.raises(InvalidParameterError):
        AttackFigures("loss", _summary(0.1), roc=(0.0,))


def test_budgets_select_todays_settings() -> None:
    assert MEMBERSHIP.budgets[Budget.QUICK] == MembershipSettings(reference_models=0, label_only_copies=8)
    assert MEMBERSHIP.budgets[Budget.STANDARD] == MembershipSettings(reference_models=16, label_only_copies=16)
    assert MEMBERSHIP.budgets[Budget.THOROUGH] == MembershipSettings(reference_models=64, label_only_copies=32)


# -- measured --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> Target:
    return tiny_target("tabular", seed=0)


def _audit(target: Target, cache_dir: Path | None = None, budget: str = "quick") -> Report:
    options = AuditOptions(checks=("membership",), budget=budget, seed=0, cache_dir=cache_dir)
    return Auditor(options, registry=CheckRegistry([MEMBERSHIP])).run(target)


def test_a_tiny_target_is_measured_and_reported(tiny: Target, tmp_path: Path) -> None:
    report = _audit(tiny, cache_dir=tmp_path, budget="standard")
    (finding,) = report.findings
    assert finding.owasp is not None and finding.owasp.value == "ML04" and finding.atlas == ("AML.T0024.000",)
    assert finding.metrics["reference_models"] == 16 and "recipe" in finding.metrics
    assert set(finding.metrics["attacks"]) == {  # type: ignore[arg-type]
        "loss", "population", "lira-online", "lira-offline", "rmia", "label-only"
    }  # fmt: skip
    assert report.config["settings"] == {"membership": {"reference_models": 16, "label_only_copies": 16}}
    assert list(tmp_path.glob("reference-*.npz"))  # the reference models are cached
    data = json.loads(json.dumps(report.to_dict()))
    jsonschema.Draft202012Validator(load_report_schema()).validate(data)
    assert Report.from_dict(data).findings[0].charts[0].scale == "log"
    html = render_html(report)
    assert "Membership inference ROC (log-log)" in html and ">0.001<" in html  # log ticks
    again = _audit(tiny, cache_dir=tmp_path, budget="standard")
    assert again.findings[0].to_dict() == finding.to_dict()


def test_a_first_look_trains_no_reference_models_and_says_so(tiny: Target, tmp_path: Path) -> None:
    (finding,) = _audit(tiny, cache_dir=tmp_path).findings  # quick
    assert set(finding.metrics["attacks"]) == {"loss", "population", "label-only"}  # type: ignore[arg-type]
    assert "reference models are trained from the standard budget on" in finding.description
    assert not list(tmp_path.glob("reference-*.npz"))


def test_without_a_recipe_only_the_reference_free_attacks_run(tiny: Target) -> None:
    target = dataclasses.replace(tiny, trainer=None)
    (finding,) = _audit(target, budget="standard").findings
    assert "needs a training recipe" in finding.description
    assert set(finding.metrics["attacks"]) == {"loss", "population", "label-only"}  # type: ignore[arg-type]
    assert finding.metrics["reference_models"] == 0 and "recipe" not in finding.metrics


def test_a_target_without_training_data_is_skipped(tiny: Target) -> None:
    target = dataclasses.replace(tiny, train=None, trainer=None)
    report = _audit(target)
    assert report.findings == () and report.checks[0].status.value == "skipped"


# -- slow: real data -------------------------------------------------------------------------------------------------


def _forest_target(with_trainer: bool) -> Target:
    split = train_test_split(load_bundled("digits"), test_size=0.5, seed=0)
    model = RandomForestClassifier(n_estimators=40, random_state=0).fit(split.train.flat(), split.train.y)
    trainer = SklearnTrainer(RandomForestClassifier(n_estimators=40), n_jobs=2) if with_trainer else None
    clf = SklearnClassifier(model, input_shape=(1, 8, 8))
    return Target("forest", clf, test=split.test, train=split.train, trainer=trainer)


@pytest.mark.slow
def test_check_reports_leakage_of_a_memorising_model(tmp_path: Path) -> None:
    (finding,) = _audit(_forest_target(True), cache_dir=tmp_path, budget="standard").findings
    assert finding.severity >= Severity.MEDIUM, finding.description
    assert finding.metrics["reference_models"] == 16 and "recipe" in finding.metrics


@pytest.mark.slow
def test_overfit_reference_target_leaks(zoo_cache: Path, tmp_path: Path) -> None:
    from modelshield.zoo import load_target

    target = load_target("zoo:cancer-mlp-overfit", cache_dir=zoo_cache, device="cpu")
    (finding,) = _audit(target, cache_dir=tmp_path, budget="standard").findings
    recipe = finding.metrics["recipe"]
    assert recipe["tpr_at_0.1%_fpr_supported"]  # type: ignore[index,call-overload]
    assert recipe["tpr_at_0.1%_fpr_interval"][0] > 0.001  # type: ignore[index,call-overload]
    assert finding.severity >= Severity.LOW
