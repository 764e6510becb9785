"""SARIF 2.1.0 output, for code-scanning dashboards (GitHub code scanning and others).

    >>> from modelshield.reporting import render_sarif
    >>> sarif = render_sarif(report)  # doctest: +SKIP
    >>> json.loads(sarif)["version"]  # doctest: +SKIP
    '2.1.0'

One rule per finding id, one result per finding. ``level`` follows severity (critical/high: error, medium:
warning, low/info: note) and ``properties.security-severity`` gives dashboards a score to rank by. Every result
names a location (the finding's, else the model file, else the target) as a URI reference: relative paths stay
relative (code scanning resolves them against the repository), absolute paths become ``file:`` URIs, anything
else is percent-encoded. ``partialFingerprints`` hash the rule id, the check and the location, so a result keeps
its identity across runs (and across retrained versions of the same model file).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from modelshield._version import __version__
from modelshield.findings import ATLAS_TECHNIQUES, CheckStatus, Finding, Report, Severity
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

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_WINDOWS_ABSOLUTE = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_RESERVED = ":/?#[]@!$&'()*+,;=%"  # RFC 3986 gen-delims and sub-delims, and '%' of existing escapes


def _uri(location: str) -> str:
    """A valid URI reference for a location: a path, a URL or a name such as ``zoo:digits-cnn``."""
    if _URL.match(location):  # already a URL: encode only what a URI cannot hold (spaces, non-ASCII, ...)
        return quote(_STRAY_PERCENT.sub("%25", location), safe=_RESERVED)
    if _WINDOWS_ABSOLUTE.match(location):
        try:
            return PureWindowsPath(location).as_uri()
        except ValueError:
            pass
    path = location.replace("\\", "/")
    if path.startswith("/"):
        return PurePosixPath(path).as_uri()
    return quote(path, safe="/")  # relative: ':' is encoded too, so "zoo:x" is not read as a scheme


def _utc(timestamp: str | None) -> str | None:
    """An ISO 8601 time with an offset, in UTC with a ``Z`` as SARIF requires; None if it has no offset."""
    if not timestamp:
        return None
    try:
        when = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None  # a local time of unknown zone: leave it out rather than guess
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))  # SARIF tags must be unique


def _message(finding: Finding) -> str:
    title, description = finding.title.strip(), finding.description.strip()
    if title and description:
        return f"{title}{'' if title[-1] in '.!?' else '.'} {description}"
    return title or description or finding.id


def _rule(finding: Finding) -> dict[str, Any]:
    """The reportingDescriptor for a finding id (code scanning shows its descriptions and help)."""
    tags = ["security", "machine-learning"]
    if finding.owasp is not None:
        tags.append(f"OWASP-{finding.owasp.value}")
    tags += finding.atlas
    owasp = f"OWASP ML Top 10 {finding.owasp.value}: {finding.owasp.label}" if finding.owasp else ""
    atlas = [f"MITRE ATLAS {t}: {ATLAS_TECHNIQUES.get(t, 'technique')}" for t in _unique(finding.atlas)]
    mapping = [m for m in (owasp, *atlas) if m]
    remediation = finding.remediation.strip()
    help_text = "\n".join(filter(None, [remediation, *mapping])) or _message(finding)
    help_markdown = "\n\n".join(
        filter(
            None,
            [
                f"**Remediation:** {remediation}" if remediation else "",
                "\n".join(f"- {m}" for m in mapping),
            ],
        )
    )
    return {
        "id": finding.id,
        "name": "".join(part.capitalize() for part in re.split(r"[._\-]+", finding.id)),
        "shortDescription": {"text": finding.title.strip() or finding.id},
        "fullDescription": {"text": finding.description.strip() or finding.title.strip() or finding.id},
        "help": {"text": help_text, "markdown": help_markdown or help_text},
        "defaultConfiguration": {"level": _LEVEL[finding.severity]},
        "properties": {"tags": _unique(tags), "security-severity": SECURITY_SEVERITY[finding.severity]},
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
    """A SARIF log (one run) of any findings; the audit and scan renderers are thin wrappers over it.

    ``default_location`` stands for findings without a location of their own; ``complete`` is False when part
    of the work failed, and ``errors`` say what (as tool execution notifications). ``automation_id`` is the
    SARIF ``runAutomationDetails.id`` ("category/": code scanning keeps one analysis per category).
    """
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, f.check, f.id))
    rules: dict[str, dict[str, Any]] = {}
    for finding in ordered:  # worst first, so each rule carries the worst severity seen for its id
        rules.setdefault(finding.id, _rule(finding))
    index = {rule_id: i for i, rule_id in enumerate(rules)}
    results = []
    for finding in ordered:
        location = finding.location or default_location or "model"
        fingerprint = hashlib.sha256(
            "\x00".join([finding.id, finding.check, location, fingerprint_salt]).encode("utf-8", "surrogatepass")
        ).hexdigest()
        results.append(
            {
                "ruleId": finding.id,
                "ruleIndex": index[finding.id],
                "level": _LEVEL[finding.severity],
                "message": {"text": _message(finding)},
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
    start = _utc(start_time)
    if start:
        invocation["startTimeUtc"] = start
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
    """The SARIF log of an audit report, as a dict."""
    return sarif_log(
        report.findings,
        default_location=report.target.model_path or report.target.name,
        complete=report.complete,
        automation_id=f"modelshield/{report.target.name}/",
        start_time=report.started_at,
        errors=[f"Check {c.name} failed: {c.reason}" for c in report.checks if c.status is CheckStatus.ERROR],
        properties={"target": report.target.to_dict(), "seed": report.seed, "budget": report.budget},
    )


def render_sarif(report: Report) -> str:
    """The report as a SARIF 2.1.0 JSON document."""
    return json.dumps(sarif_document(report), indent=2, allow_nan=False)
