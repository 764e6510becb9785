"""Backdoor detection (Neural Cleanse, STRIP) on digits-cnn models with planted backdoors.

The detectors were developed against one backdoor only: a 3x3 white square in the bottom-right corner, target
class 0. The backdoors tested here were fixed before any tuning and differ in shape, position and target:

- ``checkerboard``: a 2x2 checkerboard (bright, dark / dark, bright) in the top-left corner, target 7;
- ``random-patch``: a 3x3 patch of uniform random values (seeded) across the middle of the digit, target 3.

Each poisons 5% of the training records (drawn from the other classes: trigger stamped, label set to the
target) and trains the zoo:digits-cnn network with its recipe (30 epochs, Adam 2e-3, batches of 64). Both
backdoors work (97-98% of triggered test inputs go to the target; clean accuracy 97.8%).

Outcome: both detectors catch the checkerboard. Neither catches the mid-image random patch (marked xfail, with the
figures): STRIP's blend erases it, and Neural Cleanse ranks its target first but below the flagging threshold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

import backdoors
from backdoors import CHECKERBOARD, CLASSES, RANDOM_PATCH, SHAPE, Backdoor, plant
from modelshield.defenses.backdoor import (
    NeuralCleanse,
    NeuralCleanseResult,
    STRIPDetector,
    anomaly_index,
    neural_cleanse,
)
from modelshield.defenses.detectors import measure_detector
from modelshield.defenses.interface import Action, GuardRequest, GuardStage
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models.sklearn_classifier import SklearnClassifier
from modelshield.models.torch_classifier import TorchClassifier
from modelshield.target import Target

one_thread = pytest.fixture(autouse=True, scope="module")(backdoors.one_thread)
digits = backdoors.digits  # zoo:digits-cnn on the CPU, a module fixture


@pytest.fixture(scope="module")
def backdoored(digits: Target) -> Callable[[Backdoor], TorchClassifier]:
    """A factory of models trained with a backdoor, each trained once per module."""
    cache: dict[str, TorchClassifier] = {}

    def build(backdoor: Backdoor) -> TorchClassifier:
        if backdoor.name not in cache:
            cache[backdoor.name] = plant(digits, backdoor)
        return cache[backdoor.name]

    return build


def _halves(digits: Target) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(0).permutation(len(digits.test))
    return order[:225], order[225:]


# -- STRIP ---------------------------------------------------------------------------------------------------------


STRIP_MISSES_MID_IMAGE_PATCH = pytest.mark.xfail(
    strict=True,
    reason="STRIP's blend overwrites a trigger that lies on the digit's strokes: measured detection 0% at fpr=1% "
    "(ROC AUC 0.46; the linear blend: 0%, AUC 0.56), though the backdoor works on 97% of inputs. A known limit.",
)


@pytest.mark.parametrize(
    "backdoor",
    [CHECKERBOARD, pytest.param(RANDOM_PATCH, marks=STRIP_MISSES_MID_IMAGE_PATCH)],
    ids=lambda b: b.name,
)
def test_strip_detects_triggered_inputs(
    digits: Target, backdoored: Callable[[Backdoor], TorchClassifier], backdoor: Backdoor
) -> None:
    """Fit on half the test split at fpr=1%; measure on the other half and its triggered non-target inputs.

    Measured (checkerboard): detection 56.7%, false-positive rate 1.8% (target 1%), ROC AUC 0.978.
    """
    clf = backdoored(backdoor)
    fit_idx, held = _halves(digits)
    x_held, y_held = digits.test.x[held], digits.test.y[held]
    triggered = backdoor.stamp(x_held[y_held != backdoor.target])
    attack_success = float(np.mean(clf.predict(triggered) == backdoor.target))
    assert attack_success > 0.9, "the planted backdoor must work for the test to mean anything"
    detector = STRIPDetector(fpr=0.01, on_alarm=Action.BLOCK).fit(clf, digits.test.x[fit_idx], seed=0)
    m = measure_detector(detector, x_held, triggered)
    assert m.false_positive_rate <= 0.05
    assert m.detection_rate >= 0.5
    assert detector.is_triggered(triggered).mean() == pytest.approx(m.detection_rate)
    decision = detector.inspect(GuardRequest("mallory", triggered[:40]))
    assert decision.stage is GuardStage.INPUT and decision.action is Action.BLOCK
    np.testing.assert_array_equal(decision.flagged, detector.is_triggered(triggered[:40]))
    assert decision.queries == 40 * detector.n_overlays and decision.reasons


def test_strip_null_on_clean_model(digits: Target) -> None:
    """A model without a backdoor: stamped inputs are flagged about as often as clean ones (fpr)."""
    clf = digits.classifier
    fit_idx, held = _halves(digits)
    x_held, y_held = digits.test.x[held], digits.test.y[held]
    detector = STRIPDetector(fpr=0.01).fit(clf, digits.test.x[fit_idx], seed=0)
    for backdoor in (CHECKERBOARD, RANDOM_PATCH):
        m = measure_detector(detector, x_held, backdoor.stamp(x_held[y_held != backdoor.target]))
        assert m.false_positive_rate <= 0.05
        assert m.detection_rate <= 0.1


def test_strip_scores_are_deterministic_and_batch_independent(digits: Target) -> None:
    clf = digits.classifier
    x = digits.test.x[:300]
    a = STRIPDetector(n_overlays=16, fpr=0.1).fit(clf, x, seed=3)
    b = STRIPDetector(n_overlays=16, batch_size=50, fpr=0.1).fit(clf, x, seed=3)  # 3 inputs per call
    assert a.threshold_ == b.threshold_
    np.testing.assert_allclose(a.score(x[:20]), b.score(x[:20]), rtol=1e-6)
    one = np.array([a.score(x[i])[0] for i in range(5)])
    np.testing.assert_allclose(one, a.score(x[:5]), rtol=1e-6)
    assert a.overlays_.shape == (16, *SHAPE)
    assert np.mean(a.clean_scores_ > a.threshold_) <= 0.1
    blends = a.blend(x[:2])
    assert blends.shape == (2, 16, *SHAPE)
    assert blends.min() >= 0.0 and blends.max() <= 1.0
    before = clf.queries
    a.score(x[:4])
    assert clf.queries - before == 4 * 16
    assert "threshold_" in repr(a)
    c = STRIPDetector(n_overlays=16, fpr=0.1).fit(clf, x, seed=4)
    assert not np.array_equal(c.overlays_, a.overlays_)  # the seed picks the overlays


def test_strip_works_on_a_black_box_classifier(digits: Target) -> None:
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # BLAS threads thrash a shared runner: 0.1 s with one thread, 6 s without
        model = LogisticRegression(max_iter=2000).fit(digits.train.flat(), digits.train.y)
    clf = SklearnClassifier(model, input_shape=SHAPE, clip_values=digits.classifier.clip_values)
    fit_idx, held = _halves(digits)
    detector = STRIPDetector(n_overlays=32, fpr=0.05).fit(clf, digits.test.x[fit_idx], seed=0)
    flagged = detector.is_triggered(digits.test.x[held])
    assert flagged.dtype == np.bool_ and flagged.shape == (len(held),)
    assert flagged.mean() <= 0.15


def test_strip_rejects_bad_use(digits: Target) -> None:
    clf = digits.classifier
    with pytest.raises(NotFittedError):
        STRIPDetector().score(digits.test.x[:2])
    with pytest.raises(NotFittedError):
        STRIPDetector().is_triggered(digits.test.x[:2])
    with pytest.raises(NotFittedError):
        STRIPDetector().inspect(GuardRequest("c", digits.test.x[:2]))
    with pytest.raises(InvalidParameterError):
        STRIPDetector(n_overlays=0)
    with pytest.raises(InvalidParameterError):
        STRIPDetector(alpha=0.0)
    with pytest.raises(InvalidParameterError):
        STRIPDetector(beta=1.5)
    with pytest.raises(InvalidParameterError):
        STRIPDetector(batch_size=0)
    with pytest.raises(InvalidParameterError):
        STRIPDetector(fpr=0.0)
    with pytest.raises(InvalidParameterError):
        STRIPDetector(on_alarm=Action.ALLOW)
    with pytest.raises(InvalidInputError, match="n_overlays=64"):
        STRIPDetector().fit(clf, digits.test.x[:65])
    with pytest.raises(InvalidInputError):
        STRIPDetector().fit(clf, digits.test.x.reshape(-1, 64))
    detector = STRIPDetector(n_overlays=8).fit(clf, digits.test.x[:40])
    with pytest.raises(InvalidInputError):
        detector.score(np.zeros((2, 1, 4, 4), np.float32))


# -- Neural Cleanse ------------------------------------------------------------------------------------------------


def _describe(result: NeuralCleanseResult) -> str:
    return (
        f"norms {result.mask_norms.round(2)}, anomaly {result.anomaly_index.round(2)}, "
        f"success {result.attack_success.round(2)}, flagged {result.flagged}"
    )


@pytest.fixture(scope="module")
def cleansed(
    digits: Target, backdoored: Callable[[Backdoor], TorchClassifier]
) -> Callable[[Backdoor], NeuralCleanseResult]:
    """Neural Cleanse (defaults, seed 0, 300 clean test inputs) on each backdoored model, run once per module."""
    cache: dict[str, NeuralCleanseResult] = {}

    def run(backdoor: Backdoor) -> NeuralCleanseResult:
        if backdoor.name not in cache:
            cache[backdoor.name] = neural_cleanse(backdoored(backdoor), digits.test.x[:300], seed=0)
        return cache[backdoor.name]

    return run


NC_MISSES_MID_IMAGE_PATCH = pytest.mark.xfail(
    reason="The target's reversed mask is the smallest (6.2 pixels against a median of 11.0) but the anomaly index "
    "stays below 2: 1.89, 1.65, 1.65 with search seeds 0, 1, 2 (the paper's rule without the MAD floor gives the "
    "same). A 3x3 trigger on an 8x8 image is as large as the natural triggers of the other classes.",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backdoor",
    [CHECKERBOARD, pytest.param(RANDOM_PATCH, marks=NC_MISSES_MID_IMAGE_PATCH)],
    ids=lambda b: b.name,
)
def test_neural_cleanse_flags_the_target_class(
    cleansed: Callable[[Backdoor], NeuralCleanseResult], backdoor: Backdoor
) -> None:
    """Measured (checkerboard): only class 7 flagged, anomaly index 6.3 (4.8 and 6.1 with search seeds 1 and 2)."""
    result = cleansed(backdoor)
    assert result.flagged == (backdoor.target,), _describe(result)
    assert result.backdoor_suspected


@pytest.mark.slow
@pytest.mark.parametrize("backdoor", [CHECKERBOARD, RANDOM_PATCH], ids=lambda b: b.name)
def test_neural_cleanse_ranks_the_target_first(
    cleansed: Callable[[Backdoor], NeuralCleanseResult], backdoor: Backdoor
) -> None:
    """The reversed trigger of the target class is the smallest, and it works on held-out inputs."""
    result = cleansed(backdoor)
    assert int(np.argmin(result.mask_norms)) == backdoor.target, _describe(result)
    assert int(np.argmax(result.anomaly_index)) == backdoor.target, _describe(result)
    assert result.attack_success[backdoor.target] > 0.9, _describe(result)


@pytest.mark.slow
def test_neural_cleanse_flags_nothing_on_a_clean_model(digits: Target) -> None:
    """Measured on ten clean digits-cnn models (seeds 0-9): no class flagged; the largest anomaly index was 1.7."""
    result = neural_cleanse(digits.classifier, digits.test.x[:300], seed=0)
    assert result.flagged == (), _describe(result)
    assert not result.backdoor_suspected


def test_neural_cleanse_result_shape_and_determinism(digits: Target) -> None:
    """A short run (no detection claim): shapes, ranges, the stamp, and the same result for the same seed."""
    clf = digits.classifier
    search = NeuralCleanse(steps=30, check_every=5, batch_size=8, seed=1)
    a = search.run(clf, digits.test.x[:60])
    b = search.run(clf, digits.test.x[:60])
    assert a.masks.shape == (CLASSES, 8, 8) and a.patterns.shape == (CLASSES, *SHAPE)
    assert a.masks.min() >= 0.0 and a.masks.max() <= 1.0
    assert a.patterns.min() >= 0.0 and a.patterns.max() <= 1.0
    assert a.mask_norms.shape == a.attack_success.shape == a.anomaly_index.shape == (CLASSES,)
    assert (a.anomaly_index >= 0).all()
    np.testing.assert_allclose(a.mask_norms, a.masks.reshape(CLASSES, -1).sum(axis=1), rtol=1e-5)
    assert (a.n_optimised, a.n_held_out) == (45, 15) and a.steps <= 30 and a.queries > 0
    np.testing.assert_array_equal(a.mask_norms, b.mask_norms)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.flagged == b.flagged
    stamped = a.stamp(digits.test.x[:3], 4)
    expected = (1 - a.masks[4]) * digits.test.x[:3] + a.masks[4] * a.patterns[4]
    np.testing.assert_allclose(stamped, expected, rtol=1e-6)
    with pytest.raises(InvalidParameterError):
        a.stamp(digits.test.x[:3], CLASSES)
    # the model's parameters get no gradients from the search
    assert all(p.grad is None for p in clf.module.parameters())


def test_neural_cleanse_rejects_bad_input(digits: Target) -> None:
    from sklearn.dummy import DummyClassifier

    x = digits.test.x
    black_box = SklearnClassifier(DummyClassifier().fit(x.reshape(len(x), -1), digits.test.y))
    with pytest.raises(InvalidParameterError, match="TorchClassifier"):
        neural_cleanse(black_box, x.reshape(len(x), -1))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        neural_cleanse(digits.classifier, x.reshape(len(x), -1))
    with pytest.raises(InvalidInputError, match="at least 10"):
        neural_cleanse(digits.classifier, x[:12])
    binary = TorchClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)), n_classes=2,
                             input_shape=SHAPE, device="cpu")  # fmt: skip
    with pytest.raises(InvalidParameterError, match="at least 3 classes"):
        neural_cleanse(binary, x[:50])
    for bad in ({"steps": 0}, {"lr": 0.0}, {"target_success": 0.0}, {"held_out": 1.0}, {"threshold": -1.0},
                {"mad_floor": 1.0}, {"cost_up": 1.0}, {"init_cost": float("nan")}, {"batch_size": 0}):  # fmt: skip
        with pytest.raises(InvalidParameterError):
            NeuralCleanse(**bad)  # type: ignore[arg-type]


def test_anomaly_index() -> None:
    norms = np.array([10.0, 11.0, 9.0, 10.5, 9.5, 3.0, 12.0])
    # median 10, absolute deviations 0, 1, 1, 0.5, 0.5, 7, 2 -> MAD 1 -> spread 1.4826
    expected = np.array([0.0, 0.0, 1.0, 0.0, 0.5, 7.0, 0.0]) / 1.4826
    np.testing.assert_allclose(anomaly_index(norms), expected)
    # a floor of 0.25 x median = 2.5 replaces the smaller MAD-based spread
    np.testing.assert_allclose(anomaly_index(norms, mad_floor=0.25), np.maximum(10.0 - norms, 0) / 2.5)
    # more than half equal: MAD 0, anything below the median is infinitely anomalous
    assert anomaly_index([5.0, 5.0, 5.0, 1.0, 9.0]).tolist() == [0.0, 0.0, 0.0, np.inf, 0.0]
