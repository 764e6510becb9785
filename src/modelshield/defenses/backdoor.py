"""Backdoor detection on a trained model without its training data: Neural Cleanse and STRIP.

    >>> from modelshield.defenses.backdoor import STRIPDetector, neural_cleanse
    >>> result = neural_cleanse(classifier, clean_x, seed=0)  # doctest: +SKIP
    >>> result.flagged, result.anomaly_index.round(1)  # doctest: +SKIP
    >>> strip = STRIPDetector(n_overlays=64, fpr=0.01).fit(classifier, clean_x, seed=0)  # doctest: +SKIP
    >>> strip.is_triggered(x)  # doctest: +SKIP

A backdoored model answers its attacker's target class whenever a small trigger is stamped on an input, and behaves
normally otherwise. Two detectors look for that, needing only a few clean inputs:

:func:`neural_cleanse` (Wang et al., S&P 2019) inspects the model once, white-box. For every class ``t`` it
reverse-engineers the smallest mask ``m`` and pattern ``p`` such that ``(1 - m) * x + m * p`` is classified ``t``
for clean inputs ``x``. A backdoor is a shortcut to its target class, so that class's reversed mask is much smaller
than the others'; a class whose mask L1 norm lies more than 2 robust standard deviations (1.4826 × MAD, floored
at 12.5% of the median for small inputs: see :class:`NeuralCleanse`) below the median is flagged. All classes are
optimised together as one batched problem.

:class:`STRIPDetector` (Gao et al., ACSAC 2019) screens inputs at inference time, black-box. It blends the input
with clean images and looks at the entropy of the model's predictions: a clean input's class is easily disturbed
by the blend (high entropy), while a trigger keeps steering every blend to the target class (low entropy). The
gateway calls it as an input-stage :class:`~modelshield.defenses.interface.InferenceGuard`; it works with any
:class:`~modelshield.models.interface.Classifier` and with :func:`~modelshield.defenses.detectors.measure_detector`.

Both detect the classic *patch* trigger they were designed for; triggers spread over the whole input (blending,
warping), source-specific backdoors, and attackers who know the detector can evade them.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield._extras import require
from modelshield.defenses.interface import Action, InputDetector, upper_quantile
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.interface import Classifier, FloatArray

if TYPE_CHECKING:
    import torch

    from modelshield.models.torch_classifier import TorchClassifier

__all__ = ["NeuralCleanse", "NeuralCleanseResult", "STRIPDetector", "anomaly_index", "neural_cleanse"]

log = logging.getLogger(__name__)

MAD_CONSISTENCY = 1.4826  # makes the median absolute deviation estimate the standard deviation of normal data


# -- Neural Cleanse ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NeuralCleanseResult:
    """The reversed trigger of every class and the outlier test over their sizes.

    Arrays are indexed by class. ``mask_norms`` is the L1 norm of each class's smallest mask that reached
    ``target_success`` during optimisation (its last mask if none did; see ``reached_target``), in pixels (mask
    values lie in [0, 1], one per spatial position, shared by the channels). ``attack_success`` is the share of
    held-out clean inputs, among those the model did not already assign to the class, that the reversed trigger
    sends to the class (NaN when there are none). ``anomaly_index`` is ``(median - norm) / spread``, 0 for norms at
    or above the median (an unusually *large* mask is no sign of a backdoor), where ``spread`` is the larger of
    1.4826 × the median absolute deviation and ``mad_floor`` × the median. A class is flagged when its index
    exceeds ``threshold`` and its trigger reached the target success rate during optimisation.
    """

    mask_norms: NDArray[np.float64]
    attack_success: NDArray[np.float64]
    anomaly_index: NDArray[np.float64]
    flagged: tuple[int, ...]
    reached_target: NDArray[np.bool_]
    masks: FloatArray  # (classes, *mask_shape): values in [0, 1]
    patterns: FloatArray  # (classes, *input_shape): values in the valid input range
    median_norm: float
    spread: float
    threshold: float
    mad_floor: float
    target_success: float
    steps: int  # optimisation steps run (early stopping may end before the budget)
    n_optimised: int  # clean inputs the triggers were optimised on
    n_held_out: int  # clean inputs their success was measured on
    seed: int
    queries: int  # inputs run through the model, in optimisation (forward and backward) and evaluation
    seconds: float

    @property
    def backdoor_suspected(self) -> bool:
        """True when at least one class is flagged."""
        return bool(self.flagged)

    def stamp(self, x: ArrayLike, target: int) -> FloatArray:
        """``x`` with class ``target``'s reversed trigger applied: ``(1 - m) * x + m * p``."""
        if not 0 <= target < len(self.mask_norms):
            raise InvalidParameterError(f"target must lie in 0..{len(self.mask_norms) - 1}, not {target}.")
        arr = np.asarray(x, np.float32)
        mask = self.masks[target].reshape(_mask_view(self.patterns.shape[1:], self.masks.shape[1:])[1:])
        return np.asarray((1.0 - mask) * arr + mask * self.patterns[target], np.float32)


