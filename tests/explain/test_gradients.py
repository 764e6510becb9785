from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.explain.gradients import IntegratedGradients, Saliency

torch = pytest.importorskip("torch")

from modelshield.models import SklearnClassifier, TorchClassifier  # noqa: E402

USED = (0, 3)


def _linear(weights: np.ndarray) -> Any:
    """A linear torch classifier with the given (classes, features) weights and zero bias; no global seeding."""
    layer = torch.nn.Linear(weights.shape[1], weights.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weights.astype(np.float32)))
        layer.bias.zero_()
    return TorchClassifier(layer, n_classes=weights.shape[0], input_shape=(weights.shape[1],), device="cpu")


def _mlp(seed: int = 0) -> Any:
    """A small tanh network on 1×6×6 images, weights drawn from numpy (torch's global generator is left alone)."""
    rng = np.random.default_rng(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.Tanh(),
        torch.nn.Linear(16, 3),
    )  # fmt: skip
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.from_numpy(rng.normal(scale=0.6, size=tuple(p.shape)).astype(np.float32)))
    return TorchClassifier(net, n_classes=3, input_shape=(1, 6, 6), device="cpu")


def _images(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, 1, 6, 6)).astype(np.float32)


def test_completeness_on_a_network(global_setters: list[str]) -> None:
    clf, x = _mlp(), _images(12)
    result = IntegratedGradients(clf, steps=128).explain(x)
    gap = np.abs(result.output_at_input - result.output_at_baseline)
    assert gap.max() > 0.5  # something to explain
    total = result.values.reshape(12, -1).sum(axis=1)
    np.testing.assert_allclose(total, result.output_at_input - result.output_at_baseline, atol=2e-3)
    assert np.abs(result.delta).max() < 2e-3
    coarse = IntegratedGradients(clf, steps=3).explain(x)
    assert np.abs(coarse.delta).max() > np.abs(result.delta).max()  # the error shrinks with steps
    assert global_setters == []


def test_completeness_of_log_probabilities_through_loss_gradients() -> None:
    clf, x = _mlp(), _images(6)
    result = IntegratedGradients(clf, steps=128, output="log_probability", baseline=np.full((1, 6, 6), 0.5)).explain(
        x, target=[0, 1, 2, 0, 1, 2]
    )
    assert np.abs(result.delta).max() < 2e-3
    scores = clf.logits(x).astype(np.float64)
    log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(result.output_at_input, log_p[np.arange(6), [0, 1, 2, 0, 1, 2]], atol=1e-5)


@pytest.mark.parametrize("explainer", [IntegratedGradients, Saliency])
def test_zero_weights_get_zero_attribution(explainer: Any) -> None:
    weights = np.zeros((2, 6))
    weights[1, list(USED)] = [2.0, -3.0]
    weights[0, list(USED)] = [-1.0, 0.5]
    clf = _linear(weights)
    x = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    values = explainer(clf).explain(x, target=np.ones(20, dtype=np.int64)).values
    unused = [j for j in range(6) if j not in USED]
    assert np.abs(values[:, unused]).max() == 0.0
    importance = np.abs(values).mean(axis=0)
    assert set(np.argsort(-importance)[:2].tolist()) == set(USED)
    assert importance[list(USED)].min() > 0.1


def test_linear_model_is_exact_at_any_step_count() -> None:
    weights = np.random.default_rng(0).normal(size=(3, 5))
    clf = _linear(weights)
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    result = IntegratedGradients(clf, steps=2).explain(x, target=[0, 1, 2, 1])
    expected = x.astype(np.float64) * weights[[0, 1, 2, 1]]  # IG of a linear logit: x · w from a zero baseline
    np.testing.assert_allclose(result.values, expected, atol=1e-5)


def test_integrated_gradients_equal_captum() -> None:
    captum_attr = pytest.importorskip("captum.attr")
    clf, x = _mlp(), _images(8)
    target = clf.predict(x)
    steps = 40
    ours = IntegratedGradients(clf, steps=steps).explain(x, target=target).values
    inputs = torch.from_numpy(x.copy()).requires_grad_(True)
    theirs = captum_attr.IntegratedGradients(clf.module).attribute(
        inputs, target=torch.from_numpy(target), n_steps=steps, method="riemann_trapezoid"
    )
    # captum 0.9's trapezoid weights sum to (n-1)/n (step sizes 1/n over n points, ends halved), ours to 1 (step
    # 1/(n-1), the trapezoid rule over [0, 1]): the same integrand at the same points, scaled.
    np.testing.assert_allclose(ours * (steps - 1) / steps, theirs.detach().numpy(), atol=1e-5, rtol=1e-4)
    assert np.abs(ours).max() > 0.1


def test_saliency_equals_captum() -> None:
    captum_attr = pytest.importorskip("captum.attr")
    clf, x = _mlp(), _images(8)
    target = clf.predict(x)
    ours = Saliency(clf).explain(x).values
    inputs = torch.from_numpy(x.copy()).requires_grad_(True)
    theirs = captum_attr.Saliency(clf.module).attribute(inputs, target=torch.from_numpy(target))
    np.testing.assert_allclose(ours, theirs.detach().numpy(), atol=1e-6)


def test_no_global_side_effects_and_works_under_inference_mode() -> None:
    clf, x = _mlp(), _images(4)
    before = IntegratedGradients(clf, steps=8).explain(x).values
    with torch.inference_mode():
        inside = IntegratedGradients(clf, steps=8).explain(x).values
    with torch.no_grad():
        Saliency(clf).explain(x)
        assert not torch.is_grad_enabled()
    np.testing.assert_allclose(inside, before, atol=1e-6)
    assert torch.is_grad_enabled()
    assert not clf.module.training
    assert all(p.grad is None for p in clf.module.parameters())


def test_batching_and_query_accounting() -> None:
    clf, x = _mlp(), _images(10)
    whole = IntegratedGradients(clf, steps=16).explain(x)
    clf.reset_queries()
    clf.gradient_queries = 0
    small = IntegratedGradients(clf, steps=16, batch_size=7).explain(x)  # paths split across gradient calls
    np.testing.assert_allclose(small.values, whole.values, atol=1e-6)
    assert small.gradient_evaluations == clf.gradient_queries == 10 * 16


def test_baselines_and_summary() -> None:
    clf, x = _mlp(), _images(3)
    per_row = IntegratedGradients(clf, steps=8, baseline=x[::-1].copy()).explain(x)
    assert np.abs(per_row.values[1]).max() == 0.0  # the middle row is its own baseline
    with pytest.raises(InvalidInputError, match="baseline"):
        IntegratedGradients(clf, baseline=np.zeros((2, 2))).explain(x)
    summary = json.loads(json.dumps(per_row.to_dict()))
    assert summary["method"] == "integrated_gradients"
    assert summary["input_shape"] == [1, 6, 6]


def test_parameter_errors(make_data: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = make_data(50)
    with pytest.raises(InvalidParameterError, match="white-box"):
        Saliency(SklearnClassifier(LogisticRegression().fit(x, y)))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="steps"):
        IntegratedGradients(_mlp(), steps=1)
    with pytest.raises(InvalidParameterError, match="output"):
        Saliency(_mlp(), output="probability")  # type: ignore[arg-type]
