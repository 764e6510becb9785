"""White-box evasion attacks on PyTorch models: FGSM, PGD, APGD-CE, APGD-DLR and DeepFool.

    >>> from modelshield.attacks.evasion.whitebox import pgd
    >>> result = pgd(classifier, x, y, eps=0.1, steps=40)  # doctest: +SKIP
    >>> result.robust_accuracy  # doctest: +SKIP

Every attack runs in torch on the classifier's device, one batch at a time, with no copies to NumPy between steps.
Bounded attacks project after every step onto the ε-ball and the valid range (``clip_values``), so the returned
examples are valid by construction; the result's success is then measured again on the returned array. PGD and
FGSM stop working on a sample as soon as it is fooled (the batch shrinks); APGD keeps the AutoAttack schedule and
records each sample's best point.

Tabular models whose schema has immutable or integer features: pass ``constraints``
(:class:`~modelshield.attacks.evasion.interface.Constraints`); immutable features get no gradient step, and the
final examples are projected onto whole values inside the ball.

References: Goodfellow et al. 2015 (FGSM); Madry et al. 2018 (PGD); Croce & Hein 2020 (APGD, the DLR loss);
Moosavi-Dezfooli et al. 2016 (DeepFool).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

from modelshield.attacks.evasion.interface import Constraints, EvasionResult, Norm
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.interface import FloatArray, IntArray

if TYPE_CHECKING:
    import torch

    from modelshield.models.torch_classifier import TorchClassifier

__all__ = ["apgd", "deepfool", "fgsm", "pgd"]

Loss = Literal["ce", "dlr", "margin"]


# -- shared plumbing -----------------------------------------------------------------------------------------------


class _Setup:
    """Inputs as tensors, the valid range as tensors, and the model's logits function, for one attack call."""

    def __init__(
        self, classifier: TorchClassifier, x: FloatArray, y: IntArray, constraints: Constraints | None
    ) -> None:
        import torch

        from modelshield.models.torch_classifier import TorchClassifier

        if not isinstance(classifier, TorchClassifier):
            raise InvalidParameterError(
                f"White-box attacks need a TorchClassifier, not {type(classifier).__name__}.",
                remedy="Use a black-box attack (square_attack, hop_skip_jump) for other models.",
            )
        self.classifier = classifier
        self.x = classifier.validate_input(x)
        self.y = np.asarray(y)
        if self.y.shape != (len(self.x),) or not np.issubdtype(self.y.dtype, np.integer):
            raise InvalidInputError(f"Expected {len(self.x)} integer labels, got an array of shape {self.y.shape}.")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= classifier.n_classes):
            raise InvalidInputError(f"Labels must lie in 0..{classifier.n_classes - 1}.")
        self.y = self.y.astype(np.int64)
        self.constraints = constraints or Constraints.from_bounds(classifier.clip_values, classifier.input_shape)
        device = classifier.device
        self.device = device
        self.low = torch.as_tensor(self.constraints.low, device=device)
        self.high = torch.as_tensor(self.constraints.high, device=device)
        self.mutable = (
            None if self.constraints.mutable.all() else torch.as_tensor(self.constraints.mutable, device=device)
        )
        self.queries = 0

    def logits(self, xt: torch.Tensor) -> torch.Tensor:
        self.queries += len(xt)
        return self.classifier._scores(xt)

    def batches(self) -> range:
        return range(0, len(self.x), self.classifier.batch_size)

    def tensors(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        end = start + self.classifier.batch_size
        xt = torch.from_numpy(np.ascontiguousarray(self.x[start:end]).copy()).to(self.device)
        yt = torch.from_numpy(self.y[start:end]).to(self.device)
        return xt, yt

    def result(
        self,
        attack: str,
        x_adv: FloatArray,
        norm: Norm,
        eps: float | None,
        t0: float,
        predicted: tuple[IntArray, IntArray] | None = None,
    ) -> EvasionResult:
        """The result, with the model's answers on the returned arrays: ``predicted`` (clean, adversarial) when the
        attack measured them on exactly these arrays, else asked here."""
        final = x_adv
        if not self.constraints.trivial:
            final = self.constraints.project(x_adv, self.x, norm, eps)
            predicted = None  # the projection changed the examples: ask again
        self.classifier._count(self.queries)
        self.classifier.gradient_queries += self.queries
        return EvasionResult.measure(
            attack=attack,
            classifier=self.classifier,
            x=self.x,
            x_adv=final,
            y=self.y,
            norm=norm,
            eps=eps,
            queries=self.queries,
            seconds=time.perf_counter() - t0,
            clean_predicted=predicted[0] if predicted else None,
            adv_predicted=predicted[1] if predicted else None,
        )

    def predict(self, xt: torch.Tensor) -> IntArray:
        """The model's answers on a batch tensor (counted as queries)."""
        import torch

        with torch.inference_mode():
            return np.asarray(self.logits(xt).argmax(dim=1).cpu().numpy(), dtype=np.int64)


def _check(eps: float, steps: int | None = None, restarts: int | None = None) -> None:
    if not (eps > 0 and math.isfinite(eps)):
        raise InvalidParameterError(f"eps must be a positive number, not {eps}.")
    if steps is not None and steps < 1:
        raise InvalidParameterError(f"steps must be at least 1, not {steps}.")
    if restarts is not None and restarts < 1:
        raise InvalidParameterError(f"restarts must be at least 1, not {restarts}.")


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, shaped to broadcast against ``t``."""
    norms: torch.Tensor = t.flatten(1).norm(dim=1).clamp_min(1e-12)
    return norms.view(-1, *([1] * (t.ndim - 1)))


def _project(
    x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm, low: torch.Tensor, high: torch.Tensor
) -> torch.Tensor:
    """Onto the ε-ball around ``x`` and the box [low, high] (x is in the box, so the result stays in the ball)."""
    import torch

    if norm is Norm.LINF:
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
    else:
        delta = x_adv - x
        delta = delta * torch.clamp(eps / _flat_norm(delta), max=1.0)
        x_adv = x + delta
    return torch.minimum(torch.maximum(x_adv, low), high)


def _ascent(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The steepest-ascent direction of unit size for the norm: sign for L∞, the normalised gradient for L2."""
    return grad.sign() if norm is Norm.LINF else grad / _flat_norm(grad)


def _random_start(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator) -> torch.Tensor:
    import torch

    if norm is Norm.LINF:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        return x + eps * noise
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    radius = torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / x[0].numel())
    return x + eps * direction / _flat_norm(direction) * radius.view(-1, *([1] * (x.ndim - 1)))


