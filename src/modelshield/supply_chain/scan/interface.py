"""The scan layer's vocabulary: limits, options, and the results of scanning files.

    >>> from modelshield.supply_chain.scan.interface import ScanLimits
    >>> ScanLimits().max_depth
    4

Findings are :class:`~modelshield.findings.Finding` objects whose ``location`` names the file and, inside
archives, the member: ``model.pt!archive/data.pkl``; their ``evidence`` holds byte offsets and callables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelshield.findings import Finding, JSONValue, Severity
from modelshield.supply_chain.scan.pickle import PickleLimits
from modelshield.supply_chain.scan.policy import DEFAULT_POLICY, Policy

__all__ = ["FileScan", "ScanLimits", "ScanOptions", "ScanReport"]


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
    """The scans of several files."""

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
