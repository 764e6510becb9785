"""The ``integrity`` check: the model file's digest, its format identified by content, and format risks.

    >>> from modelshield.audit.checks.integrity import INTEGRITY
    >>> INTEGRITY.name
    'integrity'

Findings: ``integrity.model-file`` (info: digest, size, format), ``integrity.code-on-load`` (medium: a format whose
usual loader runs code, such as pickle), ``integrity.misleading-suffix`` (medium: the file name says one format,
the content another, a common disguise), ``integrity.unknown-format`` (low: nothing can be said about the file).
A full scan of what such a file would execute is the ``supply`` check's work.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelshield.audit.interface import Check, CheckContext, Requirement
from modelshield.findings import Finding, OwaspMl, Severity
from modelshield.supply_chain.formats import ModelFormat, identify_format

__all__ = ["INTEGRITY", "integrity_findings"]

_SUPPLY_CHAIN = ("AML.T0010.003", "AML.T0011.000")


def integrity_findings(context: CheckContext) -> Sequence[Finding]:
    target = context.target
    path = target.model_path
    if path is None:  # the runner skips such targets (Requirement.MODEL_FILE)
        return []
    info = identify_format(path)
    size = path.stat().st_size
    location = str(path)
    findings = [
        Finding(
            id="integrity.model-file",
            check="integrity",
            title=f"Model file identified as {info.format.value}",
            severity=Severity.INFO,
            description=(
                f"{path.name} ({size:,} bytes) is a {info.detail}. Its SHA-256 is {target.model_sha256}; "
                "compare it with the digest its publisher gives, or verify its signature."
            ),
            remediation="Record the digest and verify it before every load.",
            owasp=OwaspMl.ML06,
            atlas=("AML.T0010.003",),
            metrics={"size_bytes": size},
            evidence={"sha256": target.model_sha256, "format": info.format.value, "detail": info.detail},
            location=location,
        )
    ]
    if info.format is ModelFormat.UNKNOWN:
        findings.append(
            Finding(
                id="integrity.unknown-format",
                check="integrity",
                title="Model file format not recognised",
                severity=Severity.LOW,
                description=f"The content of {path.name} matches no known model format ({info.detail}).",
                remediation="Store models in a documented format such as safetensors, ONNX or skops.",
                owasp=OwaspMl.ML06,
                atlas=_SUPPLY_CHAIN,
                location=location,
            )
        )
    if info.can_execute_code:
        findings.append(
            Finding(
                id="integrity.code-on-load",
                check="integrity",
                title="Model stored in a format that can run code when loaded",
                severity=Severity.MEDIUM,
                description=(
                    f"{path.name} is a {info.detail}. Whoever can change this file can make every loader of the "
                    "model run arbitrary code."
                ),
                remediation="Convert the model to safetensors, ONNX or skops, and scan the file before loading it.",
                owasp=OwaspMl.ML06,
                atlas=_SUPPLY_CHAIN,
                evidence={"format": info.format.value},
                location=location,
            )
        )
    if info.suffix_matches(path) is False:
        findings.append(
            Finding(
                id="integrity.misleading-suffix",
                check="integrity",
                title="File name does not match its content",
                severity=Severity.MEDIUM,
                description=(
                    f"{path.name} is named like a {path.suffix or 'suffix-less'} file but its content is a "
                    f"{info.detail}. Tools that trust the name may load it the wrong, unsafe way."
                ),
                remediation="Rename the file to match its format, and find out why it was named otherwise.",
                owasp=OwaspMl.ML06,
                atlas=_SUPPLY_CHAIN,
                evidence={"suffix": path.suffix, "format": info.format.value},
                location=location,
            )
        )
    return findings


INTEGRITY = Check(
    name="integrity",
    title="Model file integrity",
    description="Digest of the model file, its format identified by content, and the risks of that format.",
    run=integrity_findings,
    requires=frozenset({Requirement.MODEL_FILE}),
)
