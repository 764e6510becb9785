"""The ``integrity`` check: the model file's digest, its format identified by content, and format risks.

    >>> from modelshield.audit.checks.integrity import INTEGRITY, IntegrityMeasurement
    >>> from modelshield.supply_chain.formats import ModelFormat
    >>> INTEGRITY.name
    'integrity'
    >>> m = IntegrityMeasurement(path="models/m.onnx", size=10, sha256="0" * 64, format=ModelFormat.PICKLE,
    ...                          detail="pickle (protocol 4)", can_execute_code=True, suffix_matches=False)
    >>> [(f.id, f.severity.value) for f in INTEGRITY.judge(m)]
    [('integrity.model-file', 'info'), ('integrity.code-on-load', 'medium'), ('integrity.misleading-suffix', 'medium')]

Findings: ``integrity.model-file`` (info: digest, size, format), ``integrity.code-on-load`` (medium: a format whose
usual loader runs code, such as pickle), ``integrity.misleading-suffix`` (medium: the file name says one format,
the content another, a common disguise), ``integrity.unknown-format`` (low: nothing can be said about the file).
A full scan of what such a file would execute is the ``supply`` check's work. :meth:`IntegrityCheck.measure` reads
the file (the same work under every budget); :meth:`IntegrityCheck.judge` applies the rules above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelshield.audit.interface import NO_SETTINGS, Check, CheckContext, NoSettings, Requirement
from modelshield.errors import InvalidParameterError
from modelshield.findings import Finding, OwaspMl, Severity
from modelshield.supply_chain.formats import ModelFormat, identify_format

__all__ = ["INTEGRITY", "IntegrityCheck", "IntegrityMeasurement"]

_SUPPLY_CHAIN = ("AML.T0010.003", "AML.T0011.000")


@dataclass(frozen=True)
class IntegrityMeasurement:
    """What the model file is: its path, size, digest, and its format as identified by content."""

    path: str
    size: int
    sha256: str | None
    format: ModelFormat
    detail: str  # the format in words
    can_execute_code: bool  # loading it the usual way can run code
    suffix_matches: bool | None  # the name's suffix is one this format has (None: the format has no usual suffix)


class IntegrityCheck(Check[NoSettings, IntegrityMeasurement]):
    """Digest of the model file, its format identified by content, and the risks of that format."""

    name = "integrity"
    title = "Model file integrity"
    description = "Digest of the model file, its format identified by content, and the risks of that format."
    requires = frozenset({Requirement.MODEL_FILE})
    budgets = NO_SETTINGS

    def measure(self, context: CheckContext, settings: NoSettings) -> IntegrityMeasurement:
        """Identify the model file's format by content, with its size and digest."""
        target = context.target
        path = target.model_path
        if path is None:  # the runner skips such targets (Requirement.MODEL_FILE)
            raise InvalidParameterError("The integrity check needs the target's model file.")
        info = identify_format(path)
        return IntegrityMeasurement(
            path=str(path),
            size=path.stat().st_size,
            sha256=target.model_sha256,
            format=info.format,
            detail=info.detail,
            can_execute_code=info.can_execute_code,
            suffix_matches=info.suffix_matches(path),
        )

    def judge(self, measurement: IntegrityMeasurement) -> Sequence[Finding]:
        """The file's identity (info); an unknown format (low); code on load and a misleading suffix (medium)."""
        m = measurement
        path = Path(m.path)
        findings = [
            Finding(
                id="integrity.model-file",
                check=self.name,
                title=f"Model file identified as {m.format.value}",
                severity=Severity.INFO,
                description=(
                    f"Content of {path.name} ({m.size:,} bytes): {m.detail}. Its SHA-256 is {m.sha256}; "
                    "compare it with the digest its publisher gives, or verify its signature."
                ),
                remediation="Record the digest and verify it before every load.",
                owasp=OwaspMl.ML06,
                atlas=("AML.T0010.003",),
                metrics={"size_bytes": m.size},
                evidence={"sha256": m.sha256, "format": m.format.value, "detail": m.detail},
                location=m.path,
            )
        ]
        if m.format is ModelFormat.UNKNOWN:
            findings.append(
                Finding(
                    id="integrity.unknown-format",
                    check=self.name,
                    title="Model file format not recognised",
                    severity=Severity.LOW,
                    description=f"The content of {path.name} matches no known model format ({m.detail}).",
                    remediation="Store models in a documented format such as safetensors, ONNX or skops.",
                    owasp=OwaspMl.ML06,
                    atlas=_SUPPLY_CHAIN,
                    location=m.path,
                )
            )
        if m.can_execute_code:
            findings.append(
                Finding(
                    id="integrity.code-on-load",
                    check=self.name,
                    title="Model stored in a format that can run code when loaded",
                    severity=Severity.MEDIUM,
                    description=(
                        f"Content of {path.name}: {m.detail}. Whoever can change this file can make every loader "
                        "of the model run arbitrary code."
                    ),
                    remediation="Convert the model to safetensors, ONNX or skops, and scan the file before loading it.",
                    owasp=OwaspMl.ML06,
                    atlas=_SUPPLY_CHAIN,
                    evidence={"format": m.format.value},
                    location=m.path,
                )
            )
        if m.suffix_matches is False:
            findings.append(
                Finding(
                    id="integrity.misleading-suffix",
                    check=self.name,
                    title="File name does not match its content",
                    severity=Severity.MEDIUM,
                    description=(
                        f"{path.name} is named like a {path.suffix or 'suffix-less'} file, but its content is "
                        f"something else: {m.detail}. Tools that trust the name may load it the wrong, unsafe way."
                    ),
                    remediation="Rename the file to match its format, and find out why it was named otherwise.",
                    owasp=OwaspMl.ML06,
                    atlas=_SUPPLY_CHAIN,
                    evidence={"suffix": path.suffix, "format": m.format.value},
                    location=m.path,
                )
            )
        return findings


INTEGRITY = IntegrityCheck()
