"""The error tree of modelshield.

Every error modelshield raises on purpose derives from :class:`ModelShieldError` and carries a remedy::

    >>> from modelshield.errors import InvalidInputError
    >>> err = InvalidInputError("expected 64 features, got 63", remedy="pass the same columns as in training")
    >>> print(err.diagnostics())
    expected 64 features, got 63
    What to do: pass the same columns as in training

The tree::

    ModelShieldError
    ├── InvalidParameterError      (also ValueError)   a bad argument or option
    ├── MissingExtraError          (also ImportError)  an optional dependency is not installed
    ├── InputError                                     the user's files or data are unusable
    │   ├── FileFormatError                            a file is missing, unreadable, corrupt or of the wrong format
    │   ├── InvalidInputError      (also ValueError)   an array or data set of the wrong shape, type or range
    │   └── UnknownTargetError     (also KeyError)     a reference target or check name that does not exist
    ├── UnsafeModelError                               loading a model file would run code; no Unsafe opt-in
    ├── ModelError                                     a model failed to predict or returned something malformed
    │   └── RemoteModelError                           a remote inference server failed or answered out of protocol
    ├── NotFittedError             (also AttributeError) a detector, guard or monitor used before fit()
    ├── RegistrationError                              a plug-in name registered twice, or a broken plug-in
    ├── RegistryError                                  the model registry cannot do what was asked
    │   └── PromotionRefusedError                      a promotion was refused by policy (reasons listed)
    ├── FindingsAboveThresholdError                    a report has findings at or above a severity (on request)
    └── VerificationError                              a signature or digest did not verify (verification fails closed)

Findings are data, not exceptions: a scan that finds malware *returns* its report. These errors mean that work
could not be done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelshield.findings import Finding, Severity

__all__ = [
    "FileFormatError",
    "FindingsAboveThresholdError",
    "InputError",
    "InvalidInputError",
    "InvalidParameterError",
    "MissingExtraError",
    "ModelError",
    "ModelShieldError",
    "NotFittedError",
    "PromotionRefusedError",
    "RegistrationError",
    "RegistryError",
    "RemoteModelError",
    "UnknownTargetError",
    "UnsafeModelError",
    "VerificationError",
]


class ModelShieldError(Exception):
    """Root of every error modelshield raises on purpose.

    ``str(err)`` is the message; :meth:`diagnostics` adds the remedy. ``cli_remedy`` is the remedy as the command
    line says it, where the fix is an option rather than a Python argument (the CLI prints it instead of
    ``remedy``); it is ``remedy`` unless given.
    """

    default_remedy = "Run with -v for the full traceback, and report it if it looks like a bug in modelshield."
    default_cli_remedy: str | None = None  # the default remedy in command-line words, where they differ

    def __init__(self, message: str, *, remedy: str | None = None, cli_remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy if remedy is not None else self.default_remedy
        if cli_remedy is None:
            cli_remedy = remedy if remedy is not None else (self.default_cli_remedy or self.default_remedy)
        self.cli_remedy = cli_remedy

    def __str__(self) -> str:
        return self.message

    def diagnostics(self) -> str:
        """The message and what to do about it, for people."""
        return f"{self.message}\nWhat to do: {self.remedy}"


class InvalidParameterError(ModelShieldError, ValueError):
    """A parameter of a modelshield call has a value outside its documented range."""

    default_remedy = "Check the parameter against the documentation of the call."


class MissingExtraError(ModelShieldError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class InputError(ModelShieldError):
    """The user's files or data cannot be used as given."""

    default_remedy = "Check the path and the contents of the input."


class FileFormatError(InputError):
    """A file is missing, unreadable, corrupt, or not of the format expected."""


class InvalidInputError(InputError, ValueError):
    """An array or data set has the wrong shape, type or range."""


class UnknownTargetError(InputError, KeyError):
    """A name (reference target, check, format) that modelshield does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class UnsafeModelError(ModelShieldError):
    """Loading this model file would run code from it, and no explicit ``Unsafe...`` opt-in was given."""

    default_remedy = (
        "Convert the model to a format that cannot run code on load (safetensors, skops, ONNX), or, if you trust "
        "the file's origin completely, opt in with unsafe_pickle=True."
    )
    default_cli_remedy = (
        "Convert the model to a format that cannot run code on load (safetensors, skops, ONNX), or, if you trust "
        "the file's origin completely, opt in with --unsafe-allow-pickle."
    )


class ModelError(ModelShieldError):
    """A model failed to predict, or returned something that is not a valid prediction."""


class RemoteModelError(ModelError):
    """A remote inference server failed, timed out, or answered outside the Open Inference Protocol."""

    default_remedy = "Check that the server is up, that the URL and model name are right, and its logs."


class NotFittedError(ModelShieldError, AttributeError):
    """A stateful component (detector, inference guard, monitor) was used before ``fit``."""

    default_remedy = "Call fit(...) with reference data first."


class RegistrationError(ModelShieldError):
    """A plug-in was registered twice under one name, or breaks the contract of its kind."""


class RegistryError(ModelShieldError):
    """The model registry cannot do what was asked: an unknown model or version, or an unusable index."""


class PromotionRefusedError(RegistryError):
    """A promotion was refused by policy; :attr:`reasons` lists every reason."""

    def __init__(self, name: str, version: int, reasons: Sequence[str], *, stage: str = "production") -> None:
        self.name = name
        self.version = version
        self.reasons = tuple(reasons)
        listed = " ".join(f"({i}) {r}" for i, r in enumerate(self.reasons, 1))
        super().__init__(
            f"Refused to promote {name} v{version} to {stage}: {listed}",
            remedy="Fix each reason (sign the model, fix or re-audit it), add it as a new version, and promote that.",
        )


class FindingsAboveThresholdError(ModelShieldError):
    """Raised on request (:meth:`Report.raise_for_severity`): findings at or above a severity."""

    def __init__(self, findings: Sequence[Finding], threshold: Severity) -> None:
        worst = max(f.severity for f in findings)
        super().__init__(
            f"{len(findings)} finding(s) at or above {threshold.value} (worst: {worst.value}).",
            remedy="Read the report's remediation for each finding.",
        )
        self.findings = tuple(findings)
        self.threshold = threshold


class VerificationError(ModelShieldError):
    """A signature, digest or provenance record did not verify. Verification fails closed.

    The fields say what failed, for callers that act on it: ``subject`` (what was verified), and for file sets the
    files whose digests ``changed``, the files ``added`` that the signature does not cover, and the files
    ``removed`` that it covers but that are missing.
    """

    default_remedy = "Do not use the artifact; obtain it again from a trusted source."

    def __init__(
        self,
        message: str,
        *,
        remedy: str | None = None,
        subject: str | None = None,
        changed: Sequence[str] = (),
        added: Sequence[str] = (),
        removed: Sequence[str] = (),
    ) -> None:
        super().__init__(message, remedy=remedy)
        self.subject = subject
        self.changed = tuple(changed)
        self.added = tuple(added)
        self.removed = tuple(removed)
