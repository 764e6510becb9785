"""The ``explain`` check: which inputs drive the model's decisions, and do those explanations survive noise?

    >>> from modelshield.audit.checks.explain import EXPLAIN, severity_of
    >>> EXPLAIN.budgets["quick"].records, EXPLAIN.budgets["standard"].records
    (50, 200)
    >>> severity_of(0.4).value, severity_of(0.6).value, severity_of(0.9).value
    ('medium', 'low', 'info')

**Explainer**, by what the target offers (:func:`choose_method`):

- a scikit-learn tree ensemble that :class:`~modelshield.explain.TreeShap` reads: exact path-dependent TreeSHAP
  (no model queries; the expectation follows the trees' training covers, so no background set is used);
- a white-box model (:class:`~modelshield.models.GradientClassifier`): integrated gradients of the predicted class's
  logit (its log-probability for an adapter without a torch module), from a baseline of the reference data's mean
  for tabular inputs and of the lowest valid value (black) for images; saliency (the gradient's magnitude at each
  record, one gradient per record) is computed beside it, and the finding gives how closely the two rank the inputs;
- anything else (other scikit-learn models, ONNX, a remote endpoint): :class:`~modelshield.explain.SamplingShap`,
  permutation-sampling SHAP against a background set, under the budget's query limit
  (:attr:`ExplainSettings.max_queries`), which covers every query the check sends: the global explanation gets
  :data:`GLOBAL_SHARE` of it, the stability measurement the rest. When the limit cannot pay for the records asked
  for, fewer records (then fewer background rows) are explained; the finding gives the records and queries spent.

Each explained record is explained for the class the model predicts for it. The records are a random subset of the
test data (:meth:`~modelshield.audit.interface.CheckContext.sample_test`), :attr:`ExplainSettings.records` of them
(50 quick, 200 standard, 1000 thorough); the background and the reference data for noise scales are drawn from the
training data when the target has it, else from the test data.

**Global attribution** (finding ``explain.global-attribution``, info): the mean absolute attribution per input
value over the records, and each value's share of the total; tabular features are named from the data's schema.
For images the importance is also summed over channels and averaged into a grid of at most 8x8 cells (a coarse heat
map, in the evidence and as a chart, row by row); the charts show the top inputs.

**Stability** (:func:`~modelshield.explain.attribution_stability`): on up to :attr:`ExplainSettings.stability_records`
of the records, Gaussian noise of :data:`NOISE_FRACTION` (5%) of each input's standard deviation in the reference
data is added (one standard deviation over all values for images, per feature for tabular data; clipped to the
model's valid range), :attr:`ExplainSettings.repeats` times, and the attributions of the same class compared with
the clean ones: the overlap of the top-``k`` inputs by |attribution| (``k`` = :func:`top_k_for`: a third of the
inputs, at most 5, so that a random ranking overlaps by about ``k / inputs``) and Spearman's rank correlation.

**Judgement** (:func:`severity_of`), on the mean top-``k`` overlap: below 0.5 (on average more than half of the
inputs an explanation names as the most important change under noise nobody would notice) ``explain.unstable``,
medium; below 0.75 (one in four changes) low; otherwise the stability figures go into the global finding. Spearman's
correlation is reported, not judged: over all inputs it is dominated by the order of the many near-zero
attributions (blank pixels, unused features), which noise shuffles without changing what the explanation says.
An unstable explanation is not a vulnerability by itself: it means the attributions cannot be relied on (and that
the model's decision surface is rough near the data). No OWASP ML Top 10 category or MITRE ATLAS technique covers
it: both are left empty.

Not in scope yet: explanations tied to other findings (where evasion perturbations concentrate against the clean
attribution, the trigger region of a backdoor finding).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import spearmanr

from modelshield.audit.interface import Budget, Check, CheckContext
from modelshield.errors import InvalidParameterError
from modelshield.explain import (
    IntegratedGradients,
    Saliency,
    SamplingShap,
    StabilityResult,
    TreeShap,
    attribution_stability,
)
from modelshield.explain.interface import Explainer, mean_abs_importance
from modelshield.findings import Chart, Finding, JSONValue, Severity
from modelshield.models.interface import Bounds, Classifier, GradientClassifier
from modelshield.models.sklearn_classifier import SklearnClassifier
from modelshield.target import Target

__all__ = [
    "EXPLAIN",
    "GLOBAL_SHARE",
    "GRID",
    "NOISE_FRACTION",
    "TOP_K_OVERLAP_THRESHOLDS",
    "TOP_SHOWN",
    "ExplainCheck",
    "ExplainMeasurement",
    "ExplainSettings",
    "Method",
    "choose_method",
    "coarse_grid",
    "ig_baseline",
    "image_plane",
    "severity_of",
    "top_k_for",
]

#: Standard deviation of the stability noise, as a fraction of each input's standard deviation in the data.
NOISE_FRACTION = 0.05
#: Mean top-k overlap under noise below which each severity applies.
TOP_K_OVERLAP_THRESHOLDS: tuple[tuple[float, Severity], ...] = ((0.5, Severity.MEDIUM), (0.75, Severity.LOW))
#: Share of a black box's query limit that the global explanation may spend; the stability measurement gets the rest.
GLOBAL_SHARE = 0.6
#: Inputs shown in the top-inputs chart.
TOP_SHOWN = 10
#: Largest side of the coarse heat map of an image's importance.
GRID = 8

Method = Literal["tree_shap", "integrated_gradients", "sampling_shap"]
_METHOD_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "tree_shap": "exact TreeSHAP (path-dependent)",
        "integrated_gradients": "integrated gradients",
        "sampling_shap": "permutation-sampling SHAP (black box)",
    }
)


@dataclass(frozen=True)
class ExplainSettings:
    """What a budget buys the explain check."""

    records: int  # test records explained
    background: int  # background rows of the black-box explainer
    max_queries: int  # every model query of the black-box path, all told
    steps: int  # points on the integrated-gradients path
    stability_records: int  # records of the stability measurement (a subset of the explained ones)
    repeats: int  # noisy copies per record


_BUDGETS: Mapping[Budget, ExplainSettings] = MappingProxyType(
    {
        Budget.QUICK: ExplainSettings(
            records=50, background=10, max_queries=20_000, steps=16, stability_records=20, repeats=3
        ),
        Budget.STANDARD: ExplainSettings(
            records=200, background=20, max_queries=100_000, steps=32, stability_records=50, repeats=5
        ),
        Budget.THOROUGH: ExplainSettings(
            records=1000, background=50, max_queries=1_000_000, steps=64, stability_records=200, repeats=10
        ),
    }
)


def severity_of(mean_top_k_overlap: float) -> Severity:
    """Severity of an explanation whose top-k inputs overlap by ``mean_top_k_overlap`` under noise (NaN: info)."""
    for threshold, severity in TOP_K_OVERLAP_THRESHOLDS:
        if mean_top_k_overlap < threshold:
            return severity
    return Severity.INFO


def top_k_for(n_values: int) -> int:
    """The ``k`` of the top-``k`` overlap for inputs of ``n_values`` values: a third of them, between 1 and 5."""
    return max(1, min(5, n_values // 3))


def choose_method(classifier: Classifier) -> Method:
    """The explainer the target's model allows (see the module): TreeSHAP, integrated gradients or sampling."""
    if isinstance(classifier, SklearnClassifier):
        try:
            TreeShap(classifier)
        except InvalidParameterError:
            return "sampling_shap"
        return "tree_shap"
    if isinstance(classifier, GradientClassifier):
        return "integrated_gradients"
    return "sampling_shap"


