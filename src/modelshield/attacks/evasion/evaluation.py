"""Robustness evaluation that is hard to fool: every attack's examples combined per input, adaptive attacks against
gradient masking, and checks that flag an evaluation whose numbers may still overstate the model.

    >>> from modelshield.attacks.evasion.evaluation import evaluate_robustness
    >>> evaluation = evaluate_robustness(classifier, x, y, eps=(0.05, 0.1, 0.2), restarts=5, seed=0)  # doctest: +SKIP
    >>> evaluation.worst  # robust accuracy at each ε, worst case over the attacks  # doctest: +SKIP

**White-box models** (PyTorch, or a model with a verified differentiable ``twin``, e.g. an ONNX graph converted to
PyTorch): each ε gets FGSM, then PGD, APGD-CE and APGD-DLR with ``restarts`` random starts each (with two
classes, PGD on the CW margin loss instead of APGD-DLR), then the gradient-free Square attack on every input those
left unbroken; at the largest ε also PGD with four times the steps and five restarts, and at every ε when that
beats the others there. The gradient attacks run on the model as
:func:`~modelshield.attacks.evasion.adaptive.adapt` sees it: straight-through gradients through rounding (BPDA), the
logits before a final softmax and margin losses where the outputs saturate, gradients averaged over random draws
(EOT). Every example is re-checked on the real model. An input counts as robust at ε only if every attack fails on
it (AutoAttack's rule), so the worst case is per input over every attack run, black-box ones included.

**Black-box models**: the Square attack (when the model returns scores), HopSkipJump (decisions only, L∞, one run
whose smallest changes are read at every ε) and a transfer attack: the gradient attacks run on a surrogate trained
on the model's answers about the inputs and two noisy copies of each
(:func:`~modelshield.attacks.extraction.fit_surrogate`), their examples replayed against the model. Without
gradients the figures are upper bounds: ``white_box`` is False.

The reliability checks follow Athalye et al. 2018 and Carlini et al. 2019 ("On evaluating adversarial robustness"),
on white-box evaluations:

- ``unbounded``: an attack with ε as wide as the whole input range must reach ~0% accuracy; if it does not, the
  gradients do not lead anywhere (masking, or a broken attack).
- ``fgsm-beats-pgd``: one step cannot beat forty; if it does, the loss surface is not being followed.
- ``more-effort-helps``: PGD with four times the steps and five restarts must not go clearly below the other
  attacks' worst case (its examples join the worst case either way).
- ``blackbox-beats-whitebox``: the Square attack must not break clearly more inputs than the gradient attacks left
  (its examples join the worst case either way).
- ``not-monotone``: robust accuracy must not rise with ε.
- ``no-gradients``: the model's output does not depend on its input through autograd; only black-box attacks ran.

Each check compares robust accuracies with a tolerance of ``max(0.02, 2 standard errors)``, so sampling noise on
a few hundred inputs does not raise it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from modelshield.attacks.evasion.interface import Constraints, EvasionResult, Norm, perturbation_norms
from modelshield.attacks.evasion.whitebox import Loss
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray, IntArray
from modelshield.models.torch_classifier import TorchClassifier

__all__ = ["Reliability", "RobustnessEvaluation", "evaluate_robustness"]

_SURROGATE_COPIES = 2  # noisy copies of each input the transfer surrogate also learns the model's answers on


@dataclass(frozen=True)
class Reliability:
    """One reliability check that failed: a sign that the robustness numbers overstate the model."""

    id: str
    message: str


@dataclass(frozen=True)
class RobustnessEvaluation:
    """Robust accuracy per attack and ε, the worst case over attacks, per class, and the reliability verdicts."""

    norm: Norm
    eps: tuple[float, ...]
    clean_accuracy: float
    n: int
    robust: dict[str, tuple[float, ...]]  # attack family -> robust accuracy at each eps (alone, on every input)
    worst: tuple[float, ...]  # robust accuracy at each eps, per sample worst case over every attack run
    worst_per_class: tuple[tuple[float, ...], ...]  # [eps][class]
    minimal_distances: tuple[float, ...] = ()  # DeepFool L2 distances of correctly classified inputs (white-box)
    unbounded_accuracy: float | None = None
    reliability: tuple[Reliability, ...] = ()
    queries: int = 0
    seconds: float = 0.0
    examples: dict[float, EvasionResult] = field(default_factory=dict, repr=False)  # the worst-case result per eps
    white_box: bool = True  # gradient attacks ran; False: black-box attacks only, the figures are upper bounds
    adaptations: tuple[str, ...] = ()  # adaptive-attack changes made to the model's view (BPDA, EOT, logits)
    restarts: int = 1  # PGD's random starts

    @property
    def reliable(self) -> bool:
        return not self.reliability


def _tolerance(p: float, n: int) -> float:
    return max(0.02, 2 * math.sqrt(max(p * (1 - p), 1e-4) / max(n, 1)))


def _worst(results: Sequence[EvasionResult], x: FloatArray) -> EvasionResult:
    """Per sample, the first attack that fools it (its example), else the input itself; robust only if all fail."""
    base = results[0]
    fooled = np.zeros(len(base.y), bool)
    x_adv = np.array(x, copy=True)
    predicted = np.array(base.predicted, copy=True)
    distances = np.zeros(len(base.y))
    for r in results:
        new = r.success & ~fooled
        x_adv[new], predicted[new], distances[new] = r.x_adv[new], r.predicted[new], r.distances[new]
        fooled |= r.success
    return EvasionResult(
        attack="worst case of " + ", ".join(r.attack.split("(")[0] for r in results),
        norm=base.norm,
        eps=base.eps,
        x_adv=x_adv,
        y=base.y,
        predicted=predicted,
        clean_correct=base.clean_correct,
        distances=distances,
        queries=sum(r.queries for r in results),
        seconds=sum(r.seconds for r in results),
    )


def evaluate_robustness(  # noqa: PLR0915 - one battery per ε, the reliability checks woven in where they run
    classifier: Classifier,
    x: FloatArray,
    y: IntArray,
    *,
    eps: Sequence[float],
    norm: Norm | str = Norm.LINF,
    steps: int = 40,
    restarts: int = 1,
    seed: int = 0,
    constraints: Constraints | None = None,
    blackbox_queries: int = 1000,
    check_reliability: bool = True,
    twin: TorchClassifier | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RobustnessEvaluation:
    """Evaluate ``classifier`` on ``(x, y)`` at each ε with a battery of attacks; see the module documentation.

    ``twin`` is a differentiable copy of a model that has no gradients of its own (an ONNX graph converted to
    PyTorch and checked against it): the gradient attacks run on the twin, and every example is re-checked on
    ``classifier``. ``restarts`` is the number of random starts of PGD and APGD. ``progress`` is called with
    (step, done, total) before each ε and before the reliability checks.
    """
    norm = Norm.parse(norm)
    eps = tuple(sorted(float(e) for e in eps))
    if not eps or min(eps) <= 0:
        raise InvalidParameterError("eps must be one or more positive numbers.", remedy="E.g. eps=(0.05, 0.1).")
    if restarts < 1:
        raise InvalidParameterError(f"restarts must be at least 1, not {restarts}.")
    t0 = time.perf_counter()
    queries_before = classifier.queries
    gradient_model = classifier if isinstance(classifier, TorchClassifier) else twin
    notes: list[str] = []
    view: TorchClassifier | None = None
    randomised = saturated = False
    if gradient_model is not None:
        from modelshield.attacks.evasion.adaptive import adapt

        adapted = adapt(gradient_model, x)
        notes.extend(adapted.notes)
        view = adapted.classifier if adapted.differentiable else None
        randomised, saturated = adapted.randomised, adapted.saturated
    view_before = view.queries if view is not None and view is not classifier else 0
    robust: dict[str, list[float]] = {}
    worst: list[float] = []
    per_class: list[tuple[float, ...]] = []
    examples: dict[float, EvasionResult] = {}
    reliability: list[Reliability] = []
    clean_pred = classifier.predict(x)
    clean_accuracy = float(np.mean(clean_pred == y))
    classes = np.arange(classifier.n_classes)
    hsj = surrogate = None
    if view is None and norm is Norm.LINF:
        from modelshield.attacks.evasion.blackbox import hop_skip_jump
        from modelshield.attacks.extraction import fit_surrogate

        # Decision-based: one run gives the smallest change per input that flips the model's answer.
        hsj = hop_skip_jump(classifier, x, y, norm=norm, max_queries=blackbox_queries, seed=seed,
                            constraints=constraints)  # fmt: skip
        # Transfer: a surrogate trained on the model's answers about these inputs and noisy copies of them.
        surrogate = fit_surrogate(classifier, x, spread=eps[-1], copies=_SURROGATE_COPIES, seed=seed)
    hard_accuracy: float | None = None
    gradient_worst = gradient_only = 1.0  # at the largest ε: the gradient attacks' worst case, then with PGD-hard
    loss: Loss = "margin" if saturated else "ce"

    def harder(e: float) -> EvasionResult:
        from modelshield.attacks.evasion.whitebox import pgd

        assert view is not None  # noqa: S101 - only called on white-box evaluations
        r = pgd(view, x, y, eps=e, norm=norm, steps=4 * steps, restarts=max(5, restarts), seed=seed + 1,
                constraints=constraints, keep_last=randomised, loss=loss)  # fmt: skip
        return _recheck(classifier, x, r, clean_pred) if view is not classifier else r

    combined: dict[float, EvasionResult] = {}
    total = len(eps) + (1 if view is not None and check_reliability else 0)
    for done, e in enumerate(eps):
        if progress is not None:
            progress(f"attacks at ε {done + 1} of {len(eps)}", done, total)
        last = check_reliability and e == eps[-1]
        if view is not None:
            results = _gradient_attacks(view, x, y, e, norm, steps, restarts, seed, constraints, randomised, loss)
            if view is not classifier:
                results = [_recheck(classifier, x, r, clean_pred) for r in results]
            for r in results:
                robust.setdefault(_family(r), []).append(r.robust_accuracy)
            if last:  # more effort: part of the worst case, and a check that the battery converged
                gradient_worst = _worst(results, x).robust_accuracy
                results.append(harder(e))
                hard_accuracy = results[-1].robust_accuracy
            w = _worst(results, x)
            gradient_only = w.robust_accuracy
            if norm is Norm.LINF and not classifier.label_only:  # per sample over every attack, Square included
                survivors = np.flatnonzero(~w.success)
                square = _square_on(classifier, x, y, survivors, e, blackbox_queries, seed, constraints, clean_pred)
                w = _worst([w, square], x)
        else:
            if norm is not Norm.LINF:
                raise InvalidParameterError(
                    "Black-box evaluation supports the L-infinity norm.", remedy="Use norm='linf'."
                )
            from modelshield.attacks.evasion.blackbox import square_attack

            results = []
            if not classifier.label_only:  # Square reads class scores
                results.append(square_attack(classifier, x, y, eps=e, max_queries=blackbox_queries, seed=seed,
                                             constraints=constraints))  # fmt: skip
            if hsj is not None:
                results.append(_within(hsj, x, e))
            if surrogate is not None:
                results.append(_transfer(surrogate, classifier, x, y, e, steps, restarts, seed, constraints,
                                         clean_pred))  # fmt: skip
            for r in results:
                robust.setdefault(_family(r), []).append(r.robust_accuracy)
            w = _worst(results, x)
        combined[e] = w
    if hard_accuracy is not None and hard_accuracy < gradient_worst - _tolerance(gradient_worst, len(y)):
        # The battery had not converged at the largest ε: give every ε the stronger attack, not a warning.
        for e in eps[:-1]:
            combined[e] = _worst([combined[e], harder(e)], x)
        notes.append(
            f"PGD with {4 * steps} steps and {max(5, restarts)} random starts beat the standard attacks at the "
            "largest ε, so it ran at every ε"
        )
        hard_accuracy = None  # acted on: not a reliability failure
    for e in eps:
        w = combined[e]
        worst.append(w.robust_accuracy)
        per_class.append(tuple(float(np.mean(~w.success[y == c])) if (y == c).any() else math.nan for c in classes))
        examples[e] = w
    distances: tuple[float, ...] = ()
    unbounded = None
    if view is not None and check_reliability:
        from modelshield.attacks.evasion.whitebox import deepfool, pgd

        if progress is not None:
            progress("reliability checks", len(eps), total)

        if norm is Norm.L2 or constraints is None or constraints.trivial:
            df = deepfool(view, x, y, constraints=constraints)
            if view is not classifier:
                df = _recheck(classifier, x, df, clean_pred)
            distances = tuple(float(d) for d in df.distances[df.clean_correct & df.success])
        wide = _range_width(view, constraints, norm)
        if wide is not None:
            far = pgd(
                view,
                x,
                y,
                eps=wide,
                norm=norm,
                steps=steps,
                seed=seed,
                constraints=constraints,
                loss="margin",  # no saturation at a wide ε
                keep_last=randomised,
            )
            unbounded = (_recheck(classifier, x, far, clean_pred) if view is not classifier else far).robust_accuracy
        reliability = _reliability(robust, gradient_worst, worst, eps, len(y), unbounded, hard_accuracy)
        if norm is Norm.LINF and worst[-1] < gradient_only - _tolerance(gradient_only, len(y)):
            reliability.append(Reliability(
                "blackbox-beats-whitebox",
                f"At ε={eps[-1]:g} the gradient-free Square attack breaks inputs the gradient attacks could not: "
                f"accuracy falls from {gradient_only:.1%} to {worst[-1]:.1%}. The gradients mislead the attacks.",
            ))  # fmt: skip
    if gradient_model is not None and view is None:
        reliability.append(Reliability(
            "no-gradients",
            "The model's output has no gradient with respect to its input (e.g. it casts the input to integers), "
            "so only black-box attacks ran: the robust accuracy is an upper bound.",
        ))  # fmt: skip
    queries = classifier.queries - queries_before
    if view is not None and view is not classifier:
        queries += view.queries - view_before
    return RobustnessEvaluation(
        norm=norm,
        eps=eps,
        clean_accuracy=clean_accuracy,
        n=len(y),
        robust={k: tuple(v) for k, v in robust.items()},
        worst=tuple(worst),
        worst_per_class=tuple(per_class),
        minimal_distances=distances,
        unbounded_accuracy=unbounded,
        reliability=tuple(reliability),
        queries=queries,
        seconds=time.perf_counter() - t0,
        examples=examples,
        white_box=view is not None,
        adaptations=tuple(notes),
        restarts=restarts,
    )


def _family(result: EvasionResult) -> str:
    """The attack's name for the curve: ``pgd``, ``pgd-margin``, ``apgd-dlr``, ..."""
    name = result.attack.split("(")[0].replace("_", "-")
    return f"{name}-margin" if "loss=margin" in result.attack else name


