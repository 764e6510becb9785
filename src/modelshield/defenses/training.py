"""Training-time defenses for PyTorch classifiers: PGD adversarial training, TRADES, defensive distillation,
ensembles.

    >>> from modelshield.defenses.training import adversarial_training
    >>> from modelshield.zoo import architecture, load_target
    >>> target = load_target("zoo:digits-cnn")  # doctest: +SKIP
    >>> factory = architecture("digits-cnn", (1, 8, 8), 10)  # doctest: +SKIP
    >>> trained = adversarial_training(factory, target.train, eps=0.1, seed=0)  # doctest: +SKIP
    >>> trained.classifier.accuracy(target.test.x, target.test.y)  # doctest: +SKIP

Each function takes a factory of the untrained network (called once per model; the parameters it returns are then
drawn again from a generator seeded with ``seed``, see :func:`~modelshield.models.nets.seeded_network`), the training
:class:`~modelshield.data.interface.Dataset` and keyword-only hyper-parameters, and returns a
:class:`TrainedModel`: the :class:`~modelshield.models.torch_classifier.TorchClassifier`, the wall-clock training
time, and the mean loss of each epoch. Training is batched (Adam or SGD, shuffled by a seeded generator, as the zoo
trains its targets) and deterministic under a seed on CPU. Adversarial examples are made in torch inside the
training loop, with the model in evaluation mode for the attack and in training mode for the update.

References: Madry et al. 2018 (PGD adversarial training); Zhang et al. 2019 (TRADES); Papernot et al. 2016
(defensive distillation) and Carlini & Wagner 2017 (why it does not help); Tramèr et al. 2018 (ensembles).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from modelshield.data.interface import Dataset
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Bounds
from modelshield.models.torch_classifier import TorchClassifier, resolve_device

__all__ = [
    "EnsembleModule",
    "TrainedModel",
    "adversarial_training",
    "defensive_distillation",
    "ensemble",
    "standard_training",
    "trades",
]

log = logging.getLogger(__name__)

Factory = Callable[[], nn.Module]
Optimizer = Literal["adam", "sgd"]
# loss(net, x, y, epoch, generator) -> scalar loss to minimise; the net is in train mode on entry and exit.
_BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, int, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class TrainedModel:
    """A trained classifier with how long it took and the mean training loss of each epoch."""

    classifier: TorchClassifier
    defense: str  # e.g. "adversarial-training(eps=0.1, steps=7, mix=1)"
    seconds: float
    epoch_losses: tuple[float, ...]

    @property
    def module(self) -> nn.Module:
        """The trained network (in evaluation mode)."""
        module: nn.Module = self.classifier.module
        return module


@dataclass(frozen=True)
class _Recipe:
    epochs: int
    batch_size: int
    lr: float
    optimizer: Optimizer
    weight_decay: float
    seed: int
    device: torch.device

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidParameterError(
                f"epochs and batch_size must be at least 1, not {self.epochs} and {self.batch_size}."
            )
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.weight_decay < 0:
            raise InvalidParameterError(
                f"lr must be positive and weight_decay non-negative, not {self.lr} and {self.weight_decay}."
            )
        if self.optimizer not in ("adam", "sgd"):
            raise InvalidParameterError(f"optimizer must be 'adam' or 'sgd', not {self.optimizer!r}.")


# -- shared plumbing -----------------------------------------------------------------------------------------------


def _bounds(train: Dataset, clip_values: Bounds | None) -> Bounds | None:
    if clip_values is not None:
        return clip_values
    bounds = train.schema.bounds()
    return Bounds(*bounds) if bounds is not None else None


def _range(bounds: Bounds | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    low = -math.inf if bounds is None else bounds.low
    high = math.inf if bounds is None else bounds.high
    return (
        torch.as_tensor(np.asarray(low, np.float32), device=device),
        torch.as_tensor(np.asarray(high, np.float32), device=device),
    )


def _new_network(factory: Factory, train: Dataset, seed: int, device: torch.device) -> nn.Module:
    """A fresh network from ``factory``, its parameters drawn from a generator seeded with ``seed``; standardising
    layers fitted to the training inputs."""
    from modelshield.models.nets import Standardize, seeded_network

    net = seeded_network(factory, seed)
    x = torch.from_numpy(np.array(train.x))
    for module in net.modules():
        if isinstance(module, Standardize):
            module.fit(x.reshape(len(x), -1))
    return net.to(device)


def _fit(net: nn.Module, train: Dataset, recipe: _Recipe, batch_loss: _BatchLoss) -> tuple[float, ...]:
    """Mini-batch training of ``net`` on ``train`` with ``batch_loss``; the mean loss of each epoch."""
    device = recipe.device
    x = torch.from_numpy(np.array(train.x)).to(device)
    y = torch.from_numpy(np.array(train.y)).to(device)
    params = net.parameters()
    optimiser: torch.optim.Optimizer
    if recipe.optimizer == "adam":
        optimiser = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        optimiser = torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    order_gen = torch.Generator().manual_seed(recipe.seed)
    noise_gen = torch.Generator(device=device).manual_seed(recipe.seed + 1)
    losses: list[float] = []
    net.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(x), generator=order_gen).to(device)
        total = 0.0
        for start in range(0, len(x), recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            loss = batch_loss(net, x[idx], y[idx], epoch, noise_gen)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / max(len(x), 1))
        log.debug("epoch %d: loss %.4f", epoch + 1, losses[-1])
    net.eval()
    return tuple(losses)


def _classifier(net: nn.Module, train: Dataset, bounds: Bounds | None, device: torch.device) -> TorchClassifier:
    return TorchClassifier(
        net, n_classes=train.n_classes, input_shape=train.schema.input_shape, clip_values=bounds, device=device
    )


def _cross_entropy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int, gen: torch.Generator) -> torch.Tensor:
    return nn.functional.cross_entropy(net(x), y)


def _pgd_linf(
    net: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    eps: float,
    steps: int,
    step_size: float,
    low: torch.Tensor,
    high: torch.Tensor,
    start: torch.Tensor,
) -> torch.Tensor:
    """L∞ PGD on tensors: ``steps`` signed-gradient steps up ``loss_fn(logits)`` from ``start``, projected onto the
    ε-ball around ``x`` and the valid range. The network is put in evaluation mode for the attack and restored."""
    was_training = net.training
    net.eval()
    x_adv = torch.minimum(torch.maximum(start, x - eps), x + eps).clamp(low, high).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_fn(net(x_adv)), x_adv)
        with torch.no_grad():
            x_adv = x_adv + step_size * grad.sign()
            x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
            x_adv = torch.minimum(torch.maximum(x_adv, low), high)
    net.train(was_training)
    return x_adv.detach()


def _check_attack(eps: float, steps: int, step_size: float | None) -> float:
    if not (eps > 0 and math.isfinite(eps)):
        raise InvalidParameterError(f"eps must be a positive number, not {eps}.")
    if steps < 1:
        raise InvalidParameterError(f"steps must be at least 1, not {steps}.")
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    if not alpha > 0:
        raise InvalidParameterError(f"step_size must be positive, not {alpha}.")
    return alpha


def _warm(eps: float, epoch: int, warmup_epochs: int) -> float:
    """ε ramped linearly over the first ``warmup_epochs`` epochs (full from then on)."""
    return eps if warmup_epochs <= 0 else eps * min(1.0, (epoch + 1) / warmup_epochs)


# -- defenses ----------------------------------------------------------------------------------------------------


def standard_training(
    factory: Factory,
    train: Dataset,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    optimizer: Optimizer = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    clip_values: Bounds | None = None,
    device: str | torch.device | None = "cpu",
) -> TrainedModel:
    """Plain cross-entropy training: the undefended baseline, trained exactly as the defenses are."""
    recipe = _Recipe(epochs, batch_size, lr, optimizer, weight_decay, seed, resolve_device(device))
    t0 = time.perf_counter()
    net = _new_network(factory, train, seed, recipe.device)
    losses = _fit(net, train, recipe, _cross_entropy)
    bounds = _bounds(train, clip_values)
    return TrainedModel(_classifier(net, train, bounds, recipe.device), "standard", time.perf_counter() - t0, losses)


def adversarial_training(
    factory: Factory,
    train: Dataset,
    *,
    eps: float,
    steps: int = 7,
    step_size: float | None = None,
    mix: float = 1.0,
    warmup_epochs: int = 0,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    optimizer: Optimizer = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    clip_values: Bounds | None = None,
    device: str | torch.device | None = "cpu",
) -> TrainedModel:
    """PGD adversarial training (Madry et al. 2018), L∞.

    Each batch's loss is ``mix * CE(x_adv) + (1 - mix) * CE(x)``: ``mix=1`` trains on adversarial examples only
    (Madry et al.), ``mix=0.5`` on a 50/50 mixture (Goodfellow et al. 2015). ``x_adv`` is PGD-``steps`` from a
    uniform random start in the ε-ball, step ``2.5 * eps / steps`` by default, inside the valid range
    (``clip_values``, by default the training schema's bounds). ``warmup_epochs`` ramps ε linearly from
    ``eps / warmup_epochs`` to ``eps`` over the first epochs.
    """
    alpha = _check_attack(eps, steps, step_size)
    if not 0.0 <= mix <= 1.0:
        raise InvalidParameterError(f"mix must lie in [0, 1], not {mix}.")
    recipe = _Recipe(epochs, batch_size, lr, optimizer, weight_decay, seed, resolve_device(device))
    bounds = _bounds(train, clip_values)
    low, high = _range(bounds, recipe.device)

    def batch_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int, gen: torch.Generator) -> torch.Tensor:
        e = _warm(eps, epoch, warmup_epochs)
        noise = (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * e
        x_adv = _pgd_linf(
            net,
            x,
            lambda logits: nn.functional.cross_entropy(logits, y, reduction="sum"),
            eps=e,
            steps=steps,
            step_size=alpha * e / eps,
            low=low,
            high=high,
            start=x + noise,
        )
        if mix >= 1.0:
            return nn.functional.cross_entropy(net(x_adv), y)
        adv_loss = nn.functional.cross_entropy(net(x_adv), y)
        return mix * adv_loss + (1 - mix) * nn.functional.cross_entropy(net(x), y)

    t0 = time.perf_counter()
    net = _new_network(factory, train, seed, recipe.device)
    losses = _fit(net, train, recipe, batch_loss)
    name = f"adversarial-training(linf, eps={eps:g}, steps={steps}, mix={mix:g})"
    return TrainedModel(_classifier(net, train, bounds, recipe.device), name, time.perf_counter() - t0, losses)


def trades(
    factory: Factory,
    train: Dataset,
    *,
    eps: float,
    beta: float = 6.0,
    steps: int = 7,
    step_size: float | None = None,
    warmup_epochs: int = 0,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    optimizer: Optimizer = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    clip_values: Bounds | None = None,
    device: str | torch.device | None = "cpu",
) -> TrainedModel:
    """TRADES (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(f(x) || f(x_adv))``, L∞.

    ``x_adv`` maximises the KL divergence from the clean prediction by PGD-``steps`` (step ``2.5 * eps / steps``
    by default) from ``x + 0.001 * N(0, 1)``, as in the authors' code. ``beta`` trades clean accuracy (small)
    for robustness (large); 6 is the paper's choice for CIFAR-10.
    """
    alpha = _check_attack(eps, steps, step_size)
    if not (beta >= 0 and math.isfinite(beta)):
        raise InvalidParameterError(f"beta must be a non-negative number, not {beta}.")
    recipe = _Recipe(epochs, batch_size, lr, optimizer, weight_decay, seed, resolve_device(device))
    bounds = _bounds(train, clip_values)
    low, high = _range(bounds, recipe.device)

    def batch_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int, gen: torch.Generator) -> torch.Tensor:
        e = _warm(eps, epoch, warmup_epochs)
        net.eval()
        with torch.no_grad():
            clean_p = torch.softmax(net(x), dim=1)
        net.train()

        def kl(logits: torch.Tensor) -> torch.Tensor:
            return nn.functional.kl_div(torch.log_softmax(logits, dim=1), clean_p, reduction="sum")

        noise = 0.001 * torch.randn(x.shape, generator=gen, device=x.device)
        x_adv = _pgd_linf(
            net, x, kl, eps=e, steps=steps, step_size=alpha * e / eps, low=low, high=high, start=x + noise
        )
        logits = net(x)
        robust = nn.functional.kl_div(
            torch.log_softmax(net(x_adv), dim=1), torch.softmax(logits, dim=1), reduction="batchmean"
        )
        return nn.functional.cross_entropy(logits, y) + beta * robust

    t0 = time.perf_counter()
    net = _new_network(factory, train, seed, recipe.device)
    losses = _fit(net, train, recipe, batch_loss)
    name = f"trades(linf, eps={eps:g}, beta={beta:g}, steps={steps})"
    return TrainedModel(_classifier(net, train, bounds, recipe.device), name, time.perf_counter() - t0, losses)


def defensive_distillation(
    factory: Factory,
    train: Dataset,
    *,
    temperature: float = 20.0,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    optimizer: Optimizer = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    clip_values: Bounds | None = None,
    device: str | torch.device | None = "cpu",
) -> TrainedModel:
    """Defensive distillation (Papernot et al. 2016): a teacher trained with its logits divided by ``temperature``,
    then a student of the same architecture trained on the teacher's soft labels at the same temperature, and
    deployed at temperature 1 (its raw logits).

    This is **not** a defense against a competent attacker: the deployed logits are about ``temperature`` times
    larger, so the softmax saturates and cross-entropy gradients vanish numerically. Gradient attacks then stall
    while the decision boundaries have barely moved; Carlini & Wagner 2017 break it with a margin loss on the
    logits. It is here to demonstrate exactly that: modelshield's
    :func:`~modelshield.attacks.evasion.evaluation.evaluate_robustness` attacks with the scale-invariant DLR loss
    as well, and its reliability checks (the unbounded attack, FGSM against PGD) flag gradient masking.
    ``seconds`` covers both the teacher and the student.
    """
    if not (temperature >= 1 and math.isfinite(temperature)):
        raise InvalidParameterError(f"temperature must be a number of at least 1, not {temperature}.")
    recipe = _Recipe(epochs, batch_size, lr, optimizer, weight_decay, seed, resolve_device(device))
    t = float(temperature)

    def teacher_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, _e: int, _g: torch.Generator) -> torch.Tensor:
        return nn.functional.cross_entropy(net(x) / t, y)

    t0 = time.perf_counter()
    teacher = _new_network(factory, train, seed, recipe.device)
    _fit(teacher, train, recipe, teacher_loss)

    def student_loss(net: nn.Module, x: torch.Tensor, _y: torch.Tensor, _e: int, _g: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            soft = torch.softmax(teacher(x) / t, dim=1)
        return nn.functional.cross_entropy(net(x) / t, soft)

    student = _new_network(factory, train, seed + 1, recipe.device)
    losses = _fit(student, train, recipe, student_loss)
    bounds = _bounds(train, clip_values)
    name = f"defensive-distillation(T={t:g})"
    return TrainedModel(_classifier(student, train, bounds, recipe.device), name, time.perf_counter() - t0, losses)


class EnsembleModule(nn.Module):
    """The average of several networks: of their probabilities (returned as log-probabilities, so the softmax of
    the output is the mean probability) or of their logits. Differentiable, so the ensemble stays white-box."""

    def __init__(self, members: Sequence[nn.Module], *, combine: Literal["probabilities", "logits"] = "probabilities"):
        super().__init__()
        if len(members) < 1:
            raise InvalidParameterError("An ensemble needs at least one member.")
        if combine not in ("probabilities", "logits"):
            raise InvalidParameterError(f"combine must be 'probabilities' or 'logits', not {combine!r}.")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([m(x) for m in self.members])  # (members, batch, classes)
        if self.combine == "logits":
            return outputs.mean(dim=0)
        # log(mean softmax), computed stably: logsumexp of log-softmaxes minus log(K)
        return torch.logsumexp(torch.log_softmax(outputs, dim=2), dim=0) - math.log(len(self.members))


def ensemble(
    factory: Factory,
    train: Dataset,
    *,
    members: int = 5,
    combine: Literal["probabilities", "logits"] = "probabilities",
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    optimizer: Optimizer = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    clip_values: Bounds | None = None,
    device: str | torch.device | None = "cpu",
) -> TrainedModel:
    """``members`` networks trained independently with seeds ``seed, seed + 1, ...`` and averaged by an
    :class:`EnsembleModule`. Ensembling smooths the decision function a little; against white-box attacks on the
    whole ensemble it is a weak defense on its own (He et al. 2017), so evaluate it like any other model."""
    if members < 1:
        raise InvalidParameterError(f"members must be at least 1, not {members}.")
    device_ = resolve_device(device)
    t0 = time.perf_counter()
    nets: list[nn.Module] = []
    losses: list[tuple[float, ...]] = []
    for k in range(members):
        recipe = _Recipe(epochs, batch_size, lr, optimizer, weight_decay, seed + k, device_)
        net = _new_network(factory, train, seed + k, device_)
        losses.append(_fit(net, train, recipe, _cross_entropy))
        nets.append(net)
    module = EnsembleModule(nets, combine=combine).eval()
    mean_losses = tuple(float(np.mean(col)) for col in zip(*losses, strict=True))
    bounds = _bounds(train, clip_values)
    name = f"ensemble(members={members}, combine={combine})"
    return TrainedModel(_classifier(module, train, bounds, device_), name, time.perf_counter() - t0, mean_losses)
