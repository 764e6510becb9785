"""The baseline, integrity, supply, evasion and poisoning checks pass :func:`check_check` on tiny targets, and the
check catches checks that break the contract (an impure judge, unfrozen settings, a run that is not judge after
measure, a missing budget, findings under another name).

The fast suite checks baseline, integrity, supply, and evasion on a PyTorch model; the slow one evasion on a
black-box model (the Square attack) and poisoning.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pytest
import torch

from modelshield.audit.checks.baseline import BASELINE
from modelshield.audit.checks.evasion import EVASION
from modelshield.audit.checks.integrity import INTEGRITY
from modelshield.audit.checks.poisoning import POISONING
from modelshield.audit.checks.supply import SUPPLY
from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.findings import Finding, Severity
from modelshield.target import Target
from modelshield.testing.check_checks import check_check
from modelshield.testing.targets import tiny_target


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models: one thread is faster and does not thrash a shared 2-core runner."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def black(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """The tiny logistic regression, with a (pickled) model file on disk."""
    model = tmp_path_factory.mktemp("model") / "model.pkl"
    target = tiny_target("tabular", seed=0, white_box=False)
    model.write_bytes(pickle.dumps({"weights": [0.5, -0.25]}))
    return dataclasses.replace(target, model_path=model, model_format="pickle")


@pytest.fixture(scope="module")
def white() -> Target:
    return tiny_target("tabular", seed=0)


# -- the built-in checks pass ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", [BASELINE, INTEGRITY, SUPPLY], ids=lambda c: c.name)
def test_file_and_baseline_checks_pass(check: Check[Any, Any], black: Target) -> None:
    check_check(check, black)


@pytest.mark.slow
def test_evasion_passes_on_a_black_box_model(black: Target) -> None:
    check_check(EVASION, black, seed=2)


def test_evasion_passes_on_a_pytorch_model(white: Target) -> None:
    check_check(EVASION, white)


@pytest.mark.slow
def test_poisoning_passes(white: Target) -> None:
    check_check(POISONING, white)


# -- the check catches a broken check -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Settings:
    inputs: int


@dataclasses.dataclass(frozen=True)
class _Accuracy:
    accuracy: float


class _Sound(Check[_Settings, _Accuracy]):
    """Accuracy on a few test inputs: low below 90%."""

    name = "accuracy"
    title = "Accuracy"
    description = "Accuracy on a few test inputs."
    budgets: Mapping[Budget, _Settings] = MappingProxyType({b: _Settings(10 * (i + 1)) for i, b in enumerate(Budget)})

    def measure(self, context: CheckContext, settings: _Settings) -> _Accuracy:
        x, y = context.sample_test(settings.inputs)
        return _Accuracy(float(context.target.classifier.accuracy(x, y)))

    def judge(self, measurement: _Accuracy) -> Sequence[Finding]:
        severity = Severity.LOW if measurement.accuracy < 0.9 else Severity.INFO
        return [
            Finding(id="accuracy.clean", check=self.name, title="Accuracy", severity=severity, description="",
                    metrics={"accuracy": measurement.accuracy})
        ]  # fmt: skip


class _ImpureJudge(_Sound):
    calls = 0

    def judge(self, measurement: _Accuracy) -> Sequence[Finding]:
        type(self).calls += 1
        return [Finding(id="accuracy.clean", check=self.name, title=f"call {self.calls}", severity="info",
                        description="")]  # fmt: skip


@dataclasses.dataclass
class _Mutable:
    inputs: int


class _UnfrozenSettings(_Sound):
    budgets = MappingProxyType({b: _Mutable(10) for b in Budget})  # type: ignore[arg-type]


class _RunIsNotJudgeAfterMeasure(_Sound):
    def run(self, context: CheckContext) -> list[Finding]:
        return []


class _MissingBudget(_Sound):
    budgets = MappingProxyType({Budget.QUICK: _Settings(10)})


class _ForeignName(_Sound):
    def judge(self, measurement: _Accuracy) -> Sequence[Finding]:
        return [Finding(id="accuracy.clean", check="other", title="t", severity="info", description="")]


class _UnseededMeasure(_Sound):
    def measure(self, context: CheckContext, settings: _Settings) -> _Accuracy:
        import numpy as np

        return _Accuracy(float(np.random.default_rng().random()))


class _DictMeasurement(_Sound):
    def measure(self, context: CheckContext, settings: _Settings) -> _Accuracy:
        return {"accuracy": 1.0}  # type: ignore[return-value]

    def judge(self, measurement: Any) -> Sequence[Finding]:
        return []


def test_a_sound_check_passes(black: Target) -> None:
    check_check(_Sound(), black)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (_ImpureJudge(), "judging one measurement twice differs"),
        (_UnfrozenSettings(), "not a frozen dataclass"),
        (_RunIsNotJudgeAfterMeasure(), "run must be judge"),
        (_MissingBudget(), "no settings for the standard budget"),
        (_ForeignName(), "carries check name 'other'"),
        (_UnseededMeasure(), "measure deterministic"),
        (_DictMeasurement(), "the measurement is a dict"),
    ],
    ids=lambda c: type(c).__name__ if isinstance(c, Check) else None,
)
def test_a_broken_check_fails(check: Check[Any, Any], message: str, black: Target) -> None:
    with pytest.raises(AssertionError, match=message):
        check_check(check, black)


def test_a_target_that_cannot_serve_the_check_is_refused(black: Target) -> None:
    with pytest.raises(AssertionError, match="needs the model file"):
        check_check(INTEGRITY, dataclasses.replace(black, model_path=None))


def test_settings_are_recorded_as_plain_data() -> None:
    # what the runner writes into the report's config
    assert dataclasses.asdict(EVASION.settings(Budget.QUICK)) == {
        "samples": 200,
        "steps": 10,
        "queries": 250,
        "restarts": 1,
    }
    assert dataclasses.asdict(POISONING.settings(Budget.QUICK))["fractions"] == (0.01, 0.05)