def _gradient_attacks(
    view: TorchClassifier,
    x: FloatArray,
    y: IntArray,
    eps: float,
    norm: Norm,
    steps: int,
    restarts: int,
    seed: int,
    constraints: Constraints | None,
    randomised: bool = False,
    loss: Loss = "ce",
) -> list[EvasionResult]:
    """FGSM, then PGD, APGD-CE and APGD-DLR (three classes or more; else PGD on the CW margin loss) with ``restarts``
    random starts each, on the inputs not broken yet: the cross-entropy for the usual case, the margin losses for
    saturated outputs. On a randomised model every attack runs all its steps and keeps its strongest point, not the
    first that fooled one draw."""
    from modelshield.attacks.evasion.whitebox import apgd, fgsm, pgd

    k = randomised
    results = [
        fgsm(view, x, y, eps=eps, norm=norm, constraints=constraints),
        pgd(
            view,
            x,
            y,
            eps=eps,
            norm=norm,
            steps=steps,
            restarts=restarts,
            seed=seed,
            constraints=constraints,
            keep_last=k,
            loss=loss,
        ),
        apgd(
            view,
            x,
            y,
            eps=eps,
            norm=norm,
            steps=max(steps, 50),
            restarts=restarts,
            seed=seed,
            constraints=constraints,
            keep_last=k,
        ),
    ]
    if view.n_classes >= 3:
        results.append(apgd(view, x, y, eps=eps, norm=norm, loss="dlr", steps=max(steps, 50), restarts=restarts,
                            seed=seed, constraints=constraints, keep_last=k))  # fmt: skip
    elif loss != "margin":
        results.append(pgd(view, x, y, eps=eps, norm=norm, steps=steps, restarts=restarts, seed=seed,
                           constraints=constraints, loss="margin", keep_last=k))  # fmt: skip
    return results


