"""Attributions against a known ground truth: a digits-cnn with a planted backdoor, whose trigger's place is known.

On triggered inputs the backdoored model answers the target class because of a 2x2 patch (4 of 64 pixels, 6.25% of
the area); a correct explanation of that answer puts its mass on the patch. Measured when this test was written:
integrated gradients put 43% of the mass there on average (10% quantile 37%), saliency 27%; on clean inputs
integrated gradients put 0.3% there. The bars below are several times the patch's area share, not the measured
figures.
"""

from __future__ import annotations

import numpy as np
import pytest

import backdoors
from backdoors import CHECKERBOARD, plant
from modelshield.explain.gradients import IntegratedGradients, Saliency
from modelshield.models.torch_classifier import TorchClassifier
from modelshield.target import Target

one_thread = pytest.fixture(autouse=True, scope="module")(backdoors.one_thread)
digits = backdoors.digits  # zoo:digits-cnn on the CPU, a module fixture


@pytest.fixture(scope="module")
def backdoored(digits: Target) -> TorchClassifier:
    return plant(digits, CHECKERBOARD)


def _share_in_trigger(values: np.ndarray) -> np.ndarray:
    mass = np.abs(values).reshape(len(values), -1)
    inside = mass[:, CHECKERBOARD.mask().reshape(-1)].sum(axis=1)
    return np.asarray(inside / np.maximum(mass.sum(axis=1), 1e-12))


def test_explanations_of_triggered_answers_point_at_the_trigger(digits: Target, backdoored: TorchClassifier) -> None:
    x = np.array(digits.test.x)[np.array(digits.test.y) != CHECKERBOARD.target]
    triggered = CHECKERBOARD.stamp(x)
    fooled = backdoored.predict_proba(triggered).argmax(axis=1) == CHECKERBOARD.target
    assert fooled.mean() > 0.9  # the backdoor works, so the trigger is what the answer rests on
    area = float(CHECKERBOARD.mask().mean())
    target = np.full(int(fooled.sum()), CHECKERBOARD.target)
    ig = _share_in_trigger(IntegratedGradients(backdoored, steps=32).explain(triggered[fooled], target=target).values)
    assert ig.mean() > 4 * area and np.quantile(ig, 0.1) > 2 * area, (ig.mean(), np.quantile(ig, 0.1))
    saliency = _share_in_trigger(Saliency(backdoored).explain(triggered[fooled], target=target).values)
    assert saliency.mean() > 2 * area, saliency.mean()
    clean = x[:200]
    answer = backdoored.predict_proba(clean).argmax(axis=1)
    on_clean = _share_in_trigger(IntegratedGradients(backdoored, steps=32).explain(clean, target=answer).values)
    assert on_clean.mean() < area, on_clean.mean()  # nothing there on clean inputs: the patch area is blank
