"""Findings and reports: what every layer of modelshield produces, as plain, frozen, JSON-serialisable data.

    >>> from modelshield.findings import Finding, Severity, OwaspMl
    >>> f = Finding(id="baseline.generalization-gap", check="baseline", title="Large generalisation gap",
    ...             severity=Severity.MEDIUM, owasp=OwaspMl.ML04, atlas=("AML.T0024.000",),
    ...             description="Train accuracy exceeds test accuracy by 0.18.", remediation="Regularise.")
    >>> f.severity >= Severity.LOW
    True
    >>> Finding.from_dict(f.to_dict()) == f
    True

A :class:`Report` is rendered by :mod:`modelshield.reporting`, never recomputed there.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from modelshield.errors import FindingsAboveThresholdError, InvalidParameterError

__all__ = [
    "ATLAS_TECHNIQUES",
    "REPORT_SCHEMA_VERSION",
    "Chart",
    "CheckRun",
    "CheckStatus",
    "Finding",
    "FindingsAboveThresholdError",
    "JSONValue",
    "OwaspMl",
    "PolicyResult",
    "Report",
    "RuleResult",
    "Severity",
    "TargetInfo",
]

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None

REPORT_SCHEMA_VERSION = "1.0"


class Severity(enum.StrEnum):
    """How bad a finding is, ordered ``info < low < medium < high < critical``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """``Severity.parse("High")`` -> ``Severity.HIGH``, with a clear error for anything else."""
        if isinstance(value, Severity):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise InvalidParameterError(f"Unknown severity {value!r}.", remedy=f"Use one of: {names}.") from None


_SEVERITY_ORDER = tuple(Severity)


class OwaspMl(enum.StrEnum):
    """The OWASP Machine Learning Security Top 10 (2023)."""

    ML01 = "ML01"
    ML02 = "ML02"
    ML03 = "ML03"
    ML04 = "ML04"
    ML05 = "ML05"
    ML06 = "ML06"
    ML07 = "ML07"
    ML08 = "ML08"
    ML09 = "ML09"
    ML10 = "ML10"

    @property
    def label(self) -> str:
        """The category's name, e.g. ``"Input Manipulation Attack"`` for ML01."""
        return _OWASP_TITLES[self.value]


_OWASP_TITLES = {
    "ML01": "Input Manipulation Attack",
    "ML02": "Data Poisoning Attack",
    "ML03": "Model Inversion Attack",
    "ML04": "Membership Inference Attack",
    "ML05": "Model Theft",
    "ML06": "AI Supply Chain Attacks",
    "ML07": "Transfer Learning Attack",
    "ML08": "Model Skewing",
    "ML09": "Output Integrity Attack",
    "ML10": "Model Poisoning",
}

#: MITRE ATLAS techniques that modelshield's checks map to, with their names. Other well-formed ids are accepted.
ATLAS_TECHNIQUES: Mapping[str, str] = MappingProxyType(
    {
        "AML.T0010": "AI Supply Chain Compromise",
        "AML.T0010.003": "AI Supply Chain Compromise: Model",
        "AML.T0011": "User Execution",
        "AML.T0011.000": "User Execution: Unsafe AI Artifacts",
        "AML.T0015": "Evade AI Model",
        "AML.T0018": "Manipulate AI Model",
        "AML.T0020": "Poison Training Data",
        "AML.T0024": "Exfiltration via AI Inference API",
        "AML.T0024.000": "Exfiltration via AI Inference API: Infer Training Data Membership",
        "AML.T0024.001": "Exfiltration via AI Inference API: Invert AI Model",
        "AML.T0024.002": "Exfiltration via AI Inference API: Extract AI Model",
        "AML.T0031": "Erode AI Model Integrity",
        "AML.T0040": "AI Model Inference API Access",
        "AML.T0043": "Craft Adversarial Data",
    }
)