def _recheck(classifier: Classifier, x: FloatArray, result: EvasionResult, clean_pred: IntArray) -> EvasionResult:
    """``result``'s examples measured on ``classifier`` (the real model) instead of the view that found them."""
    return EvasionResult.measure(attack=result.attack, classifier=classifier, x=x, x_adv=result.x_adv, y=result.y,
                                 norm=result.norm, eps=result.eps, queries=result.queries, seconds=result.seconds,
                                 clean_predicted=clean_pred)  # fmt: skip


def _square_on(
    classifier: Classifier,
    x: FloatArray,
    y: IntArray,
    rows: NDArray[np.intp],
    eps: float,
    queries: int,
    seed: int,
    constraints: Constraints | None,
    clean_pred: IntArray,
) -> EvasionResult:
    """The Square attack on the inputs ``rows`` only, as a result over all inputs (the others left as they are)."""
    from modelshield.attacks.evasion.blackbox import square_attack

    x_adv = np.array(x, copy=True)
    predicted = np.array(clean_pred, copy=True)
    spent, seconds = 0, 0.0
    if len(rows):
        sub = square_attack(classifier, x[rows], y[rows], eps=eps, max_queries=queries, seed=seed,
                            constraints=constraints)  # fmt: skip
        x_adv[rows], predicted[rows] = sub.x_adv, sub.predicted
        spent, seconds = sub.queries, sub.seconds
    return EvasionResult(
        attack=f"square(linf, eps={eps:g}, max_queries={queries})",
        norm=Norm.LINF,
        eps=eps,
        x_adv=x_adv,
        y=np.asarray(y),
        predicted=predicted,
        clean_correct=np.asarray(clean_pred == y),
        distances=perturbation_norms(x_adv, x, Norm.LINF),
        queries=spent,
        seconds=seconds,
    )


