"""Privacy-attack metrics: ROC, TPR at low FPR with exact intervals, ε lower bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from modelshield.attacks.metrics import clopper_pearson, epsilon_lower_bound, roc_curve, roc_summary, tpr_key
from modelshield.errors import InvalidInputError, InvalidParameterError


def test_auc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(3000) < 0.4
    scores = np.round(rng.normal(labels * 0.7, 1.0), 1)  # many ties
    assert roc_summary(scores, labels).auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_constant_scores_carry_no_information() -> None:
    labels = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    s = roc_summary(np.zeros(1000), labels)
    assert s.auc == pytest.approx(0.5)
    assert s.advantage == pytest.approx(0.0)
    assert all(p.tpr == 0.0 for p in s.at_fpr)  # a tie cannot be split to fake a low-FPR point


def test_tpr_at_fpr_takes_the_strictest_qualifying_threshold() -> None:
    scores = np.r_[np.arange(10, 20), np.arange(0, 1000) / 100.0]  # 10 members above every non-member
    labels = np.r_[np.ones(10, bool), np.zeros(1000, bool)]
    point = roc_summary(scores, labels).tpr_at(0.001)
    assert point.tpr == 1.0 and point.fpr <= 0.001
    fpr, tpr, thresholds = roc_curve(scores, labels)
    assert fpr[0] == 0 and tpr[0] == 0 and np.isinf(thresholds[0])
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()


def test_a_summary_s_metrics_name_each_low_fpr() -> None:
    scores = np.r_[np.arange(10, 20), np.arange(0, 1000) / 100.0]
    labels = np.r_[np.ones(10, bool), np.zeros(1000, bool)]
    s = roc_summary(scores, labels, fprs=(0.001, 0.01, 0.1))
    assert [tpr_key(f) for f in (0.001, 0.01, 0.1)] == ["tpr_at_0.1%_fpr", "tpr_at_1.0%_fpr", "tpr_at_10.0%_fpr"]
    assert s.metrics() == {
        "auc": s.auc,
        "advantage": s.advantage,
        "accuracy": s.accuracy,
        "tpr_at_0.1%_fpr": 1.0,
        "tpr_at_1.0%_fpr": 1.0,
        "tpr_at_10.0%_fpr": 1.0,
    }


def test_clopper_pearson_known_values() -> None:
    assert clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** (1 / 10))
    low, high = clopper_pearson(5, 10)
    assert low == pytest.approx(0.187086, abs=1e-5) and high == pytest.approx(0.812914, abs=1e-5)
    with pytest.raises(InvalidParameterError):
        clopper_pearson(11, 10)


def test_support_says_when_the_data_cannot_vouch_for_a_low_fpr() -> None:
    rng = np.random.default_rng(0)
    small = roc_summary(rng.normal(size=600), np.r_[np.ones(300, bool), np.zeros(300, bool)])
    assert not small.tpr_at(0.001).supported and not small.tpr_at(0.01).supported
    assert small.min_supported_fpr == pytest.approx(clopper_pearson(0, 300)[1])
    large = roc_summary(rng.normal(size=8000), np.r_[np.ones(4000, bool), np.zeros(4000, bool)])
    assert large.tpr_at(0.001).supported


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        roc_summary([1.0, 2.0], [1, 1])  # no non-members
    with pytest.raises(InvalidInputError):
        roc_summary([1.0, math.nan], [1, 0])
    with pytest.raises(InvalidInputError):
        roc_summary([1.0, 2.0, 3.0], [1, 0])
    with pytest.raises(InvalidParameterError):
        roc_summary([1.0, 2.0], [1, 0], fprs=(0.0,))


def test_epsilon_lower_bound() -> None:
    assert epsilon_lower_bound(10, 1000, 10, 1000, delta=1e-5) == 0.0  # TPR = FPR proves nothing
    strong = epsilon_lower_bound(900, 1000, 10, 1000, delta=1e-5)
    weak = epsilon_lower_bound(300, 1000, 10, 1000, delta=1e-5)
    assert strong > weak > 0
    assert strong < math.log(0.9 / 0.01)  # the bound is conservative: below the point estimate
