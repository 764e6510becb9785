"""Black-box evasion: the Square attack and HopSkipJump against scikit-learn models and a zoo target."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.evasion.blackbox import hop_skip_jump, square_attack
from modelshield.attacks.evasion.interface import Constraints, EvasionResult, Norm
from modelshield.data.interface import Feature, FeatureKind, Schema
from modelshield.errors import InvalidParameterError
from modelshield.models import SklearnClassifier
from modelshield.models.interface import Bounds, Classifier, FloatArray
from modelshield.zoo import load_target

TOL = 1e-5  # float32 rounding of x ± ε


class Standardised(Classifier):
    """A raw-feature estimator seen in standardised units, so one ε means the same share of every feature's spread."""

    def __init__(self, estimator: object, mean: NDArray[np.float32], std: NDArray[np.float32], bounds: Bounds) -> None:
        low = (np.asarray(bounds.low) - mean) / std
        high = (np.asarray(bounds.high) - mean) / std
        super().__init__(n_classes=2, input_shape=mean.shape, clip_values=Bounds(low, high))
        self.estimator, self.mean, self.std = estimator, mean, std

    def _predict_proba(self, x: FloatArray) -> NDArray[np.floating]:
        return np.asarray(self.estimator.predict_proba(x * self.std + self.mean))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def cancer_gbm(zoo_cache: Path) -> tuple[Standardised, FloatArray, NDArray[np.int64]]:
    """zoo:cancer-gbm on its test split, in units of the training features' standard deviation."""
    target = load_target("zoo:cancer-gbm", cache_dir=zoo_cache)
    raw = target.classifier
    assert isinstance(raw, SklearnClassifier) and raw.clip_values is not None
    train = target.train.x
    mean, std = train.mean(axis=0), train.std(axis=0)
    clf = Standardised(raw.estimator, mean, std, raw.clip_values)
    x = ((target.test.x - mean) / std).astype(np.float32)
    return clf, x, target.test.y


@pytest.fixture(scope="module")
def cancer_logreg() -> tuple[SklearnClassifier, FloatArray, NDArray[np.int64]]:
    """Logistic regression on standardised breast-cancer records; the held-out half to attack."""
    x, y = load_breast_cancer(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:400], order[400:500]
    model = LogisticRegression(max_iter=1000).fit(x[train], y[train])
    clf = SklearnClassifier(model, clip_values=Bounds(x.min(0), x.max(0)))
    return clf, x[test], y[test].astype(np.int64)


