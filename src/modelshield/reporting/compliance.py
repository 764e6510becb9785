"""Compliance mapping: which framework requirements a report's checks and findings are evidence for.

    >>> from modelshield.reporting.compliance import load_table
    >>> table = load_table()
    >>> [f.key for f in table.frameworks]
    ['nist_ai_rmf', 'eu_ai_act', 'gdpr']
    >>> table.for_finding("membership.leakage", "membership")["gdpr"][0]
    'Art. 5(1)(f)'

The mapping is a data table shipped with the package (``data/compliance.toml``), versioned, with the documents it
cites: the NIST AI RMF 1.0 subcategories, the EU AI Act (Regulation (EU) 2024/1689) articles and the GDPR articles.
It is keyed by what the checks produce: a check's name (what running it tests) and finding ids or patterns (what
a finding is evidence for). A finding that no pattern matches (a plug-in's) takes its check's mapping.

:func:`assess` turns a report into a compliance section, per framework and requirement: covered or not, the
evidence (finding ids, and the checks that ran, clean ones included: a clean run is evidence that the requirement
was tested) and the gap (no check that tests it ran, or none exists: "not tested by modelshield"). The mapping is
evidence for an assessor, never a certification.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from modelshield.errors import FileFormatError
from modelshield.findings import CheckStatus, Finding, JSONValue, Report, Severity

__all__ = [
    "COMPLIANCE_TABLE_PATH",
    "NOT_TESTED",
    "ComplianceSection",
    "ComplianceTable",
    "Framework",
    "FrameworkCoverage",
    "Requirement",
    "RequirementCoverage",
    "assess",
    "finding_compliance",
    "load_table",
    "parse_table",
]

#: The table shipped with the package.
COMPLIANCE_TABLE_PATH = Path(__file__).parent / "data" / "compliance.toml"

#: The gap of a requirement that no check of modelshield tests.
NOT_TESTED = "not tested by modelshield"

#: Requirement ids as each framework writes them.
_REQUIREMENT_ID = {
    "nist_ai_rmf": re.compile(r"^(GOVERN|MAP|MEASURE|MANAGE) \d+\.\d+$"),
    "eu_ai_act": re.compile(r"^Art\. \d+(\(\d+\))?(\([a-z]\))?(\((i|ii|iii|iv|v|vi|vii)\))?$"),
    "gdpr": re.compile(r"^Art\. \d+(\(\d+\))?(\([a-z]\))?$"),
}
_VERSION = re.compile(r"^\d{4}\.\d{2}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PATTERN = re.compile(r"^[a-z0-9*][a-z0-9_.*\-]*$")
_CHECK = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_COVERED_BY_RAN = frozenset({CheckStatus.PASSED, CheckStatus.FINDINGS})


@dataclass(frozen=True)
class Requirement:
    """One requirement of a framework: its id as the framework writes it, a short title, its text (quoted or
    closely paraphrased), where it is written (``citation``), and a note on what modelshield's evidence shows."""

    id: str
    title: str
    text: str
    citation: str
    note: str = ""


@dataclass(frozen=True)
class Framework:
    """A framework (``key`` as in reports, e.g. ``"eu_ai_act"``), its own version and date, the documents the
    table cites (``sources``) and the requirements in scope, in the table's order."""

    key: str
    name: str
    version: str
    published: str
    sources: tuple[str, ...]
    requirements: tuple[Requirement, ...]
    note: str = ""

    def requirement(self, requirement_id: str) -> Requirement:
        """The requirement ``requirement_id`` (KeyError if it is not in scope)."""
        for requirement in self.requirements:
            if requirement.id == requirement_id:
                return requirement
        raise KeyError(requirement_id)


