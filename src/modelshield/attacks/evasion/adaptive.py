"""Adaptive attacks against gradient masking: the model as the gradient attacks should see it.

    >>> from modelshield.attacks.evasion.adaptive import adapt
    >>> adapted = adapt(classifier, x)  # doctest: +SKIP
    >>> adapted.notes  # doctest: +SKIP
    ('straight-through gradients for round (BPDA)',)
    >>> pgd(adapted.classifier, x, y, eps=0.1)  # doctest: +SKIP

A model can defeat gradient attacks without being robust (Athalye, Carlini & Wagner 2018, "Obfuscated gradients give
a false sense of security"). :func:`adapt` looks at one forward pass of the model and builds the view of it that
the field's adaptive attacks use, for the three ways this happens by construction:

- **Shattered gradients** (non-differentiable preprocessing: quantising or rounding the input). Piecewise-constant
  operations (``round``, ``floor``, ``ceil``, ``trunc``, ``sign``) have zero gradient almost everywhere. The view
  replaces their backward pass by the identity (BPDA, the straight-through estimator); the forward pass is
  unchanged.
- **Saturated outputs** (a model that returns ``softmax`` of large logits, e.g. defensive distillation's
  temperature, or plain probabilities). In float32 the probabilities are exactly 0 and 1, so every loss on them
  has zero gradient. When the model's output is the output of a softmax call, the view returns that call's input:
  the logits. The attacks' margin losses (DLR, CW margin) are invariant to the logits' scale.
- **Randomness** (noise added to the input, random transformations). Two forward passes on the same input differ.
  The view averages the model's outputs over :data:`EOT_DRAWS` draws (Expectation over Transformation), so the
  attacks follow the expected gradient instead of one noisy sample of it.

The view is used only to find adversarial inputs: whether each one fools the model is always measured again on
the real model, so an adaptation can make the attack stronger but never makes its result wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield.models.interface import FloatArray

if TYPE_CHECKING:
    import torch

    from modelshield.models.torch_classifier import TorchClassifier

__all__ = ["EOT_DRAWS", "Adapted", "adapt"]

#: Draws per input that the view averages over when the model is randomised.
EOT_DRAWS = 8
_PROBE_ROWS = 32


@dataclass(frozen=True)
class Adapted:
    """The model as the gradient attacks see it, and what was changed (one plain sentence per adaptation)."""

    classifier: TorchClassifier
    notes: tuple[str, ...] = ()
    randomised: bool = False
    differentiable: bool = True  # False: the output does not depend on the input through autograd at all
    saturated: bool = False  # the cross-entropy's gradient vanishes on many inputs: attack with margin losses

    @property
    def changed(self) -> bool:
        return bool(self.notes)


def _piecewise_constant() -> dict[Callable[..., Any], str]:
    import torch

    ops: dict[Callable[..., Any], str] = {}
    for name in ("round", "floor", "ceil", "trunc", "fix", "sign"):
        for owner in (torch, torch.Tensor):
            fn = getattr(owner, name, None)
            if fn is not None:
                ops[fn] = name
    return ops


def _softmax_functions() -> set[Callable[..., Any]]:
    import torch

    return {torch.softmax, torch.Tensor.softmax, torch.nn.functional.softmax, torch.special.softmax}


def _mode(straight_through: bool, strip: int | None) -> Any:
    """A torch function mode that records (and optionally rewrites) piecewise-constant and softmax calls."""
    from torch.overrides import TorchFunctionMode

    piecewise = _piecewise_constant()
    softmax = _softmax_functions()

    class _Rewrite(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.shattered: set[str] = set()
            self.softmax_outputs: list[torch.Tensor] = []

        def __torch_function__(
            self,
            func: Callable[..., Any],
            types: Any,
            args: tuple[Any, ...] = (),
            kwargs: dict[str, Any] | None = None,
        ) -> Any:
            import torch

            kwargs = kwargs or {}
            if func in softmax:
                index = len(self.softmax_outputs)
                out = func(*args, **kwargs)
                self.softmax_outputs.append(out)
                if index == strip and args and isinstance(args[0], torch.Tensor):
                    return args[0]
                return out
            out = func(*args, **kwargs)
            source = args[0] if args else None
            if (
                func in piecewise
                and "out" not in kwargs
                and isinstance(source, torch.Tensor)
                and isinstance(out, torch.Tensor)
                and source.requires_grad
                and out.is_floating_point()
                and out.shape == source.shape
            ):
                self.shattered.add(piecewise[func])
                if straight_through:  # forward: the op's value; backward: the identity
                    return source + (out - source).detach()
            return out

    return _Rewrite()


def _view_module(module: torch.nn.Module, straight_through: bool, strip: int | None, draws: int) -> torch.nn.Module:
    import torch

    class _Adaptive(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch = x.repeat(draws, *([1] * (x.ndim - 1))) if draws > 1 else x
            if straight_through or strip is not None:
                with _mode(straight_through, strip):
                    out = self.inner(batch)
            else:
                out = self.inner(batch)
            if draws > 1:
                out = out.reshape(draws, len(x), *out.shape[1:]).mean(dim=0)
            return out  # type: ignore[no-any-return]

    return _Adaptive()


def adapt(classifier: TorchClassifier, x: FloatArray) -> Adapted:
    """The view of ``classifier`` the gradient attacks should use, from one probe on (up to 32 of) the inputs ``x``.

    Returns the classifier itself (with no notes) when none of the module's docstring cases applies.
    """
    import torch

    from modelshield.models.torch_classifier import TorchClassifier

    probe = classifier.validate_input(np.asarray(x)[:_PROBE_ROWS])
    module = classifier.module
    xt = torch.from_numpy(np.ascontiguousarray(probe).copy()).to(classifier.device).requires_grad_(True)
    recorder = _mode(False, None)
    with torch.enable_grad(), recorder:
        out = module(xt)
    with torch.no_grad():
        again = module(xt.detach())
    notes: list[str] = []
    if not (isinstance(out, torch.Tensor) and out.requires_grad):
        return Adapted(classifier, ("the model's output has no gradient with respect to its input",), False, False)
    randomised = isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and out.shape == again.shape
    if randomised:
        scale = float(out.detach().abs().max()) + 1.0
        randomised = float((out.detach() - again).abs().max()) > 1e-5 * scale
    shattered = sorted(recorder.shattered)
    strip = None
    if isinstance(out, torch.Tensor):
        for i, soft in enumerate(recorder.softmax_outputs):
            if soft.shape == out.shape and (soft is out or bool(torch.equal(soft.detach(), out.detach()))):
                strip = i
    if shattered:
        notes.append(f"straight-through gradients for {', '.join(shattered)} (BPDA)")
    if strip is not None:
        notes.append("attacked the logits before the model's final softmax")
    if randomised:
        notes.append(f"the model is randomised: gradients averaged over {EOT_DRAWS} draws (EOT)")
    view = classifier
    if notes:
        view = TorchClassifier(
            _view_module(module, bool(shattered), strip, EOT_DRAWS if randomised else 1),
            n_classes=classifier.n_classes,
            input_shape=classifier.input_shape,
            clip_values=classifier.clip_values,
            output="logits" if strip is not None else classifier.output,
            device=classifier.device,
            batch_size=max(1, classifier.batch_size // (EOT_DRAWS if randomised else 1)),
        )
    saturated = _saturated(view, probe)
    if saturated:
        notes.append("the model's outputs saturate (zero cross-entropy gradients): PGD on the CW margin loss")
    return Adapted(view, tuple(notes), randomised, saturated=saturated)


def _saturated(view: TorchClassifier, probe: FloatArray) -> bool:
    """Whether the cross-entropy's input gradient is exactly zero on more than a tenth of the probe's inputs (its
    own predictions as labels): float32 probabilities of exactly 0 and 1."""
    labels = view.predict(probe)
    grads = view.loss_gradient(probe, labels).reshape(len(probe), -1)
    return bool(np.mean(~np.any(grads != 0, axis=1)) > 0.1)
