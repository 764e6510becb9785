"""Membership inference: each attack against its null, and against a model that memorises its training data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.membership import (
    MembershipResult,
    assess_membership,
    log_confidence,
    recipe_leakage,
    reference_models,
)
from modelshield.data import load_bundled, train_test_split
from modelshield.data.interface import Dataset
from modelshield.errors import InvalidParameterError
from modelshield.models.retrain import SklearnTrainer
from modelshield.models.sklearn_classifier import SklearnClassifier
from modelshield.testing.targets import tiny_datasets

ALL = ("loss", "population", "lira-online", "lira-offline", "rmia", "rmia-offline", "label-only")


def test_log_confidence_keeps_precision_where_probabilities_round_to_one() -> None:
    logits = np.array([[40.0, 0.0, -5.0], [0.0, 0.0, 0.0]])
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    phi = log_confidence(logp, np.array([0, 2]))
    assert phi[0] == pytest.approx(40.0 - np.log1p(np.exp(-5.0)), abs=1e-9)  # float32 probabilities give inf
    assert phi[1] == pytest.approx(np.log(1 / 3) - np.log(2 / 3))


def _split(name: str, seed: int) -> tuple[Dataset, Dataset]:
    split = train_test_split(load_bundled(name), test_size=0.5, seed=seed)
    return split.train, split.test


def _check_null(result: MembershipResult) -> None:
    s = result.summary
    assert 0.44 < s.auc < 0.56, (result.attack, s.auc)
    point = s.tpr_at(0.01)
    # no significant leakage at 1% FPR: the TPR's lower bound does not exceed the FPR's upper bound
    assert point.tpr_interval[0] <= point.fpr_upper, (result.attack, point)


def test_every_attack_stays_at_chance_on_records_the_model_never_saw(tmp_path: Path) -> None:
    seen, unseen = _split("digits", seed=1)
    model = RandomForestClassifier(n_estimators=40, random_state=0).fit(seen.flat(), seen.y)  # memorises `seen`
    # "members" and "non-members" both come from records the target never trained on
    half = len(unseen) // 2
    fake_members, non_members = unseen.subset(np.arange(half)), unseen.subset(np.arange(half, len(unseen)))
    trainer = SklearnTrainer(RandomForestClassifier(n_estimators=40), n_jobs=2)
    assessment = assess_membership(
        SklearnClassifier(model, input_shape=(1, 8, 8)),
        fake_members,
        non_members,
        trainer=trainer,
        n_reference=8,
        attacks=ALL,
        label_only_copies=4,
        seed=0,
        cache_dir=tmp_path,
    )
    assert {r.attack for r in assessment.results} == set(ALL)
    for result in assessment.results:
        _check_null(result)


def test_attacks_find_a_model_that_memorises(tmp_path: Path) -> None:
    members, non_members = _split("digits", seed=2)
    model = RandomForestClassifier(n_estimators=40, random_state=0).fit(members.flat(), members.y)
    trainer = SklearnTrainer(RandomForestClassifier(n_estimators=40), n_jobs=2)
    assessment = assess_membership(
        SklearnClassifier(model, input_shape=(1, 8, 8)),
        members,
        non_members,
        trainer=trainer,
        n_reference=8,
        attacks=("loss", "lira-online", "lira-offline", "rmia"),
        seed=0,
        cache_dir=tmp_path,
    )
    for attack in ("lira-online", "lira-offline", "rmia"):
        s = assessment.get(attack).summary
        assert s.auc > 0.6, (attack, s.auc)
        assert s.tpr_at(0.01).tpr_interval[0] > 0.01, (attack, s.tpr_at(0.01))  # significantly above chance
    # reference-model attacks beat the reference-free loss attack at low FPR
    assert assessment.get("lira-online").summary.tpr_at(0.01).tpr > assessment.get("loss").summary.tpr_at(0.01).tpr
    assert assessment.best.attack != "loss"
    exposed = assessment.best.most_exposed(5)
    assert assessment.best.is_member[exposed].all()
    pooled = recipe_leakage(assessment.reference, np.r_[members.y, non_members.y], attack="rmia")  # type: ignore[arg-type]
    assert pooled.summary.n_non_members > 3 * len(non_members)
    assert pooled.summary.tpr_at(0.01).tpr_interval[0] > 0.01


def test_reference_models_are_cached_by_content(tmp_path: Path) -> None:
    members, non_members = tiny_datasets("tabular", seed=0)
    x = np.r_[members.x, non_members.x]
    y = np.r_[members.y, non_members.y]
    trainer = SklearnTrainer(LogisticRegression(max_iter=300), n_jobs=1)
    kwargs = {"n_models": 3, "train_size": len(members), "n_classes": 3, "cache_dir": tmp_path}
    first = reference_models(trainer, x, y, **kwargs)  # type: ignore[arg-type]
    again = reference_models(trainer, x, y, **kwargs)  # type: ignore[arg-type]
    assert first.seconds > 0 and again.seconds == 0.0
    np.testing.assert_array_equal(first.log_proba, again.log_proba)
    np.testing.assert_array_equal(first.masks, again.masks)
    (cached,) = tmp_path.glob("reference-*.npz")
    cached.write_bytes(b"not an npz")  # a damaged cache entry is retrained, not trusted
    rebuilt = reference_models(trainer, x, y, **kwargs)  # type: ignore[arg-type]
    assert rebuilt.seconds > 0
    np.testing.assert_allclose(rebuilt.log_proba, first.log_proba)
    other = reference_models(trainer, x, y[::-1].copy(), **kwargs)  # type: ignore[arg-type]
    assert other.seconds > 0  # other labels, other models


def test_label_only_attack_counts_its_queries() -> None:
    members, non_members = _split("breast_cancer", seed=0)
    clf = SklearnClassifier(LogisticRegression(max_iter=2000).fit(members.flat(), members.y))
    before = clf.queries
    result = assess_membership(clf, members, non_members, attacks=("label-only",), label_only_copies=2).results[0]
    n = len(members) + len(non_members)
    assert result.queries == n * (1 + 2 * 4)
    assert clf.queries - before == result.queries  # no score pass when only labels are attacked


def test_results_report_the_field_s_metrics() -> None:
    members, non_members = _split("breast_cancer", seed=0)
    clf = SklearnClassifier(LogisticRegression(max_iter=2000).fit(members.flat(), members.y))
    (result,) = assess_membership(clf, members, non_members, attacks=("loss",)).results
    metrics = result.metrics()
    assert metrics == {
        "auc": result.summary.auc,
        "advantage": result.summary.advantage,
        "accuracy": result.summary.accuracy,
        "tpr_at_0.1%_fpr": result.summary.tpr_at(0.001).tpr,
        "tpr_at_1.0%_fpr": result.summary.tpr_at(0.01).tpr,
    }
    assert result.queries == len(members) + len(non_members)


def test_reference_attacks_without_a_recipe_are_skipped_with_a_reason() -> None:
    members, non_members = _split("breast_cancer", seed=0)
    clf = SklearnClassifier(LogisticRegression(max_iter=2000).fit(members.flat(), members.y))
    assessment = assess_membership(clf, members, non_members, attacks=("loss", "lira-online"))
    assert [r.attack for r in assessment.results] == ["loss"]
    assert "needs a training recipe" in assessment.skipped[0]
    with pytest.raises(InvalidParameterError):
        assess_membership(clf, members, non_members, attacks=("lira-online",))
    with pytest.raises(InvalidParameterError, match="Unknown membership attacks"):
        assess_membership(clf, members, non_members, attacks=("nope",))
