"""Every built-in inference guard passes the conformance checks (modelshield.testing.guard_checks) on tiny targets,
and the checks catch guards that break the contract."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from modelshield.defenses.backdoor import STRIPDetector
from modelshield.defenses.detectors import FeatureSqueezingDetector
from modelshield.defenses.extraction_monitor import ExtractionMonitor
from modelshield.defenses.interface import Action, GuardDecision, GuardMemory, GuardRequest, InferenceGuard
from modelshield.defenses.output import LabelOnly, NoisyOutput, OutputHardening, Rounding, TopK
from modelshield.defenses.registry import default_registry
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import FloatArray
from modelshield.target import Target
from modelshield.testing.guard_checks import check_guard
from modelshield.testing.targets import tiny_target

REGISTRY = default_registry(entry_points=False)

# Stateful guards get small caps, so that the memory check exceeds them within a few dozen requests.
SMALL_MONITOR = functools.partial(
    ExtractionMonitor,
    max_clients=8,
    max_stored=32,
    window=64,
    min_queries=20,
    calibration_streams=10,
    calibration_length=60,
)
SMALL_CAPS: dict[str, Callable[[], InferenceGuard]] = {"extraction-monitor": SMALL_MONITOR}


@pytest.fixture(scope="module")
def tabular() -> Target:
    return tiny_target("tabular", seed=0)


@pytest.fixture(scope="module")
def image() -> Target:
    return tiny_target("image", seed=0)


@pytest.fixture(scope="module")
def black_box() -> Target:
    return tiny_target("tabular", seed=0, white_box=False)


def _check(factory: Callable[[], InferenceGuard], target: Target, **options: int) -> None:
    assert target.train is not None
    check_guard(factory, target.classifier, target.train.x, target.train.y, **options)


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_builtin_guard_passes(tabular: Target, name: str) -> None:
    _check(SMALL_CAPS.get(name, REGISTRY.get(name)), tabular)


def test_the_small_cap_factories_build_the_registered_guards() -> None:
    for name, factory in SMALL_CAPS.items():
        assert type(factory()) is type(REGISTRY.create(name))


VARIANTS: dict[str, Callable[[], InferenceGuard]] = {
    "feature-squeezing-median": functools.partial(FeatureSqueezingDetector, bit_depth=4, median_size=2, fpr=0.2),
    "strip-linear-blend-blocking": functools.partial(
        STRIPDetector, n_overlays=16, alpha=0.5, beta=0.5, fpr=0.2, on_alarm=Action.BLOCK
    ),
    "monitor-volume-cap": functools.partial(SMALL_MONITOR, max_queries=10, on_alarm=Action.BLOCK),
    "top-k-raw": functools.partial(TopK, k=2, renormalize=False),
    "rounding-0": functools.partial(Rounding, decimals=0),
    "noise-gaussian-logits": functools.partial(NoisyOutput, scale=1.0, distribution="gaussian", space="logits"),
    "noise-fresh": functools.partial(NoisyOutput, scale=0.2, repeatable=False, max_clients=8),
    "noise-loud": functools.partial(NoisyOutput, scale=3.0, preserve_argmax=False),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("kind", ["image", "black-box"])
def test_configured_guards_pass(image: Target, black_box: Target, name: str, kind: str) -> None:
    """Other settings (images for the detectors, a black-box model for the rest), with alarms that fire."""
    _check(VARIANTS[name], image if kind == "image" else black_box, seed=3)


# -- the checks catch broken guards ---------------------------------------------------------------------------------


class _SharedGenerator(OutputHardening):
    """Noise from one generator shared by every client: a client's answers depend on other clients' requests."""

    preserves_argmax = False

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def _harden(
        self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray, client_id: str
    ) -> NDArray[np.float64]:
        out = p + self._rng.uniform(0.0, 0.1, size=p.shape)
        return np.asarray(out / out.sum(axis=1, keepdims=True), dtype=np.float64)


class _Hoarder(LabelOnly):
    """Remembers every client it ever saw, though it claims a cap of four."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def inspect(self, request: GuardRequest) -> GuardDecision:
        self.seen.add(request.client_id)
        return super().inspect(request)

    def memory(self) -> GuardMemory:
        return GuardMemory(clients=len(self.seen), max_clients=4)


class _Scratchpad(LabelOnly):
    """Keeps the batch being hardened on the instance: concurrent requests overwrite each other's."""

    def _harden(
        self, p: NDArray[np.float64], log_p: NDArray[np.float64], x: FloatArray, client_id: str
    ) -> NDArray[np.float64]:
        self.current = p
        time.sleep(0.005)  # widen the window in which another thread overwrites it
        return super()._harden(self.current, log_p, x, client_id)


class _Overeager(FeatureSqueezingDetector):
    """Flags every row, whatever its score."""

    def inspect(self, request: GuardRequest) -> GuardDecision:
        decision = super().inspect(request)
        return GuardDecision(
            guard=decision.guard,
            stage=decision.stage,
            client_id=decision.client_id,
            actions=(Action.FLAG,) * len(decision.actions),
            scores=decision.scores,
            threshold=decision.threshold,
            reasons=("everything is suspicious",),
            queries=decision.queries,
        )


class _Miscounting(FeatureSqueezingDetector):
    """Reports one query per input where it spends two."""

    def queries_per_input(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("factory", "options", "message"),
    [
        (_SharedGenerator, {}, "a second guard fitted with the same seed"),
        (_Hoarder, {"clients": 3}, "clients held"),
        (_Scratchpad, {}, "concurrent inspection|inspect raised in a thread"),
        (_Overeager, {}, "differ from rows above the threshold"),
        (_Miscounting, {}, "queries; .* spent"),
    ],
    ids=["interleaving-dependent", "unbounded", "not-thread-safe", "flags-below-threshold", "miscounts-queries"],
)
def test_the_checks_catch_broken_guards(
    black_box: Target, factory: Callable[[], InferenceGuard], options: dict[str, int], message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        _check(factory, black_box, **options)


def test_the_memory_check_needs_a_cap_it_can_exceed(black_box: Target) -> None:
    with pytest.raises(InvalidParameterError, match="cannot be exceeded"):
        _check(functools.partial(SMALL_MONITOR, max_clients=100), black_box)
    with pytest.raises(InvalidParameterError, match="remembers only 2"):
        _check(functools.partial(SMALL_MONITOR, max_clients=2), black_box)
