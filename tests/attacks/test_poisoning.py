"""Poisoning: triggers stamp exactly their pixels or features, attacks alter exactly the records they may, poison
fractions nest, and susceptibility curves measure success against a clean baseline.

The fast tests run on the bundled data sets and a logistic regression; the clean-label backdoor uses the zoo
digits-cnn as its surrogate. The slow test is the acceptance figure of BadNets on zoo:digits-cnn trained with its
own recipe: 5% of poison makes the backdoor work (success >= 0.9) at no visible cost in clean accuracy.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from modelshield.attacks.metrics import clopper_pearson
from modelshield.attacks.poisoning import (
    Backdoor,
    BlendTrigger,
    CleanLabelBackdoor,
    FeatureTrigger,
    LabelFlip,
    PatchTrigger,
    SuccessInputs,
    SusceptibilityCurve,
    blend_trigger,
    feature_trigger,
    patch_trigger,
    poison,
    susceptibility,
)
from modelshield.data import Dataset, DatasetSplit, load_breast_cancer, load_digits, train_test_split
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.retrain import SklearnTrainer
from modelshield.target import Target
from modelshield.zoo import load_target

SHAPE = (1, 8, 8)
TOL = 1e-6  # float32 rounding of x + delta


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small models and k-means: one thread is faster and does not thrash a shared 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> DatasetSplit:
    return train_test_split(load_digits(), test_size=0.25, seed=0)


@pytest.fixture(scope="module")
def cancer() -> DatasetSplit:
    return train_test_split(load_breast_cancer(), test_size=0.25, seed=0)


@pytest.fixture(scope="module")
def digits_cnn(zoo_cache: Path) -> Target:
    return load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")


def _images(n: int = 5, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> NDArray[np.float32]:
    """Random images strictly inside (0.2, 0.8), so that any stamped 0 or 1 is visible."""
    return np.random.default_rng(seed).uniform(0.2, 0.8, size=(n, *shape)).astype(np.float32)


# -- patch triggers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "corner"),
    [
        ("top-left", (0, 0)),
        ("top-right", (0, 5)),
        ("bottom-left", (5, 0)),
        ("bottom-right", (5, 5)),
        ("center", (2, 2)),
        ((1, 4), (1, 4)),
    ],
)
def test_square_patch_stamps_its_block_and_nothing_else(
    position: str | tuple[int, int], corner: tuple[int, int]
) -> None:
    trigger = patch_trigger(SHAPE, shape="square", size=3, position=position)  # type: ignore[arg-type]
    x = _images()
    out = trigger.apply(x)
    block = np.zeros(SHAPE[1:], bool)
    block[corner[0] : corner[0] + 3, corner[1] : corner[1] + 3] = True
    assert (trigger.row, trigger.col) == corner
    assert out.dtype == np.float32 and out.shape == x.shape
    assert np.all(out[:, :, block] == 1.0)
    assert np.array_equal(out[:, :, ~block], x[:, :, ~block])
    assert np.all((x > 0.2) & (x < 0.8))  # the input itself is left alone


@pytest.mark.parametrize(
    ("shape", "on"),
    [
        ("square", [[1, 1, 1], [1, 1, 1], [1, 1, 1]]),
        ("checkerboard", [[1, 0, 1], [0, 1, 0], [1, 0, 1]]),
        ("cross", [[0, 1, 0], [1, 1, 1], [0, 1, 0]]),
    ],
)
def test_patch_shapes_draw_high_and_low(shape: str, on: list[list[int]]) -> None:
    trigger = patch_trigger(SHAPE, shape=shape, size=3, position="top-left", low=-1.0, high=2.0)  # type: ignore[arg-type]
    expected = np.where(np.array(on, bool), 2.0, -1.0)
    assert np.array_equal(trigger.pattern[0], expected)
    assert np.array_equal(trigger.apply(_images())[:, 0, :3, :3], np.broadcast_to(expected, (5, 3, 3)))
    assert trigger.describe() == f"{shape} 3x3 patch at row 0, column 0"


def test_random_patch_is_seeded_per_channel_and_two_valued() -> None:
    shape = (3, 8, 8)
    a = patch_trigger(shape, shape="random", size=4, position="center", seed=1)
    b = patch_trigger(shape, shape="random", size=4, position="center", seed=1)
    c = patch_trigger(shape, shape="random", size=4, position="center", seed=2)
    assert a.pattern.shape == (3, 4, 4)
    assert set(np.unique(a.pattern)) == {0.0, 1.0}
    assert np.array_equal(a.pattern, b.pattern) and not np.array_equal(a.pattern, c.pattern)
    out = a.apply(_images(shape=shape))
    assert np.array_equal(out[:, :, 2:6, 2:6], np.broadcast_to(a.pattern, (5, 3, 4, 4)))


def test_a_one_channel_pattern_stamps_every_channel() -> None:
    out = patch_trigger((3, 8, 8), size=2, position="bottom-left").apply(_images(shape=(3, 8, 8)))
    assert np.all(out[:, :, 6:, :2] == 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0},
        {"size": 9},
        {"shape": "star"},
        {"position": "middle"},
        {"position": (6, 6)},  # a 3x3 patch there runs off the 8x8 image
        {"position": (-1, 0)},
        {"low": 1.0, "high": 1.0},
    ],
)
def test_patch_trigger_refuses_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        patch_trigger(SHAPE, **kwargs)  # type: ignore[arg-type]


def test_patch_trigger_needs_images_of_its_shape() -> None:
    with pytest.raises(InvalidParameterError, match="channels, height, width"):
        patch_trigger((64,))
    with pytest.raises(InvalidParameterError, match="does not fit"):
        PatchTrigger(pattern=np.ones((2, 3, 3), np.float32), row=0, col=0, input_shape=(3, 8, 8))  # 2 of 3 channels
    trigger = patch_trigger(SHAPE)
    with pytest.raises(InvalidInputError, match=r"\(1, 8, 8\)"):
        trigger.apply(np.zeros((2, 1, 7, 7), np.float32))


# -- blend and feature triggers ------------------------------------------------------------------------------------


def test_blend_mixes_the_pattern_in_at_alpha() -> None:
    trigger = blend_trigger(SHAPE, alpha=0.15, low=0.0, high=1.0, seed=3)
    x = _images()
    assert trigger.pattern.shape == SHAPE and trigger.pattern.min() >= 0.0 and trigger.pattern.max() <= 1.0
    assert np.allclose(trigger.apply(x), 0.85 * x + 0.15 * trigger.pattern, atol=TOL)
    assert np.array_equal(blend_trigger(SHAPE, seed=3).pattern, trigger.pattern)
    assert "alpha 0.15" in trigger.describe()
    with pytest.raises(InvalidInputError):
        trigger.apply(np.zeros((2, 64), np.float32))


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_blend_alpha_must_lie_in_the_unit_interval(alpha: float) -> None:
    with pytest.raises(InvalidParameterError, match="alpha"):
        blend_trigger(SHAPE, alpha=alpha)
    with pytest.raises(InvalidParameterError, match="alpha"):
        BlendTrigger(pattern=np.zeros(SHAPE, np.float32), alpha=alpha)


def _table(n: int = 500) -> NDArray[np.float32]:
    """Columns: two continuous, a binary one whose 1 is rare (10%), a constant, a skewed integer count."""
    rng = np.random.default_rng(0)
    return np.column_stack(
        [
            rng.normal(size=n),
            rng.uniform(-3.0, 5.0, size=n),
            (rng.random(n) < 0.1).astype(float),
            np.full(n, 7.0),
            rng.poisson(2.0, size=n),
        ]
    ).astype(np.float32)


def test_feature_trigger_takes_values_clean_records_take() -> None:
    x = _table()
    trigger = feature_trigger(x, n_features=4, quantile=0.99, seed=0)
    assert trigger.features == (0, 1, 2, 4)  # every feature that varies, never the constant one
    for f, value in zip(trigger.features, trigger.values, strict=True):
        column = x[:, f]
        assert np.isin(np.float32(value), column)  # a value some clean record has: no range check catches it
        assert column.min() <= value <= column.max()
        if f == 2:
            assert value == 1.0  # the binary feature's rarer value
        else:
            assert np.mean(column <= value) >= 0.99  # the top percentile
    out = trigger.apply(x)
    assert np.array_equal(out[:, list(trigger.features)], np.broadcast_to(trigger.values, (len(x), 4)))
    assert np.array_equal(out[:, 3], x[:, 3])


def test_feature_trigger_with_chosen_features_and_names() -> None:
    x = _table()
    names = ("a", "b", "flag", "constant", "count")
    trigger = feature_trigger(x, features=[2, 0], names=names)
    assert trigger.features == (2, 0) and trigger.names == ("flag", "a")
    assert trigger.describe().startswith("flag = 1, a = ")
    assert feature_trigger(x, n_features=2, seed=1).features == feature_trigger(x, n_features=2, seed=1).features
    assert len({feature_trigger(x, n_features=2, seed=s).features for s in range(10)}) > 1  # the seed draws them


def test_feature_trigger_refuses_bad_parameters() -> None:
    x = _table()
    with pytest.raises(InvalidParameterError, match=r"1\.\.4"):
        feature_trigger(x, n_features=5)  # only four features vary
    with pytest.raises(InvalidParameterError, match="quantile"):
        feature_trigger(x, quantile=0.4)
    with pytest.raises(InvalidInputError, match="two records"):
        feature_trigger(x[:1])
    with pytest.raises(InvalidParameterError, match="distinct"):
        FeatureTrigger(features=(1, 1), values=(0.0, 0.0), input_shape=(5,))
    with pytest.raises(InvalidParameterError, match="one value per feature"):
        FeatureTrigger(features=(1,), values=(), input_shape=(5,))
    with pytest.raises(InvalidInputError):
        feature_trigger(x, n_features=1).apply(np.zeros((3, 4), np.float32))


# -- label flipping --------------------------------------------------------------------------------------------


def test_random_label_flip_never_keeps_the_label_and_spreads_evenly() -> None:
    y = np.repeat(np.arange(10), 900).astype(np.int64)
    x = np.zeros((len(y), 2), np.float32)
    _, flipped = LabelFlip().craft(x, y, n_classes=10, rng=np.random.default_rng(0))
    assert not np.any(flipped == y)
    assert flipped.min() >= 0 and flipped.max() <= 9
    for c in range(10):
        counts = np.bincount(flipped[y == c], minlength=10)
        others = np.delete(counts, c)
        assert counts[c] == 0
        assert others.min() >= 100 - 40 and others.max() <= 100 + 40  # 100 each expected, sd about 9.4


def test_targeted_flip_relabels_only_source_records(digits: DatasetSplit) -> None:
    train = digits.train
    result = poison(train, LabelFlip(source=3, target=8), 0.05, seed=0)
    rows = result.poisoned
    assert result.n_poisoned == round(0.05 * len(train))
    assert np.all(train.y[rows] == 3) and np.all(result.dataset.y[rows] == 8)
    assert np.array_equal(result.dataset.y[~rows], train.y[~rows])
    assert np.array_equal(result.dataset.x, train.x)  # labels only
    assert result.attack == "label flipping of class 3 to 8"


def test_label_flip_success_inputs() -> None:
    test = train_test_split(load_digits(), test_size=0.25, seed=0).test
    everything = LabelFlip().success_inputs(test)
    assert everything.target is None and len(everything.y) == len(test)
    assert np.array_equal(everything.successes(np.array(test.y)), np.zeros(len(test), bool))  # right is failure
    targeted = LabelFlip(source=3, target=8).success_inputs(test)
    assert targeted.target == 8 and np.all(targeted.y == 3) and len(targeted.y) == np.sum(test.y == 3)
    assert np.array_equal(targeted.successes(np.array([8, 3, 0])), [True, False, False])


@pytest.mark.parametrize("kwargs", [{"source": 1}, {"target": 1}, {"source": 2, "target": 2}])
def test_label_flip_refuses_half_or_identical_classes(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidParameterError):
        LabelFlip(**kwargs)


def test_attacks_refuse_classes_the_data_does_not_have(digits: DatasetSplit) -> None:
    with pytest.raises(InvalidParameterError, match="target class 10"):
        poison(digits.train, LabelFlip(source=1, target=10), 0.01)
    with pytest.raises(InvalidParameterError, match="target class 12"):
        poison(digits.train, Backdoor(patch_trigger(SHAPE), target=12), 0.01)


# -- backdoors -----------------------------------------------------------------------------------------------------


def test_backdoor_stamps_and_relabels_only_records_of_other_classes(digits: DatasetSplit) -> None:
    train = digits.train
    trigger = patch_trigger(SHAPE, shape="cross", size=3, position="top-right")
    result = poison(train, Backdoor(trigger, target=2), 0.05, seed=1)
    rows = result.poisoned
    assert result.n_poisoned == round(0.05 * len(train))
    assert np.all(train.y[rows] != 2) and np.all(result.dataset.y[rows] == 2)
    assert np.array_equal(result.dataset.x[rows], trigger.apply(train.x[rows]))
    assert np.array_equal(result.dataset.x[~rows], train.x[~rows])
    assert np.array_equal(result.dataset.y[~rows], train.y[~rows])
    assert np.array_equal(result.clean_labels, train.y)
    assert "cross 3x3 patch at row 0, column 5" in result.attack and result.attack.endswith("to class 2")


def test_backdoor_with_sources_takes_only_those_classes(digits: DatasetSplit) -> None:
    attack = Backdoor(patch_trigger(SHAPE), target=0, sources=(1, 7))
    result = poison(digits.train, attack, 0.1, seed=0)
    assert set(np.unique(digits.train.y[result.poisoned])) == {1, 7}
    inputs = attack.success_inputs(digits.test)
    assert set(np.unique(inputs.y)) == {1, 7} and inputs.target == 0


def test_backdoor_success_inputs_are_triggered_records_of_other_classes(digits: DatasetSplit) -> None:
    test = digits.test
    trigger = patch_trigger(SHAPE, position="top-left")
    inputs = Backdoor(trigger, target=4).success_inputs(test)
    others = test.y != 4
    assert isinstance(inputs, SuccessInputs) and inputs.target == 4
    assert np.array_equal(inputs.y, test.y[others])
    assert np.array_equal(inputs.x, trigger.apply(test.x[others]))
    assert np.array_equal(inputs.successes(np.full(len(inputs.y), 4)), np.ones(len(inputs.y), bool))


def test_clean_label_backdoor_keeps_labels_and_stays_in_budget(digits_cnn: Target) -> None:
    train, eps = digits_cnn.train, 0.1
    trigger = patch_trigger(SHAPE, shape="checkerboard", size=3, position="bottom-left")
    attack = CleanLabelBackdoor(trigger, target=6, surrogate=digits_cnn.classifier, eps=eps, steps=5)
    result = poison(train, attack, 0.05, seed=0)
    rows, new = result.poisoned, result.dataset.x
    assert result.n_poisoned == round(0.05 * len(train))
    assert np.array_equal(result.dataset.y, train.y)  # labels never change
    assert np.all(train.y[rows] == 6)  # only the target class's own records
    assert np.array_equal(new[~rows], train.x[~rows])
    region = np.zeros(SHAPE, bool)
    region[:, 5:, :3] = True
    assert np.array_equal(new[rows][:, region], np.broadcast_to(trigger.pattern.reshape(-1), (rows.sum(), 9)))
    delta = np.abs(new[rows] - train.x[rows])[:, ~region]
    assert delta.max() <= eps + TOL  # PGD's L-inf ball, outside the trigger
    assert delta.max() > eps / 2  # and PGD did move them
    assert new.min() >= 0.0 and new.max() <= 1.0
    inputs = attack.success_inputs(digits_cnn.test)
    assert inputs.target == 6 and not np.any(inputs.y == 6)


def test_clean_label_backdoor_without_budget_only_stamps(digits_cnn: Target) -> None:
    trigger = patch_trigger(SHAPE)
    attack = CleanLabelBackdoor(trigger, target=6, surrogate=digits_cnn.classifier, eps=0.0)
    result = poison(digits_cnn.train, attack, 0.02, seed=0)
    rows = result.poisoned
    assert np.array_equal(result.dataset.x[rows], trigger.apply(digits_cnn.train.x[rows]))
    with pytest.raises(InvalidParameterError, match="eps"):
        CleanLabelBackdoor(trigger, target=6, surrogate=digits_cnn.classifier, eps=-0.1)


# -- poison() ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fraction", "expected"), [(0.0, 0), (0.001, 1), (0.01, 13), (0.0375, 51), (0.05, 67)])
def test_poison_fraction_is_rounded_over_the_whole_set(digits: DatasetSplit, fraction: float, expected: int) -> None:
    train = digits.train
    assert len(train) == 1347  # 0.0375 of it is 50.5, 0.05 is 67.35
    result = poison(train, LabelFlip(), fraction, seed=0)
    assert result.n_poisoned == expected
    assert np.sum(result.dataset.y != train.y) == expected  # random flips always change the label


@pytest.mark.parametrize(
    "attack",
    [LabelFlip(), LabelFlip(source=5, target=6), Backdoor(patch_trigger(SHAPE), target=0)],
    ids=["random-flip", "targeted-flip", "backdoor"],
)
def test_smaller_fractions_poison_a_subset_of_larger_ones(digits: DatasetSplit, attack: LabelFlip | Backdoor) -> None:
    masks = [poison(digits.train, attack, f, seed=4).poisoned for f in (0.01, 0.03, 0.05, 0.08)]
    for small, large in itertools.pairwise(masks):
        assert small.sum() < large.sum()
        assert np.all(large[small])
    assert not np.array_equal(poison(digits.train, attack, 0.05, seed=5).poisoned, masks[2])  # the seed matters


def test_too_large_a_fraction_names_the_maximum(digits: DatasetSplit) -> None:
    train = digits.train
    eligible = int(np.sum(train.y == 3))
    with pytest.raises(InvalidParameterError, match=rf"at most {eligible} of {len(train)} records") as info:
        poison(train, LabelFlip(source=3, target=8), 0.2)
    assert f"{eligible / len(train):.1%}" in str(info.value)
    assert poison(train, LabelFlip(source=3, target=8), eligible / len(train)).n_poisoned == eligible  # the maximum
    for fraction in (-0.1, 1.0):
        with pytest.raises(InvalidParameterError, match=r"\[0, 1\)"):
            poison(train, LabelFlip(), fraction)


def test_poison_leaves_the_original_dataset_untouched(digits: DatasetSplit) -> None:
    train = digits.train
    digest, x, y = train.digest, train.x.copy(), train.y.copy()
    result = poison(train, Backdoor(patch_trigger(SHAPE), target=0), 0.1, seed=0)
    assert result.dataset is not train and result.dataset.digest != digest
    assert np.array_equal(train.x, x) and np.array_equal(train.y, y)
    assert Dataset(x=train.x, y=train.y, schema=train.schema, label_names=train.label_names).digest == digest
    assert result.dataset.schema == train.schema and result.dataset.label_names == train.label_names
    assert len(result.dataset) == len(train) and result.dataset.name == f"{train.name}+backdoor"


# -- susceptibility ------------------------------------------------------------------------------------------------


def _logistic() -> SklearnTrainer:
    return SklearnTrainer(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), n_jobs=1)


@pytest.fixture(scope="module")
def flip_curve(cancer: DatasetSplit) -> SusceptibilityCurve:
    """Benign (1) records relabelled malignant (0), up to half the training set: most of the benign ones."""
    return susceptibility(_logistic(), cancer.train, cancer.test, LabelFlip(1, 0), [0.5, 0.05, 0.2], seed=0)


def test_curve_starts_at_the_clean_baseline(flip_curve: SusceptibilityCurve, cancer: DatasetSplit) -> None:
    curve = flip_curve
    assert [p.fraction for p in curve.points] == [0.0, 0.05, 0.2, 0.5]
    assert [p.n_poison for p in curve.points] == [0, 21, 85, 213]
    assert curve.baseline is curve.points[0]
    assert curve.baseline.clean_accuracy > 0.93
    assert curve.baseline.success_rate < 0.1  # the clean model rarely calls a benign record malignant
    assert curve.n_train == len(cancer.train) and curve.n_success_inputs == int(np.sum(cancer.test.y == 1))
    assert curve.repeats == 1 and curve.trainer == "Pipeline"
    assert curve.attack == "label flipping of class 1 to 0"


def test_curve_success_rises_with_poison_and_carries_intervals(flip_curve: SusceptibilityCurve) -> None:
    points = flip_curve.points
    assert points[-1].success_rate > 0.9 > points[0].success_rate + 0.5
    assert points[-1].clean_accuracy < points[0].clean_accuracy - 0.2  # flipping this much is not stealthy
    for p in points:
        low, high = p.success_interval
        assert 0.0 <= low <= p.success_rate <= high <= 1.0
        assert high - low < 0.25  # 90 success inputs: an exact interval this wide at most


def test_fraction_needed_is_the_first_point_meeting_both_goals(flip_curve: SusceptibilityCurve) -> None:
    curve = flip_curve
    assert curve.fraction_needed(0.9) is None  # reached only at an accuracy cost over 2 points
    assert curve.fraction_needed(0.9, max_accuracy_drop=1.0) == 0.5
    assert curve.fraction_needed(0.0, max_accuracy_drop=1.0) == 0.05  # the clean baseline itself never counts
    assert curve.fraction_needed(1.01, max_accuracy_drop=1.0) is None  # unreachable


def test_susceptibility_repeats_pool_their_trials(cancer: DatasetSplit) -> None:
    curve = susceptibility(_logistic(), cancer.train, cancer.test, LabelFlip(1, 0), [0.3], repeats=2, seed=0)
    assert curve.repeats == 2 and len(curve.points) == 2
    trials = 2 * curve.n_success_inputs
    for p in curve.points:
        hits = round(p.success_rate * trials)
        assert p.success_rate == hits / trials
        assert p.success_interval == clopper_pearson(hits, trials)


def test_susceptibility_refuses_what_it_cannot_measure(cancer: DatasetSplit) -> None:
    train, test = cancer.train, cancer.test
    with pytest.raises(InvalidParameterError, match="repeats"):
        susceptibility(_logistic(), train, test, LabelFlip(1, 0), [0.1], repeats=0)
    only_malignant = test.subset(np.flatnonzero(test.y == 0))
    with pytest.raises(InvalidParameterError, match="no inputs"):
        susceptibility(_logistic(), train, only_malignant, LabelFlip(1, 0), [0.1])
    with pytest.raises(InvalidParameterError, match="at most"):
        susceptibility(_logistic(), train, test, LabelFlip(0, 1), [0.6])  # more than the malignant records


@pytest.mark.slow
def test_badnets_on_digits_cnn_needs_at_most_five_percent(digits_cnn: Target) -> None:
    """Issue acceptance: a 3x3 white square, bottom-right, target 0, on the zoo recipe."""
    attack = Backdoor(patch_trigger(SHAPE, shape="square", size=3, position="bottom-right"), target=0)
    curve = susceptibility(digits_cnn.trainer, digits_cnn.train, digits_cnn.test, attack, [0.01, 0.05], seed=0)
    baseline, five = curve.baseline, curve.points[-1]
    assert five.fraction == 0.05 and five.n_poison == 67
    assert baseline.success_rate < 0.1
    assert five.success_rate >= 0.9
    assert five.clean_accuracy >= baseline.clean_accuracy - 0.02
    assert curve.fraction_needed(0.9) is not None and curve.fraction_needed(0.9) <= 0.05


class _NoTrigger:
    """Stamps nothing: what a clean-label attack crafts is then its PGD perturbation alone."""

    def apply(self, x: NDArray[np.floating]) -> NDArray[np.float32]:
        return np.array(x, np.float32)

    def describe(self) -> str:
        return "no trigger"


def test_clean_label_perturbation_uses_the_whole_budget(digits_cnn: Target) -> None:
    """Turner et al. maximise the surrogate's loss inside the ball, so the true features become unusable."""
    surrogate = digits_cnn.classifier
    attack = CleanLabelBackdoor(_NoTrigger(), target=6, surrogate=surrogate, eps=0.2, steps=20)
    result = poison(digits_cnn.train, attack, 0.03, seed=0)
    proba = surrogate.predict_proba(result.dataset.x[result.poisoned])
    assert np.all(proba.argmax(axis=1) != 6)  # every record is pushed out of its class...
    assert np.median(proba[:, 6]) < 0.1  # ...and well past the boundary
