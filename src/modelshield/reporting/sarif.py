"""SARIF 2.1.0 output, for code-scanning dashboards (GitHub code scanning and others).

    >>> from modelshield.reporting import render_sarif
    >>> sarif = render_sarif(report)  # doctest: +SKIP

One rule per finding id, one result per finding. ``level`` follows severity (critical/high: error, medium:
warning, low/info: note) and ``properties.security-severity`` gives dashboards a score to rank by. Every result
names a location (the finding's, else the model file, else the target), and a fingerprint stable across runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from modelshield import __version__
from modelshield.findings import ATLAS_TECHNIQUES, Finding, Report, Severity
from modelshield.reporting.interface import SECURITY_SEVERITY

__all__ = ["SARIF_SCHEMA", "render_sarif", "sarif_document", "sarif_log"]

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def _uri(location: str) -> str:
    """A URI reference for a path: relative paths as they are (POSIX separators), absolute ones as file URIs."""
    if "://" in location:
        return location
    windows = PureWindowsPath(location)
    if windows.drive:
        return windows.as_uri()
    path = PurePosixPath(location.replace("\\", "/"))
    return path.as_uri() if path.is_absolute() else str(path)


def _rule(finding: Finding) -> dict[str, Any]:
    tags = ["security", "machine-learning"]
    if finding.owasp is not None:
        tags.append(f"OWASP-{finding.owasp.value}")
    tags += list(finding.atlas)
    atlas = "; ".join(f"{t} ({ATLAS_TECHNIQUES.get(t, 'MITRE ATLAS')})" for t in finding.atlas)
    owasp = f"OWASP {finding.owasp.value} {finding.owasp.label}" if finding.owasp else ""
    mapping = ". ".join(filter(None, [owasp, f"MITRE ATLAS: {atlas}" if atlas else ""]))
    help_text = " ".join(filter(None, [finding.remediation, mapping]))
    return {
        "id": finding.id,
        "name": "".join(part.capitalize() for part in finding.id.replace("-", ".").split(".")),
        "shortDescription": {"text": finding.title},
        "fullDescription": {"text": finding.description or finding.title},
        "help": {
            "text": help_text or finding.title,
            "markdown": f"**Remediation:** {finding.remediation or 'see the description'}\n\n{mapping}".strip(),
        },
        "defaultConfiguration": {"level": _LEVEL[finding.severity]},
        "properties": {"tags": tags, "security-severity": SECURITY_SEVERITY[finding.severity]},
    }


def sarif_log(
    findings: Sequence[Finding],
    *,
    default_location: str,
    complete: bool,
    automation_id: str,
    start_time: str | None = None,
    errors: Sequence[str] = (),
    properties: dict[str, Any] | None = None,
    fingerprint_salt: str = "",
) -> dict[str, Any]:
    """A SARIF log (one run) of any findings; the audit and scan renderers are thin wrappers over it."""
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, f.check, f.id))
    rules: dict[str, dict[str, Any]] = {}
    for finding in ordered:  # worst first, so each rule carries the worst severity seen for its id
        rules.setdefault(finding.id, _rule(finding))
    index = {rule_id: i for i, rule_id in enumerate(rules)}
    results = []
    for finding in ordered:
        location = finding.location or default_location
        fingerprint = hashlib.sha256(
            f"{finding.id}\x00{finding.check}\x00{location}\x00{fingerprint_salt}".encode()
        ).hexdigest()
        results.append(
            {
                "ruleId": finding.id,
                "ruleIndex": index[finding.id],
                "level": _LEVEL[finding.severity],
                "message": {"text": f"{finding.title}. {finding.description}".strip()},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(location)}}}],
                "partialFingerprints": {"modelshieldFinding/v1": fingerprint},
                "properties": {
                    "severity": finding.severity.value,
                    "check": finding.check,
                    "metrics": finding.to_dict()["metrics"],
                },
            }
        )
    invocation: dict[str, Any] = {
        "executionSuccessful": complete,
        "toolExecutionNotifications": [{"level": "error", "message": {"text": text}} for text in errors],
    }
    if start_time:
        invocation["startTimeUtc"] = start_time
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "modelshield",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": list(rules.values()),
                    }
                },
                "invocations": [invocation],
                "automationDetails": {"id": automation_id},
                "results": results,
                "properties": properties or {},
            }
        ],
    }


def sarif_document(report: Report) -> dict[str, Any]:
    """The SARIF log of an audit report."""
    return sarif_log(
        report.findings,
        default_location=report.target.model_path or report.target.name,
        complete=report.complete,
        automation_id=f"modelshield/{report.target.name}/",
        start_time=report.started_at,
        errors=[f"Check {c.name} failed: {c.reason}" for c in report.checks if c.status.value == "error"],
        properties={"target": report.target.to_dict(), "seed": report.seed, "budget": report.budget},
        fingerprint_salt=report.target.model_sha256 or "",
    )


def render_sarif(report: Report) -> str:
    """The report as a SARIF 2.1.0 JSON document."""
    return json.dumps(sarif_document(report), indent=2, allow_nan=False)
