"""White-box evasion attacks: valid examples by construction, re-checked success, strength ordering, masking checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.attacks.evasion.evaluation import evaluate_robustness
from modelshield.attacks.evasion.interface import Constraints, Norm, perturbation_norms
from modelshield.attacks.evasion.whitebox import apgd, deepfool, fgsm, pgd
from modelshield.data.interface import Feature, FeatureKind, Schema
from modelshield.errors import InvalidParameterError
from modelshield.models import Bounds, TorchClassifier
from modelshield.target import Target
from modelshield.zoo import load_target

TOL = 1e-6  # float32 rounding of x + delta


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return load_target("zoo:digits-cnn", cache_dir=tmp_path_factory.mktemp("zoo"))


def _sample(target: Target, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    return target.test.x[:n], target.test.y[:n]


def _valid(result_x: np.ndarray, x: np.ndarray, eps: float | None, norm: Norm) -> None:
    assert result_x.dtype == np.float32 and result_x.shape == x.shape
    assert result_x.min() >= 0.0 and result_x.max() <= 1.0
    if eps is not None:
        assert perturbation_norms(result_x, x, norm).max() <= eps + TOL


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_every_attack_stays_in_the_ball_and_range_and_success_is_rechecked(digits: Target, norm: Norm) -> None:
    x, y = _sample(digits)
    clf = digits.classifier
    eps = 0.1 if norm is Norm.LINF else 1.0
    for result in (
        fgsm(clf, x, y, eps=eps, norm=norm),
        pgd(clf, x, y, eps=eps, norm=norm, steps=10, restarts=2),
        apgd(clf, x, y, eps=eps, norm=norm, steps=20),
        apgd(clf, x, y, eps=eps, norm=norm, steps=20, loss="dlr"),
    ):
        _valid(result.x_adv, x, eps, norm)
        assert np.array_equal(result.predicted, clf.predict(result.x_adv))  # success measured on what is returned
        assert 0.0 <= result.robust_accuracy <= result.clean_accuracy + 1e-9
        assert result.queries > 0


def test_stronger_attacks_do_no_worse_and_large_budgets_break_everything(digits: Target) -> None:
    x, y = _sample(digits, 200)
    clf = digits.classifier
    eps = 0.1
    one = fgsm(clf, x, y, eps=eps).robust_accuracy
    forty = pgd(clf, x, y, eps=eps, steps=40).robust_accuracy
    auto = apgd(clf, x, y, eps=eps, steps=100).robust_accuracy
    assert forty <= one + 0.02 and auto <= forty + 0.02
    assert forty < clf.accuracy(x, y) - 0.2  # eps = 10% of the range hurts an undefended CNN a lot
    assert pgd(clf, x, y, eps=0.5, steps=20).robust_accuracy == 0.0


def test_deepfool_finds_small_l2_perturbations_for_every_correct_input(digits: Target) -> None:
    x, y = _sample(digits)
    result = deepfool(digits.classifier, x, y)
    _valid(result.x_adv, x, None, Norm.L2)
    right = result.clean_correct
    assert result.success[right].mean() > 0.95
    assert 0 < np.median(result.distances[right]) < 2.0  # an 8x8 image has L2 diameter 8


def test_pgd_is_deterministic_under_a_seed(digits: Target) -> None:
    x, y = _sample(digits, 50)
    a = pgd(digits.classifier, x, y, eps=0.1, steps=5, seed=7)
    b = pgd(digits.classifier, x, y, eps=0.1, steps=5, seed=7)
    assert np.array_equal(a.x_adv, b.x_adv)


def test_bad_parameters_are_refused(digits: Target) -> None:
    x, y = _sample(digits, 4)
    with pytest.raises(InvalidParameterError):
        pgd(digits.classifier, x, y, eps=0.0)
    with pytest.raises(InvalidParameterError):
        pgd(digits.classifier, x, y, eps=0.1, steps=0)
    with pytest.raises(InvalidParameterError):
        apgd(digits.classifier, x, y, eps=0.1, loss="hinge")  # type: ignore[arg-type]


def _tabular_model() -> tuple[TorchClassifier, Schema, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(18, 90, 300), rng.normal(0, 1, 300), rng.integers(0, 5, 300)]).astype(np.float32)
    y = ((x[:, 1] + 0.05 * (x[:, 0] - 50) + 0.3 * x[:, 2]) > 0.5).astype(np.int64)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    schema = Schema(
        features=(
            Feature("age", FeatureKind.INTEGER, low=18, high=90, immutable=True),
            Feature("score", FeatureKind.CONTINUOUS, low=-4, high=4),
            Feature("visits", FeatureKind.INTEGER, low=0, high=4),
        ),
        input_shape=(3,),
    )
    bounds = Bounds(np.array([18, -4, 0], np.float32), np.array([90, 4, 4], np.float32))
    clf = TorchClassifier(net, n_classes=2, input_shape=(3,), clip_values=bounds)
    return clf, schema, x, y


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_tabular_examples_remain_valid_records(norm: Norm) -> None:
    clf, schema, x, y = _tabular_model()
    constraints = Constraints.from_schema(schema, clf.clip_values)
    eps = 1.5
    for result in (
        pgd(clf, x, y, eps=eps, norm=norm, steps=20, constraints=constraints),
        apgd(clf, x, y, eps=eps, norm=norm, steps=20, constraints=constraints),
    ):
        adv = result.x_adv
        assert np.array_equal(adv[:, 0], x[:, 0])  # immutable
        assert np.array_equal(adv[:, 2], np.round(adv[:, 2]))  # integer
        assert adv[:, 2].min() >= 0 and adv[:, 2].max() <= 4 and np.abs(adv[:, 1]).max() <= 4
        assert perturbation_norms(adv, x, norm).max() <= eps + TOL
        assert result.success.mean() > 0  # it still finds something


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.floats(0.01, 3.0),
    st.sampled_from([Norm.LINF, Norm.L2]),
    st.integers(0, 2**31 - 1),
)
def test_projection_is_valid_for_any_input(n: int, eps: float, norm: Norm, seed: int) -> None:
    schema = _SCHEMA
    rng = np.random.default_rng(seed)
    constraints = Constraints.from_schema(schema)
    x = np.column_stack([rng.integers(18, 90, n), rng.uniform(-4, 4, n), rng.integers(0, 5, n)]).astype(np.float32)
    wild = x + rng.normal(0, 10, x.shape).astype(np.float32)
    out = constraints.project(wild, x, norm, eps)
    assert np.array_equal(out[:, 0], x[:, 0]) and np.array_equal(out[:, 2], np.round(out[:, 2]))
    assert (out >= constraints.low).all() and (out <= constraints.high).all()
    assert perturbation_norms(out, x, norm).max() <= eps + 1e-5


_SCHEMA = Schema(
    features=(
        Feature("age", FeatureKind.INTEGER, low=18, high=90, immutable=True),
        Feature("score", FeatureKind.CONTINUOUS, low=-4, high=4),
        Feature("visits", FeatureKind.INTEGER, low=0, high=4),
    ),
    input_shape=(3,),
)


@pytest.mark.slow  # minutes on a shared 2-core runner: DeepFool and 5-restart PGD against a masked CNN
def test_evaluation_corrects_gradient_masking(digits: Target) -> None:
    x, y = _sample(digits, 150)
    honest = evaluate_robustness(digits.classifier, x, y, eps=(0.05, 0.1), steps=10)
    assert honest.reliable, honest.reliability
    assert honest.worst[1] <= min(v[1] for v in honest.robust.values())

    class Quantised(torch.nn.Module):  # rounds its input: zero gradients, the classic masking defence
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return self.inner(torch.round(v * 4) / 4)

    clf = digits.classifier
    assert isinstance(clf, TorchClassifier)
    masked = TorchClassifier(Quantised(clf.module), n_classes=10, input_shape=clf.input_shape,
                             clip_values=clf.clip_values)  # fmt: skip
    corrected = evaluate_robustness(masked, x, y, eps=(0.05, 0.1), steps=10)  # BPDA, not only a flag
    assert any("BPDA" in note for note in corrected.adaptations)
    assert not corrected.reliability, corrected.reliability  # the straight-through gradients lead somewhere


def test_the_audit_check_reports_image_examples_on_a_tiny_model() -> None:
    from modelshield.audit import AuditOptions, Auditor
    from modelshield.reporting import render_html
    from modelshield.testing.targets import tiny_target

    report = Auditor(AuditOptions(checks=("evasion",))).run(tiny_target("image"))
    finding = next(f for f in report.findings if f.id == "evasion.robust-accuracy")
    assert finding.metrics["reference_eps"] == "0.05" and "of the input range" in finding.title
    examples = finding.evidence["examples"]
    assert examples and len(examples[0]["clean"]) == 6 and len(examples[0]["adversarial"][0]) == 6  # type: ignore[index,arg-type]
    assert report.config["settings"]["evasion"] == {"samples": 200, "steps": 10, "queries": 250, "restarts": 1}  # type: ignore[index,call-overload]
    assert "<h4>Examples</h4>" in render_html(report)


@pytest.mark.slow  # trains and attacks the zoo's digits CNN
def test_the_audit_check_reports_a_curve_and_severity(digits: Target, tmp_path: Path) -> None:
    from modelshield.audit import AuditOptions, Auditor

    report = Auditor(AuditOptions(checks=("evasion",))).run(digits)
    finding = next(f for f in report.findings if f.id == "evasion.robust-accuracy")
    assert finding.owasp is not None and finding.owasp.value == "ML01" and "AML.T0015" in finding.atlas
    assert finding.charts and finding.charts[0].kind == "line"
    assert 0 <= float(finding.metrics["robust_accuracy_at_reference"]) <= float(finding.metrics["clean_accuracy"])  # type: ignore[arg-type]
    examples = finding.evidence["examples"]
    assert examples and len(examples[0]["clean"]) == 8  # type: ignore[index,arg-type]
    from modelshield.reporting import render_html

    page = render_html(report)
    assert "<h4>Examples</h4>" in page and page.count("<rect") > 64
