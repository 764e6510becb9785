"""The scan layer's vocabulary: limits, options, the format-scanner protocol, and the results of scanning files.

    >>> from modelshield.supply_chain.scan.interface import ScanLimits
    >>> ScanLimits().max_depth
    4

Findings are :class:`~modelshield.findings.Finding` objects whose ``location`` names the file and, inside
archives, the member: ``model.pt!archive/data.pkl``; their ``evidence`` holds byte offsets and callables.

A :class:`FormatScanner` examines the content of one or more :class:`~modelshield.supply_chain.formats.ModelFormat`
and returns findings; it is given a :class:`ScanContext` with the run's options, the policy's verdicts and a way
to scan what it contains (archive members, decompressed streams), which are identified and dispatched anew.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable

from modelshield.findings import Finding, JSONValue, OwaspMl, Severity
from modelshield.supply_chain.formats import FormatInfo, ModelFormat
from modelshield.supply_chain.scan.pickle import PickleLimits
from modelshield.supply_chain.scan.policy import DEFAULT_POLICY, Classifier, Policy

__all__ = [
    "ATLAS_MODEL_FILE",
    "REMEDY_DO_NOT_LOAD",
    "FileScan",
    "FormatScanner",
    "ScanContext",
    "ScanLimits",
    "ScanOptions",
    "ScanReport",
    "scan_finding",
]

#: MITRE ATLAS techniques of a model file that runs code on load: a poisoned model, user execution.
ATLAS_MODEL_FILE = ("AML.T0010.003", "AML.T0011.000")

#: The remediation of a finding that makes a file unsafe to load (the default of :func:`scan_finding`).
REMEDY_DO_NOT_LOAD = (
    "Do not load this file. Obtain the model from its publisher in a format that cannot run code (safetensors, "
    "ONNX, skops), or verify its signature; if you wrote it yourself, find out who changed it."
)


@dataclass(frozen=True)
class ScanLimits:
    """Hard limits against archive and pickle bombs; reaching one is itself a finding."""

    max_depth: int = 4  # archives within archives
    max_members: int = 100_000
    max_decompressed: int = 4 * 1024**3  # bytes a compressed stream may expand to
    max_ratio: float = 250.0  # expansion ratio of a compressed stream
    pickle: PickleLimits = field(default_factory=PickleLimits)


@dataclass(frozen=True)
class ScanOptions:
    """How to scan: the callable policy and the limits."""

    policy: Policy = DEFAULT_POLICY
    limits: ScanLimits = field(default_factory=ScanLimits)


def scan_finding(
    rule: str,
    severity: Severity,
    title: str,
    description: str,
    location: str,
    *,
    evidence: Mapping[str, JSONValue] | None = None,
    remediation: str = REMEDY_DO_NOT_LOAD,
) -> Finding:
    """A finding of the ``supply`` check about a model file (OWASP ML06, ATLAS supply-chain techniques)."""
    return Finding(
        id=rule,
        check="supply",
        title=title,
        severity=severity,
        description=description,
        remediation=remediation,
        owasp=OwaspMl.ML06,
        atlas=ATLAS_MODEL_FILE,
        evidence=evidence or {},
        location=location,
    )


class ScanContext(Protocol):
    """What a :class:`FormatScanner` is given besides the bytes: one level of one scan run.

    ``info`` is what identification found the stream to be; ``depth`` counts the archives and compressed streams
    around it (0: the file itself). :meth:`scan_member` scans a nested stream one level deeper: it is identified by
    content, the depth limit is enforced, and the scanners of its format run; a member whose format no scanner
    serves yields nothing.
    """

    @property
    def options(self) -> ScanOptions:
        """The run's options."""
        ...

    @property
    def limits(self) -> ScanLimits:
        """The run's limits (``options.limits``)."""
        ...

    @property
    def classifier(self) -> Classifier:
        """The run's verdicts on pickle callables: the policy, with the run's cache."""
        ...

    @property
    def depth(self) -> int:
        """How deep the stream lies: 0 for the file, 1 for a member of an archive, and so on."""
        ...

    @property
    def info(self) -> FormatInfo:
        """What identification found the stream to be."""
        ...

    def scan_member(self, stream: BinaryIO, size: int, location: str) -> list[Finding]:
        """The findings for a nested seekable ``stream`` of ``size`` bytes, reported under ``location``."""
        ...


@runtime_checkable
class FormatScanner(Protocol):
    """A scanner for the content of one or more model formats; registered in a ``ScannerRegistry``.

    ``scan`` reads ``size`` bytes of the seekable ``stream`` from its start and returns findings whose location is
    ``location`` or a member of it (``location!member``). Damaged, truncated or hostile content is reported as
    findings, never raised, and a scan stays within ``context.limits``; the only error a scanner may raise is
    :class:`~modelshield.errors.FileFormatError`, when the stream itself cannot be read. The same bytes give the
    same findings. ``modelshield.testing.scanner_checks.check_scanner`` checks all of this.

    A third-party package adds a scanner by declaring it (an instance, or a factory of one) in the
    ``modelshield.scanners`` entry-point group; every scanner serving a format runs, in registration order.
    """

    @property
    def name(self) -> str:
        """A unique name, e.g. ``"pickle"``."""
        ...

    @property
    def formats(self) -> frozenset[ModelFormat]:
        """The formats this scanner examines."""
        ...

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> Iterable[Finding]:
        """The findings for ``stream``."""
        ...


@dataclass(frozen=True)
class FileScan:
    """The scan of one file: its format, size, findings and how long it took."""

    path: str
    format: str
    size: int
    findings: tuple[Finding, ...]
    duration_s: float

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, JSONValue]:
        """The scan as plain JSON data (one entry of the scan report's ``files``)."""
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "duration_s": round(self.duration_s, 6),
            "max_severity": self.max_severity.value if self.max_severity else None,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class ScanReport:
    """The scans of several files; :mod:`modelshield.reporting.scan` renders it (text, JSON, SARIF)."""

    files: tuple[FileScan, ...]
    duration_s: float

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for scan in self.files for f in scan.findings)

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= threshold)

    def to_dict(self) -> dict[str, JSONValue]:
        """The report as plain JSON data, as ``reporting/schemas/scan.schema.json`` describes it."""
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.value] += 1
        return {
            "tool": "modelshield",
            "kind": "scan",
            "duration_s": round(self.duration_s, 6),
            "summary": {
                "files": len(self.files),
                "counts": dict(counts),
                "max_severity": self.max_severity.value if self.max_severity else None,
            },
            "files": [f.to_dict() for f in self.files],
        }
