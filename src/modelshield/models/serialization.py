"""Read model files whose formats cannot run code: safetensors and ``weights_only`` state dicts, and skops.

    >>> from modelshield.models.serialization import load_torch_weights
    >>> load_torch_weights(net, Path("model.safetensors"))  # doctest: +SKIP

These readers are safe by construction (no unpickling of objects), so lower layers such as :mod:`modelshield.zoo`
use them for files they wrote themselves. Files from elsewhere go through :func:`modelshield.loading.load_model`,
which scans before it reads.
"""

from __future__ import annotations

import pickle  # only for its exception type: nothing is unpickled here
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield._extras import require
from modelshield.errors import FileFormatError, UnsafeModelError

if TYPE_CHECKING:
    import torch

__all__ = ["load_skops", "load_torch_weights"]


def load_skops(path: Path, *, trusted_types: Sequence[str] = ()) -> Any:
    """A scikit-learn estimator from a skops file; refuses types outside skops' trust list and ``trusted_types``."""
    from skops.io import get_untrusted_types, load

    try:
        untrusted = sorted(set(get_untrusted_types(file=path)) - set(trusted_types))
    except Exception as exc:  # skops raises assorted errors on corrupt archives
        raise FileFormatError(f"{path} is not a readable skops file: {exc}.") from exc
    if untrusted:
        shown = ", ".join(untrusted[:5]) + (" ..." if len(untrusted) > 5 else "")
        raise UnsafeModelError(
            f"{path} contains {len(untrusted)} type(s) that skops does not trust by default: {shown}.",
            remedy="Review them; if they are what you expect, pass them as trusted_types.",
            cli_remedy="Review them; if they are what you expect, pass each with --trust-type.",
        )
    try:
        return load(path, trusted=list(trusted_types) or None)
    except Exception as exc:
        raise FileFormatError(f"{path} could not be loaded by skops: {exc}.") from exc


def load_torch_weights(module: torch.nn.Module, path: Path) -> None:
    """Load weights into ``module`` from safetensors or a ``weights_only`` PyTorch state dict (strict names)."""
    torch = require("torch", extra="torch", feature="PyTorch models")
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
        if head == b"PK\x03\x04":  # a PyTorch zip archive; weights_only refuses anything but tensors
            # from an open file: given a path that ends in .safetensors, torch.load hands it to safetensors
            with path.open("rb") as fh:
                state = torch.load(fh, map_location="cpu", weights_only=True)
        else:  # safetensors validates its own header and refuses anything else
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                state = load_file(str(path))
            except SafetensorError as exc:
                raise FileFormatError(
                    f"{path} is neither a safetensors file nor a PyTorch state dict ({exc}).",
                    remedy="Pass a .safetensors file or a PyTorch state dict.",
                ) from exc
    except pickle.UnpicklingError as exc:  # what weights_only=True raises for anything but tensors
        raise UnsafeModelError(
            f"{path} is a PyTorch checkpoint that holds more than tensors; loading it would unpickle objects."
        ) from exc
    except (OSError, RuntimeError, ValueError) as exc:
        raise FileFormatError(f"{path} is not a readable weights file: {exc}.") from exc
    if not isinstance(state, dict):
        raise FileFormatError(f"{path} holds a {type(state).__name__}, not a state dict of tensors.")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())  # torch's first line only says that loading failed; the sizes follow
        raise FileFormatError(
            f"The weights in {path} do not fit the architecture: {detail}",
            remedy="Pass the architecture the weights were trained with.",
        ) from exc
