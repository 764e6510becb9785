"""Membership-inference attacks: loss threshold, population, LiRA (online and offline), RMIA, and label-only.

    >>> from modelshield.attacks.membership import assess_membership  # doctest: +SKIP
    >>> from modelshield.zoo import load_target  # doctest: +SKIP
    >>> t = load_target("zoo:cancer-mlp-overfit")  # doctest: +SKIP
    >>> a = assess_membership(t.classifier, t.train, t.test, trainer=t.trainer, n_reference=16)  # doctest: +SKIP
    >>> a.best.summary.tpr_at(0.001).tpr  # doctest: +SKIP

The attacks, each scoring every record (higher: more likely a member):

- ``loss`` (Yeom et al. 2018): the target's confidence in the true label. Needs nothing but the target's outputs.
- ``population`` (Ye et al. 2022, attack P): the rank of that confidence among non-member records of the same
  class. Population records are cross-fitted: a record is never compared with itself.
- ``lira-online`` / ``lira-offline`` (Carlini et al. 2022): Gaussians fitted to the logit-scaled confidence of
  reference models that did (online) or did not (both) train on the record; the likelihood ratio (online) or the
  one-sided z-score against the models that did not (offline). With fewer than 64 reference models the variance is
  one global value per side, as the paper advises: per-record variances from a handful of models are noise.
- ``rmia`` (Zarifzadeh et al. 2024): the target's probability of the true label relative to the reference models',
  compared pairwise with population records. Offline, the reference average is corrected by the linear
  approximation ``((1 + a) p_out + (1 - a)) / 2``, with ``a`` chosen by attacking one reference model with the
  others, as the paper does, never by looking at the target.
- ``label-only`` (Choquette-Choo et al. 2021): for APIs that return labels only, the share of noisy copies of a
  record (at several noise scales) that keep its true label: members sit further from the decision boundary.

Reference models come from a :class:`~modelshield.models.retrain.Trainer` (for reference targets, the zoo's own
recipe) trained on random subsets of the records under test, each of the target's training-set size; their
outputs are cached on disk by the content of everything that determines them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from modelshield._internal.atomic import write_bytes_atomic
from modelshield.attacks.membership.interface import MembershipResult, ReferenceModels, log_confidence
from modelshield.attacks.metrics import LOW_FPRS, roc_summary
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.interface import Classifier, GradientClassifier

if TYPE_CHECKING:
    from modelshield.data.interface import Dataset
    from modelshield.models.retrain import Trainer

__all__ = [
    "ATTACKS",
    "MembershipAssessment",
    "assess_membership",
    "label_only_attack",
    "lira",
    "loss_attack",
    "population_attack",
    "recipe_leakage",
    "reference_models",
    "rmia",
    "target_log_proba",
]

log = logging.getLogger(__name__)

ATTACKS = ("loss", "population", "lira-online", "lira-offline", "rmia", "label-only")
_FIXED_VARIANCE_BELOW = 64  # reference models; Carlini et al. 2022, Section VI
_RMIA_A_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
_TINY = float(np.finfo(np.float64).tiny)


# -- target outputs --------------------------------------------------------------------------------------------------
def target_log_proba(classifier: Classifier, x: NDArray[np.floating]) -> NDArray[np.float64]:
    """The classifier's log-probabilities: from its logits when it has them (full precision), else its outputs."""
    if isinstance(classifier, GradientClassifier):
        z = np.asarray(classifier.logits(x), dtype=np.float64)
        z -= z.max(axis=1, keepdims=True)
        out: NDArray[np.float64] = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return out
    return np.log(np.maximum(np.asarray(classifier.predict_proba(x), dtype=np.float64), _TINY))


# -- reference models ------------------------------------------------------------------------------------------------
def _masks(n_records: int, n_models: int, size: int, seed: int) -> NDArray[np.bool_]:
    rng = np.random.default_rng([seed, 0x4D49])
    masks = np.zeros((n_models, n_records), bool)
    for m in range(n_models):
        masks[m, rng.permutation(n_records)[:size]] = True
    return masks