@dataclass(frozen=True)
class ComplianceTable:
    """The mapping: frameworks, what each check tests and what each finding (id or ``*`` pattern) is evidence for;
    each mapping is framework key -> requirement ids, in the framework's order."""

    version: str
    reviewed: str
    frameworks: tuple[Framework, ...]
    checks: Mapping[str, Mapping[str, tuple[str, ...]]]
    findings: Mapping[str, Mapping[str, tuple[str, ...]]]

    def framework(self, key: str) -> Framework:
        """The framework ``key`` (KeyError if the table has none)."""
        for framework in self.frameworks:
            if framework.key == key:
                return framework
        raise KeyError(key)

    def patterns_for(self, finding_id: str) -> tuple[str, ...]:
        """The table's finding entries (ids or patterns) that match ``finding_id``; empty if none does."""
        return tuple(p for p in self.findings if fnmatch.fnmatchcase(finding_id, p))

    def for_check(self, check: str) -> dict[str, tuple[str, ...]]:
        """What running ``check`` tests: framework key -> requirement ids (every framework present)."""
        entry = self.checks.get(check, {})
        return {f.key: entry.get(f.key, ()) for f in self.frameworks}

    def checks_testing(self, framework: str, requirement_id: str) -> tuple[str, ...]:
        """The checks whose run tests ``requirement_id`` of ``framework``, in the table's order."""
        return tuple(name for name, entry in self.checks.items() if requirement_id in entry.get(framework, ()))

    def for_finding(self, finding_id: str, check: str | None = None) -> dict[str, tuple[str, ...]]:
        """What a finding is evidence for: the union of every entry matching ``finding_id``, or, when none does,
        its ``check``'s mapping (a plug-in's finding); framework key -> requirement ids, every framework present."""
        patterns = self.patterns_for(finding_id)
        if not patterns:
            return self.for_check(check) if check is not None else {f.key: () for f in self.frameworks}
        out: dict[str, tuple[str, ...]] = {}
        for framework in self.frameworks:
            wanted = {r for p in patterns for r in self.findings[p].get(framework.key, ())}
            out[framework.key] = tuple(r.id for r in framework.requirements if r.id in wanted)
        return out


def _strings(value: object, where: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} must be a list of strings.")
        return ()
    return tuple(value)


def _text(data: Mapping[str, Any], key: str, where: str, problems: list[str], *, required: bool = True) -> str:
    value = data.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        problems.append(f"{where}: {key!r} must be a non-empty string.")
        return ""
    return value


def _framework(key: str, data: object, problems: list[str]) -> Framework | None:
    where = f"frameworks.{key}"
    if not isinstance(data, dict):
        problems.append(f"{where} must be a table.")
        return None
    if key not in _REQUIREMENT_ID:
        problems.append(f"{where}: unknown framework; the table knows {', '.join(_REQUIREMENT_ID)}.")
        return None
    unknown = set(data) - {"name", "version", "published", "sources", "requirements", "note"}
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}.")
    published = _text(data, "published", where, problems)
    if published and not _DATE.match(published):
        problems.append(f"{where}: 'published' must be a date written YYYY-MM-DD, not {published!r}.")
    sources = _strings(data.get("sources"), f"{where}.sources", problems)
    if not sources or not all(s.strip() for s in sources):
        problems.append(f"{where}: at least one non-empty source is required.")
    requirements: list[Requirement] = []
    raw = data.get("requirements")
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: at least one requirement is required.")
        raw = []
    for i, item in enumerate(raw):
        at = f"{where}.requirements[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{at} must be a table.")
            continue
        unknown = set(item) - {"id", "title", "text", "citation", "note"}
        if unknown:
            problems.append(f"{at}: unknown keys {sorted(unknown)}.")
        requirement = Requirement(
            id=_text(item, "id", at, problems),
            title=_text(item, "title", at, problems),
            text=_text(item, "text", at, problems),
            citation=_text(item, "citation", at, problems),
            note=_text(item, "note", at, problems, required=False),
        )
        if requirement.id and not _REQUIREMENT_ID[key].match(requirement.id):
            problems.append(f"{at}: {requirement.id!r} is not a {key} requirement id.")
        if any(r.id == requirement.id for r in requirements):
            problems.append(f"{at}: {requirement.id!r} is listed twice.")
        requirements.append(requirement)
    return Framework(
        key=key,
        name=_text(data, "name", where, problems),
        version=_text(data, "version", where, problems),
        published=published,
        sources=sources,
        requirements=tuple(requirements),
        note=_text(data, "note", where, problems, required=False),
    )


