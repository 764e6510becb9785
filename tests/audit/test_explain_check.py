"""The ``explain`` check: on models that use only some features by construction, the used ones rank first and the
unused ones get (exactly, for trees and for a linear torch model) nothing; the black-box path counts its queries and
stays within its limit; the zoo's tabular and image targets get their findings, which round-trip through JSON and
render (escaped) in HTML; a model whose attributions flip under tiny noise is reported, a smooth one is not."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from modelshield.audit import AuditOptions, Auditor
from modelshield.audit.checks.explain import (
    EXPLAIN,
    ExplainMeasurement,
    ExplainSettings,
    choose_method,
    coarse_grid,
    severity_of,
    top_k_for,
)
from modelshield.audit.interface import Budget, CheckContext
from modelshield.audit.registry import CheckRegistry, default_registry
from modelshield.data.interface import Dataset, Schema
from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding, Report, Severity
from modelshield.models import SklearnClassifier
from modelshield.models.interface import Classifier
from modelshield.reporting import load_report_schema, render_html
from modelshield.target import Target

HOSTILE = "<script>alert('x')</script>"
NAMES = ("used_a", "used_b", "noise_1", "noise_2", "noise_3", "noise_4")
WEIGHTS = np.array([2.0, -3.0, 0.0, 0.0, 0.0, 0.0])


def dataset(n: int, seed: int, names: tuple[str, ...] = NAMES) -> Dataset:
    """Six standard-normal features; the label depends on the first two only."""
    x = np.random.default_rng(seed).normal(size=(n, len(names))).astype(np.float32)
    y = ((x[:, 0] > 0) & (x[:, 1] > 0)).astype(np.int64)
    return Dataset(x=x, y=y, schema=Schema.continuous(names), label_names=("no", "yes"), name="synthetic")


def target_of(classifier: Classifier, names: tuple[str, ...] = NAMES) -> Target:
    return Target("synthetic", classifier, dataset(300, 1, names), train=dataset(600, 0, names))


def context(target: Target, budget: Budget = Budget.QUICK, seed: int = 0) -> CheckContext:
    return CheckContext(target=target, budget=budget, seed=seed, rng=np.random.default_rng(seed))


def measure(target: Target, settings: ExplainSettings | None = None) -> ExplainMeasurement:
    return EXPLAIN.measure(context(target), settings or EXPLAIN.settings(Budget.QUICK))


def forest() -> SklearnClassifier:
    train = dataset(600, 0)
    model = RandomForestClassifier(n_estimators=10, max_depth=2, max_features=None, random_state=0)
    model.fit(train.x, train.y)
    used = {int(f) for tree in model.estimators_ for f in tree.tree_.feature if f >= 0}
    assert used == {0, 1}  # the construction: two splits per tree separate the classes exactly
    return SklearnClassifier(model)


def logistic() -> SklearnClassifier:
    """A logistic model whose weights on the four noise features are exactly zero."""
    train = dataset(600, 0)
    model = LogisticRegression().fit(train.x, train.y)
    model.coef_ = WEIGHTS[None, :].copy()
    model.intercept_ = np.array([0.0])
    return SklearnClassifier(model)


def torch_model(frequency: float = 0.0) -> Classifier:
    """Two logits, ``∓ (w·x + sum_j sin(frequency x_j) / 2)``: linear (using features 0 and 1) at frequency 0, with a
    high-frequency term on every feature otherwise."""
    torch = pytest.importorskip("torch")
    from modelshield.models import TorchClassifier

    weights = torch.tensor(WEIGHTS, dtype=torch.float32)

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            score = x @ weights + (torch.sin(frequency * x).sum(dim=1) / 2 if frequency else 0.0)
            return torch.stack([-score / 2, score / 2], dim=1)

    return TorchClassifier(Net(), n_classes=2, input_shape=(6,), device="cpu")


# -- the explainer fits the model ----------------------------------------------------------------------------------
def test_the_explainer_follows_what_the_model_offers() -> None:
    assert choose_method(forest()) == "tree_shap"
    assert choose_method(logistic()) == "sampling_shap"
    assert choose_method(torch_model()) == "integrated_gradients"


# -- ground truth: only the first two features matter ---------------------------------------------------------------
@pytest.mark.parametrize("make", [forest, logistic, torch_model], ids=["tree", "black-box", "torch"])
def test_the_used_features_rank_first_and_the_unused_get_nothing(make: object) -> None:
    classifier = make()  # type: ignore[operator]
    m = measure(target_of(classifier))
    assert set(np.argsort(-m.importance)[:2]) == {0, 1}
    assert np.all(m.importance[:2] > 0.01)
    if m.method == "tree_shap":  # the trees never split on the noise features: exactly zero
        assert np.all(m.importance[2:] == 0.0)
    else:
        assert np.all(np.abs(m.importance[2:]) < 1e-6 * m.importance[:2].max())
    (finding, *rest) = EXPLAIN.judge(m)
    assert not rest
    assert finding.id == "explain.global-attribution" and finding.severity is Severity.INFO
    assert finding.metrics["top_features"][:2] in (["used_b", "used_a"], ["used_a", "used_b"])  # type: ignore[index]
    assert finding.charts[0].x[:2] == tuple(finding.metrics["top_features"][:2])  # type: ignore[index]
    if m.method == "integrated_gradients":  # saliency beside it: the gradient is w / 2, nothing on the noise
        assert m.saliency is not None and np.all(m.saliency[2:] == 0.0)
        assert set(finding.metrics["saliency_top_features"][:2]) == {"used_a", "used_b"}  # type: ignore[index]


# -- the black box's query limit --------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_queries", [400, 3_000, 20_000])
def test_the_black_box_path_counts_its_queries_and_keeps_to_its_limit(max_queries: int) -> None:
    classifier = logistic()
    settings = ExplainSettings(
        records=50, background=10, max_queries=max_queries, steps=8, stability_records=20, repeats=3
    )
    before = classifier.queries
    m = measure(target_of(classifier), settings)
    spent = classifier.queries - before
    assert m.queries == spent
    assert 0 < spent <= max_queries
    assert m.max_queries == max_queries
    if max_queries == 400:  # too few for 50 records against 10 background rows: fewer records
        assert m.records < 50
    finding = EXPLAIN.judge(m)[0]
    assert finding.metrics["queries"] == spent and str(max_queries) in finding.description


def test_a_limit_that_pays_for_no_record_is_refused_before_any_query() -> None:
    classifier = logistic()
    settings = ExplainSettings(records=50, background=10, max_queries=8, steps=8, stability_records=20, repeats=3)
    with pytest.raises(InvalidParameterError, match="cannot explain one record"):
        measure(target_of(classifier), settings)
    assert classifier.queries == 0


# -- stability ---------------------------------------------------------------------------------------------------------
def test_attributions_that_flip_under_tiny_noise_are_a_finding() -> None:
    m = measure(target_of(torch_model(frequency=300.0)))
    assert m.stability is not None and m.stability.mean_top_k < 0.75
    findings = {f.id: f for f in EXPLAIN.judge(m)}
    unstable = findings["explain.unstable"]
    assert unstable.severity in (Severity.LOW, Severity.MEDIUM)
    assert unstable.metrics["mean_top_k_overlap"] == pytest.approx(m.stability.mean_top_k)
    assert "see explain.unstable" in findings["explain.global-attribution"].description


@pytest.mark.parametrize("make", [forest, torch_model], ids=["tree", "torch"])
def test_a_smooth_model_is_stable(make: object) -> None:
    m = measure(target_of(make()))  # type: ignore[operator]
    assert m.stability is not None and m.stability.mean_top_k >= 0.75
    (finding,) = EXPLAIN.judge(m)
    assert finding.metrics["stability"]["mean_top_k_overlap"] >= 0.75  # type: ignore[index,call-overload]
    assert "the explanations are stable" in finding.description


@pytest.mark.parametrize(
    ("overlap", "severity"),
    [
        (0.49, Severity.MEDIUM),
        (0.5, Severity.LOW),
        (0.74, Severity.LOW),
        (0.75, Severity.INFO),
        (float("nan"), Severity.INFO),
    ],
)
def test_the_thresholds_at_their_boundaries(overlap: float, severity: Severity) -> None:
    assert severity_of(overlap) is severity


def test_top_k_is_a_third_of_the_inputs_between_one_and_five() -> None:
    assert [top_k_for(n) for n in (1, 2, 6, 9, 15, 64, 784)] == [1, 1, 2, 3, 5, 5, 5]


def test_an_image_grid_sums_channels_and_pools_to_eight_by_eight() -> None:
    image = np.zeros((3, 16, 16))
    image[:, 0:2, 14:16] = 1.0  # top-right 2x2 block, in every channel
    grid = coarse_grid(image.reshape(-1), (3, 16, 16))
    assert grid is not None and grid.shape == (8, 8)
    assert grid[0, 7] == pytest.approx(3.0) and grid.sum() == pytest.approx(3.0)
    assert coarse_grid(np.ones(6), (6,)) is None


# -- the zoo, JSON and HTML --------------------------------------------------------------------------------------------
def test_the_check_is_registered_and_runs_by_default() -> None:
    assert EXPLAIN.default and "explain" in default_registry(entry_points=False).names()


@pytest.mark.parametrize("name", ["zoo:phishing-gbm", "zoo:digits-cnn"])
def test_the_zoo_targets_get_their_findings_in_json_and_html(name: str, zoo_cache: Path) -> None:
    from modelshield.zoo import load_target

    target = load_target(name, cache_dir=zoo_cache, device="cpu")
    report = Auditor(AuditOptions(checks=("explain",), budget="quick"), registry=CheckRegistry([EXPLAIN])).run(target)
    findings = {f.id: f for f in report.findings}
    finding = findings["explain.global-attribution"]
    assert finding.metrics["records"] == 50
    assert finding.metrics["explainer"] == ("tree_shap" if "gbm" in name else "integrated_gradients")
    assert finding.metrics["stability"] is not None
    if "digits" in name:
        grid = finding.evidence["grid"]
        assert len(grid) == 8 and all(len(row) == 8 for row in grid)  # type: ignore[arg-type]
        assert len(finding.charts) == 2
    data = json.loads(json.dumps(report.to_dict()))
    jsonschema.Draft202012Validator(load_report_schema()).validate(data)
    assert Report.from_dict(data).findings == report.findings
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding
    assert "Top inputs by mean |attribution|" in render_html(report)


def test_feature_names_are_escaped_in_html() -> None:
    names = (HOSTILE, *NAMES[1:])
    report = Auditor(AuditOptions(checks=("explain",)), registry=CheckRegistry([EXPLAIN])).run(
        target_of(forest(), names)
    )
    html = render_html(report)
    assert HOSTILE not in html and "&lt;script&gt;" in html
