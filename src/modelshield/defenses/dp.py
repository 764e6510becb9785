"""Differentially private training (DP-SGD, Abadi et al. 2016) of PyTorch classifiers through Opacus.

    >>> from modelshield.defenses.dp import dp_sgd_training
    >>> from modelshield.zoo import architecture, load_target
    >>> target = load_target("zoo:digits-cnn")  # doctest: +SKIP
    >>> factory = architecture("digits-cnn", (1, 8, 8), 10)  # doctest: +SKIP
    >>> trained = dp_sgd_training(factory, target.train, epsilon=8.0, delta=1e-5, seed=0)  # doctest: +SKIP
    >>> trained.epsilon <= 8.0, trained.classifier.accuracy(target.test.x, target.test.y)  # doctest: +SKIP

Each step clips every example's gradient to L2 norm ``max_grad_norm``, sums them, adds Gaussian noise of standard
deviation ``noise_multiplier * max_grad_norm`` and takes an optimiser step; batches are drawn by Poisson sampling
(every record independently with probability ``sample_rate = 1 / ceil(n / batch_size)``), as the privacy analysis
assumes. Opacus' ``PrivacyEngine.make_private_with_epsilon`` chooses the smallest noise multiplier whose privacy
loss after ``epochs`` epochs, as its accountant computes it, is at most the target ``epsilon`` at ``delta``; the
result reports the ε the accountant gives for the steps actually taken (``epsilon``, at most the target).
``accountant="prv"`` (the default, Opacus' own default) is the numerical privacy-loss-distribution accountant of
Gopi et al. 2021 and reports its *upper* bound on ε; ``"rdp"`` is the Rényi-DP accountant (Mironov 2017), looser.
The guarantee is record-level, add/remove adjacency, for the training records only.

What the guarantee does *not* cover, and what this module does about it:

- **Standardising layers.** The zoo's tabular networks start with a
  :class:`~modelshield.models.nets.Standardize` layer whose mean and standard deviation the non-private trainers fit on
  the training records: that would publish per-feature statistics of the private data outside the DP accounting.
  Here they are never fitted on the private records. ``standardize="bounds"`` (default) centres and scales each
  feature by the *declared* valid range (``clip_values``, else the training schema's bounds) —
  ``mean = (low + high) / 2``, ``std = (high - low) / 2`` — which is public knowledge only if the range was fixed
  without looking at the private records (the bundled breast-cancer schema takes min/max over the whole data set:
  fine for a demonstration, not for production: pass ``clip_values`` from domain knowledge). A
  :class:`~modelshield.data.interface.Dataset` fits them on that *public* data instead; ``"none"`` leaves the layer
  as the identity.
- **Layers DP-SGD cannot train.** Opacus' ``ModuleValidator`` checks the network first; what it can fix it fixes
  (BatchNorm -> GroupNorm, LSTM -> DPLSTM, ...) and the result lists the fixes in ``fixes``; anything else raises
  :class:`~modelshield.errors.InvalidParameterError`. BatchNorm mixes examples of a batch, which breaks
  per-example clipping.
- **Hyper-parameter search** on the private data spends privacy too (Papernot & Steinke 2022); it is not
  accounted for. Nor is the noise cryptographically secure: it comes from torch's seeded PRNG (Opacus'
  ``secure_mode`` is off), which is right for reproducible experiments, not against an adversary able to exploit
  floating-point noise (Mironov 2012).

Check a claimed ε empirically with :func:`modelshield.attacks.dp_audit.one_run_audit`.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from modelshield._extras import require
from modelshield.data.interface import Dataset
from modelshield.defenses.training import Factory, Optimizer, TrainedModel, _bounds, _classifier, _Recipe
from modelshield.errors import InvalidParameterError
from modelshield.models.interface import Bounds
from modelshield.models.nets import seeded_network
from modelshield.models.torch_classifier import resolve_device

__all__ = ["DPTrainedModel", "DPTrainer", "dp_sgd_training"]

log = logging.getLogger(__name__)

Accountant = Literal["prv", "rdp"]
Standardization = Literal["bounds", "none"]

# Warnings that this module silences, each only around the call that raises it:
# - Opacus' PrivacyEngine warns when secure_mode is off. That is a documented choice of this module (seeded,
#   reproducible noise), stated in the module docstring and recorded in every result (``secure_rng=False``).
_SECURE_RNG_WARNING = r"Secure RNG turned off"
# - torch warns that a full backward hook fires although no input requires gradients. Opacus hooks every trainable
#   layer; the first one's input is the data, which never requires a gradient. Per-example gradients are computed
#   from the layer's activations and output gradients, so nothing is lost.
_BACKWARD_HOOK_WARNING = r"Full backward hook is firing when gradients are computed with respect to module outputs"
# - The RDP accountant warns when the best Rényi order is the largest it tries: the ε it returns is still a valid
#   upper bound, only a looser one (and make_private_with_epsilon then adds more noise than needed).
_RDP_ORDER_WARNING = r"Optimal order is the (largest|smallest) alpha"


@dataclass(frozen=True)
class DPTrainedModel(TrainedModel):
    """A classifier trained with DP-SGD, with its privacy parameters.

    ``epsilon`` is the privacy loss spent, as Opacus' ``accountant`` (``"prv"`` or ``"rdp"``) reports it for the
    steps taken, at ``delta``; it is at most ``target_epsilon``. ``sample_rate`` is the Poisson sampling rate,
    ``steps`` the optimiser steps taken, ``fixes`` what Opacus' ``ModuleValidator`` changed in the network, and
    ``standardization`` where the statistics of standardising layers came from.
    """

    target_epsilon: float
    epsilon: float
    delta: float
    accountant: str
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    fixes: tuple[str, ...]
    standardization: str
    secure_rng: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The privacy parameters and training figures, JSON-serialisable."""
        return {
            "defense": self.defense,
            "target_epsilon": self.target_epsilon,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "accountant": self.accountant,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "fixes": list(self.fixes),
            "standardization": self.standardization,
            "secure_rng": self.secure_rng,
            "seconds": self.seconds,
            "epoch_losses": list(self.epoch_losses),
        }


