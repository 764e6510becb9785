"""Regressions between two audit reports of a model: what ``modelshield audit diff OLD.json NEW.json`` shows.

    >>> from modelshield.audit.diff import diff_reports
    >>> diff = diff_reports(old_report, new_report)  # doctest: +SKIP
    >>> [m.metric for m in diff.regressions]  # doctest: +SKIP

A regression is a finding that is new (at low severity or above) or worse in severity, or a metric that got worse
beyond noise: the metric's interval in the new report (``NAME_interval``, ``NAME_ci`` or ``NAME_low`` and
``NAME_high``, as the membership and inversion checks give them) does not overlap its interval in the old one.
A metric without intervals is compared but not judged for noise, and is never a regression by itself; metrics
whose better direction is unknown (counts, sizes, settings) are left out. Findings gone or better are listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from modelshield.findings import CheckStatus, Finding, JSONValue, Report, Severity

__all__ = ["METRIC_DIRECTIONS", "FindingChange", "MetricChange", "ReportDiff", "diff_reports"]

#: Metrics whose direction is known: True when higher is better, False when lower is better. A metric that is a
#: table (``robust_accuracy``: epsilon -> value) gives each row this direction. Other metrics are left out.
METRIC_DIRECTIONS: Mapping[str, bool] = {
    "test_accuracy": True,
    "balanced_accuracy": True,
    "clean_accuracy": True,
    "robust_accuracy": True,
    "robust_accuracy_at_reference": True,
    "median_minimal_l2_distance": True,
    "fraction_needed": True,
    "accuracy_gap": False,
    "loss_gap": False,
    "expected_calibration_error": False,
    "test_loss": False,
    "auc": False,
    "advantage": False,
    "vouched_odds": False,
    "attack_accuracy": False,
    "leakage": False,
    "non_member_leakage": False,
    "fidelity": False,
    "accuracy_loss_at_10pct": False,
    "demographic_parity_ratio": True,
    "equalized_odds_ratio": True,
    "demographic_parity_difference": False,
    "equalized_odds_difference": False,
    "accuracy_difference": False,
    "membership_auc_difference": False,
}


def _direction(metric: str) -> bool | None:
    if metric in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[metric]
    if metric.startswith("tpr_at_") and metric.endswith("_fpr"):  # membership: true positives at a low FPR
        return False
    return None


@dataclass(frozen=True)
class FindingChange:
    """One finding (by id and location) across two reports: ``new``, ``gone``, ``worse``, ``better`` or ``same``."""

    id: str
    location: str | None
    change: str
    old_severity: Severity | None
    new_severity: Severity | None
    regression: bool
    note: str = ""

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "id": self.id,
            "location": self.location,
            "change": self.change,
            "old_severity": self.old_severity.value if self.old_severity else None,
            "new_severity": self.new_severity.value if self.new_severity else None,
            "regression": self.regression,
            "note": self.note,
        }


@dataclass(frozen=True)
class MetricChange:
    """One numeric metric of a finding present in both reports.

    ``judged`` is False when no interval (``NAME_interval``, ``NAME_ci``, or ``NAME_low``/``NAME_high``) came with
    the metric in both reports: the change is shown but not judged for noise. ``beyond_noise`` is True when the two
    intervals do not overlap. ``direction`` is ``higher`` or ``lower`` (which is better), or None when unknown.
    """

    finding: str
    metric: str
    old: float
    new: float
    direction: str | None
    old_interval: tuple[float, float] | None
    new_interval: tuple[float, float] | None
    worse: bool
    judged: bool
    beyond_noise: bool

    @property
    def regression(self) -> bool:
        return self.worse and self.judged and self.beyond_noise

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "finding": self.finding,
            "metric": self.metric,
            "old": self.old,
            "new": self.new,
            "direction": self.direction,
            "old_interval": list(self.old_interval) if self.old_interval else None,
            "new_interval": list(self.new_interval) if self.new_interval else None,
            "worse": self.worse,
            "judged": self.judged,
            "beyond_noise": self.beyond_noise,
            "regression": self.regression,
        }


@dataclass(frozen=True)
class ReportDiff:
    """What changed between an old and a new audit report; :attr:`regressed` is what ``audit diff`` exits 1 on."""

    old: Report
    new: Report
    findings: tuple[FindingChange, ...]
    metrics: tuple[MetricChange, ...]
    notes: tuple[str, ...]

    @property
    def regressions(self) -> tuple[FindingChange | MetricChange, ...]:
        return (*(f for f in self.findings if f.regression), *(m for m in self.metrics if m.regression))

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def to_dict(self) -> dict[str, JSONValue]:
        def side(report: Report) -> dict[str, JSONValue]:
            return {
                "target": report.target.name,
                "model_sha256": report.target.model_sha256,
                "started_at": report.started_at,
                "budget": report.budget,
                "seed": report.seed,
            }

        return {
            "old": side(self.old),
            "new": side(self.new),
            "regressed": self.regressed,
            "regressions": len(self.regressions),
            "notes": list(self.notes),
            "findings": [f.to_dict() for f in self.findings],
            "metrics": [m.to_dict() for m in self.metrics],
        }


def _interval(metrics: Mapping[str, JSONValue], name: str) -> tuple[float, float] | None:
    """The interval that comes with metric ``name``, if any."""
    for key in (f"{name}_interval", f"{name}_ci"):
        value = metrics.get(key)
        if isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value):
            low, high = (float(v) for v in value if isinstance(v, int | float))
            return (min(low, high), max(low, high))
    low_v, high_v = metrics.get(f"{name}_low"), metrics.get(f"{name}_high")
    if _is_number(low_v) and _is_number(high_v) and isinstance(low_v, int | float) and isinstance(high_v, int | float):
        return (float(min(low_v, high_v)), float(max(low_v, high_v)))
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(metrics: Mapping[str, JSONValue]) -> dict[str, tuple[float, str, tuple[float, float] | None]]:
    """Each numeric metric (a table's rows as ``name[row]``): its value, the base name, and its interval."""
    out: dict[str, tuple[float, str, tuple[float, float] | None]] = {}
    for name, value in metrics.items():
        if _is_number(value) and isinstance(value, int | float):
            out[name] = (float(value), name, _interval(metrics, name))
        elif isinstance(value, Mapping) and _direction(name) is not None:
            for row, cell in value.items():
                if _is_number(cell) and isinstance(cell, int | float):
                    out[f"{name}[{row}]"] = (float(cell), name, None)
    return out


def _key(finding: Finding) -> tuple[str, str | None]:
    return (finding.id, finding.location)


def diff_reports(old: Report, new: Report) -> ReportDiff:
    """The regressions from ``old`` to ``new``: findings new (low and up) or worse in severity, and metrics worse
    beyond the noise that their intervals show. Findings gone, better, and changes not judged are listed too."""
    notes: list[str] = []
    if old.target.name != new.target.name or old.target.model_sha256 != new.target.model_sha256:
        notes.append(
            f"The reports are about different models: {old.target.name} (sha256 "
            f"{(old.target.model_sha256 or 'unknown')[:16]}) and {new.target.name} (sha256 "
            f"{(new.target.model_sha256 or 'unknown')[:16]})."
        )
    if old.budget != new.budget:
        notes.append(f"The budgets differ ({old.budget} and {new.budget}): metrics are measured with different effort.")
    if not new.complete:
        failed = ", ".join(c.name for c in new.checks if c.status is CheckStatus.ERROR)
        notes.append(f"The new audit is incomplete (failed to run: {failed}): findings may be missing from it.")
    old_findings = {_key(f): f for f in old.findings}
    new_findings = {_key(f): f for f in new.findings}
    ran = {c.name for c in new.checks if c.status in (CheckStatus.PASSED, CheckStatus.FINDINGS)}
    changes: list[FindingChange] = []
    metrics: list[MetricChange] = []
    for key in [*old_findings, *(k for k in new_findings if k not in old_findings)]:
        before, after = old_findings.get(key), new_findings.get(key)
        if before is None and after is not None:
            regression = after.severity >= Severity.LOW
            changes.append(FindingChange(key[0], key[1], "new", None, after.severity, regression))
        elif after is None and before is not None:
            note = "" if before.check in ran else f"the {before.check} check did not run in the new audit"
            changes.append(FindingChange(key[0], key[1], "gone", before.severity, None, False, note))
        elif before is not None and after is not None:
            change = (
                "worse"
                if after.severity > before.severity
                else "better"
                if after.severity < before.severity
                else "same"
            )
            changes.append(FindingChange(key[0], key[1], change, before.severity, after.severity, change == "worse"))
            metrics += _metric_changes(before, after)
    order = {"worse": 0, "new": 1, "gone": 2, "better": 3, "same": 4}
    changes.sort(key=lambda c: (order[c.change], -(c.new_severity or c.old_severity or Severity.INFO).rank, c.id))
    metrics.sort(key=lambda m: (not m.regression, not m.worse, m.finding, m.metric))
    return ReportDiff(old=old, new=new, findings=tuple(changes), metrics=tuple(metrics), notes=tuple(notes))


def _metric_changes(before: Finding, after: Finding) -> list[MetricChange]:
    old_values, new_values = _numbers(before.metrics), _numbers(after.metrics)
    out = []
    for name, (old_value, base, old_interval) in old_values.items():
        if name not in new_values or base.endswith(("_low", "_high")):
            continue
        new_value, _, new_interval = new_values[name]
        direction = _direction(base)
        if direction is None or old_value == new_value:
            continue  # counts, sizes and settings, or nothing changed
        worse = new_value < old_value if direction else new_value > old_value
        judged = old_interval is not None and new_interval is not None
        beyond = bool(
            judged
            and old_interval is not None
            and new_interval is not None
            and (new_interval[0] > old_interval[1] or new_interval[1] < old_interval[0])
        )
        out.append(
            MetricChange(
                finding=after.id,
                metric=name,
                old=old_value,
                new=new_value,
                direction="higher" if direction else "lower",
                old_interval=old_interval,
                new_interval=new_interval,
                worse=worse,
                judged=judged,
                beyond_noise=beyond,
            )
        )
    return out
