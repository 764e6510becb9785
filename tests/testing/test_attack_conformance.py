"""Every built-in evasion and poisoning attack passes :func:`check_attack` on a tiny target; the check catches
attacks that break the contract; the attack registry holds the built-ins and the installed plug-ins, and
``run_attack`` refuses a target that lacks what an attack needs before any work.

The fast suite runs FGSM, PGD and a short Square attack; the slow one runs every built-in plug-in as registered.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from modelshield.attacks.evasion.interface import Constraints, EvasionResult, Norm
from modelshield.attacks.evasion.plugins import BUILTIN as EVASION_BUILTIN
from modelshield.attacks.evasion.plugins import FGSM, PGD, EvasionAttack, Square
from modelshield.attacks.interface import Attack, AttackFamily
from modelshield.attacks.poisoning.plugins import BUILTIN as POISONING_BUILTIN
from modelshield.attacks.poisoning.plugins import BadNets, LabelFlipping
from modelshield.attacks.registry import AttackRegistry, builtin_attacks, default_attack_registry, run_attack
from modelshield.data.interface import Dataset
from modelshield.errors import InvalidParameterError, RegistrationError, UnknownTargetError
from modelshield.models.interface import Classifier, FloatArray, IntArray
from modelshield.target import Requirement, Target
from modelshield.testing.attack_checks import check_attack
from modelshield.testing.targets import tiny_target

BUILTIN: tuple[Attack[Any], ...] = (*EVASION_BUILTIN, *POISONING_BUILTIN)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models: one thread is faster and does not thrash a shared 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def white() -> Target:
    return tiny_target("tabular", seed=0)


@pytest.fixture(scope="module")
def black() -> Target:
    return tiny_target("tabular", seed=0, white_box=False)


# -- the built-in plug-ins pass --------------------------------------------------------------------------------------


def test_fgsm_and_pgd_as_registered_pass(white: Target) -> None:
    for attack in EVASION_BUILTIN[:2]:
        assert isinstance(attack, FGSM | PGD)
        check_attack(attack, white, seed=3)


def test_a_short_square_attack_passes_on_a_black_box_model(black: Target) -> None:
    check_attack(Square(eps=0.1, queries=100, samples=60), black, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("attack", BUILTIN, ids=[a.name for a in BUILTIN])
def test_every_builtin_attack_as_registered_passes(attack: Attack[Any], white: Target, black: Target) -> None:
    # black-box attacks and retraining run faster on the logistic regression; gradients need the MLP
    target = white if Requirement.WHITE_BOX in attack.requires else black
    check_attack(attack, target, seed=0)


def test_the_builtins_are_every_family_module_s(white: Target) -> None:
    names = [a.name for a in builtin_attacks()]
    assert names[:10] == [
        "fgsm",
        "pgd",
        "apgd-ce",
        "apgd-dlr",
        "deepfool",
        "square",
        "hop-skip-jump",
        "label-flip",
        "badnets",
        "clean-label",
    ]
    assert {a.family for a in EVASION_BUILTIN} == {AttackFamily.EVASION}
    assert {a.family for a in POISONING_BUILTIN} == {AttackFamily.POISONING}


def test_an_evasion_result_is_an_attack_result(white: Target) -> None:
    result = PGD(eps=0.1, steps=5, samples=20).run(white, seed=0)
    assert result.indices is not None and len(result.indices) == 20
    assert np.all(np.diff(result.indices) > 0)  # a sample in the test set's order
    metrics = result.metrics()
    assert set(metrics) == {"robust_accuracy", "success_rate", "clean_accuracy", "mean_distance"}
    assert metrics["robust_accuracy"] == pytest.approx(1 - np.mean(result.predicted != result.y))
    fooled = result.success & result.clean_correct
    assert metrics["mean_distance"] == pytest.approx(float(np.mean(result.distances[fooled])))


def test_a_different_seed_attacks_a_different_sample(white: Target) -> None:
    first = PGD(samples=20, steps=2).run(white, seed=0)
    other = PGD(samples=20, steps=2).run(white, seed=1)
    assert first.indices is not None and other.indices is not None
    assert not np.array_equal(first.indices, other.indices)


def test_bad_parameters_are_refused_when_the_attack_is_built() -> None:
    with pytest.raises(InvalidParameterError, match="eps"):
        PGD(eps=0.0)
    with pytest.raises(InvalidParameterError, match="samples"):
        FGSM(samples=0)
    with pytest.raises(InvalidParameterError, match="fraction"):
        BadNets(fraction=1.0)
    with pytest.raises(InvalidParameterError, match="norm"):
        PGD(norm="l3")


def test_white_box_attacks_refuse_other_models(black: Target) -> None:
    with pytest.raises(InvalidParameterError, match="PyTorch classifier"):
        FGSM().run(black)


# -- the check catches a broken attack -------------------------------------------------------------------------------


class _Broken(EvasionAttack):
    """Uniform noise of width ``eps`` with one flaw, chosen by ``flaw``."""

    name = "broken"

    def __init__(self, flaw: str, eps: float = 0.05) -> None:
        super().__init__(samples=30)
        self.flaw, self.eps = flaw, eps

    def _attack(
        self, classifier: Classifier, x: FloatArray, y: IntArray, constraints: Constraints, seed: int
    ) -> EvasionResult:
        rng = np.random.default_rng(None if self.flaw == "unseeded" else seed)
        noise = rng.uniform(-self.eps, self.eps, size=x.shape).astype(np.float32)
        if self.flaw == "outside-ball":
            noise *= 3
        x_adv = np.clip(x + noise, constraints.low, constraints.high)
        if self.flaw == "outside-range":
            x_adv[:, 1] += 2.0
        if self.flaw != "moves-immutable":
            x_adv = np.where(constraints.mutable, x_adv, x)
        return EvasionResult.measure(attack=f"broken({self.flaw})", classifier=classifier, x=x, x_adv=x_adv, y=y,
                                     norm=Norm.LINF, eps=self.eps, queries=0, seconds=0.0)  # fmt: skip

    def run(self, target: Target, *, seed: int = 0) -> EvasionResult:
        result = super().run(target, seed=seed)
        if self.flaw == "miscounts":
            return dataclasses.replace(result, queries=result.queries - len(result.y))
        if self.flaw == "no-indices":
            return dataclasses.replace(result, indices=None)
        return result


def _with_immutable_first_feature(target: Target) -> Target:
    schema = target.test.schema
    features = (dataclasses.replace(schema.features[0], immutable=True), *schema.features[1:])
    test = target.test
    data = Dataset(test.x, test.y, dataclasses.replace(schema, features=features), test.label_names, name=test.name)
    return dataclasses.replace(target, test=data)


def test_a_sound_noise_attack_passes(black: Target) -> None:
    check_attack(_Broken("none"), _with_immutable_first_feature(black))


@pytest.mark.parametrize(
    ("flaw", "message"),
    [
        ("unseeded", "two runs with seed 0"),
        ("outside-ball", "outside the linf ball"),
        ("outside-range", "leave the valid range"),
        ("moves-immutable", "immutable features changed"),
        ("miscounts", "the classifier counted"),
        ("no-indices", "must name the attacked test rows"),
    ],
)
def test_a_broken_attack_fails(flaw: str, message: str, black: Target) -> None:
    with pytest.raises(AssertionError, match=message):
        check_attack(_Broken(flaw), _with_immutable_first_feature(black))


def test_a_target_that_cannot_serve_the_attack_is_refused(black: Target) -> None:
    with pytest.raises(AssertionError, match="needs gradients"):
        check_attack(FGSM(), black)


# -- the registry -------------------------------------------------------------------------------------------------


def test_default_registry_adds_the_installed_plug_in_after_the_builtins() -> None:
    registry = default_attack_registry()
    assert registry.names()[: len(builtin_attacks())] == tuple(a.name for a in builtin_attacks())
    assert "example-noise" in registry  # tests/plugins/example_plugin, installed in the test venv
    assert registry.get("example-noise").family is AttackFamily.EVASION
    assert "example-noise" not in default_attack_registry(entry_points=False)
    assert [a.name for a in registry.family("poisoning")] == ["label-flip", "badnets", "clean-label"]


def test_registry_refuses_duplicates_and_unknown_names(black: Target) -> None:
    registry = AttackRegistry([FGSM()])
    with pytest.raises(RegistrationError, match="already registered"):
        registry.register(FGSM(eps=0.2))
    with pytest.raises(UnknownTargetError, match="Unknown attack 'pdg'"):
        run_attack("pdg", black, registry=registry)


def test_run_attack_refuses_a_target_without_what_the_attack_needs(black: Target) -> None:
    before = black.classifier.queries
    with pytest.raises(InvalidParameterError, match="needs gradients") as caught:
        run_attack("pgd", black)
    assert "white-box" in caught.value.remedy
    no_recipe = dataclasses.replace(black, trainer=None, train=None)
    with pytest.raises(InvalidParameterError, match="training data") as caught:
        run_attack("badnets", no_recipe)
    assert "training recipe" in caught.value.remedy
    assert black.classifier.queries == before  # refused before any work


def test_run_attack_runs_by_name(black: Target) -> None:
    registry = AttackRegistry([Square(eps=0.1, queries=20, samples=10), LabelFlipping(fraction=0.2)])
    result = run_attack("square", black, seed=0, registry=registry)
    assert isinstance(result, EvasionResult) and len(result.y) == 10


def test_the_attacks_command_lists_name_family_and_needs() -> None:
    from modelshield.cli import attacks

    app = typer.Typer()
    app.callback()(lambda: None)
    attacks.register(app)
    result = CliRunner().invoke(app, ["attacks", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["pgd"] == {"name": "pgd", "family": "evasion", "requires": ["white-box"]}
    assert rows["clean-label"]["requires"] == ["train-data", "trainer", "white-box"]
    assert "example-noise" in rows
    text = CliRunner().invoke(app, ["attacks"])
    assert text.exit_code == 0 and "hop-skip-jump" in text.output