def _mappings(
    section: str, data: object, frameworks: Sequence[Framework], key_pattern: re.Pattern[str], problems: list[str]
) -> Mapping[str, Mapping[str, tuple[str, ...]]]:
    if not isinstance(data, dict) or not data:
        problems.append(f"{section} must be a non-empty table.")
        return MappingProxyType({})
    known = {f.key: f for f in frameworks}
    out: dict[str, Mapping[str, tuple[str, ...]]] = {}
    for name, entry in data.items():
        where = f"{section}.{name!r}"
        if not key_pattern.match(name):
            problems.append(f"{where}: not a well-formed {section[:-1]} name.")
        if not isinstance(entry, dict) or not entry:
            problems.append(f"{where} must map at least one framework to requirement ids.")
            continue
        mapped: dict[str, tuple[str, ...]] = {}
        for key, ids in entry.items():
            framework = known.get(key)
            if framework is None:
                problems.append(f"{where}: unknown framework {key!r}.")
                continue
            values = _strings(ids, f"{where}.{key}", problems)
            if not values:
                problems.append(f"{where}.{key}: empty; leave the framework out instead.")
            in_scope = {r.id for r in framework.requirements}
            for value in values:
                if value not in in_scope:
                    problems.append(f"{where}.{key}: {value!r} is not a requirement of {key} in this table.")
            mapped[key] = tuple(r.id for r in framework.requirements if r.id in values)
        out[name] = MappingProxyType(mapped)
    return MappingProxyType(out)


def parse_table(text: str) -> ComplianceTable:
    """The table in ``text`` (TOML), validated: every framework with its version, date and sources, every
    requirement id well-formed and listed once, every mapping naming requirements in scope.

    Raises :class:`~modelshield.errors.FileFormatError` listing every problem found.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"The compliance table is not valid TOML: {exc}.") from exc
    problems: list[str] = []
    unknown = set(data) - {"version", "reviewed", "frameworks", "checks", "findings"}
    if unknown:
        problems.append(f"unknown top-level keys {sorted(unknown)}.")
    version = _text(data, "version", "table", problems)
    if version and not _VERSION.match(version):
        problems.append(f"table: 'version' must be written YYYY.MM, not {version!r}.")
    reviewed = _text(data, "reviewed", "table", problems)
    if reviewed and not _DATE.match(reviewed):
        problems.append(f"table: 'reviewed' must be a date written YYYY-MM-DD, not {reviewed!r}.")
    raw_frameworks = data.get("frameworks")
    if not isinstance(raw_frameworks, dict) or not raw_frameworks:
        problems.append("frameworks must be a non-empty table.")
        raw_frameworks = {}
    frameworks = tuple(f for f in (_framework(k, v, problems) for k, v in raw_frameworks.items()) if f is not None)
    checks = _mappings("checks", data.get("checks"), frameworks, _CHECK, problems)
    findings = _mappings("findings", data.get("findings"), frameworks, _PATTERN, problems)
    if problems:
        raise FileFormatError(
            "The compliance table is invalid:\n- " + "\n- ".join(problems),
            remedy="Fix the table's entries listed above.",
        )
    return ComplianceTable(version=version, reviewed=reviewed, frameworks=frameworks, checks=checks, findings=findings)


@cache
def load_table() -> ComplianceTable:
    """The table shipped with the package (:data:`COMPLIANCE_TABLE_PATH`), parsed once."""
    return parse_table(COMPLIANCE_TABLE_PATH.read_text(encoding="utf-8"))


def finding_compliance(finding: Finding, table: ComplianceTable | None = None) -> dict[str, tuple[str, ...]]:
    """What ``finding`` is evidence for: framework key -> requirement ids (every framework of the table present)."""
    return (table or load_table()).for_finding(finding.id, finding.check)


@dataclass(frozen=True)
class RequirementCoverage:
    """One requirement judged against a report: the checks that ran and test it, the findings that are evidence
    for it (worst first), and, when nothing covers it, the gap in words."""

    requirement: Requirement
    checks: tuple[str, ...]
    findings: tuple[Finding, ...]
    gap: str

    @property
    def covered(self) -> bool:
        """True when a check that tests the requirement ran, or a finding is evidence for it."""
        return bool(self.checks or self.findings)

    @property
    def worst(self) -> Severity | None:
        """The worst severity among the findings, None when there are none (a clean test, or no test)."""
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, JSONValue]:
        findings: list[JSONValue] = [
            {"id": f.id, "check": f.check, "severity": f.severity.value} for f in self.findings
        ]
        return {
            "id": self.requirement.id,
            "title": self.requirement.title,
            "citation": self.requirement.citation,
            "covered": self.covered,
            "checks": list(self.checks),
            "findings": findings,
            "worst": self.worst.value if self.worst else None,
            "gap": self.gap or None,
            "note": self.requirement.note,
        }


@dataclass(frozen=True)
class FrameworkCoverage:
    """A framework judged against a report: every requirement in scope, in the table's order."""

    framework: Framework
    requirements: tuple[RequirementCoverage, ...]

    @property
    def covered(self) -> tuple[RequirementCoverage, ...]:
        return tuple(r for r in self.requirements if r.covered)

    @property
    def gaps(self) -> tuple[RequirementCoverage, ...]:
        return tuple(r for r in self.requirements if not r.covered)

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "id": self.framework.key,
            "name": self.framework.name,
            "version": self.framework.version,
            "published": self.framework.published,
            "sources": list(self.framework.sources),
            "note": self.framework.note,
            "covered": len(self.covered),
            "in_scope": len(self.requirements),
            "requirements": [r.to_dict() for r in self.requirements],
        }


