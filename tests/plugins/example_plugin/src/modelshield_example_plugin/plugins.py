"""The example plug-in's check, attack and guard (the scanner is in ``scanning``).

Each entry point names a class; modelshield calls it without arguments to get the plug-in. The scanner lives in a
module of its own that imports only the scan interfaces: every ``modelshield scan`` loads it, and it must not pull
NumPy or the audit machinery into the scanner's start-up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Self

import numpy as np

from modelshield.attacks.interface import AttackFamily
from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.defenses.interface import Action, GuardDecision, GuardMemory, GuardRequest, GuardStage
from modelshield.defenses.registry import GuardFactory
from modelshield.findings import Finding, OwaspMl, Severity
from modelshield.models.interface import Classifier
from modelshield.target import Requirement, Target
from modelshield_example_plugin.scanning import MARKER, MarkerScanner

__all__ = ["EXAMPLE_GUARD", "MARKER", "ClipGuard", "ExampleCheck", "MarkerScanner", "NoiseAttack", "NoiseResult"]


@dataclass(frozen=True)
class _Settings:
    samples: int


@dataclass(frozen=True)
class _Measurement:
    samples: int
    agreement: float  # share of inputs whose prediction survives uniform noise


class ExampleCheck(Check[_Settings, _Measurement]):
    """Prediction stability under uniform noise: a finding when fewer than 90% of predictions survive."""

    name = "example-plugin-check"
    title = "Example plug-in check"
    description = "Prediction stability under uniform input noise (a third-party plug-in)."
    requires = frozenset[Requirement]()
    default = False  # runs only when named: --checks example-plugin-check
    budgets: Mapping[Budget, _Settings] = MappingProxyType(
        {Budget.QUICK: _Settings(50), Budget.STANDARD: _Settings(200), Budget.THOROUGH: _Settings(1000)}
    )

    def measure(self, context: CheckContext, settings: _Settings) -> _Measurement:
        x, _ = context.sample_test(settings.samples)
        classifier = context.target.classifier
        noisy = np.clip(x + context.rng.uniform(-0.05, 0.05, size=x.shape), 0.0, 1.0).astype(np.float32)
        agreement = float(np.mean(classifier.predict(x) == classifier.predict(noisy)))
        return _Measurement(samples=len(x), agreement=agreement)

    def judge(self, measurement: _Measurement) -> Sequence[Finding]:
        severity = Severity.LOW if measurement.agreement < 0.9 else Severity.INFO
        return [
            Finding(
                id="example-plugin.stability",
                check=self.name,
                title=f"{measurement.agreement:.0%} of predictions survive uniform noise",
                severity=severity,
                description=f"Measured on {measurement.samples} test inputs.",
                remediation="None needed; this check exists to test plug-in discovery.",
                owasp=OwaspMl.ML01,
                metrics={"agreement": measurement.agreement, "samples": measurement.samples},
            )
        ]


@dataclass(frozen=True)
class NoiseResult:
    """The outcome of :class:`NoiseAttack`."""

    attack: str
    queries: int
    seconds: float
    flipped: float

    def metrics(self) -> Mapping[str, float]:
        return {"success_rate": self.flipped}


class NoiseAttack:
    """Uniform noise of width ``eps``: the weakest evasion attack there is."""

    name = "example-noise"
    family = AttackFamily.EVASION
    requires = frozenset[Requirement]()

    def __init__(self, eps: float = 0.1, samples: int = 100) -> None:
        self.eps = eps
        self.samples = samples

    def run(self, target: Target, *, seed: int = 0) -> NoiseResult:
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        x = target.test.x[: self.samples]
        classifier = target.classifier
        before = classifier.queries
        noisy = np.clip(x + rng.uniform(-self.eps, self.eps, size=x.shape), 0.0, 1.0).astype(np.float32)
        flipped = float(np.mean(classifier.predict(x) != classifier.predict(noisy)))
        return NoiseResult(
            attack=f"example-noise(eps={self.eps:g})",
            queries=classifier.queries - before,
            seconds=time.perf_counter() - t0,
            flipped=flipped,
        )


class ClipGuard:
    """An output guard that rounds released probabilities to two decimals (and renormalises)."""

    name = "example-clip"
    stage = GuardStage.OUTPUT

    def fit(self, classifier: Classifier, reference_x: Any, reference_y: Any = None, *, seed: int = 0) -> Self:
        self.n_classes_ = classifier.n_classes
        self.input_shape_ = classifier.input_shape
        return self

    def inspect(self, request: GuardRequest) -> GuardDecision:
        if not hasattr(self, "n_classes_"):
            from modelshield.errors import NotFittedError

            raise NotFittedError("ClipGuard is not fitted.")
        p = request.require_probabilities(self.name)
        if request.x.shape[1:] != self.input_shape_ or p.shape[1] != self.n_classes_:
            from modelshield.errors import InvalidInputError

            raise InvalidInputError(
                f"{self.name} expects inputs of shape {self.input_shape_} and {self.n_classes_} classes; the request "
                f"has {request.x.shape[1:]} and {p.shape[1]}."
            )
        released = np.round(p, 2) + 1e-12
        released = released / released.sum(axis=1, keepdims=True)
        return GuardDecision(
            guard=self.name,
            stage=self.stage,
            client_id=request.client_id,
            actions=(Action.ALLOW,) * request.n,
            scores=np.abs(released - p).sum(axis=1),
            threshold=None,
            probabilities=released,
        )

    def forget(self, client_id: str) -> None:
        return None

    def memory(self) -> GuardMemory:
        return GuardMemory()


EXAMPLE_GUARD = GuardFactory("example-clip", GuardStage.OUTPUT, ClipGuard, "Round released probabilities.")