def image_plane(values: ArrayLike, input_shape: tuple[int, ...]) -> NDArray[np.float64]:
    """One image's values (at least 2-D ``input_shape``) as a 2-D plane, channels summed: the first axis of a 3-D
    shape when it is at most 4, else the last; every leading axis of a longer shape."""
    image = np.asarray(values, dtype=np.float64).reshape(input_shape)
    if image.ndim == 3:
        image = image.sum(axis=0) if input_shape[0] <= 4 else image.sum(axis=-1)
    elif image.ndim > 3:
        image = image.reshape(-1, *input_shape[-2:]).sum(axis=0)
    return np.asarray(image, dtype=np.float64)


def coarse_grid(importance: NDArray[np.float64], input_shape: tuple[int, ...]) -> NDArray[np.float64] | None:
    """An image's importance summed over channels and averaged into at most ``GRID`` x ``GRID`` cells; None for
    tabular inputs. Channels come first when the first axis of a 3-D shape is at most 4, else last."""
    if len(input_shape) < 2:
        return None
    image = image_plane(importance, input_shape)
    height, width = image.shape
    rows = np.array_split(np.arange(height), min(GRID, height))
    cols = np.array_split(np.arange(width), min(GRID, width))
    return np.array([[image[np.ix_(r, c)].mean() for c in cols] for r in rows])