def _transfer(
    surrogate: TorchClassifier,
    classifier: Classifier,
    x: FloatArray,
    y: IntArray,
    eps: float,
    steps: int,
    restarts: int,
    seed: int,
    constraints: Constraints | None,
    clean_pred: IntArray,
) -> EvasionResult:
    """The gradient attacks run on ``surrogate``; per input, the first of their examples that fools ``classifier``."""
    found = [
        _recheck(classifier, x, r, clean_pred)
        for r in _gradient_attacks(surrogate, x, y, eps, Norm.LINF, steps, restarts, seed, constraints)
    ]
    best = _worst(found, x)  # fmt: skip
    return replace(best, attack=f"transfer(linf, eps={eps:g}, surrogate trained on the model's answers)")


def _within(result: EvasionResult, x: FloatArray, eps: float) -> EvasionResult:
    """A minimal-perturbation result seen at budget ``eps``: its examples that fit in the ball, the rest undone."""
    fits = result.success & (result.distances <= eps * (1 + 1e-6))
    x_adv = np.where(fits.reshape(-1, *([1] * (x.ndim - 1))), result.x_adv, x).astype(np.float32)
    predicted = np.where(fits, result.predicted, result.y)
    return replace(result, attack=result.attack, eps=eps, x_adv=x_adv, predicted=predicted,
                   distances=np.where(fits, result.distances, 0.0))  # fmt: skip