def _pool_digest(x: NDArray[Any], y: NDArray[Any]) -> str:
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.int64)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def reference_models(
    trainer: Trainer,
    x: NDArray[np.floating],
    y: NDArray[np.integer],
    *,
    n_models: int,
    train_size: int,
    n_classes: int,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> ReferenceModels:
    """Train ``n_models`` models with ``trainer``, each on a random subset of ``train_size`` of the records
    ``(x, y)``, and return their log-probabilities on all of them (read from ``cache_dir`` when cached)."""
    if n_models < 2:
        raise InvalidParameterError(f"Reference attacks need at least 2 reference models, not {n_models}.")
    if not 1 <= train_size < len(x):
        raise InvalidParameterError(
            f"train_size must lie in [1, {len(x)}) so that every model leaves records out, not {train_size}."
        )
    masks = _masks(len(x), n_models, train_size, seed)
    spec = dict(trainer.spec())
    key_data = {"spec": spec, "pool": _pool_digest(x, y), "n_models": n_models, "size": train_size, "seed": seed}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = cache_dir / f"reference-{key}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                cached = np.asarray(data["log_proba"], dtype=np.float32)
            if cached.shape == (n_models, len(x), n_classes) and bool(np.isfinite(cached).all()):
                log.info("Reference models read from the cache %s", path)
                return ReferenceModels(masks, cached, spec)
            log.warning("Ignoring the reference-model cache %s: its contents do not match.", path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("Ignoring the unreadable reference-model cache %s: %s", path, exc)
    log.info("Training %d reference models on %d records each", n_models, train_size)
    start = time.perf_counter()
    log_proba = trainer.fit_log_proba(x, y, masks, n_classes=n_classes, seed=seed)
    seconds = time.perf_counter() - start
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, log_proba=log_proba)
        write_bytes_atomic(path, buffer.getvalue())
    return ReferenceModels(masks, log_proba, spec, seconds)


# -- scoring ---------------------------------------------------------------------------------------------------------
def _result(
    attack: str, scores: NDArray[np.float64], is_member: NDArray[np.bool_], start: float, **kw: Any
) -> MembershipResult:
    scores = np.nan_to_num(np.asarray(scores, np.float64), nan=-np.inf)
    finite = np.isfinite(scores)
    if not finite.all():  # keep the order of infinite scores, but give roc_summary finite numbers
        low, high = (scores[finite].min(), scores[finite].max()) if finite.any() else (0.0, 0.0)
        scores = np.where(scores == np.inf, high + 1.0, np.where(scores == -np.inf, low - 1.0, scores))
    return MembershipResult(
        attack, scores, is_member, roc_summary(scores, is_member, LOW_FPRS), seconds=time.perf_counter() - start, **kw
    )


def loss_attack(
    log_proba: NDArray[np.floating], y: NDArray[np.integer], is_member: NDArray[np.bool_]
) -> MembershipResult:
    """Yeom et al.: the lower the loss (the higher the confidence in the true label), the more likely a member."""
    start = time.perf_counter()
    return _result("loss", log_confidence(log_proba, y), is_member, start)


def _folds(is_member: NDArray[np.bool_], seed: int) -> NDArray[np.intp]:
    """Two cross-fitting folds: each record is scored against population records of the other fold."""
    rng = np.random.default_rng([seed, 0x504F])
    folds = np.empty(is_member.size, np.intp)
    for group in (is_member, ~is_member):
        idx = np.flatnonzero(group)
        folds[idx] = rng.permutation(idx.size) % 2
    return folds


def _rank_against(values: NDArray[np.float64], population: NDArray[np.float64]) -> NDArray[np.float64]:
    """The share of ``population`` strictly below each value, with ties counted half (a mid-rank)."""
    if population.size == 0:
        return np.full(values.shape, 0.5)
    ordered = np.sort(population)
    below = np.searchsorted(ordered, values, side="left")
    upto = np.searchsorted(ordered, values, side="right")
    out: NDArray[np.float64] = (below + upto) / (2.0 * ordered.size)
    return out


def population_attack(
    log_proba: NDArray[np.floating], y: NDArray[np.integer], is_member: NDArray[np.bool_], *, seed: int = 0
) -> MembershipResult:
    """Ye et al. (attack P): the record's confidence ranked among non-members of its class, cross-fitted."""
    start = time.perf_counter()
    phi = log_confidence(log_proba, y)
    folds = _folds(is_member, seed)
    scores = np.empty(phi.size)
    for fold in (0, 1):
        scored = folds == fold
        population = (~is_member) & (folds != fold)
        for c in np.unique(y[scored]):
            pop = phi[population & (y == c)]
            if pop.size == 0:  # no non-member of this class in the other fold: rank among all of them
                pop = phi[population]
            rows = scored & (y == c)
            scores[rows] = _rank_against(phi[rows], pop)
    # the rank saturates at 1 for every record above the population; break those ties by the confidence itself
    return _result("population", scores + 1e-9 * np.tanh(phi / 100.0), is_member, start)


def _gaussian_logpdf(
    x: NDArray[np.float64], mu: NDArray[np.float64], sigma: NDArray[np.float64] | float
) -> NDArray[np.float64]:
    out: NDArray[np.float64] = -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma)
    return out