@dataclass(frozen=True)
class ComplianceSection:
    """A report's compliance section: per framework, what was tested, the evidence and the gaps."""

    table_version: str
    frameworks: tuple[FrameworkCoverage, ...]
    caveat: str = (
        "Evidence for an assessment, not a certification: a check that ran shows that a requirement was tested on "
        "this model and data under this budget, not that the system complies."
    )

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "table_version": self.table_version,
            "caveat": self.caveat,
            "frameworks": [f.to_dict() for f in self.frameworks],
        }


def _gap(testers: Sequence[str], statuses: Mapping[str, CheckStatus]) -> str:
    """Why nothing covers a requirement: no check tests it, or those that do did not run (or were skipped or
    failed) in this audit."""
    if not testers:
        return NOT_TESTED
    stopped = [c for c in testers if c in statuses]
    absent = [c for c in testers if c not in statuses]
    parts = []
    if stopped:
        parts.append(f"{', '.join(stopped)} {'was' if len(stopped) == 1 else 'were'} skipped or failed")
    if absent:
        parts.append(f"{', '.join(absent)} did not run")
    return "not tested in this run: " + "; ".join(parts)


def assess(report: Report, table: ComplianceTable | None = None) -> ComplianceSection:
    """The compliance section of ``report``: for each framework and requirement in scope, the checks that ran and
    test it (clean runs count), the findings that are evidence for it, and the gap when neither exists."""
    table = table or load_table()
    statuses = {c.name: c.status for c in report.checks}
    ran = [c.name for c in report.checks if c.status in _COVERED_BY_RAN]
    mapped = [(f, table.for_finding(f.id, f.check)) for f in report.sorted_findings()]
    coverage = []
    for framework in table.frameworks:
        rows = []
        for requirement in framework.requirements:
            testers = table.checks_testing(framework.key, requirement.id)
            checks = tuple(c for c in ran if c in testers)
            evidence = tuple(f for f, m in mapped if requirement.id in m[framework.key])
            gap = "" if checks or evidence else _gap(testers, statuses)
            rows.append(RequirementCoverage(requirement=requirement, checks=checks, findings=evidence, gap=gap))
        coverage.append(FrameworkCoverage(framework=framework, requirements=tuple(rows)))
    return ComplianceSection(table_version=table.version, frameworks=tuple(coverage))