def _check_privacy(epsilon: float, delta: float, n: int, max_grad_norm: float, accountant: str) -> None:
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise InvalidParameterError(
            f"epsilon must be a positive finite number, not {epsilon}.",
            remedy="Choose the privacy budget to spend, e.g. epsilon=1, 4 or 8 (smaller is more private).",
        )
    if n < 1:
        raise InvalidParameterError("DP-SGD needs at least one training record.")
    if not 0 < delta < 1:
        raise InvalidParameterError(
            f"delta must lie strictly between 0 and 1, not {delta}.", remedy=f"Use delta <= {1 / (10 * n):.2g}."
        )
    if delta >= 1 / n:
        raise InvalidParameterError(
            f"delta={delta:g} is at least 1/n = 1/{n}: a mechanism that publishes one training record at random "
            "would satisfy such a guarantee.",
            remedy=f"Use delta well below 1/n, e.g. {1 / (10 * n):.2g} (1/(10 n)) or smaller.",
        )
    if not (max_grad_norm > 0 and math.isfinite(max_grad_norm)):
        raise InvalidParameterError(
            f"max_grad_norm must be a positive finite number, not {max_grad_norm}.",
            remedy="Use a clipping norm around the typical per-example gradient norm, e.g. 1.0.",
        )
    if accountant not in ("prv", "rdp"):
        raise InvalidParameterError(f"accountant must be 'prv' or 'rdp', not {accountant!r}.")


def _standardize(net: nn.Module, standardize: Standardization | Dataset, bounds: Bounds | None, train: Dataset) -> str:
    """Set the statistics of ``net``'s Standardize layers from public information; describe the source."""
    from modelshield.models.nets import Standardize

    layers = [m for m in net.modules() if isinstance(m, Standardize)]
    if isinstance(standardize, Dataset):
        if standardize.schema.input_shape != train.schema.input_shape:
            raise InvalidParameterError(
                f"The public standardisation data has inputs of shape {standardize.schema.input_shape}, the "
                f"training data {train.schema.input_shape}."
            )
        if standardize.digest == train.digest:
            log.warning("The public standardisation data is the private training set: its statistics are not DP.")
        x = torch.from_numpy(np.array(standardize.x))
        for layer in layers:
            layer.fit(x.reshape(len(x), -1))
        return f"public-data({standardize.name}, n={len(standardize)})"
    if standardize == "none":
        return "none"
    if standardize != "bounds":
        raise InvalidParameterError(f"standardize must be 'bounds', 'none' or a public Dataset, not {standardize!r}.")
    if not layers:
        return "none (no standardising layer)"
    if bounds is None:
        raise InvalidParameterError(
            "The network standardises its inputs but no valid input range is known to standardise by.",
            remedy="Pass clip_values, or standardize=<public Dataset>, or standardize='none'.",
        )
    for layer in layers:
        size = layer.mean.shape
        low = torch.as_tensor(np.broadcast_to(np.asarray(bounds.low, np.float32), train.schema.input_shape).copy())
        high = torch.as_tensor(np.broadcast_to(np.asarray(bounds.high, np.float32), train.schema.input_shape).copy())
        layer.mean.copy_(((low + high) / 2).reshape(size))
        layer.std.copy_(((high - low) / 2).reshape(size).clamp_min(1e-6))
    return "bounds"


