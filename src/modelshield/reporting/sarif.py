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

Given a ``source_root`` (the CLI's ``--source-root``, by default the current directory), the files the report is
about are named relative to it with ``uriBaseId`` ``SRCROOT``, which the run's ``originalUriBaseIds`` defines:
dashboards map such results onto the repository, as they cannot map an absolute path on the machine that ran the
scan. A finding inside an archive (``model.pt!archive/data.pkl``) points at the archive file, and names the member
as a logical location.

A release policy's verdict (``Report.policy``) is in the run's ``properties.policy``, and each rule that failed
is also a result of the rule ``policy.rule-failed`` (level ``error``, at the model file), so that dashboards, which
show results and not properties, show why the release was refused. ``invocations[].executionSuccessful`` keeps its
SARIF meaning: whether every check ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from modelshield._version import __version__
from modelshield.findings import ATLAS_TECHNIQUES, CheckStatus, Finding, PolicyResult, Report, Severity
from modelshield.reporting.interface import SECURITY_SEVERITY

__all__ = ["POLICY_RULE_ID", "SARIF_SCHEMA", "render_sarif", "sarif_document", "sarif_log"]

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


_SRCROOT = "SRCROOT"


def _location(location: str, files: Sequence[str], source_root: str | None) -> dict[str, Any]:
    """The SARIF location of a finding: relative to ``source_root`` when it is one of ``files`` (or a member of
    one) under it; as a plain URI reference otherwise."""
    artifact, member = location, None
    for path in sorted(files, key=len, reverse=True):  # the longest file that the location names
        if location == path or location.startswith(path + "!"):
            artifact, member = path, location[len(path) + 1 :] or None
            break
    uri: dict[str, Any] = {"uri": _uri(artifact)}
    if source_root is not None and artifact in files:
        relative = os.path.relpath(os.path.abspath(artifact), source_root)
        if relative != ".." and not relative.startswith(".." + os.sep) and not os.path.isabs(relative):
            uri = {"uri": quote(Path(relative).as_posix(), safe="/"), "uriBaseId": _SRCROOT}
    found: dict[str, Any] = {"physicalLocation": {"artifactLocation": uri}}
    if member is not None:
        found["logicalLocations"] = [{"name": member, "fullyQualifiedName": location, "kind": "resource"}]
    return found


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
    files: Sequence[str] = (),
    source_root: str | Path | None = None,
) -> dict[str, Any]:
    """A SARIF log (one run) of any findings; the audit and scan renderers are thin wrappers over it.

    ``default_location`` stands for findings without a location of their own; ``complete`` is False when part
    of the work failed, and ``errors`` say what (as tool execution notifications). ``automation_id`` is the
    SARIF ``runAutomationDetails.id`` ("category/": code scanning keeps one analysis per category). ``files``
    are the paths of the files the findings are about; those under ``source_root`` are named relative to it.
    """
    root = os.path.abspath(source_root) if source_root is not None else None
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
                "locations": [_location(location, files, root)],
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
    run_root = {"originalUriBaseIds": {_SRCROOT: {"uri": Path(root).as_uri() + "/"}}} if root is not None else {}
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
                **run_root,
            }
        ],
    }


def sarif_document(report: Report, *, source_root: str | Path | None = None) -> dict[str, Any]:
    """The SARIF log of an audit report, as a dict; the model file is named relative to ``source_root`` when it
    lies under it."""
    document = sarif_log(
        report.findings,
        default_location=report.target.model_path or report.target.name,
        complete=report.complete,
        automation_id=f"modelshield/{report.target.name}/",
        start_time=report.started_at,
        errors=[f"Check {c.name} failed: {c.reason}" for c in report.checks if c.status is CheckStatus.ERROR],
        properties={"target": report.target.to_dict(), "seed": report.seed, "budget": report.budget},
        files=[report.target.model_path] if report.target.model_path else [],
        source_root=source_root,
    )
    if report.policy is not None:
        files = [report.target.model_path] if report.target.model_path else []
        root = os.path.abspath(source_root) if source_root is not None else None
        where = _location(report.target.model_path or report.target.name or "model", files, root)
        _add_policy(document, report.policy, where)
    return document


POLICY_RULE_ID = "policy.rule-failed"


def _policy_rule() -> dict[str, Any]:
    return {
        "id": POLICY_RULE_ID,
        "name": "PolicyRuleFailed",
        "shortDescription": {"text": "A rule of the release policy failed"},
        "fullDescription": {
            "text": "The audit report does not meet a rule of the release policy given with --policy: the model "
            "must not be released until it does."
        },
        "help": {
            "text": "Fix what the rule measures (or, if the rule is wrong, the policy), audit again, and release the "
            "model once every rule holds.",
            "markdown": "Fix what the rule measures (or, if the rule is wrong, the policy), audit again, and release "
            "the model once every rule holds.",
        },
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["security", "machine-learning", "release-policy"], "security-severity": "8.0"},
    }


def _add_policy(document: dict[str, Any], policy: PolicyResult, location: dict[str, Any]) -> None:
    """The policy's verdict into the run: its properties, and one result per failed rule."""
    run = document["runs"][0]
    run["properties"]["policy"] = policy.to_dict()
    if not policy.failed:
        return
    rules = run["tool"]["driver"]["rules"]
    index = len(rules)
    rules.append(_policy_rule())
    for rule in policy.failed:
        measured = "not measured" if rule.measured is None else str(rule.measured)
        fingerprint = hashlib.sha256(
            "\x00".join([POLICY_RULE_ID, policy.policy, rule.rule]).encode("utf-8", "surrogatepass")
        ).hexdigest()
        run["results"].append(
            {
                "ruleId": POLICY_RULE_ID,
                "ruleIndex": index,
                "level": "error",
                "message": {
                    "text": f"Release policy {policy.policy}: rule {rule.rule} failed (measured {measured}, "
                    f"required {rule.bound}). {rule.message}"
                },
                "locations": [location],
                "partialFingerprints": {"modelshieldFinding/v1": fingerprint},
                "properties": rule.to_dict(),
            }
        )


def render_sarif(report: Report, *, source_root: str | Path | None = None) -> str:
    """The report as a SARIF 2.1.0 JSON document (see :func:`sarif_document` for ``source_root``)."""
    return json.dumps(sarif_document(report, source_root=source_root), indent=2, allow_nan=False)