def _mask_shape(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Images (channels, height, width) get one mask value per pixel shared by the channels; else per value."""
    return input_shape[-2:] if len(input_shape) >= 3 else input_shape


def _mask_view(input_shape: tuple[int, ...], mask_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that broadcasts one mask over one input: ``(1, *mask_shape)`` for images, with a leading 1."""
    return (1, *((1,) * (len(input_shape) - len(mask_shape))), *mask_shape)


def anomaly_index(norms: ArrayLike, *, mad_floor: float = 0.0) -> NDArray[np.float64]:
    """Per value, how many spreads it lies *below* the median; 0 at or above it (Wang et al.'s anomaly index).

    The spread is ``max(1.4826 * MAD, mad_floor * median)``; 1.4826 × MAD estimates the standard deviation of
    normal data. With ``mad_floor=0`` (the paper) and more than half the values equal, the spread is 0 and values
    below the median get ``inf``.
    """
    values = np.asarray(norms, np.float64)
    median, spread = _spread(values, mad_floor)
    below = np.maximum(median - values, 0.0)
    if spread == 0.0:
        return np.where(below > 0, np.inf, 0.0)
    return np.asarray(below / spread, np.float64)


def _spread(values: NDArray[np.float64], mad_floor: float) -> tuple[float, float]:
    median = float(np.median(values))
    mad = MAD_CONSISTENCY * float(np.median(np.abs(values - median)))
    return median, max(mad, mad_floor * abs(median))


@dataclass
class _Search:
    """The state of the batched trigger search: the best mask per class so far and the λ schedule."""

    cost: NDArray[np.float64]
    best_norm: NDArray[np.float64]
    best_mask: FloatArray
    best_pattern: FloatArray
    up: NDArray[np.int64]
    down: NDArray[np.int64]
    stale: int = 0


class NeuralCleanse:
    """Neural Cleanse trigger reverse-engineering (Wang et al. 2019), every class at once.

    For each class ``t`` the mask ``m = (tanh(a) + 1) / 2`` and the pattern ``p = low + (tanh(b) + 1) / 2 *
    (high - low)`` minimise ``CE(f((1 - m) * x + m * p), t) + λ_t * |m|_1`` over mini-batches of ``batch_size``
    clean inputs, with Adam at rate ``lr`` from the paper's uniform random start. The k problems are independent,
    so they are stacked and run as one batch of ``k * batch_size`` inputs per step; Adam's element-wise updates
    make this exactly k separate optimisations, in about the time of one.

    λ follows the paper's adaptive schedule, per class, checked every ``check_every`` steps on the success rate over
    those steps: λ starts at ``init_cost``; after ``patience`` checks in a row at or above ``target_success`` it is
    multiplied by ``cost_up``, after ``patience`` checks in a row below it divided by ``cost_down``. The smallest
    mask that met the target at a check is kept. Optimisation stops after ``steps`` steps, or earlier once every
    class has met the target and no class's best norm has improved by more than 1% for ``early_stop`` checks.

    A share ``held_out`` of the clean inputs is kept out of the optimisation to measure each trigger's success.
    ``threshold`` is the anomaly index above which a class is flagged (2, the paper's rule). Valid input values
    come from the classifier's ``clip_values``, else from the range of the clean inputs.

    ``mad_floor`` departs from the paper, for small inputs. On zoo:digits-cnn (8x8) every class has a natural
    trigger of 8 to 14 pixels, the MAD of the ten norms is often below one pixel, and the paper's rule flags
    ordinary differences between classes: on ten clean models (training seeds 0-9) it flagged 5 of 100 classes, in
    3 models. The spread is therefore floored at ``mad_floor`` times the median norm; with the default 0.125 and
    threshold 2, a class is flagged only if its mask is also smaller than 75% of the median. That flagged no class
    of the ten clean models (largest index 1.7), and still flagged the target of ten models backdoored with a 3x3
    corner patch (index 2.1-3.9), as the paper's rule does. Set ``mad_floor=0`` for the paper's rule.

    Measured on zoo:digits-cnn with 300 clean inputs, one thread: 540-925 steps, 7-16 s per model on a shared CPU.
    A trigger as large as the classes' natural triggers is missed: a 3x3 patch of random grey levels across the
    middle of the digit had the smallest reversed mask (6.2 pixels against a median of 11) but an index of 1.7-1.9.
    """

    def __init__(
        self,
        *,
        steps: int = 1000,
        batch_size: int = 32,
        lr: float = 0.1,
        target_success: float = 0.99,
        init_cost: float = 1e-3,
        cost_up: float = 1.5,
        cost_down: float = 1.5**1.5,
        patience: int = 5,
        check_every: int = 5,
        early_stop: int = 20,
        held_out: float = 0.25,
        threshold: float = 2.0,
        mad_floor: float = 0.125,
        seed: int = 0,
    ) -> None:
        for name, value in (
            ("steps", steps),
            ("batch_size", batch_size),
            ("patience", patience),
            ("check_every", check_every),
            ("early_stop", early_stop),
        ):
            if value < 1:
                raise InvalidParameterError(f"{name} must be at least 1, not {value}.")
        if not (lr > 0 and math.isfinite(lr)):
            raise InvalidParameterError(f"lr must be positive and finite, not {lr}.")
        if not 0.0 < target_success <= 1.0:
            raise InvalidParameterError(f"target_success must lie in (0, 1], not {target_success}.")
        if not (init_cost > 0 and math.isfinite(init_cost)):
            raise InvalidParameterError(f"init_cost must be positive and finite, not {init_cost}.")
        if not (cost_up > 1 and cost_down > 1 and math.isfinite(cost_up) and math.isfinite(cost_down)):
            raise InvalidParameterError(f"cost_up and cost_down must exceed 1, not {cost_up} and {cost_down}.")
        if not 0.0 < held_out < 1.0:
            raise InvalidParameterError(f"held_out must lie strictly between 0 and 1, not {held_out}.")
        if not (threshold > 0 and math.isfinite(threshold)):
            raise InvalidParameterError(f"threshold must be positive and finite, not {threshold}.")
        if not 0.0 <= mad_floor < 1.0:
            raise InvalidParameterError(f"mad_floor must lie in [0, 1), not {mad_floor}.")
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.target_success = target_success
        self.init_cost = init_cost
        self.cost_up = cost_up
        self.cost_down = cost_down
        self.patience = patience
        self.check_every = check_every
        self.early_stop = early_stop
        self.held_out = held_out
        self.threshold = threshold
        self.mad_floor = mad_floor
        self.seed = seed

    def run(self, classifier: TorchClassifier, x_clean: ArrayLike) -> NeuralCleanseResult:
        """Reverse-engineer a trigger for every class of ``classifier`` from the clean inputs ``x_clean``."""
        torch = require("torch", extra="torch", feature="Neural Cleanse")
        from modelshield.models.torch_classifier import TorchClassifier

        if not isinstance(classifier, TorchClassifier):
            raise InvalidParameterError(
                f"Neural Cleanse needs the gradients of a TorchClassifier, got a {type(classifier).__name__}.",
                remedy="Wrap the PyTorch model in modelshield.models.TorchClassifier, or screen inputs with the "
                "black-box STRIPDetector instead.",
            )
        k = classifier.n_classes
        if k < 3:
            raise InvalidParameterError(
                f"Neural Cleanse compares the classes' trigger sizes and needs at least 3 classes; the model has {k}.",
                remedy="Use STRIPDetector for binary classifiers.",
            )
        x = classifier.validate_input(x_clean)
        n_held = max(1, round(self.held_out * len(x)))
        if len(x) - n_held < 10 or n_held < 5:
            raise InvalidInputError(
                f"Neural Cleanse needs at least 10 clean inputs to optimise on and 5 to hold out; {len(x)} inputs "
                f"with held_out={self.held_out} give {len(x) - n_held} and {n_held}.",
                remedy="Pass more clean inputs (a few hundred give stable trigger sizes).",
            )
        start = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(x))
        x_opt, x_held = x[order[n_held:]], x[order[:n_held]]
        if classifier.clip_values is not None:
            low = np.broadcast_to(np.asarray(classifier.clip_values.low, np.float32), classifier.input_shape)
            high = np.broadcast_to(np.asarray(classifier.clip_values.high, np.float32), classifier.input_shape)
        else:
            low = np.full(classifier.input_shape, x.min(), np.float32)
            high = np.full(classifier.input_shape, x.max(), np.float32)
        with torch.inference_mode(False), torch.enable_grad():
            search, steps, queries = self._search(classifier, x_opt, np.array(low), np.array(high), rng)
        reached = np.isfinite(search.best_norm)
        norms = np.where(reached, search.best_norm, search.best_mask.reshape(len(reached), -1).sum(axis=1))
        if not reached.all():
            log.info("Neural Cleanse: classes %s never reached the target success rate.", np.flatnonzero(~reached))
        success, evaluated = self._success(classifier, x_held, search.best_mask, search.best_pattern)
        anomaly = anomaly_index(norms, mad_floor=self.mad_floor)
        median, spread = _spread(norms, self.mad_floor)
        return NeuralCleanseResult(
            mask_norms=norms,
            attack_success=success,
            anomaly_index=anomaly,
            flagged=tuple(int(t) for t in np.flatnonzero((anomaly > self.threshold) & reached)),
            reached_target=reached,
            masks=search.best_mask,
            patterns=search.best_pattern,
            median_norm=median,
            spread=spread,
            threshold=self.threshold,
            mad_floor=self.mad_floor,
            target_success=self.target_success,
            steps=steps,
            n_optimised=len(x_opt),
            n_held_out=len(x_held),
            seed=self.seed,
            queries=queries + evaluated,
            seconds=time.perf_counter() - start,
        )

    def _search(
        self,
        classifier: TorchClassifier,
        x_opt: FloatArray,
        low_np: FloatArray,
        high_np: FloatArray,
        rng: np.random.Generator,
    ) -> tuple[_Search, int, int]:
        """Optimise every class's mask and pattern together; returns the search state, steps and queries."""
        import torch

        k, shape, device = classifier.n_classes, classifier.input_shape, classifier.device
        mask_shape = _mask_shape(shape)
        mask_view = (k, *_mask_view(shape, mask_shape))  # broadcasts over (k, batch, *shape)
        low = torch.from_numpy(low_np).to(device)
        width = torch.from_numpy(high_np - low_np).to(device)
        generator = torch.Generator().manual_seed(self.seed)
        # The paper's start: mask and pattern uniform over their ranges (kept off tanh's saturation).
        mask_raw = torch.atanh(torch.rand((k, *mask_shape), generator=generator) * 1.96 - 0.98)
        pattern_raw = torch.atanh(torch.rand((k, *shape), generator=generator) * 1.96 - 0.98)
        mask_raw = mask_raw.to(device).requires_grad_(True)
        pattern_raw = pattern_raw.to(device).requires_grad_(True)
        optimiser = torch.optim.Adam([mask_raw, pattern_raw], lr=self.lr, betas=(0.5, 0.9))
        targets = torch.arange(k, device=device)
        xt = torch.from_numpy(np.ascontiguousarray(x_opt)).to(device)
        b = min(self.batch_size, len(x_opt))
        labels = targets.repeat_interleave(b)
        state = _Search(
            cost=np.full(k, self.init_cost),
            best_norm=np.full(k, np.inf),
            best_mask=np.zeros((k, *mask_shape), np.float32),
            best_pattern=np.zeros((k, *shape), np.float32),
            up=np.zeros(k, np.int64),
            down=np.zeros(k, np.int64),
        )
        hits = torch.zeros(k, device=device)
        step = 0
        for step in range(1, self.steps + 1):
            xb = xt[torch.from_numpy(rng.choice(len(x_opt), size=b, replace=False)).to(device)]
            mask = ((torch.tanh(mask_raw) + 1) / 2).view(mask_view)
            pattern = (low + (torch.tanh(pattern_raw) + 1) / 2 * width).unsqueeze(1)
            stamped = (1 - mask) * xb.unsqueeze(0) + mask * pattern  # (k, b, *shape)
            logits = classifier._scores(stamped.reshape(k * b, *shape))  # as the classifier reads its module
            ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none").view(k, b).mean(dim=1)
            norms = mask.reshape(k, -1).sum(dim=1)
            loss = (ce + torch.from_numpy(state.cost).to(device, torch.float32) * norms).sum()
            # Gradients for the trigger only: the model's own parameters are left untouched (no .grad written).
            mask_raw.grad, pattern_raw.grad = torch.autograd.grad(loss, [mask_raw, pattern_raw])
            optimiser.step()
            hits += (logits.detach().argmax(dim=1).view(k, b) == targets.unsqueeze(1)).sum(dim=1)
            if step % self.check_every == 0:
                success = hits.cpu().numpy() / (b * self.check_every)
                hits.zero_()
                self._check(state, success, norms.detach().cpu().numpy(), mask.detach(), pattern.detach(), step)
                if state.stale >= self.early_stop:
                    break
        return state, step, step * k * b

    def _check(
        self,
        state: _Search,
        success: NDArray[np.float64],
        norms: NDArray[np.float32],
        mask: torch.Tensor,
        pattern: torch.Tensor,
        step: int,
    ) -> None:
        """Keep each class's smallest mask that met the target, and move λ by the paper's schedule."""
        norm = norms.astype(np.float64)
        met = success >= self.target_success
        better = met & (norm < state.best_norm)
        improved = met & (norm < 0.99 * state.best_norm)
        if better.any():
            k = len(norm)
            state.best_norm[better] = norm[better]
            state.best_mask[better] = mask.reshape(k, *state.best_mask.shape[1:]).cpu().numpy()[better]
            state.best_pattern[better] = pattern.reshape(k, *state.best_pattern.shape[1:]).cpu().numpy()[better]
        log.debug("step %d: success %s, norm %s, cost %s", step, success.round(3), norm.round(2), state.cost)
        state.up = np.where(met, state.up + 1, 0)
        state.down = np.where(met, 0, state.down + 1)
        raise_cost, lower_cost = state.up >= self.patience, state.down >= self.patience
        state.cost = np.where(raise_cost, state.cost * self.cost_up, state.cost)
        state.cost = np.where(lower_cost, state.cost / self.cost_down, state.cost)
        state.up[raise_cost] = 0
        state.down[lower_cost] = 0
        if not np.isfinite(state.best_norm).all():
            # A class that never met the target keeps its last mask and pattern, for the report.
            missing = ~np.isfinite(state.best_norm)
            k = len(norm)
            state.best_mask[missing] = mask.reshape(k, *state.best_mask.shape[1:]).cpu().numpy()[missing]
            state.best_pattern[missing] = pattern.reshape(k, *state.best_pattern.shape[1:]).cpu().numpy()[missing]
            state.stale = 0
        else:
            state.stale = 0 if improved.any() else state.stale + 1

    def _success(
        self, classifier: TorchClassifier, x_held: FloatArray, masks: FloatArray, patterns: FloatArray
    ) -> tuple[NDArray[np.float64], int]:
        """Each class's trigger success on the held-out inputs not already predicted as that class; and queries."""
        k = classifier.n_classes
        clean_pred = classifier.predict(x_held)
        success = np.full(k, np.nan)
        view = _mask_view(classifier.input_shape, masks.shape[1:])
        for t in range(k):
            others = clean_pred != t
            if others.any():
                mask = masks[t].reshape(view)
                stamped = (1.0 - mask) * x_held[others] + mask * patterns[t]
                success[t] = float(np.mean(classifier.predict(stamped.astype(np.float32)) == t))
        return success, len(x_held) + int(sum(np.sum(clean_pred != t) for t in range(k)))

    def __repr__(self) -> str:
        return (
            f"NeuralCleanse(steps={self.steps}, batch_size={self.batch_size}, lr={self.lr}, "
            f"target_success={self.target_success}, threshold={self.threshold}, mad_floor={self.mad_floor}, "
            f"seed={self.seed})"
        )