def _validated(net: nn.Module, validators: Any) -> tuple[nn.Module, tuple[str, ...]]:
    """``net`` made trainable by DP-SGD with Opacus' ModuleValidator, and a description of each fix."""
    module_validator = validators.ModuleValidator
    problems = module_validator.validate(net, strict=False)
    if not problems:
        return net, ()
    fixed: nn.Module = module_validator.fix(net)
    remaining = module_validator.validate(fixed, strict=False)
    if remaining:
        raise InvalidParameterError(
            "The network has layers DP-SGD cannot train and Opacus cannot replace: "
            + "; ".join(str(p) for p in remaining),
            remedy="Replace them (e.g. BatchNorm by GroupNorm, no in-place shared state across examples).",
        )
    before = {name: type(m).__name__ for name, m in net.named_modules()}
    fixes = tuple(
        f"{name}: {before[name]} -> {type(m).__name__}"
        for name, m in fixed.named_modules()
        if name in before and before[name] != type(m).__name__ and name
    )
    log.info("Opacus ModuleValidator fixed the network: %s", "; ".join(fixes))
    return fixed, fixes or tuple(str(p) for p in problems)


def _dp_epochs(
    net: nn.Module, optimiser: Any, loader: Any, epochs: int, device: torch.device
) -> tuple[list[float], int]:
    """Run ``epochs`` passes of Opacus' Poisson loader; the mean loss of each epoch and the steps taken."""
    losses: list[float] = []
    steps = 0
    net.train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_BACKWARD_HOOK_WARNING, category=UserWarning)
        for epoch in range(epochs):
            total, seen = 0.0, 0
            for xb, yb in loader:
                xb_, yb_ = xb.to(device), yb.to(device)
                optimiser.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(net(xb_), yb_)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                steps += 1
                if len(yb_):
                    total += float(loss.detach()) * len(yb_)
                    seen += len(yb_)
            losses.append(total / max(seen, 1))
            log.debug("DP-SGD epoch %d: loss %.4f", epoch + 1, losses[-1])
    return losses, steps