_ATLAS_ID = re.compile(r"^AML\.T\d{4}(\.\d{3})?$")
_FINDING_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


class _PicklableMappings:
    """Pickle support for frozen dataclasses holding read-only mappings (sent between worker processes)."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, _frozen_mapping(value) if isinstance(value, dict) else value)


def _to_json(value: Any) -> JSONValue:
    """Plain JSON data from mappings, sequences, enums and NumPy scalars."""
    if isinstance(value, enum.Enum):
        return _to_json(value.value)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # NaN/inf are not JSON
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_to_json(v) for v in value]
    item = getattr(value, "item", None)  # NumPy scalars
    if callable(item):
        return _to_json(item())
    tolist = getattr(value, "tolist", None)  # NumPy arrays
    if callable(tolist):
        return _to_json(tolist())
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


@dataclass(frozen=True)
class Chart(_PicklableMappings):
    """A small plot described as data; renderers draw it (the HTML report as inline SVG).

    ``x`` holds the category labels or x values; each entry of ``series`` is one line or bar group.
    """

    title: str
    kind: str  # "bar" or "line"
    x: tuple[float | str, ...]
    series: Mapping[str, tuple[float, ...]]
    x_label: str = ""
    y_label: str = ""
    y_range: tuple[float, float] | None = None
    scale: str = "linear"  # "linear", or "log" for a line chart on log-log axes (a privacy attack's ROC)

    def __post_init__(self) -> None:
        if self.kind not in {"bar", "line"}:
            raise InvalidParameterError(f"Chart kind must be 'bar' or 'line', not {self.kind!r}.")
        if self.scale not in {"linear", "log"} or (self.scale == "log" and self.kind != "line"):
            raise InvalidParameterError(
                f"Chart scale must be 'linear', or 'log' for a line chart; got {self.scale!r} for {self.kind!r}."
            )
        # None is a missing value (JSON has no NaN; to_dict writes NaN as null), read back as NaN.
        series = {
            name: tuple(math.nan if v is None else float(v) for v in values) for name, values in self.series.items()
        }
        for name, values in series.items():
            if len(values) != len(self.x):
                raise InvalidParameterError(
                    f"Chart {self.title!r}: series {name!r} has {len(values)} values for {len(self.x)} x values."
                )
        object.__setattr__(self, "x", tuple(self.x))
        object.__setattr__(self, "series", _frozen_mapping(series))

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "title": self.title,
            "kind": self.kind,
            "x": _to_json(self.x),
            "series": _to_json(self.series),
            "x_label": self.x_label,
            "y_label": self.y_label,
            "y_range": _to_json(self.y_range),
            "scale": self.scale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chart:
        y_range = data.get("y_range")
        return cls(
            title=data["title"],
            kind=data["kind"],
            x=tuple(data["x"]),
            series={k: tuple(v) for k, v in data["series"].items()},
            x_label=data.get("x_label", ""),
            y_label=data.get("y_label", ""),
            y_range=(float(y_range[0]), float(y_range[1])) if y_range else None,
            scale=data.get("scale", "linear"),
        )


@dataclass(frozen=True)
class Finding(_PicklableMappings):
    """One thing a check found, with where it maps in OWASP ML Top 10 and MITRE ATLAS and what to do about it.

    ``id`` names the kind of finding (stable across runs, like a lint rule id); ``check`` names the check that
    produced it; ``metrics`` hold the measured numbers, ``evidence`` anything else that supports the finding.
    """

    id: str
    check: str
    title: str
    severity: Severity
    description: str
    remediation: str = ""
    owasp: OwaspMl | None = None
    atlas: tuple[str, ...] = ()
    metrics: Mapping[str, JSONValue] = field(default_factory=dict)
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)
    location: str | None = None
    charts: tuple[Chart, ...] = ()

    def __post_init__(self) -> None:
        if not _FINDING_ID.match(self.id):
            raise InvalidParameterError(
                f"Finding id {self.id!r} is not a lower-case dotted name such as 'integrity.pickle-format'."
            )
        object.__setattr__(self, "severity", Severity.parse(self.severity))
        if self.owasp is not None:
            object.__setattr__(self, "owasp", OwaspMl(self.owasp))
        for technique in self.atlas:
            if not _ATLAS_ID.match(technique):
                raise InvalidParameterError(
                    f"{technique!r} is not a MITRE ATLAS technique id such as 'AML.T0015' or 'AML.T0024.000'."
                )
        object.__setattr__(self, "atlas", tuple(self.atlas))
        object.__setattr__(self, "metrics", _frozen_mapping(self.metrics))
        object.__setattr__(self, "evidence", _frozen_mapping(self.evidence))
        object.__setattr__(self, "charts", tuple(self.charts))

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "id": self.id,
            "check": self.check,
            "title": self.title,
            "severity": self.severity.value,
            "description": self.description,
            "remediation": self.remediation,
            "owasp": self.owasp.value if self.owasp else None,
            "atlas": list(self.atlas),
            "metrics": _to_json(self.metrics),
            "evidence": _to_json(self.evidence),
            "location": self.location,
            "charts": [c.to_dict() for c in self.charts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            id=data["id"],
            check=data["check"],
            title=data["title"],
            severity=Severity.parse(data["severity"]),
            description=data["description"],
            remediation=data.get("remediation", ""),
            owasp=OwaspMl(data["owasp"]) if data.get("owasp") else None,
            atlas=tuple(data.get("atlas", ())),
            metrics=data.get("metrics", {}),
            evidence=data.get("evidence", {}),
            location=data.get("location"),
            charts=tuple(Chart.from_dict(c) for c in data.get("charts", ())),
        )


@dataclass(frozen=True)
class TargetInfo:
    """What was audited: enough to identify the exact model and data again (digests are SHA-256, hex)."""

    name: str
    model_format: str
    model_sha256: str | None
    n_classes: int
    input_shape: tuple[int, ...]
    classifier: str
    white_box: bool
    model_path: str | None = None
    train_sha256: str | None = None
    test_sha256: str | None = None
    description: str = ""

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "description": self.description,
            "model_format": self.model_format,
            "model_path": self.model_path,
            "model_sha256": self.model_sha256,
            "train_sha256": self.train_sha256,
            "test_sha256": self.test_sha256,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "classifier": self.classifier,
            "white_box": self.white_box,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetInfo:
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            model_format=data["model_format"],
            model_path=data.get("model_path"),
            model_sha256=data.get("model_sha256"),
            train_sha256=data.get("train_sha256"),
            test_sha256=data.get("test_sha256"),
            n_classes=int(data["n_classes"]),
            input_shape=tuple(int(d) for d in data["input_shape"]),
            classifier=data["classifier"],
            white_box=bool(data["white_box"]),
        )


class CheckStatus(enum.StrEnum):
    """How one check of an audit ended."""

    PASSED = "passed"  # ran, nothing at or above low
    FINDINGS = "findings"  # ran, reported findings at low or above
    SKIPPED = "skipped"  # did not apply to this target (the reason says why)
    ERROR = "error"  # failed to run: the audit is incomplete


@dataclass(frozen=True)
class CheckRun:
    """One check's run within an audit: status, time, and why it was skipped or failed."""

    name: str
    status: CheckStatus
    duration_s: float
    reason: str = ""

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "status": self.status.value,
            "duration_s": round(self.duration_s, 6),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckRun:
        return cls(
            name=data["name"],
            status=CheckStatus(data["status"]),
            duration_s=float(data["duration_s"]),
            reason=data.get("reason", ""),
        )


