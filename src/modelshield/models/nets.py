"""The network architectures of the reference targets, rebuilt by name from JSON parameters, and seeded
initialisation without torch's global random generator.

    >>> import torch
    >>> from modelshield.models.nets import build_network
    >>> net = build_network("cnn", {"in_channels": 1, "image_size": 8, "n_classes": 10}, seed=0)
    >>> again = build_network("cnn", {"in_channels": 1, "image_size": 8, "n_classes": 10}, seed=0)
    >>> all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))
    True

Weights travel separately, as safetensors; an architecture is code that modelshield ships, never code from a file.

Library code never seeds torch's global generator (``torch.manual_seed``): it is one stream for the whole process,
so seeding it in one thread changes the random numbers of every other thread. A network is instead built as usual
and its parameters are then drawn again from a local :class:`torch.Generator` by :func:`init_parameters`, with
PyTorch's own default initialisation of each layer type, in the order of ``module.modules()``. For a network built
in that same order (the architectures here), the weights are bit-identical to ``torch.manual_seed(seed)`` followed
by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from modelshield.errors import InvalidParameterError, UnknownTargetError

__all__ = ["ARCHITECTURES", "Standardize", "build_network", "init_parameters", "seeded_network"]


class Standardize(nn.Module):
    """``(x - mean) / std`` with fixed buffers, so a tabular model takes raw feature values."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, x: torch.Tensor) -> Standardize:
        self.mean.copy_(x.mean(dim=0))
        self.std.copy_(x.std(dim=0).clamp_min(1e-6))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _mlp(n_features: int, n_classes: int, hidden: Sequence[int] = (128, 128), standardize: bool = False) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    if standardize:
        layers.append(Standardize(n_features))
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def _cnn(
    in_channels: int, image_size: int, n_classes: int, channels: Sequence[int] = (16, 32), hidden: int = 64
) -> nn.Module:
    c1, c2 = channels
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * side * side, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )


ARCHITECTURES: Mapping[str, Callable[..., nn.Module]] = {"mlp": _mlp, "cnn": _cnn}


def build_network(arch: str, params: Mapping[str, Any], *, seed: int | None = None) -> nn.Module:
    """A fresh network of architecture ``arch`` ("mlp" or "cnn") with the given parameters; with ``seed``, its
    parameters are drawn from a generator seeded with it (:func:`init_parameters`), else from torch's default
    generator (for networks whose weights are loaded next)."""
    if arch not in ARCHITECTURES:
        raise UnknownTargetError(
            f"Unknown architecture {arch!r}.", remedy=f"Use one of: {', '.join(sorted(ARCHITECTURES))}."
        )
    try:
        net = ARCHITECTURES[arch](**params)
    except TypeError as exc:
        raise InvalidParameterError(f"Bad parameters for architecture {arch!r}: {exc}.") from exc
    return net if seed is None else init_parameters(net, torch.Generator().manual_seed(seed))


# -- initialisation from a local generator -------------------------------------------------------------------------
# Layers whose default initialisation draws random numbers, and which init_parameters redraws.
_RANDOM_INIT: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.modules.conv._ConvNd,
    nn.Embedding,
    nn.RNNBase,
)
# Layers whose default initialisation is constant (ones, zeros, a fixed slope): reset without a generator.
_CONSTANT_INIT: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.PReLU,
)


def _draw(param: torch.Tensor, fill: Callable[[torch.Tensor], object]) -> None:
    """Fill ``param`` in place with values that ``fill`` draws into a contiguous CPU tensor of its shape: the same
    numbers whatever the parameter's device or memory format."""
    values = torch.empty(param.shape, dtype=param.dtype, device="cpu")
    fill(values)
    param.copy_(values)


def _fan_in_bound(weight: torch.Tensor) -> float:
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    return 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _redraw(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of ``module`` (one of ``_RANDOM_INIT``), drawn from ``generator``."""
    if isinstance(module, nn.Linear | nn.modules.conv._ConvNd):
        weight, bias = module.weight, module.bias
        _draw(weight, lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=generator))
        if bias is not None:
            bound = _fan_in_bound(weight)
            _draw(bias, lambda t: nn.init.uniform_(t, -bound, bound, generator=generator))
    elif isinstance(module, nn.Embedding):
        _draw(module.weight, lambda t: nn.init.normal_(t, generator=generator))
        if module.padding_idx is not None:
            module.weight[module.padding_idx].fill_(0)
    elif isinstance(module, nn.RNNBase):
        stdv = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
        for weight in module.parameters():
            _draw(weight, lambda t: nn.init.uniform_(t, -stdv, stdv, generator=generator))


def init_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise ``module``'s parameters in place with PyTorch's default scheme for each layer type, drawing every
    random number from ``generator`` (a CPU generator) and none from torch's global one; returns ``module``.

    Random initialisations (Linear, convolutions, Embedding, RNN/LSTM/GRU) are redrawn in the order of
    ``module.modules()``; constant ones (batch, instance, layer and group normalisation, PReLU) are reset. A layer
    of any other type that holds parameters of its own is refused with
    :class:`~modelshield.errors.InvalidParameterError`: its values would come from the shared global generator and
    not from ``generator``.
    """
    unknown = sorted(
        {
            type(m).__name__
            for m in module.modules()
            if not isinstance(m, _RANDOM_INIT + _CONSTANT_INIT) and next(m.parameters(recurse=False), None) is not None
        }
    )
    if unknown:
        raise InvalidParameterError(
            f"Cannot initialise the parameters of layers of type {', '.join(unknown)} from a seeded generator.",
            remedy="Build the network from Linear, convolution, Embedding, RNN and normalisation layers, or train it "
            "with code that initialises it.",
        )
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
        raise InvalidParameterError(
            "The network has lazy layers whose parameters do not exist yet.",
            remedy="Give the layers their input sizes (nn.Linear instead of nn.LazyLinear).",
        )
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, _RANDOM_INIT):
                _redraw(m, generator)
            elif isinstance(
                m, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm | nn.PReLU
            ):  # the types of _CONSTANT_INIT, spelled out so that the type checker sees reset_parameters
                m.reset_parameters()
    return module


def seeded_network(factory: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``factory()``, its parameters initialised from a generator seeded with ``seed`` (:func:`init_parameters`):
    the same network for the same seed, whatever other threads do with torch's global generator."""
    net = factory()
    if not isinstance(net, nn.Module):
        raise InvalidParameterError(f"The network factory returned {type(net).__name__}, not a torch.nn.Module.")
    return init_parameters(net, torch.Generator().manual_seed(seed))