def dp_sgd_training(
    factory: Factory,
    train: Dataset,
    *,
    epsilon: float,
    delta: float,
    max_grad_norm: float = 1.0,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 2e-3,
    optimizer: Optimizer = "adam",
    weight_decay: float = 0.0,
    accountant: Accountant = "prv",
    standardize: Standardization | Dataset = "bounds",
    seed: int = 0,
    clip_values: Bounds | None = None,
    device: str | torch.device | None = "cpu",
) -> DPTrainedModel:
    """DP-SGD training of a fresh network from ``factory`` on ``train`` to the privacy budget (``epsilon``,
    ``delta``), through Opacus' ``make_private_with_epsilon`` with Poisson sampling.

    ``batch_size`` is the *expected* batch size (sampling rate ``1 / ceil(n / batch_size)``); ``optimizer``,
    ``lr`` and ``weight_decay`` configure the optimiser that receives the clipped, noised gradients (Adam by
    default: DP-Adam); ``accountant`` is ``"prv"`` (default) or ``"rdp"``. ``delta`` must be below ``1 / n``.
    Standardising layers are set from public information only (see the module docstring). Deterministic on CPU
    under ``seed``: the network's initialisation, the Poisson batches and the noise each come from a generator of
    their own, seeded from ``seed`` (torch's global generator is neither seeded nor used). Raises
    :class:`~modelshield.errors.MissingExtraError` naming ``pip install 'modelshield[dp]'`` without Opacus.
    """
    _check_privacy(epsilon, delta, len(train), max_grad_norm, accountant)
    recipe = _Recipe(epochs, batch_size, lr, optimizer, weight_decay, seed, resolve_device(device))
    opacus = require("opacus", extra="dp", feature="DP-SGD training")
    validators = require("opacus.validators", extra="dp", feature="DP-SGD training")
    bounds = _bounds(train, clip_values)

    t0 = time.perf_counter()
    net = seeded_network(factory, seed)
    standardization = _standardize(net, standardize, bounds, train)
    net, fixes = _validated(net, validators)
    net = net.to(recipe.device)

    x = torch.from_numpy(np.array(train.x))
    y = torch.from_numpy(np.array(train.y))
    # Opacus' Poisson sampler takes this loader's generator (it would take torch's global one without it, and a
    # secure one in secure_mode): the batches are drawn from ``seed + 2`` and from nothing that other threads touch.
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed + 2),
    )
    params = net.parameters()
    base: torch.optim.Optimizer
    if optimizer == "adam":
        base = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        base = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SECURE_RNG_WARNING, category=UserWarning)
        warnings.filterwarnings("ignore", message=_RDP_ORDER_WARNING, category=UserWarning)
        engine = opacus.PrivacyEngine(accountant=accountant, secure_mode=False)
        private_net, dp_optimiser, dp_loader = engine.make_private_with_epsilon(
            module=net,
            optimizer=base,
            data_loader=loader,
            target_epsilon=float(epsilon),
            target_delta=float(delta),
            epochs=epochs,
            max_grad_norm=float(max_grad_norm),
            poisson_sampling=True,
            noise_generator=torch.Generator(device=recipe.device).manual_seed(seed + 1),
        )
    sample_rate = 1.0 / len(loader)

    losses, steps = _dp_epochs(private_net, dp_optimiser, dp_loader, epochs, recipe.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_RDP_ORDER_WARNING, category=UserWarning)
        spent = float(engine.get_epsilon(delta))
    noise_multiplier = float(dp_optimiser.noise_multiplier)
    private_net._close()  # removes Opacus' hooks and per-sample gradient attributes from the network
    trained: nn.Module = private_net._module
    trained.eval()
    seconds = time.perf_counter() - t0
    name = f"dp-sgd(epsilon={epsilon:g}, delta={delta:g}, max_grad_norm={max_grad_norm:g}, accountant={accountant})"
    log.info(
        "DP-SGD: noise multiplier %.3f, sample rate %.4f, %d steps, epsilon spent %.3f",
        noise_multiplier,
        sample_rate,
        steps,
        spent,
    )
    return DPTrainedModel(
        classifier=_classifier(trained, train, bounds, recipe.device),
        defense=name,
        seconds=seconds,
        epoch_losses=tuple(losses),
        target_epsilon=float(epsilon),
        epsilon=spent,
        delta=float(delta),
        accountant=accountant,
        noise_multiplier=noise_multiplier,
        max_grad_norm=float(max_grad_norm),
        sample_rate=sample_rate,
        steps=steps,
        fixes=fixes,
        standardization=standardization,
    )


@dataclass(frozen=True)
class DPTrainer:
    """A :class:`~modelshield.models.retrain.Trainer` that trains each model with :func:`dp_sgd_training`, so that
    membership attacks against a DP model get reference models trained the same (private) way.

    ``template`` supplies the schema and label names of the records; ``delta`` must be below one over the size of
    every training subset.
    """

    factory: Factory
    template: Dataset
    epsilon: float
    delta: float
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    max_grad_norm: float = 1.0
    accountant: Accountant = "rdp"

    def spec(self) -> Mapping[str, Any]:
        return {
            "kind": "dp-sgd",
            "epsilon": self.epsilon,
            "delta": self.delta,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "max_grad_norm": self.max_grad_norm,
            "accountant": self.accountant,
            "torch": torch.__version__,
        }

    def fit_log_proba(
        self, x: NDArray[np.floating], y: NDArray[np.integer], masks: NDArray[np.bool_], *, n_classes: int, seed: int
    ) -> NDArray[np.float32]:
        from modelshield.attacks.membership import target_log_proba

        out = np.empty((len(masks), len(x), n_classes), np.float32)
        for m, mask in enumerate(masks):
            subset = Dataset(
                x=np.asarray(x[mask], np.float32),
                y=np.asarray(y[mask], np.int64),
                schema=self.template.schema,
                label_names=self.template.label_names,
                name=f"{self.template.name}[reference {m}]",
            )
            trained = dp_sgd_training(
                self.factory,
                subset,
                epsilon=self.epsilon,
                delta=self.delta,
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                max_grad_norm=self.max_grad_norm,
                accountant=self.accountant,
                seed=seed + m,
            )
            out[m] = target_log_proba(trained.classifier, np.asarray(x, np.float32))
        return out
