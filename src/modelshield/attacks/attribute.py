"""Attribute inference: does the model's answer reveal a record's sensitive feature beyond what the rest of the
record already tells?

    >>> from modelshield.attacks.attribute import infer_attribute
    >>> result = infer_attribute(target.classifier, feature="age", auxiliary=target.test,  # doctest: +SKIP
    ...                          members=target.train, seed=0)
    >>> result.members.leakage, result.members.leakage_interval  # doctest: +SKIP

The attacker knows every feature of a record but the sensitive one, ``s``, and sees the model's answer on the
record (its probabilities, or only its label with ``output="label"``); with ``label_known`` it also knows the
record's true label. It holds auxiliary data from the same population (the target's test split: records the
model never saw). Categorical features (at most ``max_categories`` distinct values in the auxiliary data) are
inferred value by value; continuous ones by quantile bin (``n_bins`` bins of the auxiliary data), each bin
represented by its median.

Two attacks and two baselines, all scored on the same records:

- ``model-based`` (Fredrikson et al. 2014): complete the record with each candidate value of ``s``, query the
  model, and pick the candidate that best explains what was seen: the closest output (L1 distance between
  probability vectors; ties go to the most common value), or, for labels, the highest ``prior(v) * p(label | x_v)``.
- ``learned``: a classifier (a random forest by default) trained on the auxiliary data, from the other features
  plus the model's output (log-probabilities, or the label one-hot) to ``s``.
- ``features-only``: the same learner on the same auxiliary data without the model's output: what the attacker
  knows anyway. ``prior``: the most common value of ``s``.

The learned methods are cross-fitted: the auxiliary data is cut into ``folds`` parts, each non-member is predicted
by the models trained on the other parts, and each member by one of those models at random, so every prediction
comes from a learner of the same size that never saw the record. Which attack and which baseline are reported is
chosen on the non-members (the higher accuracy), so the members' figures are free of that selection.

Leakage is the attack's accuracy minus the baseline's on the same records, with a paired bootstrap interval
(resampling records, both methods together). Members are the records the model was trained on: leakage there
that exceeds the non-members' means the model memorised ``s``, and leakage on non-members means the model's
answers reveal ``s`` for anyone it is queried about.

A model whose output does not depend on ``s`` leaks nothing: the model-based attack then ties on every candidate
and falls back to the prior. A model trained on data where ``s`` was shuffled can still leak ``s`` (it fits noise
on it, so its answers depend on it): that is real leakage, not a false alarm.

Reference: Fredrikson et al. 2014, "Privacy in Pharmacogenetics"; Yeom et al. 2018 (attribute advantage);
Jayaraman & Evans 2022, "Are attribute inference attacks just imputation?" (why the baseline must see the same
auxiliary data).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from modelshield.data.interface import Dataset, Schema
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.findings import JSONValue
from modelshield.models.interface import Classifier

__all__ = [
    "METHODS",
    "AttributeInferenceResult",
    "GroupInference",
    "infer_attribute",
    "most_informative_feature",
    "sensitive_features",
]

#: The inference methods every result scores, attacks first.
METHODS: tuple[str, ...] = ("model-based", "learned", "prior", "features-only", "marginal-output")
_ATTACKS = ("model-based", "learned")
_BASELINES = ("prior", "features-only", "marginal-output")
_TIE = 1e-6  # L1 distances between probability vectors closer than this are ties


@dataclass(frozen=True)
class GroupInference:
    """How well each method infers the sensitive feature on one group of records (members or non-members)."""

    n: int
    accuracy: Mapping[str, float]  # method -> share of records whose value (or bin) was inferred exactly
    mae: Mapping[str, float]  # method -> mean absolute error in the feature's units (continuous features only)
    attack: str  # the more accurate attack
    baseline: str  # the most accurate baseline
    leakage: float  # how much the best attack beats the best baseline (0 when it does not)
    leakage_interval: tuple[float, float]  # paired bootstrap interval of the leakage

    @property
    def significant(self) -> bool:
        """True when the whole interval lies above zero: the model's output adds information."""
        return self.leakage_interval[0] > 0

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "n": self.n,
            "accuracy": dict(self.accuracy),
            "mae": dict(self.mae),
            "attack": self.attack,
            "baseline": self.baseline,
            "leakage": self.leakage,
            "leakage_interval": list(self.leakage_interval),
            "significant": self.significant,
        }