@pytest.fixture(scope="module")
def digits_image() -> tuple[SklearnClassifier, FloatArray, NDArray[np.int64]]:
    """Logistic regression on 8×8 digits in [0, 1], seen as 1×8×8 images."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    model = LogisticRegression(max_iter=500, tol=1e-3).fit(x[:600], y[:600])
    clf = SklearnClassifier(model, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))
    return clf, x[1200:1300].reshape(-1, 1, 8, 8), y[1200:1300].astype(np.int64)


def _assert_valid(result: EvasionResult, x: FloatArray, constraints: Constraints, eps: float | None) -> None:
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == np.float32
    assert np.all(result.x_adv >= constraints.low - TOL) and np.all(result.x_adv <= constraints.high + TOL)
    if eps is not None:
        assert result.distances.max() <= eps + TOL
        assert np.all(np.abs(result.x_adv - x) <= eps + TOL)
    assert np.array_equal(result.x_adv[:, ~constraints.mutable], x[:, ~constraints.mutable])
    ints = result.x_adv[:, constraints.integer]
    assert np.array_equal(ints, np.round(ints))


# -- Square attack -------------------------------------------------------------------------------------------------


def test_square_lowers_accuracy_of_zoo_gbm(cancer_gbm: tuple[Standardised, FloatArray, NDArray[np.int64]]) -> None:
    # Measured: clean accuracy 0.951; robust accuracy 0.56 at ε = 0.5 std (200 or 1000 queries), 0.88 at ε = 0.1 std,
    # 0.10 at ε = 1 std. HopSkipJump (L∞) puts the median distance to this GBM's boundary near 0.7 std.
    clf, x, y = cancer_gbm
    before = clf.queries
    result = square_attack(clf, x, y, eps=0.5, max_queries=200)
    spent = clf.queries - before
    assert spent == result.queries + len(x)  # the attack's queries plus one re-check per sample
    assert result.queries <= 200 * len(x)
    assert result.clean_accuracy > 0.9
    assert result.robust_accuracy <= result.clean_accuracy - 0.25
    _assert_valid(result, x, Constraints.from_bounds(clf.clip_values, clf.input_shape), 0.5)
    assert result.eps == 0.5 and result.norm is Norm.LINF and result.attack.startswith("square(")


def test_square_on_images_stays_in_ball_and_range(
    digits_image: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]],
) -> None:
    clf, x, y = digits_image
    result = square_attack(clf, x, y, eps=0.1, max_queries=150, seed=3)
    _assert_valid(result, x, Constraints.from_bounds(clf.clip_values, clf.input_shape), 0.1)
    assert result.robust_accuracy < result.clean_accuracy - 0.1
    # from the vertical-stripe start on, every pixel of an attacked input sits on a vertex of the ball, or on the
    # edge of the valid range
    adv, ref = result.x_adv[result.clean_correct], x[result.clean_correct]
    assert np.all((np.abs(adv - ref) > 0.1 - TOL) | (adv <= TOL) | (adv >= 1 - TOL))


@pytest.mark.parametrize("max_queries", [1, 2, 3, 17])
def test_square_never_exceeds_the_budget(
    cancer_logreg: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]], max_queries: int
) -> None:
    clf, x, y = cancer_logreg
    for batch in (x[:1], x[:20]):
        n = len(batch)
        before = clf.queries
        result = square_attack(clf, batch, y[:n], eps=0.01, max_queries=max_queries)
        assert result.queries <= n * max_queries
        assert clf.queries - before == result.queries + n
        if n == 1 and result.clean_correct[0] and not result.success[0]:
            assert result.queries == max_queries  # an unfooled sample uses its whole budget


def test_square_leaves_misclassified_inputs_alone(
    cancer_logreg: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]],
) -> None:
    clf, x, y = cancer_logreg
    wrong = 1 - y[:5]
    result = square_attack(clf, x[:5], wrong, eps=0.3, max_queries=50)
    unchanged = ~result.clean_correct
    assert unchanged.any()
    np.testing.assert_array_equal(result.x_adv[unchanged], x[:5][unchanged])
    assert result.success[unchanged].all()


@pytest.mark.parametrize("loss", ["margin", "ce"])
def test_square_is_deterministic(
    cancer_logreg: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]], loss: str
) -> None:
    clf, x, y = cancer_logreg
    a = square_attack(clf, x[:30], y[:30], eps=0.3, max_queries=60, seed=7, loss=loss)  # type: ignore[arg-type]
    b = square_attack(clf, x[:30], y[:30], eps=0.3, max_queries=60, seed=7, loss=loss)  # type: ignore[arg-type]
    c = square_attack(clf, x[:30], y[:30], eps=0.3, max_queries=60, seed=8, loss=loss)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    assert a.queries == b.queries
    assert not np.array_equal(a.x_adv, c.x_adv)


# -- constraints (tabular schema) --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema_model() -> tuple[SklearnClassifier, FloatArray, NDArray[np.int64], Constraints]:
    """Six features: an immutable integer, a mutable integer, a binary flag, three bounded continuous ones."""
    schema = Schema(
        features=(
            Feature("age", kind=FeatureKind.INTEGER, low=18, high=90, immutable=True),
            Feature("accounts", kind=FeatureKind.INTEGER, low=0, high=10),
            Feature("flag", kind=FeatureKind.BINARY),
            Feature("a", low=-3.0, high=3.0),
            Feature("b", low=-3.0, high=3.0),
            Feature("c", low=-3.0, high=3.0),
        ),
        input_shape=(6,),
    )
    rng = np.random.default_rng(1)
    n = 400
    x = np.column_stack(
        [
            rng.integers(18, 91, n),
            rng.integers(0, 11, n),
            rng.integers(0, 2, n),
            np.clip(rng.normal(size=(n, 3)), -3, 3),
        ]
    ).astype(np.float32)
    score = 0.05 * (x[:, 0] - 50) + 0.4 * (x[:, 1] - 5) + x[:, 2] + x[:, 3] - x[:, 4] + 0.5 * x[:, 5]
    y = (score + rng.normal(scale=0.5, size=n) > 0).astype(np.int64)
    model = LogisticRegression(max_iter=2000).fit(x[:300], y[:300])
    clf = SklearnClassifier(model)
    return clf, x[300:], y[300:], Constraints.from_schema(schema)


def test_square_respects_schema_constraints(
    schema_model: tuple[SklearnClassifier, FloatArray, NDArray[np.int64], Constraints],
) -> None:
    clf, x, y, cons = schema_model
    result = square_attack(clf, x, y, eps=1.5, max_queries=100, constraints=cons)
    _assert_valid(result, x, cons, 1.5)
    assert result.robust_accuracy < result.clean_accuracy
    assert np.any(result.x_adv[:, 1] != x[:, 1])  # the mutable integer feature is used, in whole steps


def test_square_below_one_whole_step_leaves_integers_alone(
    schema_model: tuple[SklearnClassifier, FloatArray, NDArray[np.int64], Constraints],
) -> None:
    clf, x, y, cons = schema_model
    result = square_attack(clf, x, y, eps=0.4, max_queries=40, constraints=cons)
    _assert_valid(result, x, cons, 0.4)
    np.testing.assert_array_equal(result.x_adv[:, :3], x[:, :3])


def test_hop_skip_jump_respects_schema_constraints(
    schema_model: tuple[SklearnClassifier, FloatArray, NDArray[np.int64], Constraints],
) -> None:
    clf, x, y, cons = schema_model
    result = hop_skip_jump(clf, x, y, max_queries=300, constraints=cons)
    _assert_valid(result, x, cons, None)
    assert result.success_rate > 0.9


# -- HopSkipJump ---------------------------------------------------------------------------------------------------


def test_hop_skip_jump_finds_small_adversarials(
    cancer_logreg: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]],
) -> None:
    # A linear model's smallest L2 change (the box ignored) is |w·x + b| / ‖w‖: a lower bound on any success.
    # Measured: success 1.0; median L2 distance 2.80 (50 queries), 2.16 (1000 queries); the exact median is 2.07.
    clf, x, y = cancer_logreg
    model = clf.estimator
    exact = np.abs(x @ model.coef_[0] + model.intercept_[0]) / np.linalg.norm(model.coef_[0])
    medians = []
    for budget in (50, 1000):
        before = clf.queries
        result = hop_skip_jump(clf, x, y, max_queries=budget)
        assert result.queries <= budget * len(x)
        assert clf.queries - before == result.queries + len(x)
        assert result.eps is None and result.norm is Norm.L2
        assert result.success_rate >= 0.95
        _assert_valid(result, x, Constraints.from_bounds(clf.clip_values, clf.input_shape), None)
        found = result.clean_correct & result.success
        assert np.all(result.distances[found] >= exact[found] - 1e-4)
        medians.append(float(np.median(result.distances[found])))
    assert medians[1] < 0.9 * medians[0]
    assert medians[1] < 1.1 * float(np.median(exact[clf.predict(x) == y]))


def test_hop_skip_jump_linf_and_determinism(
    digits_image: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]],
) -> None:
    clf, x, y = digits_image
    a = hop_skip_jump(clf, x[:30], y[:30], norm="linf", max_queries=300, seed=1)
    b = hop_skip_jump(clf, x[:30], y[:30], norm=Norm.LINF, max_queries=300, seed=1)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    assert a.queries == b.queries <= 300 * 30
    assert a.success_rate >= 0.9
    assert a.norm is Norm.LINF
    _assert_valid(a, x[:30], Constraints.from_bounds(clf.clip_values, clf.input_shape), None)


@pytest.mark.parametrize("max_queries", [1, 2, 5, 40])
def test_hop_skip_jump_never_exceeds_the_budget(
    cancer_logreg: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]], max_queries: int
) -> None:
    clf, x, y = cancer_logreg
    before = clf.queries
    result = hop_skip_jump(clf, x[:1], y[:1], max_queries=max_queries)
    assert result.queries <= max_queries
    assert clf.queries - before == result.queries + 1
    before = clf.queries
    result = hop_skip_jump(clf, x[:25], y[:25], max_queries=max_queries)
    assert result.queries <= 25 * max_queries
    assert clf.queries - before == result.queries + 25


# -- parameters ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"eps": 0.0},
        {"eps": -0.1},
        {"eps": math.nan},
        {"eps": math.inf},
        {"eps": 0.1, "max_queries": 0},
        {"eps": 0.1, "max_queries": 2.5},
        {"eps": 0.1, "p_init": 0.0},
        {"eps": 0.1, "p_init": 1.5},
        {"eps": 0.1, "loss": "hinge"},
    ],
)
def test_square_rejects_bad_parameters(
    cancer_logreg: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]], kwargs: dict[str, object]
) -> None:
    clf, x, y = cancer_logreg
    before = clf.queries
    with pytest.raises(InvalidParameterError) as info:
        square_attack(clf, x[:3], y[:3], **kwargs)  # type: ignore[arg-type]
    assert info.value.remedy != InvalidParameterError.default_remedy
    assert clf.queries == before  # nothing was asked


@pytest.mark.parametrize("attack", ["square", "hsj"])
def test_mismatched_shapes_are_rejected(
    cancer_logreg: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]], attack: str
) -> None:
    clf, x, y = cancer_logreg

    def run(xx: FloatArray, yy: NDArray[np.int64], **kw: object) -> EvasionResult:
        if attack == "square":
            return square_attack(clf, xx, yy, eps=0.1, **kw)  # type: ignore[arg-type]
        return hop_skip_jump(clf, xx, yy, **kw)  # type: ignore[arg-type]

    for bad_x, bad_y, kw in (
        (x[:4, :10], y[:4], {}),  # too few features
        (x[:4], y[:3], {}),  # labels not aligned
        (x[:4], y[:4].astype(np.float64), {}),  # labels not class indices
        (x[:4], y[:4] + 5, {}),  # labels out of range
        (x[:4], y[:4], {"constraints": Constraints.from_bounds(None, (29,))}),  # constraints for another model
        (x[:4], y[:4], {"max_queries": 0}),
    ):
        with pytest.raises(InvalidParameterError) as info:
            run(bad_x, bad_y, **kw)
        assert info.value.remedy != InvalidParameterError.default_remedy


def test_hop_skip_jump_rejects_unknown_norm(
    cancer_logreg: tuple[SklearnClassifier, FloatArray, NDArray[np.int64]],
) -> None:
    clf, x, y = cancer_logreg
    with pytest.raises(InvalidParameterError, match="norm"):
        hop_skip_jump(clf, x[:2], y[:2], norm="l1")
