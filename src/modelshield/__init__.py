"""modelshield: a multi-layered security framework for machine-learning systems.

    >>> import modelshield
    >>> report = modelshield.run_audit("zoo:digits-mlp", checks=["integrity"])  # doctest: +SKIP
    >>> report.max_severity  # doctest: +SKIP
    <Severity.INFO: 'info'>
    >>> modelshield.scan_file("model.pt").max_severity  # doctest: +SKIP
    >>> modelshield.verify_model("model/", signature="model.sig", public_key="signer.pub")  # doctest: +SKIP

The façade covers the common jobs in a few lines each, over the layers' classes: :func:`scan_file` (code that
would run on load), :func:`verify_model` (a model's signature; raises :class:`VerificationError` on any doubt),
:func:`load_model` (scan, then load a model file safely), :func:`load_target` (a reference target) and
:func:`run_audit`. ``import modelshield`` stays light: torch, onnxruntime and the other heavy dependencies load
only when a feature that needs them is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield._version import __version__
from modelshield.errors import ModelShieldError, VerificationError
from modelshield.findings import Finding, Report, Severity

__all__ = [
    "Finding",
    "ModelShieldError",
    "Report",
    "Severity",
    "Target",
    "VerificationError",
    "__version__",
    "load_model",
    "load_target",
    "run_audit",
    "scan_file",
    "verify_model",
]

if TYPE_CHECKING:
    import torch

    from modelshield.audit import AuditProgress
    from modelshield.loading import LoadedModel
    from modelshield.models.interface import Bounds
    from modelshield.supply_chain.scan.interface import FileScan, ScanOptions
    from modelshield.supply_chain.signing import VerifiedModel
    from modelshield.target import Target


def __getattr__(name: str) -> Any:
    if name == "Target":  # lazily, so that `import modelshield` does not import the data and model layers
        from modelshield.target import Target

        return Target
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scan_file(path: str | Path, *, options: ScanOptions | None = None) -> FileScan:
    """Scan one model file for code that would run when it is loaded, without loading it; findings are data."""
    from modelshield.supply_chain.scan import scan_file as _scan

    return _scan(path, options)


def verify_model(path: str | Path, *, signature: str | Path, public_key: str | Path) -> VerifiedModel:
    """Verify a model file or directory against its OpenSSF model-signing bundle and the signer's public key file.

    Returns what was verified; raises :class:`VerificationError` when anything does not verify (a changed, added
    or removed file, a wrong key, a bad signature), so a caller cannot forget to check.
    """
    from modelshield.supply_chain.keys import load_public_key
    from modelshield.supply_chain.signing import verify_model as _verify

    return _verify(Path(path), Path(signature), load_public_key(Path(public_key)))


def load_model(
    path: str | Path,
    *,
    architecture: Callable[[], torch.nn.Module] | None = None,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
    clip_values: Bounds | None = None,
    trusted_types: Sequence[str] = (),
    unsafe_pickle: bool = False,
    unsafe_ignore_scan: bool = False,
    device: str | None = "auto",
) -> LoadedModel:
    """Scan, then load a model file as a classifier; formats that can run code are refused unless
    ``unsafe_pickle``, and then still when the scan is critical unless ``unsafe_ignore_scan`` (see
    :func:`modelshield.loading.load_model`)."""
    from modelshield.loading import load_model as _load

    return _load(
        path,
        architecture=architecture,
        input_shape=input_shape,
        n_classes=n_classes,
        clip_values=clip_values,
        trusted_types=trusted_types,
        unsafe_pickle=unsafe_pickle,
        unsafe_ignore_scan=unsafe_ignore_scan,
        device=device,
    )


def load_target(
    name: str, *, seed: int = 0, cache_dir: str | Path | None = None, device: str | None = "auto"
) -> Target:
    """A reference target by name (``"zoo:digits-cnn"`` or ``"digits-cnn"``), trained on first use and cached."""
    from modelshield.zoo import load_target as _load

    return _load(name, seed=seed, cache_dir=Path(cache_dir) if cache_dir is not None else None, device=device)


def run_audit(
    target: str | Target,
    *,
    checks: Sequence[str] | None = None,
    budget: str = "quick",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: Callable[[AuditProgress], None] | None = None,
) -> Report:
    """Run the audit checks against a target (a :class:`~modelshield.target.Target` or a zoo name).

    ``progress`` is called as the audit goes: at the start of each check and at each step a long check reports
    (an :class:`~modelshield.audit.AuditProgress`). Each check's start and end are also logged (``logging`` at
    INFO, logger ``modelshield.audit.runner``). (Not ``modelshield.audit``: that name is the audit layer's package.)
    """
    from modelshield.audit import AuditOptions, Auditor

    resolved = load_target(target, seed=seed) if isinstance(target, str) else target
    options = AuditOptions(
        checks=tuple(checks) if checks is not None else None,
        budget=budget,
        seed=seed,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
    )
    return Auditor(options).run(resolved, progress=progress)
