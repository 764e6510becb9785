"""Recipes that train more models like a given one, on other subsets of the data: the reference (shadow) models of
membership inference and the repeated runs of privacy audits.

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from modelshield.models.retrain import SklearnTrainer
    >>> x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> masks = np.zeros((2, 40), bool); masks[0, :20] = True; masks[1, 20:] = True
    >>> SklearnTrainer(LogisticRegression()).fit_log_proba(x, y, masks, n_classes=2, seed=0).shape
    (2, 40, 2)

A :class:`Trainer` takes a pool of records and a boolean mask per model (``masks[m, i]``: record ``i`` trains
model ``m``), trains one model per mask and returns every model's log-probabilities on every pool record
(logarithms keep the precision membership signals need: 1 - 1e-9 is 1.0 in float32, its log-complement is not).

:class:`TorchTrainer` trains all the models *at once*: their parameters are stacked along a leading axis and one
vectorised forward pass (``torch.func.vmap`` over ``functional_call``) serves every model. The loss is the sum of
the models' own mean losses, so each model's gradient is exactly its own, and Adam (or SGD), being element-wise,
updates each model exactly as if it trained alone. Small networks spend most of their time in per-call overhead,
which this removes: tens of models train in about the time of a few. :class:`SklearnTrainer` clones the
estimator and fits the clones in parallel processes.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["SklearnTrainer", "TorchTrainer", "Trainer"]

log = logging.getLogger(__name__)


@runtime_checkable
class Trainer(Protocol):
    """Trains one model per mask on the masked records of a pool; returns log-probabilities ``(models, records, k)``."""

    def fit_log_proba(
        self, x: NDArray[np.floating], y: NDArray[np.integer], masks: NDArray[np.bool_], *, n_classes: int, seed: int
    ) -> NDArray[np.float32]: ...

    def spec(self) -> Mapping[str, Any]:
        """What determines the models (architecture, hyper-parameters, versions), for cache keys and reports."""
        ...


def _check(x: NDArray[Any], y: NDArray[Any], masks: NDArray[np.bool_], n_classes: int) -> None:
    if masks.ndim != 2 or masks.shape[1] != len(x) or masks.dtype != np.bool_:
        raise InvalidInputError(
            f"masks must be a boolean array of shape (models, {len(x)}), not {masks.dtype} {masks.shape}."
        )
    if len(y) != len(x):
        raise InvalidInputError(f"{len(x)} records but {len(y)} labels.")
    sizes = masks.sum(axis=1)
    if (sizes == 0).any():
        raise InvalidInputError("Every model needs at least one training record; a mask selects none.")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise InvalidInputError(f"Labels must lie in [0, {n_classes}); found {y.min()}..{y.max()}.")


@dataclass(frozen=True)
class TorchTrainer:
    """Trains copies of a PyTorch network from ``factory`` with one recipe, all models in one vectorised loop.

    ``factory`` must build the same architecture on every call; each model's parameters are then drawn from its own
    generator, seeded with ``seed + m`` (:func:`~modelshield.models.nets.seeded_network`), never from torch's global
    one, so trainers in concurrent threads do not disturb each other. Networks containing a
    :class:`~modelshield.models.nets.Standardize` layer have it fitted to each model's own training records. Every
    model must train on the same number of records (the masks' row sums), so that the batches line up.

    The trainer leaves torch's intra-op thread count alone (it is one setting for the whole process). Its small,
    vectorised models gain little from intra-op threads and lose a lot to them when the cores are busy: an
    application that trains them should set the count once at start-up (``modelshield --threads``, by default 1).
    """

    factory: Callable[[], nn.Module]
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    optimizer: Literal["adam", "sgd"] = "adam"
    name: str = "network"
    chunk: int = 64  # at most this many models train together (memory)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.chunk < 1:
            raise InvalidParameterError(
                f"epochs, batch_size and chunk must be at least 1, not {self.epochs}, {self.batch_size}, {self.chunk}."
            )
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.weight_decay < 0:
            raise InvalidParameterError(
                f"lr must be positive and weight_decay >= 0, not {self.lr}, {self.weight_decay}."
            )
        if self.optimizer not in ("adam", "sgd"):
            raise InvalidParameterError(f"optimizer must be 'adam' or 'sgd', not {self.optimizer!r}.")

    def spec(self) -> Mapping[str, Any]:
        import torch

        return {
            "kind": "torch",
            "name": self.name,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "optimizer": self.optimizer,
            "torch": torch.__version__,
        }

    def fit_log_proba(
        self, x: NDArray[np.floating], y: NDArray[np.integer], masks: NDArray[np.bool_], *, n_classes: int, seed: int
    ) -> NDArray[np.float32]:
        _check(x, y, masks, n_classes)
        sizes = masks.sum(axis=1)
        if (sizes != sizes[0]).any():
            raise InvalidInputError(
                f"TorchTrainer trains its models in lock-step and needs equal training-set sizes; the masks select "
                f"between {sizes.min()} and {sizes.max()} records.",
                remedy="Draw each model's subset with the same size.",
            )
        out = np.empty((len(masks), len(x), n_classes), np.float32)
        for start in range(0, len(masks), self.chunk):
            stop = min(start + self.chunk, len(masks))
            out[start:stop] = self._chunk(x, y, masks[start:stop], seed + start)
        return out

    def fit_modules(
        self, x: NDArray[np.floating], y: NDArray[np.integer], masks: NDArray[np.bool_], *, n_classes: int, seed: int
    ) -> list[nn.Module]:
        """The trained networks themselves (evaluation mode), one per mask, trained exactly as in
        :meth:`fit_log_proba`."""
        _check(x, y, masks, n_classes)
        import torch

        params, buffers, _, nets = self._train(x, y, masks, seed)
        with torch.no_grad():
            for m, net in enumerate(nets):
                state = {k: v[m].detach().clone() for k, v in {**params, **buffers}.items()}
                net.load_state_dict(state)
                net.eval()
        return nets

    def _chunk(
        self, x: NDArray[np.floating], y: NDArray[np.integer], masks: NDArray[np.bool_], seed: int
    ) -> NDArray[np.float32]:
        import torch

        params, buffers, batched, _ = self._train(x, y, masks, seed)
        n_models = len(masks)
        xt = torch.from_numpy(np.array(x, dtype=np.float32))
        probs: NDArray[np.float32] | None = None
        with torch.inference_mode():
            for begin in range(0, len(x), 1024):
                xb = xt[begin : begin + 1024].unsqueeze(0).expand(n_models, *xt[begin : begin + 1024].shape)
                out = torch.log_softmax(batched(params, buffers, xb), dim=-1).numpy()
                if probs is None:
                    probs = np.empty((n_models, len(x), out.shape[-1]), np.float32)
                probs[:, begin : begin + len(xb[0])] = out
        assert probs is not None  # noqa: S101 - masks select records, so x is not empty
        return probs

    def _train(
        self, x: NDArray[np.floating], y: NDArray[np.integer], masks: NDArray[np.bool_], seed: int
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Callable[..., torch.Tensor], list[nn.Module]]:
        import torch
        from torch.func import functional_call, stack_module_state, vmap

        from modelshield.models.nets import Standardize, seeded_network

        n_models = len(masks)
        xt = torch.from_numpy(np.array(x, dtype=np.float32))  # a writable copy: datasets are read-only
        yt = torch.from_numpy(np.array(y, dtype=np.int64))
        subsets = torch.from_numpy(np.stack([np.flatnonzero(m) for m in masks]))  # (models, size)
        nets = []
        for m in range(n_models):
            net = seeded_network(self.factory, seed + m)
            for module in net.modules():
                if isinstance(module, Standardize):
                    module.fit(xt[subsets[m]].reshape(subsets.shape[1], -1))
            nets.append(net.train())
        params, buffers = stack_module_state(nets)
        base = copy.deepcopy(nets[0]).to("meta")

        def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(base, (p, b), (xb,))
            return out

        batched = vmap(forward)
        leaves = list(params.values())
        optimiser: torch.optim.Optimizer
        if self.optimizer == "adam":
            optimiser = torch.optim.Adam(leaves, lr=self.lr, weight_decay=self.weight_decay, fused=True)
        else:
            optimiser = torch.optim.SGD(leaves, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay, fused=True)
        generators = [torch.Generator().manual_seed(seed + m) for m in range(n_models)]
        size = subsets.shape[1]
        for _ in range(self.epochs):
            # each model shuffles its own records with its own generator: results do not depend on chunking
            order = torch.stack([torch.randperm(size, generator=g) for g in generators])
            epoch_index = torch.gather(subsets, 1, order)
            for begin in range(0, size, self.batch_size):
                idx = epoch_index[:, begin : begin + self.batch_size]  # (models, b)
                logits = batched(params, buffers, xt[idx])  # (models, b, k)
                # sum over models of each model's mean loss: each model's gradient is its own
                loss = (
                    torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.shape[-1]), yt[idx].reshape(-1), reduction="sum"
                    )
                    / idx.shape[1]
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
        return params, buffers, batched, nets


@dataclass(frozen=True)
class SklearnTrainer:
    """Fits clones of an (unfitted or fitted) scikit-learn estimator, in ``n_jobs`` processes (-1: all cores)."""

    estimator: Any
    n_jobs: int = -1

    def spec(self) -> Mapping[str, Any]:
        import sklearn

        params = {k: repr(v) for k, v in sorted(self.estimator.get_params(deep=True).items())}
        return {
            "kind": "sklearn",
            "estimator": type(self.estimator).__name__,
            "params": params,
            "scikit-learn": sklearn.__version__,
        }

    def fit_log_proba(
        self, x: NDArray[np.floating], y: NDArray[np.integer], masks: NDArray[np.bool_], *, n_classes: int, seed: int
    ) -> NDArray[np.float32]:
        from joblib import Parallel, delayed

        _check(x, y, masks, n_classes)
        flat = np.ascontiguousarray(x.reshape(len(x), -1))
        jobs = (delayed(_fit_one)(self.estimator, flat, y, mask, n_classes, seed + m) for m, mask in enumerate(masks))
        results = Parallel(n_jobs=self.n_jobs)(jobs)
        return np.stack(results).astype(np.float32, copy=False)

    def fit_estimator(self, x: NDArray[np.floating], y: NDArray[np.integer], *, n_classes: int, seed: int) -> Any:
        """A clone of the estimator fitted on all of ``(x, y)`` (flattened), seeded as :meth:`fit_log_proba`
        seeds its first model; every class must occur in ``y``."""
        from sklearn.base import clone

        _check(x, y, np.ones((1, len(x)), bool), n_classes)
        if len(np.unique(y)) != n_classes:
            raise InvalidInputError(f"Fitting a model for {n_classes} classes needs every class in the labels.")
        model = clone(self.estimator)
        if "random_state" in model.get_params():
            model.set_params(random_state=seed)
        return model.fit(np.ascontiguousarray(x.reshape(len(x), -1)), y)


def _fit_one(
    estimator: Any, x: NDArray[np.floating], y: NDArray[np.integer], mask: NDArray[np.bool_], n_classes: int, seed: int
) -> NDArray[np.float32]:
    from sklearn.base import clone

    model = clone(estimator)
    if "random_state" in model.get_params():
        model.set_params(random_state=seed)
    model.fit(x[mask], y[mask])
    proba = np.zeros((len(x), n_classes), np.float64)
    proba[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(x)  # a subset may miss a class
    return np.log(np.maximum(proba, np.finfo(np.float64).tiny)).astype(np.float32)