def _side_stats(
    phi_ref: NDArray[np.float64], inside: NDArray[np.bool_], fixed: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64] | float, NDArray[np.bool_]]:
    """Per-record means over the models selected by ``inside``, the standard deviation (global or per record),
    and which records have at least one such model."""
    count = inside.sum(axis=0)
    present = count > 0
    mean = np.where(present, (phi_ref * inside).sum(axis=0) / np.maximum(count, 1), np.nan)
    resid = np.where(inside, phi_ref - mean, 0.0)
    if fixed or count.min() < 2:
        dof = max(int(inside.sum() - present.sum()), 1)
        sigma_global = float(np.sqrt((resid**2).sum() / dof)) + 1e-6
        return mean, sigma_global, present
    sigma = np.sqrt((resid**2).sum(axis=0) / np.maximum(count - 1, 1)) + 1e-6
    return mean, sigma, present


def lira(
    log_proba: NDArray[np.floating],
    y: NDArray[np.integer],
    is_member: NDArray[np.bool_],
    reference: ReferenceModels,
    *,
    online: bool = True,
    fixed_variance: bool | None = None,
) -> MembershipResult:
    """Carlini et al.'s likelihood-ratio attack on the records ``y`` indexes, which are the reference pool."""
    start = time.perf_counter()
    if reference.masks.shape[1] != len(y):
        raise InvalidInputError("LiRA needs the reference models' outputs on exactly the records under test.")
    fixed = reference.n_models < _FIXED_VARIANCE_BELOW if fixed_variance is None else fixed_variance
    phi = log_confidence(log_proba, y)
    phi_ref = log_confidence(reference.log_proba, y)  # (models, records)
    mu_out, sd_out, has_out = _side_stats(phi_ref, ~reference.masks, fixed)
    notes: list[str] = [f"{'global' if fixed else 'per-record'} variance, {reference.n_models} reference models"]
    if not has_out.all():  # a record every model trained on: shift the mean by the average member/non-member gap
        mu_out = np.where(has_out, mu_out, np.nanmean(phi_ref.mean(axis=0)))
    if not online:
        return _result(
            "lira-offline",
            (phi - mu_out) / sd_out,
            is_member,
            start,
            reference_models=reference.n_models,
            notes=tuple(notes),
        )
    mu_in, sd_in, has_in = _side_stats(phi_ref, reference.masks, fixed)
    both = has_in & has_out
    gap = float(np.mean(mu_in[both] - mu_out[both])) if both.any() else 0.0
    mu_in = np.where(has_in, mu_in, mu_out + gap)
    mu_out = np.where(has_out, mu_out, mu_in - gap)
    if (~(has_in & has_out)).any():
        notes.append(f"{int((~both).sum())} records lack models on one side; their mean is shifted by the average gap")
    scores = _gaussian_logpdf(phi, mu_in, sd_in) - _gaussian_logpdf(phi, mu_out, sd_out)
    return _result("lira-online", scores, is_member, start, reference_models=reference.n_models, notes=tuple(notes))