def neural_cleanse(
    classifier: TorchClassifier,
    x_clean: ArrayLike,
    *,
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 0.1,
    target_success: float = 0.99,
    threshold: float = 2.0,
    mad_floor: float = 0.125,
    seed: int = 0,
) -> NeuralCleanseResult:
    """Neural Cleanse over every class of ``classifier``: see :class:`NeuralCleanse` for the method and options."""
    return NeuralCleanse(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        target_success=target_success,
        threshold=threshold,
        mad_floor=mad_floor,
        seed=seed,
    ).run(classifier, x_clean)


# -- STRIP ---------------------------------------------------------------------------------------------------------


class STRIPDetector(InputDetector):
    """STRIP (Gao et al. 2019): the entropy of the model's predictions on an input superimposed on clean inputs.

    An input ``x`` is superimposed on each of ``n_overlays`` clean inputs, ``alpha * x + beta * clean`` clipped to
    the valid range, and scored by the negative mean Shannon entropy (nats) of the model's probabilities on the
    blends: higher is more suspicious. The default ``alpha = beta = 1`` is the paper's superimposition (a saturating
    sum, as ``cv2.addWeighted(x, 1, clean, 1, 0)`` on 8-bit images): a bright trigger survives it at full strength.
    ``alpha=0.5, beta=0.5`` is the linear blend, which halves the trigger: on zoo:digits-cnn with a 3x3 white patch
    it detected 10-25% of triggered inputs at a 1% false-positive rate (ROC AUC 0.91-0.97), the superimposition
    100% (AUC 1.00). Use the linear blend for models without ``clip_values``, where a sum is not saturated.

    The overlays are drawn once, in :meth:`fit`, from the clean inputs (with ``seed``), and the same overlays serve
    every input, so an input's score depends neither on the batch it arrives in nor on other requests. The
    threshold is the ``1 - fpr`` quantile of the scores of the *other* clean inputs (those not drawn as overlays).
    Only ``predict_proba`` is used, in calls of at most ``batch_size`` blends, so any
    :class:`~modelshield.models.interface.Classifier` works, black-box ones included; scoring ``n`` inputs costs
    ``n * n_overlays`` queries. As a guard, :meth:`inspect` gives rows above the threshold ``on_alarm``.

    It detects triggers that dominate the prediction wherever they are blended in (patches, stamps); it misses
    triggers that the blend destroys, and source-specific backdoors, whose triggered inputs keep some entropy.

    Learned attributes: ``classifier_``, ``overlays_``, ``threshold_``, ``clean_scores_``.
    """

    def __init__(
        self,
        *,
        n_overlays: int = 64,
        alpha: float = 1.0,
        beta: float = 1.0,
        batch_size: int = 8192,
        fpr: float = 0.01,
        on_alarm: Action | str = Action.FLAG,
    ) -> None:
        if n_overlays < 1:
            raise InvalidParameterError(f"n_overlays must be at least 1, not {n_overlays}.")
        if not (0.0 < alpha <= 1.0 and 0.0 < beta <= 1.0):
            raise InvalidParameterError(f"alpha and beta must lie in (0, 1], not {alpha} and {beta}.")
        if batch_size < 1:
            raise InvalidParameterError(f"batch_size must be at least 1, not {batch_size}.")
        super().__init__(fpr=fpr, on_alarm=on_alarm)
        self.n_overlays = n_overlays
        self.alpha = alpha
        self.beta = beta
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        return f"strip(n_overlays={self.n_overlays}, alpha={self.alpha:g}, beta={self.beta:g})"

    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Draw the overlays from the clean ``reference_x`` (with ``seed``) and set the threshold on the rest of it;
        returns ``self``. ``reference_y`` is accepted for the guard protocol and unused."""
        x = classifier.validate_input(reference_x)
        if len(x) < self.n_overlays + 2:
            raise InvalidInputError(
                f"STRIP needs n_overlays={self.n_overlays} clean inputs to blend with and at least 2 more to set "
                f"its threshold on; got {len(x)}.",
                remedy="Pass more clean inputs or lower n_overlays.",
            )
        order = np.random.default_rng(seed).permutation(len(x))
        held = x[order[self.n_overlays :]]
        if len(held) < math.ceil(1.0 / self.fpr):
            log.warning(
                "STRIP threshold set on %d clean inputs: too few to resolve fpr=%g; the false-positive rate will "
                "be coarse.",
                len(held),
                self.fpr,
            )
        self.classifier_ = classifier
        self.overlays_ = np.array(x[order[: self.n_overlays]])
        self.clean_scores_ = self._score(classifier, held)
        self.threshold_ = upper_quantile(self.clean_scores_, self.fpr)
        return self

    def queries_per_input(self) -> int:
        """One query per overlay."""
        return self.n_overlays

    def blend(self, x: ArrayLike) -> FloatArray:
        """The blends of each input with every overlay: shape ``(n, n_overlays, *input_shape)``."""
        return self._blend(self._fitted(), x)

    def _blend(self, classifier: Classifier, x: ArrayLike) -> FloatArray:
        arr = classifier.validate_input(x)
        blended = self.alpha * arr[:, np.newaxis] + self.beta * self.overlays_[np.newaxis]
        if classifier.clip_values is not None:
            return classifier.clip_values.clip(blended)
        return np.asarray(blended, np.float32)

    def score(self, x: ArrayLike) -> NDArray[np.float64]:
        """Per input, minus the mean entropy of the predictions on its blends (higher = more suspicious)."""
        return self._score(self._fitted(), x)

    def _score(self, classifier: Classifier, x: ArrayLike) -> NDArray[np.float64]:
        arr = classifier.validate_input(x)
        scores = np.empty(len(arr))
        per_chunk = max(1, self.batch_size // self.n_overlays)
        for start in range(0, len(arr), per_chunk):
            chunk = arr[start : start + per_chunk]
            blended = self._blend(classifier, chunk).reshape(len(chunk) * self.n_overlays, *classifier.input_shape)
            proba = classifier.predict_proba(blended).astype(np.float64)
            entropy = -(proba * np.log(np.clip(proba, 1e-12, 1.0))).sum(axis=1)
            scores[start : start + len(chunk)] = -entropy.reshape(len(chunk), self.n_overlays).mean(axis=1)
        return scores

    def is_triggered(self, x: ArrayLike) -> NDArray[np.bool_]:
        """Per input, whether its score exceeds the threshold chosen by :meth:`fit` (a trigger is suspected)."""
        scores = self.score(x)
        return np.asarray(scores > self.threshold_)

    def __repr__(self) -> str:
        fitted = f", threshold_={self.threshold_:.4g}" if hasattr(self, "threshold_") else ""
        return (
            f"STRIPDetector(n_overlays={self.n_overlays}, alpha={self.alpha}, beta={self.beta}, fpr={self.fpr}, "
            f"on_alarm={self.on_alarm.value}{fitted})"
        )