def _loss_fn(kind: Loss) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-sample loss to maximise."""
    import torch

    def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits, y, reduction="none")

    def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Croce & Hein 2020: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3); scale-invariant, needs >= 3 classes.
        ordered, _ = logits.sort(dim=1)
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.clone()
        others.scatter_(1, y[:, None], -torch.inf)
        best_other = others.max(dim=1).values
        return -(true - best_other) / (ordered[:, -1] - ordered[:, -3] + 1e-12)

    def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Carlini & Wagner 2017: the best other logit minus the true one; its gradient does not vanish when the
        # probabilities saturate, unlike the cross-entropy's.
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.clone()
        others.scatter_(1, y[:, None], -torch.inf)
        return others.max(dim=1).values - true

    return {"ce": ce, "dlr": dlr, "margin": margin}[kind]


def _generator(device: torch.device, seed: int) -> torch.Generator:
    import torch

    return torch.Generator(device=device).manual_seed(seed)


def _mask(grad: torch.Tensor, mutable: torch.Tensor | None) -> torch.Tensor:
    return grad if mutable is None else grad * mutable


# -- FGSM and PGD ----------------------------------------------------------------------------------------------------


def fgsm(
    classifier: TorchClassifier,
    x: FloatArray,
    y: IntArray,
    *,
    eps: float,
    norm: Norm | str = Norm.LINF,
    constraints: Constraints | None = None,
) -> EvasionResult:
    """Fast gradient (sign) method: one step of size ``eps`` up the loss gradient."""
    norm = Norm.parse(norm)
    _check(eps)
    return _pgd(classifier, x, y, eps=eps, norm=norm, steps=1, step_size=eps, restarts=1, random_start=False,
                seed=0, constraints=constraints, name=f"fgsm({norm.value}, eps={eps:g})")  # fmt: skip


def pgd(
    classifier: TorchClassifier,
    x: FloatArray,
    y: IntArray,
    *,
    eps: float,
    norm: Norm | str = Norm.LINF,
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    seed: int = 0,
    constraints: Constraints | None = None,
    early_stop: bool = True,
    loss: Loss = "ce",
    keep_last: bool = False,
) -> EvasionResult:
    """Projected gradient descent (Madry et al.) on the cross-entropy (``loss="ce"``) or the CW margin loss
    (``"margin"``, for saturated outputs), with random starts and restarts.

    ``step_size`` defaults to ``2.5 * eps / steps`` (Madry et al.'s choice). A sample stops at its first success;
    ``keep_last=True`` runs every step and returns each sample's last point, for randomised models: the first point
    that fooled one draw lies on the decision boundary, where the next draw may answer otherwise.
    ``early_stop=False`` runs every step on every sample, as other libraries do (the result is the same: a sample
    keeps the first point that fooled the model). Restarts run only on the samples still unbroken.
    """
    norm = Norm.parse(norm)
    _check(eps, steps, restarts)
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    if not alpha > 0:
        raise InvalidParameterError(f"step_size must be positive, not {alpha}.")
    if loss not in ("ce", "margin", "dlr"):
        raise InvalidParameterError(f"loss must be 'ce', 'margin' or 'dlr', not {loss!r}.")
    tag = "" if loss == "ce" else f", loss={loss}"
    name = f"pgd({norm.value}, eps={eps:g}, steps={steps}, step={alpha:g}, restarts={restarts}{tag})"
    return _pgd(classifier, x, y, eps=eps, norm=norm, steps=steps, step_size=alpha, restarts=restarts,
                random_start=random_start, seed=seed, constraints=constraints, name=name,
                early_stop=early_stop and not keep_last, loss=loss, keep_last=keep_last)  # fmt: skip


def _pgd(  # noqa: PLR0915 - one loop with early stopping and restarts, kept together for speed
    classifier: TorchClassifier,
    x: FloatArray,
    y: IntArray,
    *,
    eps: float,
    norm: Norm,
    steps: int,
    step_size: float,
    restarts: int,
    random_start: bool,
    seed: int,
    constraints: Constraints | None,
    name: str,
    early_stop: bool = True,
    loss: Loss = "ce",
    keep_last: bool = False,
) -> EvasionResult:
    import torch

    t0 = time.perf_counter()
    setup = _Setup(classifier, x, y, constraints)
    loss_fn = _loss_fn(loss)
    generator = _generator(setup.device, seed)
    out = setup.x.copy()
    linf = norm is Norm.LINF
    shape = (-1, *([1] * len(setup.x.shape[1:])))
    clean_pred = np.empty(len(setup.x), np.int64)
    adv_pred = np.empty(len(setup.x), np.int64)
    for start in setup.batches():
        xb, yb = setup.tensors(start)
        clean_pred[start : start + len(xb)] = setup.predict(xb)
        best = xb.clone()
        alive = torch.arange(len(xb), device=setup.device)  # samples not fooled yet
        for restart in range(restarts):
            if len(alive) == 0:
                break
            last = restart == restarts - 1
            x0, y0 = xb[alive], yb[alive]
            # For L-inf the ball and the box intersect in a box: one clamp per step projects onto both.
            lo, hi = (torch.maximum(x0 - eps, setup.low), torch.minimum(x0 + eps, setup.high)) if linf else (x0, x0)
            x_adv = _random_start(x0, eps, norm, generator) if random_start else x0.clone()
            x_adv = torch.clamp(x_adv, lo, hi) if linf else _project(x_adv, x0, eps, norm, setup.low, setup.high)
            idx = alive.clone()
            done = torch.zeros(len(idx), dtype=torch.bool, device=setup.device)  # fooled (early_stop=False only)
            x_best = x0  # first fooling point per sample (early_stop=False only)
            for _ in range(steps):
                x_adv.requires_grad_(True)
                with torch.enable_grad():
                    logits = setup.logits(x_adv)
                    (grad,) = torch.autograd.grad(loss_fn(logits, y0).sum(), x_adv)
                with torch.no_grad():
                    x_adv = x_adv.detach()
                    newly = (logits.argmax(dim=1) != y0) & ~done
                    if early_stop:
                        if newly.any():  # the point just evaluated fools the model: keep it, stop there
                            best[idx[newly]] = x_adv[newly]
                            keep = ~newly
                            x_adv, x0, y0, idx, grad = x_adv[keep], x0[keep], y0[keep], idx[keep], grad[keep]
                            done, lo, hi = done[keep], lo[keep], hi[keep]
                            if len(idx) == 0:
                                break
                    else:  # no host sync: remember the first fooling point on the device
                        x_best = torch.where(newly.view(shape), x_adv, x_best)
                        done |= newly
                    step = x_adv + step_size * _ascent(_mask(grad, setup.mutable), norm)
                    x_adv = torch.clamp(step, lo, hi) if linf else _project(step, x0, eps, norm, setup.low, setup.high)
            with torch.no_grad():
                if last:  # return the final point of the rest; the re-check below tells whether it fools
                    best[idx] = x_adv if early_stop or keep_last else torch.where(done.view(shape), x_best, x_adv)
                    idx = idx[:0]
                else:
                    if keep_last:  # only the end point counts: judge it, not the first one that fooled
                        done[:] = False
                    elif not early_stop:
                        best[idx] = torch.where(done.view(shape), x_best, best[idx])
                    if len(idx):  # the last step's point has not been evaluated: check it before restarting
                        fooled = (setup.logits(x_adv).argmax(dim=1) != y0) & ~done
                        best[idx] = torch.where(fooled.view(shape), x_adv, best[idx])
                        idx = idx[~(fooled | done)]
            alive = idx
        out[start : start + len(xb)] = best.detach().cpu().numpy()
        adv_pred[start : start + len(xb)] = setup.predict(best)
    return setup.result(name, out, norm, eps, t0, (clean_pred, adv_pred))


# -- APGD ------------------------------------------------------------------------------------------------------------


def _checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step size (Croce & Hein 2020, section 3.2)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps) for q in p[1:] if q <= 1})


def apgd(  # noqa: PLR0915 - the algorithm's state is many small tensors, updated in one loop
    classifier: TorchClassifier,
    x: FloatArray,
    y: IntArray,
    *,
    eps: float,
    norm: Norm | str = Norm.LINF,
    loss: Loss = "ce",
    steps: int = 100,
    restarts: int = 1,
    seed: int = 0,
    constraints: Constraints | None = None,
    rho: float = 0.75,
    momentum: float = 0.75,
    keep_last: bool = False,
) -> EvasionResult:
    """Auto-PGD (Croce & Hein 2020): step size 2ε halved at checkpoints when progress stalls, momentum 0.75,
    restart from the best point after each halving. ``loss`` is ``"ce"`` (APGD-CE) or ``"dlr"`` (APGD-DLR).
    ``keep_last=True`` runs every step and returns each sample's highest-loss point instead of the first that
    fooled the model (for randomised models; see :func:`pgd`)."""
    import torch

    norm = Norm.parse(norm)
    _check(eps, steps, restarts)
    if loss not in ("ce", "dlr"):
        raise InvalidParameterError(f"loss must be 'ce' or 'dlr', not {loss!r}.")
    if loss == "dlr" and classifier.n_classes < 3:
        raise InvalidParameterError("The DLR loss needs at least 3 classes.", remedy="Use loss='ce'.")
    t0 = time.perf_counter()
    setup = _Setup(classifier, x, y, constraints)
    generator = _generator(setup.device, seed)
    loss_fn = _loss_fn(loss)
    checkpoints = set(_checkpoints(steps))
    out = setup.x.copy()

    def value_and_grad(xa: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xa = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = setup.logits(xa)
            values = loss_fn(logits, yb)
            (grad,) = torch.autograd.grad(values.sum(), xa)
        return values.detach(), _mask(grad.detach(), setup.mutable), logits.detach().argmax(dim=1) != yb

    for start in setup.batches():
        xb, yb = setup.tensors(start)
        adv = xb.clone()
        broken = torch.zeros(len(xb), dtype=torch.bool, device=setup.device)
        shape = (-1, *([1] * (xb.ndim - 1)))
        for _ in range(restarts):
            todo = (~broken).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            x0, y0 = xb[todo], yb[todo]
            x_cur = _project(_random_start(x0, eps, norm, generator), x0, eps, norm, setup.low, setup.high)
            f_cur, g_cur, fooled = value_and_grad(x_cur, y0)
            best_x, best_f, best_g = x_cur.clone(), f_cur.clone(), g_cur.clone()
            found = fooled.clone()
            found_x = torch.where(fooled.view(shape), x_cur, x0)
            eta = torch.full((len(x0),), 2.0 * eps, device=setup.device)
            x_prev = x_cur.clone()
            increases = torch.zeros(len(x0), device=setup.device)
            last_check, f_best_at_check = 0, best_f.clone()
            eta_at_check = eta.clone()
            for k in range(steps):
                with torch.no_grad():
                    z = _project(x_cur + eta.view(shape) * _ascent(g_cur, norm), x0, eps, norm, setup.low, setup.high)
                    a = momentum if k > 0 else 1.0
                    x_next = x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev)
                    x_next = _project(x_next, x0, eps, norm, setup.low, setup.high)
                f_next, g_next, fooled = value_and_grad(x_next, y0)
                with torch.no_grad():
                    newly = fooled & ~found
                    found_x = torch.where(newly.view(shape), x_next, found_x)
                    found |= fooled
                    increases += (f_next > f_cur).float()
                    better = f_next > best_f
                    best_x = torch.where(better.view(shape), x_next, best_x)
                    best_g = torch.where(better.view(shape), g_next, best_g)
                    best_f = torch.where(better, f_next, best_f)
                    x_prev, x_cur, f_cur, g_cur = x_cur, x_next, f_next, g_next
                    if k + 1 in checkpoints:
                        span = k + 1 - last_check
                        stalled = (increases < rho * span) | ((eta_at_check == eta) & (f_best_at_check == best_f))
                        eta = torch.where(stalled, eta / 2, eta)
                        # Restart the halved ones from their best point.
                        x_cur = torch.where(stalled.view(shape), best_x, x_cur)
                        g_cur = torch.where(stalled.view(shape), best_g, g_cur)
                        f_cur = torch.where(stalled, best_f, f_cur)
                        increases.zero_()
                        last_check, f_best_at_check, eta_at_check = k + 1, best_f.clone(), eta.clone()
                if bool(found.all()) and not keep_last:
                    break
            with torch.no_grad():
                adv[todo] = best_x if keep_last else torch.where(found.view(shape), found_x, adv[todo])
                broken[todo] |= found
        out[start : start + len(xb)] = adv.detach().cpu().numpy()
    name = f"apgd-{loss}({norm.value}, eps={eps:g}, steps={steps}, restarts={restarts})"
    return setup.result(name, out, norm, eps, t0)


# -- DeepFool --------------------------------------------------------------------------------------------------------


def deepfool(
    classifier: TorchClassifier,
    x: FloatArray,
    y: IntArray,
    *,
    steps: int = 50,
    overshoot: float = 0.02,
    constraints: Constraints | None = None,
) -> EvasionResult:
    """DeepFool (L2, minimal perturbation): step to the nearest linearised decision boundary until the label flips.

    The result has ``eps=None``; its ``distances`` are the minimal adversarial distances this attack found (an
    upper bound on the true minimum). Samples the model already gets wrong keep distance 0.
    """
    import torch

    if steps < 1 or overshoot < 0:
        raise InvalidParameterError("steps must be at least 1 and overshoot non-negative.")
    t0 = time.perf_counter()
    setup = _Setup(classifier, x, y, constraints)
    n_classes = classifier.n_classes
    out = setup.x.copy()
    for start in setup.batches():
        xb, yb = setup.tensors(start)
        x_adv = xb.clone()
        total = torch.zeros_like(xb)
        active = torch.arange(len(xb), device=setup.device)
        for _ in range(steps):
            if len(active) == 0:
                break
            xa = x_adv[active].detach().requires_grad_(True)
            ya = yb[active]
            with torch.enable_grad():
                logits = setup.logits(xa)
                grads = []
                for k in range(n_classes):
                    (g,) = torch.autograd.grad(logits[:, k].sum(), xa, retain_graph=k < n_classes - 1)
                    grads.append(_mask(g, setup.mutable))
            with torch.no_grad():
                still = logits.argmax(dim=1) == ya
                active, xa, ya, logits = active[still], xa[still], ya[still], logits[still]
                if len(active) == 0:
                    break
                jac = torch.stack([g[still] for g in grads], dim=1)  # (n, classes, *shape)
                w = jac - jac.gather(1, ya.view(-1, 1, *([1] * (jac.ndim - 2))).expand(-1, 1, *jac.shape[2:]))
                f = logits - logits.gather(1, ya[:, None])
                w_norm = w.flatten(2).norm(dim=2).clamp_min(1e-12)
                ratio = f.abs() / w_norm
                ratio.scatter_(1, ya[:, None], torch.inf)
                best = ratio.argmin(dim=1)
                w_best = w[torch.arange(len(best)), best]
                r = (ratio[torch.arange(len(best)), best] + 1e-4).view(-1, *([1] * (w_best.ndim - 1)))
                r = r * w_best / _flat_norm(w_best)
                total[active] += r
                x_adv[active] = torch.minimum(
                    torch.maximum(xb[active] + (1 + overshoot) * total[active], setup.low), setup.high
                )
        out[start : start + len(xb)] = x_adv.detach().cpu().numpy()
    return setup.result(f"deepfool(l2, steps={steps}, overshoot={overshoot:g})", out, Norm.L2, None, t0)