def _true_proba(log_proba: NDArray[np.floating], y: NDArray[np.integer]) -> NDArray[np.float64]:
    logp = np.asarray(log_proba, np.float64)
    out: NDArray[np.float64] = np.exp(logp[..., np.arange(y.size), y])
    return out


def _rmia_scores(
    p_target: NDArray[np.float64],
    p_ref_mean: NDArray[np.float64],
    is_member: NDArray[np.bool_],
    folds: NDArray[np.intp],
    gamma: float,
) -> NDArray[np.float64]:
    ratio = p_target / np.maximum(p_ref_mean, _TINY)
    scores = np.empty(ratio.size)
    for fold in (0, 1):
        scored = folds == fold
        population = ratio[(~is_member) & (folds != fold)]
        # Pr_z[ LR(x) / LR(z) >= gamma ] = share of population with LR(z) <= LR(x) / gamma
        ordered = np.sort(population)
        scores[scored] = np.searchsorted(ordered, ratio[scored] / gamma, side="right") / max(ordered.size, 1)
    # break the ties of records that beat every population record by the ratio itself
    out: NDArray[np.float64] = scores + 1e-9 * np.tanh(np.log(np.maximum(ratio, _TINY)) / 100.0)
    return out


def _offline_reference_mean(p_ref: NDArray[np.float64], out_mask: NDArray[np.bool_], a: float) -> NDArray[np.float64]:
    count = out_mask.sum(axis=0)
    p_out = np.where(count > 0, (p_ref * out_mask).sum(axis=0) / np.maximum(count, 1), p_ref.mean(axis=0))
    out: NDArray[np.float64] = 0.5 * ((1.0 + a) * p_out + (1.0 - a))
    return out


def _choose_a(p_ref: NDArray[np.float64], masks: NDArray[np.bool_], seed: int) -> float:
    """The offline RMIA parameter ``a`` that best attacks reference model 0 using the others (AUC)."""
    target, rest = p_ref[0], p_ref[1:]
    truth = masks[0]
    folds = _folds(truth, seed + 1)
    best, best_auc = 0.5, -1.0
    for a in _RMIA_A_GRID:
        scores = _rmia_scores(target, _offline_reference_mean(rest, ~masks[1:], float(a)), truth, folds, 1.0)
        auc = roc_summary(scores, truth).auc
        if auc > best_auc + 1e-12:
            best, best_auc = float(a), auc
    return best


def rmia(
    log_proba: NDArray[np.floating],
    y: NDArray[np.integer],
    is_member: NDArray[np.bool_],
    reference: ReferenceModels,
    *,
    online: bool = True,
    gamma: float = 1.0,
    seed: int = 0,
) -> MembershipResult:
    """Zarifzadeh et al.'s robust membership inference attack on the reference pool's records."""
    start = time.perf_counter()
    if gamma <= 0 or not math.isfinite(gamma):
        raise InvalidParameterError(f"gamma must be a positive number, not {gamma}.")
    if reference.masks.shape[1] != len(y):
        raise InvalidInputError("RMIA needs the reference models' outputs on exactly the records under test.")
    p_target = _true_proba(log_proba, y)
    p_ref = _true_proba(reference.log_proba, y)  # (models, records)
    notes: list[str] = [f"gamma {gamma}, {reference.n_models} reference models"]
    if online:
        p_ref_mean = p_ref.mean(axis=0)
    else:
        a = _choose_a(p_ref, reference.masks, seed)
        notes.append(f"offline a = {a} (chosen on a reference model)")
        p_ref_mean = _offline_reference_mean(p_ref, ~reference.masks, a)
    scores = _rmia_scores(p_target, p_ref_mean, is_member, _folds(is_member, seed), gamma)
    name = "rmia" if online else "rmia-offline"
    return _result(name, scores, is_member, start, reference_models=reference.n_models, notes=tuple(notes))