@dataclass(frozen=True)
class AttributeInferenceResult:
    """Attribute inference of one feature: each method's accuracy on members and non-members, and the leakage."""

    feature: str
    feature_index: int  # in the flattened record
    continuous: bool  # inferred by quantile bin rather than by value
    values: tuple[float, ...]  # the candidate values: the categories, or each bin's median
    bin_edges: tuple[float, ...]  # inner edges of the bins (continuous features), else empty
    output: Literal["proba", "label"]  # what the attacker sees of the model's answer
    label_known: bool  # the attacker (and the baselines) also know the true label
    non_members: GroupInference
    members: GroupInference | None
    confidence: float  # of the leakage intervals
    queries: int  # model queries spent
    seconds: float

    @property
    def chance(self) -> float:
        """The accuracy of guessing uniformly among the candidate values."""
        return 1.0 / len(self.values)

    @property
    def attack(self) -> str:
        """The attack with what it was given: the feature, what the attacker sees, whether it knows the label."""
        return f"attribute-inference(feature={self.feature!r}, output={self.output}, label_known={self.label_known})"

    @property
    def decisive(self) -> GroupInference:
        """The group the leakage is judged on: the members when there are any, else the non-members."""
        return self.members if self.members is not None else self.non_members

    def metrics(self) -> dict[str, float]:
        """The field's figures on the decisive group (members if given): the best attack's and the best
        baseline's accuracy, the leakage (their difference, at least 0) and its interval; and the non-members'
        leakage."""
        group = self.decisive
        return {
            "attack_accuracy": group.accuracy[group.attack],
            "baseline_accuracy": group.accuracy[group.baseline],
            "leakage": group.leakage,
            "leakage_low": group.leakage_interval[0],
            "leakage_high": group.leakage_interval[1],
            "non_member_leakage": self.non_members.leakage,
            "chance": self.chance,
        }

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "feature": self.feature,
            "feature_index": self.feature_index,
            "continuous": self.continuous,
            "values": list(self.values),
            "bin_edges": list(self.bin_edges),
            "output": self.output,
            "label_known": self.label_known,
            "non_members": self.non_members.to_dict(),
            "members": self.members.to_dict() if self.members is not None else None,
            "confidence": self.confidence,
            "queries": self.queries,
            "seconds": self.seconds,
        }


# -- choosing the feature --------------------------------------------------------------------------------------------


def sensitive_features(schema: Schema) -> tuple[int, ...]:
    """Indices (in the flattened record) of the features the schema marks sensitive."""
    return tuple(i for i, f in enumerate(schema.features) if f.sensitive)


def most_informative_feature(data: Dataset, *, seed: int = 0) -> int:
    """The feature with the highest mutual information with the label: the one a model is most likely to encode.

    Features with at most ten distinct values count as discrete. Needs two distinct values in some feature.
    """
    from sklearn.feature_selection import mutual_info_classif

    x = data.flat().astype(np.float64)
    varying = np.array([len(np.unique(x[:, j])) > 1 for j in range(x.shape[1])])
    if len(x) < 4 or not varying.any():
        raise InvalidInputError(
            f"Data {data.name!r} has no feature with two distinct values among {len(x)} records.",
            remedy="Pass more records, or name the feature to infer.",
        )
    discrete = np.array([len(np.unique(x[:, j])) <= 10 for j in range(x.shape[1])])
    for j in np.flatnonzero(discrete):  # discrete features as integer codes, as scikit-learn expects them
        x[:, j] = np.unique(x[:, j], return_inverse=True)[1]
    mi = np.full(x.shape[1], -np.inf)
    mi[varying] = mutual_info_classif(
        x[:, varying], data.y, discrete_features=discrete[varying], random_state=seed, n_neighbors=3
    )
    return int(np.argmax(mi))


