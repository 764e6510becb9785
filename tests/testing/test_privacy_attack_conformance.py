"""Every built-in membership, inversion, attribute-inference and extraction attack passes :func:`check_attack` on a
tiny target (same seed, same result; queries as the classifier counted them; finite metrics); the plug-ins say
what they need, refuse targets that lack it and bad parameters when they are built, and are in the registry.

The fast suite runs each plug-in class with light parameters; the slow one runs every built-in as registered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from threadpoolctl import threadpool_limits

from modelshield.attacks.interface import Attack, AttackFamily
from modelshield.attacks.membership.plugins import BUILTIN as MEMBERSHIP_BUILTIN
from modelshield.attacks.membership.plugins import RMIA, LabelOnlyAttack, LiRA, LossAttack, PopulationAttack
from modelshield.attacks.privacy_plugins import BUILTIN as PRIVACY_BUILTIN
from modelshield.attacks.privacy_plugins import (
    AttributeInference,
    ClassInversion,
    EquationSolving,
    ModelExtraction,
    default_budgets,
)
from modelshield.attacks.registry import builtin_attacks
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.target import Requirement, Target
from modelshield.testing.attack_checks import check_attack
from modelshield.testing.targets import tiny_target

BUILTIN: tuple[Attack[Any], ...] = (*MEMBERSHIP_BUILTIN, *PRIVACY_BUILTIN)
FAST_EXTRACTION = {"epochs": 5, "min_steps": 30, "max_steps": 60, "budgets": (20, 40)}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models: one thread is faster and does not thrash a shared 2-core runner (the caller's choice)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def white() -> Target:
    return tiny_target("tabular", seed=0)


@pytest.fixture(scope="module")
def black() -> Target:
    return tiny_target("tabular", seed=0, white_box=False)


@pytest.fixture(scope="module")
def image() -> Target:
    return tiny_target("image", seed=0)


# -- the plug-ins pass -----------------------------------------------------------------------------------------------

FAST: tuple[Attack[Any], ...] = (
    LossAttack(),
    PopulationAttack(),
    LiRA(online=True, n_reference=4),
    LiRA(online=False, n_reference=4),
    RMIA(online=True, n_reference=4),
    RMIA(online=False, n_reference=4, gamma=2.0),
    LabelOnlyAttack(copies=2, noise_scales=(0.5,)),
    ClassInversion(steps=10, permutations=99),
    AttributeInference(learner="logistic", folds=3, bootstrap=200),
    ModelExtraction("natural", **FAST_EXTRACTION),  # type: ignore[arg-type]
    ModelExtraction("jacobian", labels="hard", **FAST_EXTRACTION),  # type: ignore[arg-type]
    ModelExtraction("random", **FAST_EXTRACTION),  # type: ignore[arg-type]
    EquationSolving(),
)


@pytest.mark.parametrize("attack", FAST, ids=[a.name for a in FAST])
def test_each_plugin_passes_with_light_parameters(attack: Attack[Any], white: Target) -> None:
    check_attack(attack, white, seed=3)


@pytest.mark.parametrize("attack", [LiRA(n_reference=4), ClassInversion(steps=10, permutations=99)], ids=str)
def test_gradient_and_recipe_attacks_pass_on_images(attack: Attack[Any], image: Target) -> None:
    check_attack(attack, image, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("attack", BUILTIN, ids=[a.name for a in BUILTIN])
def test_every_builtin_attack_as_registered_passes(attack: Attack[Any], white: Target, black: Target) -> None:
    # black-box attacks run faster on the logistic regression; gradients and the vectorised recipe need the MLP
    needs_mlp = Requirement.WHITE_BOX in attack.requires or Requirement.TRAINER in attack.requires
    check_attack(attack, white if needs_mlp else black, seed=0)


# -- results ---------------------------------------------------------------------------------------------------------


def test_membership_results_carry_the_field_s_metrics_and_their_parameters(white: Target) -> None:
    result = LiRA(online=False, n_reference=4).run(white, seed=0)
    assert result.attack == "lira-offline(reference_models=4)" and result.reference_models == 4
    assert set(result.metrics()) == {"auc", "advantage", "accuracy", "tpr_at_0.1%_fpr", "tpr_at_1.0%_fpr"}
    assert result.metrics()["tpr_at_1.0%_fpr"] == result.summary.tpr_at(0.01).tpr
    assert white.train is not None
    assert result.summary.n_members == len(white.train) and result.summary.n_non_members == len(white.test)
    other = LiRA(online=False, n_reference=4).run(white, seed=1)  # other reference models
    assert other.metrics() != result.metrics()


def test_label_only_counts_one_query_per_copy(black: Target) -> None:
    result = LabelOnlyAttack(copies=3, noise_scales=(0.1, 0.5)).run(black, seed=0)
    assert black.train is not None
    assert result.queries == (len(black.train) + len(black.test)) * (1 + 3 * 2)


def test_extraction_budgets_follow_the_training_set_and_the_attacker_s_data(black: Target) -> None:
    assert default_budgets(120) == (20, 30, 60, 120) and default_budgets(120, 0.5) == (20, 40, 80)
    fast = {k: v for k, v in FAST_EXTRACTION.items() if k != "budgets"}
    natural = ModelExtraction("natural", **fast).run(black, seed=0)  # type: ignore[arg-type]
    assert [p.queries for p in natural.points] == [20, 30, 60]  # the attacker holds half the test split: 60
    assert natural.surrogate is None and natural.queries == 60 + natural.n_test
    kept = ModelExtraction("natural", keep_surrogate=True, **FAST_EXTRACTION).run(black, seed=0)  # type: ignore[arg-type]
    assert kept.surrogate is not None


def test_equation_solving_tells_log_linear_models_apart(white: Target, black: Target) -> None:
    assert EquationSolving().run(black).metrics()["consistent"] == 1.0  # logistic regression
    assert EquationSolving().run(white).metrics()["consistent"] == 0.0  # an MLP


def test_attribute_inference_picks_a_feature_and_names_it(black: Target) -> None:
    result = AttributeInference(learner="logistic", folds=3, bootstrap=200).run(black, seed=0)
    assert result.attack.startswith(f"attribute-inference(feature={result.feature!r}")
    assert result.members is not None  # the training split are the members
    named = AttributeInference(feature="f1", learner="logistic", folds=3, bootstrap=200).run(black, seed=0)
    assert named.feature == "f1" and named.metrics()["leakage"] == named.members.leakage  # type: ignore[union-attr]


# -- needs, parameters, registry -------------------------------------------------------------------------------------


def test_plugins_say_what_they_need_and_refuse_targets_without_it(white: Target, black: Target) -> None:
    assert LossAttack().requires == frozenset({Requirement.TRAIN_DATA})
    assert LiRA().requires == frozenset({Requirement.TRAIN_DATA, Requirement.TRAINER})
    assert ClassInversion().requires == frozenset({Requirement.WHITE_BOX})
    assert ModelExtraction().requires == frozenset() and EquationSolving().requires == frozenset()
    before = black.classifier.queries
    with pytest.raises(InvalidInputError, match="needs gradients"):
        ClassInversion().run(black)
    without_train = dataclasses.replace(white, train=None, trainer=None)
    with pytest.raises(InvalidInputError, match="training data"):
        LossAttack().run(without_train)
    with pytest.raises(InvalidInputError, match="training recipe"):
        RMIA().run(dataclasses.replace(white, trainer=None))
    assert black.classifier.queries == before  # refused before any work


@pytest.mark.parametrize(
    "build",
    [
        lambda: LiRA(n_reference=1),
        lambda: RMIA(gamma=0.0),
        lambda: LabelOnlyAttack(copies=0),
        lambda: LabelOnlyAttack(noise_scales=()),
        lambda: ClassInversion(steps=0),
        lambda: ClassInversion(alpha=1.0),
        lambda: AttributeInference(folds=1),
        lambda: AttributeInference(learner="svm"),  # type: ignore[arg-type]
        lambda: ModelExtraction("copycat"),  # type: ignore[arg-type]
        lambda: ModelExtraction(budgets=(50, 20)),
        lambda: ModelExtraction(labels="top1"),  # type: ignore[arg-type]
        lambda: EquationSolving(step=0.0),
    ],
)
def test_bad_parameters_are_refused_when_the_attack_is_built(build: Any) -> None:
    with pytest.raises(InvalidParameterError):
        build()


def test_the_privacy_plugins_are_registered() -> None:
    registered = {a.name: a for a in builtin_attacks()}
    for attack in BUILTIN:
        assert registered[attack.name] is attack
    families = {a.family for a in MEMBERSHIP_BUILTIN}, {a.family for a in PRIVACY_BUILTIN}
    assert families == ({AttackFamily.MEMBERSHIP}, {AttackFamily.INVERSION, AttackFamily.EXTRACTION})
    assert "LiRA(online=False, n_reference=16" in repr(LiRA(online=False))