@dataclass(frozen=True)
class RuleResult:
    """One rule of a release policy, judged against a report: what it asks, what was measured, and in words why
    it passed or failed (``measured`` is None when the report holds nothing to measure: such a rule fails)."""

    rule: str
    passed: bool
    measured: JSONValue
    bound: str
    message: str

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "rule": self.rule,
            "passed": self.passed,
            "measured": _to_json(self.measured),
            "bound": self.bound,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleResult:
        return cls(
            rule=data["rule"],
            passed=bool(data["passed"]),
            measured=data.get("measured"),
            bound=data["bound"],
            message=data["message"],
        )


@dataclass(frozen=True)
class PolicyResult:
    """A release policy judged against a report (:mod:`modelshield.audit.policy`): every rule's outcome, in the
    policy's order; the policy passes when every rule does. ``sha256`` is the digest of the policy file."""

    policy: str
    sha256: str
    rules: tuple[RuleResult, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if not r.passed)

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "policy": self.policy,
            "sha256": self.sha256,
            "passed": self.passed,
            "rules": [r.to_dict() for r in self.rules],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyResult:
        return cls(
            policy=data["policy"],
            sha256=data["sha256"],
            rules=tuple(RuleResult.from_dict(r) for r in data["rules"]),
        )


@dataclass(frozen=True)
class Report(_PicklableMappings):
    """The outcome of an audit: what was audited, with what, how long it took, and every finding."""

    target: TargetInfo
    findings: tuple[Finding, ...]
    checks: tuple[CheckRun, ...]
    seed: int
    budget: str
    started_at: str
    duration_s: float
    versions: Mapping[str, str]
    config: Mapping[str, JSONValue] = field(default_factory=dict)
    tool: str = "modelshield"
    schema_version: str = REPORT_SCHEMA_VERSION
    policy: PolicyResult | None = None  # the release policy's verdict, when one was given

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "checks", tuple(self.checks))
        object.__setattr__(self, "versions", _frozen_mapping(self.versions))
        object.__setattr__(self, "config", _frozen_mapping(self.config))

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    @property
    def complete(self) -> bool:
        """False when a check failed to run."""
        return all(c.status is not CheckStatus.ERROR for c in self.checks)

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= threshold)

    def counts(self) -> dict[str, int]:
        """Number of findings per severity, every severity present (zero included)."""
        counts = {s.value: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.value] += 1
        return counts

    def raise_for_severity(self, threshold: Severity | str) -> None:
        """Raise :class:`FindingsAboveThresholdError` if any finding is at or above ``threshold``."""
        hits = self.at_or_above(Severity.parse(threshold))
        if hits:
            raise FindingsAboveThresholdError(hits, Severity.parse(threshold))

    def sorted_findings(self) -> tuple[Finding, ...]:
        """Worst first, then by check and id: the order every renderer shows."""
        return tuple(sorted(self.findings, key=lambda f: (-f.severity.rank, f.check, f.id)))

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "schema_version": self.schema_version,
            "tool": self.tool,
            "versions": dict(self.versions),
            "target": self.target.to_dict(),
            "seed": self.seed,
            "budget": self.budget,
            "config": _to_json(self.config),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 6),
            "summary": {
                "counts": dict(self.counts()),
                "max_severity": self.max_severity.value if self.max_severity else None,
                "complete": self.complete,
            },
            "checks": [c.to_dict() for c in self.checks],
            "findings": [f.to_dict() for f in self.sorted_findings()],
            **({"policy": self.policy.to_dict()} if self.policy is not None else {}),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        return cls(
            schema_version=data["schema_version"],
            tool=data["tool"],
            versions=data["versions"],
            target=TargetInfo.from_dict(data["target"]),
            seed=int(data["seed"]),
            budget=data["budget"],
            config=data.get("config", {}),
            started_at=data["started_at"],
            duration_s=float(data["duration_s"]),
            checks=tuple(CheckRun.from_dict(c) for c in data["checks"]),
            findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            policy=PolicyResult.from_dict(data["policy"]) if data.get("policy") is not None else None,
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))