# -- the attack ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Coding:
    """How values of the sensitive feature map to the classes the attacks predict."""

    values: NDArray[np.float64]  # candidate value of each class
    edges: NDArray[np.float64]  # inner bin edges; empty for categorical features

    @property
    def continuous(self) -> bool:
        return len(self.edges) > 0

    def encode(self, column: NDArray[np.floating]) -> NDArray[np.int64]:
        """Class of each value; categorical values unseen in the auxiliary data get -1 (never inferred)."""
        col = np.asarray(column, np.float64)
        if self.continuous:
            return np.asarray(np.searchsorted(self.edges, col, side="right"), np.int64)
        pos = np.clip(np.searchsorted(self.values, col), 0, len(self.values) - 1)
        return np.where(np.isclose(self.values[pos], col, rtol=0, atol=1e-6), pos, -1).astype(np.int64)


def _coding(column: NDArray[np.floating], n_bins: int, max_categories: int) -> _Coding:
    col = np.asarray(column, np.float64)
    distinct = np.unique(col)
    if len(distinct) < 2:
        raise InvalidInputError(
            f"The feature to infer takes a single value ({distinct[0]:g}) in the auxiliary data: there is "
            "nothing to infer.",
            remedy="Choose another feature, or pass auxiliary data in which it varies.",
        )
    if len(distinct) <= max_categories:
        return _Coding(values=distinct, edges=np.empty(0))
    edges = np.unique(np.quantile(col, np.arange(1, n_bins) / n_bins))
    codes = np.searchsorted(edges, col, side="right")
    medians = np.array([np.median(col[codes == b]) for b in range(len(edges) + 1)])
    return _Coding(values=medians, edges=edges)


def _learner(spec: Literal["forest", "logistic"] | Any, seed: int) -> Any:
    from sklearn.base import clone

    if isinstance(spec, str):
        if spec == "forest":
            from sklearn.ensemble import RandomForestClassifier

            return RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)
        if spec == "logistic":
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        raise InvalidParameterError(
            f"Unknown learner {spec!r}.", remedy="Use 'forest', 'logistic', or pass a scikit-learn classifier."
        )
    if not (callable(getattr(spec, "fit", None)) and callable(getattr(spec, "predict", None))):
        raise InvalidParameterError(
            f"learner must be 'forest', 'logistic' or a scikit-learn classifier, not {type(spec).__name__}.",
            remedy="Pass an unfitted estimator with fit() and predict(), e.g. RandomForestClassifier().",
        )
    return clone(spec)