def label_only_attack(
    classifier: Classifier,
    x: NDArray[np.floating],
    y: NDArray[np.integer],
    is_member: NDArray[np.bool_],
    *,
    noise_scales: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    copies: int = 16,
    seed: int = 0,
) -> MembershipResult:
    """Choquette-Choo et al.'s label-only attack by robustness to Gaussian noise.

    The score of a record is whether the model labels it correctly plus the share of its noisy copies (``copies``
    at each of ``noise_scales``, in units of each feature's standard deviation over the records, clipped to the
    model's valid range) that keep the true label. Uses only predicted labels: ``1 + copies * len(noise_scales)``
    queries per record.
    """
    start = time.perf_counter()
    if copies < 1 or not noise_scales or min(noise_scales) <= 0:
        raise InvalidParameterError("label_only_attack needs copies >= 1 and positive noise scales.")
    rng = np.random.default_rng([seed, 0x4C4F])
    x = np.asarray(x, np.float32)
    before = classifier.queries
    correct = (classifier.predict(x) == y).astype(np.float64)
    std = x.reshape(len(x), -1).std(axis=0).reshape(x.shape[1:]).astype(np.float32) + 1e-6
    kept = np.zeros(len(x))
    chunk = max(1, 8192 // copies)
    for scale in noise_scales:
        for begin in range(0, len(x), chunk):
            xb = x[begin : begin + chunk]
            noisy = xb[:, None] + rng.normal(size=(len(xb), copies, *x.shape[1:])).astype(np.float32) * (scale * std)
            noisy = noisy.reshape(-1, *x.shape[1:])
            if classifier.clip_values is not None:
                noisy = classifier.clip_values.clip(noisy)
            labels = classifier.predict(noisy).reshape(len(xb), copies)
            kept[begin : begin + len(xb)] += (labels == y[begin : begin + len(xb), None]).mean(axis=1)
    scores = correct + kept / len(noise_scales)
    return _result(
        "label-only",
        scores,
        is_member,
        start,
        queries=classifier.queries - before,
        notes=(f"{copies} noisy copies at each of {tuple(noise_scales)} standard deviations",),
    )


def recipe_leakage(
    reference: ReferenceModels, y: NDArray[np.integer], *, attack: str = "lira-online", seed: int = 0
) -> MembershipResult:
    """How much the *training recipe* leaks: each reference model in turn is the target and the others its
    references, and the scores of all of them are pooled (as Carlini et al. evaluate).

    One target model's few hundred non-members cannot vouch for a 0.1% false-positive rate; ``M`` models trained
    the same way give ``M`` times as many, so this estimate supports the low-FPR figures a single model cannot.
    It measures models trained like the target (same recipe, same data), not the target itself.
    """
    if reference.n_models < 3:
        raise InvalidParameterError("recipe_leakage needs at least 3 reference models (a target and two references).")
    start = time.perf_counter()
    scores: list[NDArray[np.float64]] = []
    truth: list[NDArray[np.bool_]] = []
    for t in range(reference.n_models):
        rest = np.arange(reference.n_models) != t
        others = ReferenceModels(reference.masks[rest], reference.log_proba[rest], reference.spec)
        mask = reference.masks[t]
        logp = reference.log_proba[t]
        if attack.startswith("lira"):
            r = lira(logp, y, mask, others, online=attack == "lira-online")
        elif attack.startswith("rmia"):
            r = rmia(logp, y, mask, others, online=attack == "rmia", seed=seed + t)
        elif attack == "loss":
            r = loss_attack(logp, y, mask)
        else:
            raise InvalidParameterError(f"recipe_leakage supports loss, lira-* and rmia*, not {attack!r}.")
        scores.append(r.scores)
        truth.append(mask)
    return _result(
        f"{attack} (recipe, {reference.n_models} models pooled)",
        np.concatenate(scores),
        np.concatenate(truth),
        start,
        reference_models=reference.n_models - 1,
        notes=(f"each of {reference.n_models} models trained like the target attacked with the others",),
    )


# -- the whole assessment --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MembershipAssessment:
    """Every attack's result on the same records; ``best`` is the one with the highest TPR at the lowest FPR."""

    results: tuple[MembershipResult, ...]
    reference: ReferenceModels | None
    skipped: tuple[str, ...] = ()  # attacks not run, with the reason

    @property
    def best(self) -> MembershipResult:
        def key(r: MembershipResult) -> tuple[float, ...]:
            return (*(p.tpr for p in r.summary.at_fpr), r.summary.auc)

        return max(self.results, key=key)

    def get(self, attack: str) -> MembershipResult:
        for r in self.results:
            if r.attack == attack:
                return r
        raise KeyError(f"No result for attack {attack!r}; have {[r.attack for r in self.results]}.")


def assess_membership(
    classifier: Classifier,
    members: Dataset,
    non_members: Dataset,
    *,
    trainer: Trainer | None = None,
    n_reference: int = 16,
    attacks: Sequence[str] = ("loss", "population", "lira-online", "lira-offline", "rmia", "label-only"),
    label_only_copies: int = 16,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> MembershipAssessment:
    """Run the membership attacks on ``classifier`` with ``members`` (its training records) and ``non_members``.

    The reference attacks (LiRA, RMIA) need ``trainer``, a recipe that trains models like the target; each of the
    ``n_reference`` models trains on a random subset of all the records, as large as ``members``.
    """
    unknown = [a for a in attacks if a not in ATTACKS and a != "rmia-offline"]
    if unknown:
        raise InvalidParameterError(
            f"Unknown membership attacks {unknown}.", remedy=f"Use any of: {', '.join(ATTACKS)}."
        )
    x = np.concatenate([members.x, non_members.x]).astype(np.float32, copy=False)
    y = np.concatenate([members.y, non_members.y]).astype(np.int64, copy=False)
    is_member = np.r_[np.ones(len(members), bool), np.zeros(len(non_members), bool)]
    wanted = [a for a in attacks if a.startswith(("lira", "rmia"))]
    results: list[MembershipResult] = []
    skipped: list[str] = []
    if trainer is None:
        skipped += [f"{a}: needs a training recipe for reference models (none given)" for a in wanted]
        wanted = []
    # The score-based attacks share one pass over the records (their queries); label-only makes its own.
    logp = np.empty((0, 0))
    queries = 0
    if wanted or "loss" in attacks or "population" in attacks:
        before = classifier.queries
        logp = target_log_proba(classifier, x)
        queries = classifier.queries - before
    if "loss" in attacks:
        results.append(_with_queries(loss_attack(logp, y, is_member), queries))
    if "population" in attacks:
        results.append(_with_queries(population_attack(logp, y, is_member, seed=seed), queries))
    reference: ReferenceModels | None = None
    if wanted and trainer is not None:
        reference = reference_models(
            trainer,
            x,
            y,
            n_models=n_reference,
            train_size=len(members),
            n_classes=classifier.n_classes,
            seed=seed,
            cache_dir=cache_dir,
        )
        for name in wanted:
            if name.startswith("lira"):
                r = lira(logp, y, is_member, reference, online=name == "lira-online")
            else:
                r = rmia(logp, y, is_member, reference, online=name == "rmia", seed=seed)
            results.append(_with_queries(r, queries))
    if "label-only" in attacks:
        results.append(label_only_attack(classifier, x, y, is_member, copies=label_only_copies, seed=seed))
    if not results:
        raise InvalidParameterError("No membership attack could run.", remedy="; ".join(skipped) or "Name an attack.")
    return MembershipAssessment(tuple(results), reference, tuple(skipped))


def _with_queries(result: MembershipResult, queries: int) -> MembershipResult:
    from dataclasses import replace

    return replace(result, queries=queries)