def _range_width(classifier: Classifier, constraints: Constraints | None, norm: Norm) -> float | None:
    """An ε that covers the whole valid range (None when the range is unbounded)."""
    c = constraints or Constraints.from_bounds(classifier.clip_values, classifier.input_shape)
    width = np.asarray(c.high, np.float64) - np.asarray(c.low, np.float64)
    if not np.all(np.isfinite(width)):
        return None
    return float(width.max()) if norm is Norm.LINF else float(np.sqrt((width**2).sum()))


def _reliability(
    robust: dict[str, list[float]],
    gradient_worst: float,
    worst: list[float],
    eps: tuple[float, ...],
    n: int,
    unbounded: float | None,
    hard_pgd: float | None,
) -> list[Reliability]:
    found: list[Reliability] = []
    if unbounded is not None and unbounded > _tolerance(0.0, n):
        found.append(Reliability(
            "unbounded",
            f"PGD with ε covering the whole input range leaves {unbounded:.1%} accuracy; it should reach ~0%: "
            "gradients are masked, or the model is not differentiable as evaluated.",
        ))  # fmt: skip
    fgsm, pgd = robust.get("fgsm"), robust.get("pgd")
    if fgsm and pgd:
        for e, f, p in zip(eps, fgsm, pgd, strict=True):
            if f < p - _tolerance(p, n):
                found.append(Reliability(
                    "fgsm-beats-pgd",
                    f"At ε={e:g} FGSM leaves {f:.1%} accuracy but PGD {p:.1%}: one step beating many means the "
                    "iterative attack is not following the loss.",
                ))  # fmt: skip
                break
    if hard_pgd is not None and hard_pgd < gradient_worst - _tolerance(gradient_worst, n):
        found.append(Reliability(
            "more-effort-helps",
            f"At ε={eps[-1]:g} PGD with 4x the steps and 5 restarts lowers accuracy from the other attacks' worst "
            f"case {gradient_worst:.1%} to {hard_pgd:.1%}: the attacks have not converged, so the curve at "
            "smaller ε overstates robustness.",
        ))  # fmt: skip
    for a, b, e in zip(worst, worst[1:], eps[1:], strict=False):
        if b > a + _tolerance(a, n):
            found.append(Reliability(
                "not-monotone",
                f"Robust accuracy rises from {a:.1%} to {b:.1%} at ε={e:g}: a larger budget cannot make an "
                "attack weaker.",
            ))  # fmt: skip
            break
    return found