def _fit_predict(
    learner: Any, x_fit: NDArray[np.float64], y_fit: NDArray[np.int64], x_pred: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Predictions of a fresh copy of ``learner`` fitted on ``(x_fit, y_fit)``; a constant when one class."""
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    if len(x_pred) == 0:
        return np.empty(0, np.int64)
    classes = np.unique(y_fit)
    if len(classes) == 1:
        return np.full(len(x_pred), classes[0], np.int64)
    model = clone(learner)
    with warnings.catch_warnings():  # an unconverged learner is still a learner: its accuracy says how good
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_fit, y_fit)
    return np.asarray(model.predict(x_pred), np.int64)


def _observed(proba: NDArray[np.float32], output: str) -> NDArray[np.float64]:
    """What the attacker sees of the model's answers: probabilities, or the label one-hot."""
    p = np.asarray(proba, np.float64)
    if output == "proba":
        return p
    return np.asarray(np.eye(p.shape[1])[p.argmax(axis=1)], np.float64)


def _candidates(
    classifier: Classifier, x: NDArray[np.float32], index: int, coding: _Coding, output: str
) -> NDArray[np.float64]:
    """The model's answers (as the attacker sees them) on each record completed with each candidate value:
    shape ``(n, k, n_classes)``, from one batched query of ``n * k`` records."""
    n, k = len(x), len(coding.values)
    completed = np.repeat(x.reshape(n, -1), k, axis=0)
    completed[:, index] = np.tile(coding.values.astype(np.float32), n)
    proba = classifier.predict_proba(completed.reshape(n * k, *x.shape[1:]))
    return _observed(proba, output).reshape(n, k, -1)


def _model_based(
    candidates: NDArray[np.float64],
    seen: NDArray[np.float64],
    y: NDArray[np.int64],
    prior: NDArray[np.float64],  # (n, k)
    output: str,
    label_known: bool,
) -> NDArray[np.int64]:
    """Fredrikson et al.'s attack: the candidate value whose completed record best explains the observation."""
    n = len(candidates)
    if n == 0:
        return np.empty(0, np.int64)
    if output == "proba":
        distance = np.abs(candidates - seen[:, None, :]).sum(axis=2)
        ties = distance <= distance.min(axis=1, keepdims=True) + _TIE
        return np.asarray(np.argmax(np.where(ties, prior, -1.0), axis=1), np.int64)
    label = y if label_known else seen.argmax(axis=1)
    likelihood = candidates[np.arange(n), :, label]  # (n, k): does the candidate give the observed label?
    return np.asarray(np.argmax(likelihood * prior + 1e-12 * prior, axis=1), np.int64)


def _bootstrap(
    attacks: NDArray[np.bool_], baselines: NDArray[np.bool_], n_boot: int, confidence: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile interval of the leakage, resampling records (every method on the same resample).

    ``attacks`` and ``baselines`` hold one row of per-record correctness per method. The leakage of a resample is
    ``max(0, best attack - best baseline)``: an attacker with the model can always do what a baseline does.
    """
    n = attacks.shape[1]
    if n == 0:
        return (float("nan"), float("nan"))
    leak = np.empty(n_boot)
    chunk = max(1, 1_000_000 // n)  # bounded memory for large groups
    a, b = attacks.astype(np.float64), baselines.astype(np.float64)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        counts = np.stack([np.bincount(row, minlength=n) for row in rng.integers(0, n, (size, n))])  # (size, n)
        best_attack = (counts @ a.T).max(axis=1) / n
        best_baseline = (counts @ b.T).max(axis=1) / n
        leak[start : start + size] = np.maximum(0.0, best_attack - best_baseline)
    alpha = 1.0 - confidence
    low, high = np.quantile(leak, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _features(
    data: Dataset, index: int, outputs: tuple[NDArray[np.float64], ...], output: str, label_known: bool
) -> NDArray[np.float64]:
    """A learner's inputs: the other features, the given model answers (log-probabilities or one-hot labels) and,
    when the attacker knows it, the true label one-hot."""
    parts = [np.delete(data.flat().astype(np.float64), index, axis=1)]
    for out in outputs:
        parts.append(np.log(np.clip(out, 1e-6, 1.0)) if output == "proba" else out)
    if label_known:
        parts.append(np.eye(data.n_classes)[data.y])
    return np.concatenate(parts, axis=1)


def _query(
    classifier: Classifier,
    data: Dataset,
    index: int,
    coding: _Coding,
    prior: NDArray[np.float64],
    output: str,
    label_known: bool,
) -> tuple[dict[str, NDArray[np.int64]], dict[str, NDArray[np.float64]]]:
    """Ask the model about ``data`` (as is, and completed with each candidate value): the predictions that need no
    learner (model-based, prior; the others zero) and the inputs of the learned methods."""
    candidates = _candidates(classifier, data.x, index, coding, output)
    # The model's answer with s averaged out (prior-weighted over the candidates) is a function of the other
    # features alone, which the attacker can always compute: the model's knowledge of the population, not of the
    # record's s. Where the answer does not depend on s at all, the observed answer is exactly that.
    first = candidates[:, 0, :]
    marginal = first + np.einsum("nkc,nk->nc", candidates - first[:, None, :], prior)
    observed = _observed(classifier.predict_proba(data.x), output)
    unmoved = np.abs(candidates - observed[:, None, :]).max(axis=(1, 2)) <= _TIE
    observed = np.where(unmoved[:, None], marginal, observed)
    predictions = {m: np.zeros(len(data), np.int64) for m in METHODS}
    predictions["model-based"] = _model_based(candidates, observed, data.y, prior, output, label_known)
    predictions["prior"] = np.asarray(np.argmax(prior, axis=1), np.int64)
    # The learned attack and the marginal-output baseline get inputs of the same shape, which coincide exactly
    # when the answer does not depend on s: the same learner then makes the same predictions.
    inputs = {
        "learned": _features(data, index, (marginal, observed), output, label_known),
        "features-only": _features(data, index, (), output, label_known),
        "marginal-output": _features(data, index, (marginal, marginal), output, label_known),
    }
    return predictions, inputs


def _check_parameters(
    output: str, n_bins: int, max_categories: int, folds: int, bootstrap: int, confidence: float
) -> None:
    if output not in ("proba", "label"):
        raise InvalidParameterError(
            f"output must be 'proba' or 'label', not {output!r}.",
            remedy="Use 'proba' when the attacker sees probabilities, 'label' when it sees only the class.",
        )
    if n_bins < 2:
        raise InvalidParameterError(f"n_bins must be at least 2, not {n_bins}.", remedy="Use 2 to 10 bins.")
    if max_categories < 2:
        raise InvalidParameterError(f"max_categories must be at least 2, not {max_categories}.")
    if folds < 2:
        raise InvalidParameterError(f"folds must be at least 2, not {folds}.", remedy="Use 5 folds.")
    if bootstrap < 100:
        raise InvalidParameterError(
            f"bootstrap must be at least 100 resamples, not {bootstrap}.", remedy="Use 1000 or more."
        )
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"confidence must lie in (0, 1), not {confidence}.", remedy="Use 0.95.")


def _resolve_feature(feature: int | str, schema: Schema) -> int:
    if isinstance(feature, str):
        if feature not in schema.names:
            raise InvalidParameterError(
                f"Unknown feature {feature!r}.", remedy=f"Use one of the schema's features: {', '.join(schema.names)}."
            )
        return schema.names.index(feature)
    n = len(schema.features)
    if isinstance(feature, bool) or not isinstance(feature, int | np.integer) or not 0 <= int(feature) < n:
        raise InvalidParameterError(
            f"feature must be a feature name or an index in 0..{n - 1}, not {feature!r}.",
            remedy="Pass the index of the feature in the flattened record, or its name.",
        )
    return int(feature)


def infer_attribute(
    classifier: Classifier,
    *,
    feature: int | str,
    auxiliary: Dataset,
    members: Dataset | None = None,
    output: Literal["proba", "label"] = "proba",
    label_known: bool = False,
    n_bins: int = 4,
    max_categories: int = 10,
    learner: Literal["forest", "logistic"] | Any = "forest",
    folds: int = 5,
    bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AttributeInferenceResult:
    """Infer ``feature`` of each record in ``auxiliary`` (non-members) and ``members`` from the rest of the record
    and the model's answer, against baselines that use the same auxiliary data without the model.

    ``auxiliary`` is the attacker's data (records the model never saw, e.g. the test split); it is also the
    non-members the attack is scored on, by cross-fitting. ``members`` are training records (optional).
    """
    t0 = time.perf_counter()
    _check_parameters(output, n_bins, max_categories, folds, bootstrap, confidence)
    n_features = int(np.prod(classifier.input_shape))
    for data in (auxiliary, members):
        if data is not None and data.n_features != n_features:
            raise InvalidInputError(
                f"Data {data.name!r} has {data.n_features} features, but the model takes {n_features}.",
                remedy="Pass the data the model was built for.",
            )
    if len(auxiliary) < 2 * folds:
        raise InvalidInputError(
            f"Attribute inference needs at least {2 * folds} auxiliary records for {folds} folds; got "
            f"{len(auxiliary)}.",
            remedy="Pass more auxiliary (held-out) records, or fewer folds.",
        )
    index = _resolve_feature(feature, auxiliary.schema)
    rng = np.random.default_rng(seed)
    learner_model = _learner(learner, seed)
    queries_before = classifier.queries

    flat_aux = auxiliary.flat().astype(np.float64)
    coding = _coding(flat_aux[:, index], n_bins, max_categories)
    codes_aux = coding.encode(flat_aux[:, index])
    k = len(coding.values)

    groups: list[tuple[str, Dataset]] = [("non-members", auxiliary)]
    if members is not None and len(members):
        groups.append(("members", members))
    # Cross-fitting: the learners of fold f are fitted on the other folds of the auxiliary data; they predict fold
    # f and a random share of the members. The prior (the value frequencies) comes from the same records.
    fold_of = {name: rng.permutation(len(data)) % folds for name, data in groups}
    fold_priors = np.stack([np.bincount(codes_aux[fold_of["non-members"] != f], minlength=k) for f in range(folds)])
    fold_priors = fold_priors / fold_priors.sum(axis=1, keepdims=True)

    predictions: dict[str, dict[str, NDArray[np.int64]]] = {}
    inputs: dict[str, dict[str, NDArray[np.float64]]] = {}
    for name, data in groups:
        prior = fold_priors[fold_of[name]]  # (n, k): each record's prior, from records other than its fold
        predictions[name], inputs[name] = _query(classifier, data, index, coding, prior, output, label_known)
    for f in range(folds):
        fit = fold_of["non-members"] != f
        for method in ("learned", "features-only", "marginal-output"):
            # One fit per fold and method; it predicts the fold's rows of every group in one call.
            rows = {name: fold_of[name] == f for name, _ in groups}
            stacked = np.concatenate([inputs[name][method][rows[name]] for name, _ in groups])
            said = _fit_predict(learner_model, inputs["non-members"][method][fit], codes_aux[fit], stacked)
            offset = 0
            for name, _ in groups:
                count = int(rows[name].sum())
                predictions[name][method][rows[name]] = said[offset : offset + count]
                offset += count

    results: dict[str, GroupInference] = {}
    for name, data in groups:
        values = data.flat()[:, index].astype(np.float64)
        truth = coding.encode(values)
        correct = {m: predictions[name][m] == truth for m in METHODS}
        acc = {m: float(correct[m].mean()) for m in METHODS}
        mae: dict[str, float] = {}
        if coding.continuous:
            mae = {m: float(np.abs(coding.values[predictions[name][m]] - values).mean()) for m in METHODS}
        attack = max(_ATTACKS, key=lambda m: acc[m])  # first on ties: model-based
        baseline = max(_BASELINES, key=lambda m: acc[m])
        results[name] = GroupInference(
            n=len(data),
            accuracy=acc,
            mae=mae,
            attack=attack,
            baseline=baseline,
            leakage=max(0.0, acc[attack] - acc[baseline]),
            leakage_interval=_bootstrap(
                np.stack([correct[m] for m in _ATTACKS]),
                np.stack([correct[m] for m in _BASELINES]),
                bootstrap,
                confidence,
                rng,
            ),
        )
    return AttributeInferenceResult(
        feature=auxiliary.schema.names[index],
        feature_index=index,
        continuous=coding.continuous,
        values=tuple(float(v) for v in coding.values),
        bin_edges=tuple(float(e) for e in coding.edges),
        output=output,
        label_known=label_known,
        non_members=results["non-members"],
        members=results.get("members"),
        confidence=confidence,
        queries=classifier.queries - queries_before,
        seconds=time.perf_counter() - t0,
    )