@dataclass(frozen=True)
class ExplainMeasurement:
    """What the explain check measured.

    ``importance``: the mean |attribution| per input value over the explained records, flattened (one per name in
    ``feature_names``); ``queries``: the model inputs the check sent (black box: under ``max_queries``);
    ``gradient_evaluations``: for integrated gradients; ``stability``: None, with ``stability_note`` saying why,
    when it was not measured.
    """

    method: Method
    records: int
    feature_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    importance: NDArray[np.float64]
    queries: int
    max_queries: int | None
    gradient_evaluations: int
    background: int
    permutations: int | None
    stability: StabilityResult | None
    stability_note: str = ""
    noise_fraction: float = NOISE_FRACTION
    budget: str = ""
    saliency: NDArray[np.float64] | None = None  # white box: mean |gradient| per input value, a second opinion


class _Budgeted:
    """A SamplingShap seen as an :class:`~modelshield.explain.interface.Explainer`, adding up the queries spent."""

    def __init__(self, shap: SamplingShap) -> None:
        self.shap = shap
        self.spent = 0

    def attribute(self, x: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
        arr = np.asarray(x, dtype=np.float32)
        result = self.shap.explain(arr)
        self.spent += result.queries
        picked = result.values[np.arange(len(arr)), :, np.asarray(target, dtype=np.int64)]
        return np.asarray(picked.reshape(arr.shape), dtype=np.float64)


class _Rescaled:
    """An explainer taking inputs in units of each input's spread (``x = center + z * scale``), so that one noise
    scale is the same fraction of every feature's spread; inputs with no spread keep their value, and inputs are
    clipped to the model's valid range."""

    def __init__(
        self, explainer: Explainer, center: NDArray[np.float64], scale: NDArray[np.float64], bounds: Bounds | None
    ) -> None:
        self.explainer = explainer
        self.center = center
        self.scale = np.where(scale > 0, scale, 1.0)
        self.fixed = scale <= 0
        self.bounds = bounds

    def to_units(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.asarray((x.astype(np.float64) - self.center) / self.scale, dtype=np.float32)

    def attribute(self, z: ArrayLike, target: ArrayLike) -> NDArray[np.float64]:
        x = np.where(self.fixed, self.center, self.center + np.asarray(z, dtype=np.float64) * self.scale)
        inputs = self.bounds.clip(x) if self.bounds is not None else x.astype(np.float32)
        return self.explainer.attribute(inputs, target)


def _reference(context: CheckContext, limit: int) -> NDArray[np.float32]:
    """Up to ``limit`` random rows of the training data (the test data when the target has none)."""
    data = context.target.train if context.target.train is not None else context.target.test
    n = len(data)
    index = np.sort(context.rng.choice(n, size=min(n, limit), replace=False))
    return np.asarray(data.x[index], dtype=np.float32)


def _names(target: Target) -> tuple[str, ...]:
    names = target.test.schema.names
    size = int(np.prod(target.classifier.input_shape))
    return tuple(names) if len(names) == size else tuple(f"input[{i}]" for i in range(size))


def _rows_that_fit(queries: int, rows: int, features: int, background: int) -> tuple[int, int]:
    """(rows, background rows) that one antithetic pair of permutations per row can pay for within ``queries``
    (SamplingShap's cost ``B + n + 2 n (f - 1) B``); fewer rows first, then fewer background rows; (0, 0) if
    not even one row against one background row fits."""
    per_row = 1 + 2 * (features - 1) * background
    fit = (queries - background) // per_row if queries > background else 0
    if fit >= 1:
        return min(rows, fit), background
    smaller = (queries - 1) // (2 * features - 1)  # one row: B (2f - 1) + 1 <= queries
    return (1, smaller) if smaller >= 1 else (0, 0)


@dataclass(frozen=True)
class _Explained:
    """The global explanation before it is summarised: the records, their classes and their attributions."""

    method: Method
    explainer: Explainer | None  # None for the black box: stability builds its own, under what is left of the limit
    x: NDArray[np.float32]
    target: NDArray[np.int64]
    values: NDArray[np.float64]
    queries: int
    gradient_evaluations: int = 0
    background: int = 0
    permutations: int | None = None
    saliency: NDArray[np.float64] | None = None


def _explain(
    clf: Classifier,
    x: NDArray[np.float32],
    reference: NDArray[np.float32],
    settings: ExplainSettings,
    context: CheckContext,
) -> _Explained:
    """Attributions of each record's predicted class, by the explainer :func:`choose_method` picks."""
    method = choose_method(clf)
    if method == "tree_shap" and isinstance(clf, SklearnClassifier):
        tree = TreeShap(clf)
        target = clf.predict(x)
        return _Explained(method, tree, x, target, tree.attribute(x, target), queries=len(x))
    if method == "integrated_gradients" and isinstance(clf, GradientClassifier):
        ig = IntegratedGradients(
            clf,
            steps=settings.steps,
            baseline=ig_baseline(clf, reference),
            output="logit" if hasattr(clf, "module") else "log_probability",
        )
        result = ig.explain(x)
        saliency = Saliency(clf, output=ig.output).explain(x, target=result.target)  # one gradient per record
        return _Explained(
            method,
            ig,
            x,
            result.target,
            result.values,
            queries=len(x),
            gradient_evaluations=result.gradient_evaluations + saliency.gradient_evaluations,
            saliency=mean_abs_importance(saliency.values).reshape(-1),
        )
    limit = int(settings.max_queries * GLOBAL_SHARE)
    n_values = int(np.prod(clf.input_shape))
    rows, background = _rows_that_fit(limit, len(x), n_values, min(settings.background, len(reference)))
    if rows == 0:
        raise InvalidParameterError(
            f"The {context.budget} budget's {settings.max_queries} queries cannot explain one record of "
            f"{n_values} input values.",
            remedy="Run the explain check under a larger budget.",
        )
    x = x[:rows]
    shap = SamplingShap(clf, background=reference[:background], max_queries=limit, seed=context.seed)
    sampled = shap.explain(x)
    target = np.argmax(sampled.model_output, axis=1).astype(np.int64)
    values = sampled.values[np.arange(len(x)), :, target].reshape(x.shape)
    return _Explained(
        "sampling_shap",
        None,
        x,
        target,
        values,
        queries=sampled.queries,
        background=background,
        permutations=sampled.permutations,
    )


def ig_baseline(clf: Classifier, reference: NDArray[np.float32]) -> NDArray[np.float32]:
    """The integrated-gradients baseline: the lowest valid value (black) for images, the data's mean otherwise."""
    bounds = clf.clip_values
    if len(clf.input_shape) >= 2:
        low = bounds.low if bounds is not None else np.zeros(clf.input_shape, np.float32)
        return np.asarray(low, dtype=np.float32)
    center = np.asarray(reference.mean(axis=0), dtype=np.float32)
    return bounds.clip(center) if bounds is not None else center


def _stability(
    clf: Classifier,
    explained: _Explained,
    reference: NDArray[np.float32],
    settings: ExplainSettings,
    seed: int,
) -> tuple[StabilityResult | None, str, int]:
    """The stability of the explained records' attributions (see the module), why it was not measured (or ""),
    and the model queries it spent (black box only)."""
    shape = clf.input_shape
    n_values = int(np.prod(shape))
    m = min(settings.stability_records, len(explained.x))
    explainer = explained.explainer
    budgeted: _Budgeted | None = None
    if explainer is None:  # the black box: what the global explanation left of the limit
        left = settings.max_queries - explained.queries
        per_call = left // (settings.repeats + 1)
        rows, background = _rows_that_fit(per_call, m, n_values, explained.background)
        if rows == 0:
            return None, f"the {left} queries left of the limit cannot pay for it", 0
        m = rows
        budgeted = _Budgeted(SamplingShap(clf, background=reference[:background], max_queries=per_call, seed=seed))
        explainer = budgeted
    center = reference.astype(np.float64).mean(axis=0)
    image = len(shape) >= 2
    scale = np.full(shape, float(reference.std())) if image else reference.astype(np.float64).std(axis=0)
    rescaled = _Rescaled(explainer, center, scale, clf.clip_values)
    stability = attribution_stability(
        rescaled,
        rescaled.to_units(explained.x[:m]),
        target=explained.target[:m],
        noise_scale=NOISE_FRACTION,
        repeats=settings.repeats,
        top_k=top_k_for(n_values),
        seed=seed,
    )
    return stability, "", budgeted.spent if budgeted is not None else 0


class ExplainCheck(Check[ExplainSettings, ExplainMeasurement]):
    """Global feature attributions and their stability under small input noise (see the module)."""

    name = "explain"
    title = "Explainability"
    description = (
        "Which inputs drive the model's decisions (TreeSHAP, integrated gradients or sampled SHAP), and whether "
        "those explanations survive small input noise."
    )
    budgets = _BUDGETS

    def measure(self, context: CheckContext, settings: ExplainSettings) -> ExplainMeasurement:
        """Explain the sampled test records, then measure the stability of their explanations."""
        clf = context.target.classifier
        x, _ = context.sample_test(settings.records)
        reference = _reference(context, max(settings.background, 1000))
        context.progress("global attribution", 0, 2)
        explained = _explain(clf, x, reference, settings, context)
        context.progress("stability", 1, 2)
        stability, note, stability_queries = _stability(clf, explained, reference, settings, context.seed)
        context.progress("stability", 2, 2)
        gradients = explained.gradient_evaluations
        if stability is not None and explained.method == "integrated_gradients":
            gradients += len(stability.top_k) * settings.steps * (settings.repeats + 1)
        return ExplainMeasurement(
            method=explained.method,
            records=len(explained.x),
            feature_names=_names(context.target),
            input_shape=clf.input_shape,
            importance=mean_abs_importance(explained.values).reshape(-1),
            queries=explained.queries + stability_queries,
            max_queries=settings.max_queries if explained.method == "sampling_shap" else None,
            gradient_evaluations=gradients,
            background=explained.background,
            permutations=explained.permutations,
            stability=stability,
            stability_note=note,
            budget=str(context.budget),
            saliency=explained.saliency,
        )

    def judge(self, measurement: ExplainMeasurement) -> Sequence[Finding]:
        """``explain.global-attribution`` (info), and ``explain.unstable`` (low or medium, :func:`severity_of`)."""
        m = measurement
        stability = m.stability
        overlap = stability.mean_top_k if stability is not None else math.nan
        severity = severity_of(overlap)
        findings = [self._global(m, severity)]
        if stability is not None and severity is not Severity.INFO:
            findings.append(self._unstable(m, stability, severity))
        return findings

    def _global(self, m: ExplainMeasurement, severity: Severity) -> Finding:
        total = float(m.importance.sum())
        share = m.importance / total if total > 0 else np.zeros_like(m.importance)
        order = np.argsort(-m.importance, kind="stable")
        top = order[: min(TOP_SHOWN, len(order))]
        explainer = _METHOD_NAMES[m.method]
        shown = ", ".join(f"{m.feature_names[i]} ({share[i]:.0%})" for i in top[:5])
        metrics: dict[str, JSONValue] = {
            "explainer": m.method,
            "records": m.records,
            "queries": m.queries,
            "max_queries": m.max_queries,
            "gradient_evaluations": m.gradient_evaluations,
            "background": m.background,
            "permutations": m.permutations,
            "top_features": [m.feature_names[i] for i in top],
            "noise_fraction": m.noise_fraction,
        }
        saliency_text = ""
        if m.saliency is not None:
            agreement = _rank_agreement(m.importance, m.saliency)
            saliency_top = np.argsort(-m.saliency, kind="stable")[: len(top)]
            metrics["saliency_top_features"] = [m.feature_names[i] for i in saliency_top]
            metrics["saliency_agreement"] = _number(agreement)
            saliency_text = (
                f" Saliency (the gradient's size at each record) ranks the inputs with a rank correlation of "
                f"{_text(agreement)} to integrated gradients; its top input is {m.feature_names[saliency_top[0]]}."
            )
        if m.stability is not None:
            summary = m.stability.to_dict()
            metrics["stability"] = {
                "records": summary["rows"],
                "repeats": summary["repeats"],
                "k": summary["k"],
                "mean_top_k_overlap": _number(summary["mean_top_k_intersection"]),
                "min_top_k_overlap": _number(summary["min_top_k_intersection"]),
                "mean_spearman": _number(summary["mean_spearman"]),
            }
            stable_text = (
                f" Under Gaussian noise of {m.noise_fraction:.0%} of each input's spread, the top {m.stability.k} "
                f"inputs of an explanation overlap by {m.stability.mean_top_k:.0%} on average (rank correlation "
                f"{_text(m.stability.mean_spearman)}; {len(m.stability.top_k)} records, {m.stability.repeats} noisy "
                "copies each)"
                + (": the explanations are stable." if severity is Severity.INFO else ": see explain.unstable.")
            )
        else:
            metrics["stability"] = None
            stable_text = f" Stability was not measured: {m.stability_note}."
        importance: list[JSONValue] = [
            {"feature": m.feature_names[i], "mean_abs_attribution": float(m.importance[i]), "share": float(share[i])}
            for i in (order if len(m.input_shape) < 2 else order[:20])
        ]
        evidence: dict[str, JSONValue] = {"importance": importance}
        charts = [
            Chart(
                title="Top inputs by mean |attribution| (share of the total)",
                kind="bar",
                x=tuple(m.feature_names[i] for i in top),
                series={"share": tuple(float(share[i]) for i in top)},
                y_label="share of total |attribution|",
            )
        ]
        grid = coarse_grid(m.importance, m.input_shape)
        image_text = ""
        if grid is not None:
            grid_share = grid / grid.sum() if grid.sum() > 0 else grid
            evidence["grid"] = [[float(v) for v in row] for row in grid_share]
            rows, cols = grid.shape
            hot = np.unravel_index(int(np.argmax(grid)), grid.shape)
            image_text = (
                f" With the image cut into {rows}x{cols} cells, the attribution concentrates in cell (row {hot[0]}, "
                f"column {hot[1]}) ({grid_share[hot]:.0%} of the total); the evidence holds the grid."
            )
            charts.append(
                Chart(
                    title=f"Heat map of mean |attribution|, {rows}x{cols} grid read row by row",
                    kind="bar",
                    x=tuple(f"r{r}c{c}" for r in range(rows) for c in range(cols)),
                    series={"share": tuple(float(v) for v in grid_share.reshape(-1))},
                    x_label="cell (row, column)",
                    y_label="share of total |attribution|",
                )
            )
        cost = (
            f"{m.queries} model queries of the {m.max_queries} the {m.budget} budget allows, {m.background} "
            f"background rows, {m.permutations} permutations per record"
            if m.max_queries is not None
            else f"{m.gradient_evaluations} gradient evaluations"
            if m.method == "integrated_gradients"
            else "read from the trees, no model queries beyond the predictions"
        )
        return Finding(
            id="explain.global-attribution",
            check=self.name,
            title=f"The model's decisions rest most on {', '.join(m.feature_names[i] for i in top[:3])}",
            severity=Severity.INFO,
            description=(
                f"Global attribution by {explainer} over {m.records} test records, each explained for the class "
                f"the model predicts ({cost}). Largest shares of the mean absolute attribution: "
                f"{shown}.{image_text}{saliency_text}{stable_text}"
            ),
            remediation=(
                "Check that the inputs the model relies on are ones it should rely on (no proxy of a sensitive "
                "attribute, no artefact of how the data was collected); if not, remove or fix those inputs and "
                "retrain, then re-run this check."
            ),
            owasp=None,
            atlas=(),
            metrics=metrics,
            evidence=evidence,
            charts=tuple(charts),
        )

    def _unstable(self, m: ExplainMeasurement, s: StabilityResult, severity: Severity) -> Finding:
        threshold = next(t for t, sev in TOP_K_OVERLAP_THRESHOLDS if sev is severity)
        summary = s.to_dict()
        return Finding(
            id="explain.unstable",
            check=self.name,
            title=(
                f"Explanations change under imperceptible noise: only {s.mean_top_k:.0%} of the top {s.k} inputs "
                "stay the same"
            ),
            severity=severity,
            description=(
                f"Gaussian noise of {m.noise_fraction:.0%} of each input's spread was added to {len(s.top_k)} "
                f"records, {s.repeats} times each, and the {_METHOD_NAMES[m.method]} attributions of the same class "
                f"compared with the clean ones: the top {s.k} inputs by |attribution| overlap by {s.mean_top_k:.0%} "
                f"on average (below {threshold:.0%}; worst record {s.top_k.min():.0%}), rank correlation "
                f"{_text(s.mean_spearman)}. Explanations that change this much under noise nobody would notice "
                "cannot be relied on to say why the model decided, and point to a rough decision surface near the "
                "data."
            ),
            remediation=(
                "Do not rely on single-record explanations of this model; smooth the model (regularisation, "
                "adversarial or noise-augmented training) or average explanations over noisy copies (SmoothGrad) "
                "and re-run this check."
            ),
            owasp=None,
            atlas=(),
            metrics={
                "explainer": m.method,
                "records": summary["rows"],
                "repeats": summary["repeats"],
                "k": summary["k"],
                "noise_fraction": m.noise_fraction,
                "mean_top_k_overlap": _number(summary["mean_top_k_intersection"]),
                "min_top_k_overlap": _number(summary["min_top_k_intersection"]),
                "mean_spearman": _number(summary["mean_spearman"]),
                "threshold": threshold,
            },
        )


def _number(value: object) -> float | None:
    """A JSON number, NaN as None."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def _rank_agreement(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Spearman's rank correlation of two global importances (NaN when either is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


def _text(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{value:.2f}"


EXPLAIN = ExplainCheck()
