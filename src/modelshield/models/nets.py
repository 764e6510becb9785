"""The network architectures of the reference targets, rebuilt by name from JSON parameters.

    >>> from modelshield.models.nets import build_network
    >>> net = build_network("cnn", {"in_channels": 1, "image_size": 8, "n_classes": 10})
    >>> sum(p.numel() for p in net.parameters()) > 0
    True

Weights travel separately, as safetensors; an architecture is code that modelshield ships, never code from a file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from modelshield.errors import InvalidParameterError, UnknownTargetError

__all__ = ["ARCHITECTURES", "Standardize", "build_network"]


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


def build_network(arch: str, params: Mapping[str, Any]) -> nn.Module:
    """A fresh network of architecture ``arch`` ("mlp" or "cnn") with the given parameters."""
    if arch not in ARCHITECTURES:
        raise UnknownTargetError(
            f"Unknown architecture {arch!r}.", remedy=f"Use one of: {', '.join(sorted(ARCHITECTURES))}."
        )
    try:
        return ARCHITECTURES[arch](**params)
    except TypeError as exc:
        raise InvalidParameterError(f"Bad parameters for architecture {arch!r}: {exc}.") from exc
