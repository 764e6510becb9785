"""The compliance mapping: the shipped table is well-formed and maps every built-in finding, a report's compliance
section says what was covered and what was not, and every renderer shows it (JSON schema-valid, HTML escaped)."""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rich.console import Console

import modelshield
from modelshield.errors import FileFormatError
from modelshield.findings import CheckRun, CheckStatus, Finding, OwaspMl, Report, Severity
from modelshield.reporting import html as html_module
from modelshield.reporting import render_html, render_json, render_terminal
from modelshield.reporting.compliance import (
    COMPLIANCE_TABLE_PATH,
    NOT_TESTED,
    ComplianceTable,
    assess,
    finding_compliance,
    load_table,
    parse_table,
)

PACKAGE = Path(modelshield.__file__).parent
HOSTILE = "<script>alert('x')</script>"

# Calls that make a finding with the finding id as their first argument (the scanner's helper and its wrappers).
_ID_FIRST = {"scan_finding", "problem"}
# Checks whose ids are made at run time: one per sensitive feature, named after it (and its membership gap).
_ID_FAMILIES = {
    "fairness.py": ("fairness.example-feature", "fairness.example-feature.membership"),
    "evasion.py": ("evasion.by-group.example-feature",),
}


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _literals(node: ast.expr | None) -> set[str] | None:
    """The strings an id expression can take: a literal, or a conditional between literals; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _literals(node.body), _literals(node.orelse)
        return body | orelse if body is not None and orelse is not None else None
    return None


def _ids_in(path: Path) -> set[str]:
    """The finding ids a module of the checks or the scanner writes as literals; any other id expression fails the
    test (so that a new dynamic id is noticed), except the forwarding of a wrapper's own argument."""
    found: set[str] = set()
    for call in _calls(ast.parse(path.read_text("utf-8"))):
        name = _name(call)
        if name == "Finding":
            value = next((k.value for k in call.keywords if k.arg == "id"), None)
        elif name in _ID_FIRST and call.args:
            value = call.args[0]
        else:
            continue
        literals = _literals(value)
        if literals is not None:
            found |= literals
        elif isinstance(value, ast.Name) and value.id == "rule":
            continue  # scan_finding(rule, ...) inside a wrapper: the wrapper's callers pass the literal
        elif isinstance(value, ast.JoinedStr) and path.name == "signature.py":
            continue  # f"signature.{rule}": enumerated by running the check's judge, below
        elif path.name in _ID_FAMILIES:
            found.update(_ID_FAMILIES[path.name])  # ids made at run time: one example of each family
        else:
            raise AssertionError(f"{path}:{call.lineno}: a finding id that is not a literal: {ast.unparse(call)}")
    return found


def builtin_finding_ids() -> set[str]:
    """Every finding id that the built-in checks and the model-file scanner can report."""
    from modelshield.audit.checks.signature import SIGNATURE, SignatureMeasurement, SignatureStatus

    sources = [*sorted((PACKAGE / "audit" / "checks").glob("*.py"))]
    sources += sorted((PACKAGE / "supply_chain" / "scan").rglob("*.py"))
    ids = set().union(*(_ids_in(p) for p in sources))
    for status in SignatureStatus:
        for finding in SIGNATURE.judge(SignatureMeasurement(status, "m.skops", "m.skops.sig", detail="d")):
            ids.add(finding.id)
    return ids


def test_the_enumeration_finds_the_checks_and_the_scanners_ids() -> None:
    ids = builtin_finding_ids()
    known = {"evasion.robust-accuracy", "membership.leakage", "pickle.dangerous-import", "pickle.dangerous-call",
             "signature.unsigned", "signature.invalid", "safetensors.header", "inversion.not-assessed"}  # fmt: skip
    assert known <= ids
    assert len(ids) > 60


def test_the_shipped_table_loads_and_is_versioned_with_sources() -> None:
    table = load_table()
    assert re.fullmatch(r"\d{4}\.\d{2}", table.version)
    assert [f.key for f in table.frameworks] == ["nist_ai_rmf", "eu_ai_act", "gdpr"]
    nist, eu, gdpr = table.frameworks
    assert (nist.version, eu.version, gdpr.version) == ("1.0", "Regulation (EU) 2024/1689", "Regulation (EU) 2016/679")
    assert any("NIST AI 100-1" in s for s in nist.sources)
    for framework in table.frameworks:
        assert framework.sources and all(s.strip() for s in framework.sources)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", framework.published)
        for requirement in framework.requirements:
            assert requirement.title and requirement.text and requirement.citation


def test_the_table_ships_inside_the_package_and_names_no_host() -> None:
    assert COMPLIANCE_TABLE_PATH.is_file()
    assert COMPLIANCE_TABLE_PATH.is_relative_to(PACKAGE)
    text = COMPLIANCE_TABLE_PATH.read_text("utf-8").lower()
    assert "http" not in text and "www." not in text and "pypi" not in text  # citations, not addresses


def test_the_requirements_auditors_look_for_are_in_scope() -> None:
    table = load_table()
    nist = {r.id for r in table.framework("nist_ai_rmf").requirements}
    eu = {r.id for r in table.framework("eu_ai_act").requirements}
    gdpr = {r.id for r in table.framework("gdpr").requirements}
    assert {"MEASURE 2.5", "MEASURE 2.7", "MEASURE 2.9", "MEASURE 2.10", "MEASURE 2.11", "GOVERN 6.1"} <= nist
    assert {"Art. 9(6)", "Art. 10(2)(f)", "Art. 11(1)", "Art. 12(1)", "Art. 13(1)", "Art. 14(1)"} <= eu
    assert {"Art. 15(1)", "Art. 15(3)", "Art. 15(4)", "Art. 15(5)"} <= eu
    assert {"Art. 5(1)(f)", "Art. 25(1)", "Art. 32(1)(b)", "Art. 35(7)(c)"} <= gdpr
    assert "data poisoning" in table.framework("eu_ai_act").requirement("Art. 15(5)").text


def test_every_builtin_finding_id_is_mapped() -> None:
    table = load_table()
    unmapped = sorted(i for i in builtin_finding_ids() if not table.patterns_for(i))
    assert unmapped == [], f"add these finding ids to {COMPLIANCE_TABLE_PATH.name}: {unmapped}"
    for finding_id in builtin_finding_ids():
        assert any(table.for_finding(finding_id).values()), finding_id


def test_every_finding_entry_matches_a_builtin_id() -> None:
    ids = builtin_finding_ids()
    dead = [p for p in load_table().findings if not any(fnmatch.fnmatchcase(i, p) for i in ids)]
    assert dead == [], f"entries that match no built-in finding id: {dead}"


def test_every_builtin_check_has_an_entry_and_every_entry_is_a_check() -> None:
    from modelshield.audit.registry import builtin_checks

    names = {c.name for c in builtin_checks()}
    assert names <= set(load_table().checks)
    for name in load_table().checks:  # a built-in check, or one whose module is on its way in
        assert name in names or (PACKAGE / "audit" / "checks" / f"{name}.py").is_file(), name


def test_a_finding_maps_to_its_entries_or_else_its_checks() -> None:
    table = load_table()
    assert table.for_finding("membership.leakage", "membership")["gdpr"] == (
        "Art. 5(1)(f)", "Art. 25(1)", "Art. 32(1)(b)", "Art. 35(7)(c)",
    )  # fmt: skip
    assert table.for_finding("pickle.dangerous-call", "supply")["eu_ai_act"] == ("Art. 15(5)",)
    assert table.for_finding("evasion.unreliable-evaluation")["nist_ai_rmf"] == ("MEASURE 2.7", "MEASURE 2.13")
    # a plug-in's finding takes its check's mapping; one of an unknown check maps to nothing
    assert table.for_finding("evasion.plugin-rule", "evasion") == table.for_check("evasion")
    assert table.for_finding("acme.rule", "acme") == {"nist_ai_rmf": (), "eu_ai_act": (), "gdpr": ()}


_MINIMAL = """
version = "2026.12"
reviewed = "2026-12-04"
[frameworks.gdpr]
name = "GDPR"
version = "2016/679"
published = "2016-05-04"
sources = ["Regulation (EU) 2016/679"]
[[frameworks.gdpr.requirements]]
id = "Art. 32(1)(b)"
title = "t"
text = "x"
citation = "c"
[checks.membership]
gdpr = ["Art. 32(1)(b)"]
[findings."membership.*"]
gdpr = ["Art. 32(1)(b)"]
"""


def test_a_minimal_table_parses() -> None:
    table = parse_table(_MINIMAL)
    assert table.for_finding("membership.leakage")["gdpr"] == ("Art. 32(1)(b)",)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('id = "Art. 32(1)(b)"', 'id = "Article 32"'), "is not a gdpr requirement id"),
        (('sources = ["Regulation (EU) 2016/679"]', "sources = []"), "at least one non-empty source"),
        (('version = "2026.12"', 'version = "latest"'), "'version' must be written YYYY.MM"),
        (('gdpr = ["Art. 32(1)(b)"]\n[findings', 'gdpr = ["Art. 99"]\n[findings'), "'Art. 99' is not"),
        (('[findings."membership.*"]', '[findings."Membership"]'), "not a well-formed finding name"),
        (("[checks.membership]", '[checks.membership]\nnist = ["MAP 1.1"]'), "unknown framework 'nist'"),
        (('published = "2016-05-04"', 'published = "May 2016"'), "'published' must be a date"),
    ],
)
def test_a_malformed_table_is_refused_with_its_problem(change: tuple[str, str], problem: str) -> None:
    old, new = change
    assert old in _MINIMAL
    with pytest.raises(FileFormatError, match=re.escape(problem)):
        parse_table(_MINIMAL.replace(old, new, 1))


def test_every_problem_is_listed_at_once() -> None:
    broken = _MINIMAL.replace('sources = ["Regulation (EU) 2016/679"]', "sources = []").replace(
        'version = "2026.12"', 'version = "x"'
    )
    with pytest.raises(FileFormatError) as info:
        parse_table(broken)
    assert "at least one non-empty source" in str(info.value) and "YYYY.MM" in str(info.value)
    with pytest.raises(FileFormatError, match="not valid TOML"):
        parse_table("version = ")


def _finding(finding_id: str, check: str, severity: Severity = Severity.HIGH, **changes: Any) -> Finding:
    return Finding(
        id=finding_id, check=check, title=f"{finding_id} title", severity=severity, description="d", **changes
    )


@pytest.fixture
def audited(report_factory: Callable[..., Report]) -> Report:
    """baseline ran clean, membership reported a leak, evasion was skipped, nothing else ran."""
    return report_factory(
        findings=(
            _finding("membership.leakage", "membership", owasp=OwaspMl.ML04, atlas=("AML.T0024.000",)),
            _finding("baseline.performance", "baseline", Severity.INFO),
        ),
        checks=(
            CheckRun("baseline", CheckStatus.PASSED, 0.1),
            CheckRun("membership", CheckStatus.FINDINGS, 0.2),
            CheckRun("evasion", CheckStatus.SKIPPED, 0.0, reason="needs gradients"),
        ),
    )


def _row(report: Report, framework: str, requirement: str) -> Any:
    coverage = next(f for f in assess(report).frameworks if f.framework.key == framework)
    return next(r for r in coverage.requirements if r.requirement.id == requirement)


def test_a_clean_check_is_evidence_that_its_requirements_were_tested(audited: Report) -> None:
    row = _row(audited, "nist_ai_rmf", "MEASURE 2.3")  # baseline's, with only an info finding
    assert row.covered and row.checks == ("baseline",) and row.gap == ""
    row = _row(audited, "gdpr", "Art. 32(1)(d)")  # tested by the membership check; the finding is not evidence for it
    assert row.covered and row.checks == ("membership",) and row.findings == ()
    assert row.worst is None


def test_findings_are_evidence_for_their_requirements(audited: Report) -> None:
    row = _row(audited, "gdpr", "Art. 5(1)(f)")
    assert [f.id for f in row.findings] == ["membership.leakage"] and row.worst is Severity.HIGH
    row = _row(audited, "nist_ai_rmf", "MEASURE 2.10")
    assert row.checks == ("membership",) and [f.id for f in row.findings] == ["membership.leakage"]


def test_gaps_say_why_nothing_covers_a_requirement(audited: Report) -> None:
    explained = _row(audited, "nist_ai_rmf", "MEASURE 2.9")  # the explain check tests it; this audit did not run it
    assert not explained.covered and explained.gap == "not tested in this run: explain did not run"
    fairness = _row(audited, "nist_ai_rmf", "MEASURE 2.11")
    assert not fairness.covered and fairness.gap == "not tested in this run: fairness did not run"
    oversight = _row(audited, "eu_ai_act", "Art. 14(1)")  # no check tests human oversight
    assert not oversight.covered and oversight.gap == NOT_TESTED == "not tested by modelshield"
    resilience = _row(audited, "eu_ai_act", "Art. 15(4)")  # evasion (skipped) and poisoning (absent) test it
    assert not resilience.covered
    assert resilience.gap == "not tested in this run: evasion was skipped or failed; poisoning did not run"
    supply = _row(audited, "nist_ai_rmf", "MAP 4.2")
    assert supply.gap == "not tested in this run: integrity, supply, signature did not run"


def test_a_report_without_checks_covers_nothing(report_factory: Callable[..., Report]) -> None:
    section = assess(report_factory(findings=(), checks=()))
    assert all(not f.covered for f in section.frameworks)
    assert all(r.gap for f in section.frameworks for r in f.requirements)


def test_json_carries_the_mapping_and_the_section_and_validates(
    audited: Report,
    report_validator: jsonschema.Validator,
    without_compliance: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    text = render_json(audited)
    data = json.loads(text)
    report_validator.validate(data)
    leak = next(f for f in data["findings"] if f["id"] == "membership.leakage")
    assert leak["compliance"]["gdpr"] == ["Art. 5(1)(f)", "Art. 25(1)", "Art. 32(1)(b)", "Art. 35(7)(c)"]
    assert leak["owasp"] == "ML04"  # beside OWASP and ATLAS, which are unchanged
    section = data["compliance"]
    assert section["table_version"] == load_table().version and "not a certification" in section["caveat"]
    nist = section["frameworks"][0]
    explained = next(r for r in nist["requirements"] if r["id"] == "MEASURE 2.9")
    gap = "not tested in this run: explain did not run"
    assert explained == {**explained, "covered": False, "gap": gap, "checks": [], "findings": []}
    assert nist["covered"] == sum(r["covered"] for r in nist["requirements"])
    again = Report.from_json(text)
    assert again.to_dict() == without_compliance(data)
    assert render_json(again) == text


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("findings", 0, "compliance", "nist_ai_rmf"), ["MEASURE 2"]),
        (("findings", 0, "compliance", "gdpr"), ["Article 32"]),
        (("compliance", "frameworks", 0, "requirements", 0, "covered"), "yes"),
        (("compliance", "table_version"), "latest"),
    ],
)
def test_the_schema_refuses_a_malformed_compliance_value(
    audited: Report, report_validator: jsonschema.Validator, where: tuple[Any, ...], value: Any
) -> None:
    data = json.loads(render_json(audited))
    node = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        report_validator.validate(data)


def test_html_has_a_table_per_framework_with_linked_evidence(audited: Report) -> None:
    page = render_html(audited)
    for key in ("nist_ai_rmf", "eu_ai_act", "gdpr"):
        assert f'id="compliance-{key}"' in page
    numbers = {f.id: i for i, f in enumerate(audited.sorted_findings(), start=1)}
    assert f'<a href="#finding-{numbers["membership.leakage"]}"><code>membership.leakage</code></a>' in page
    assert page.count("not tested by modelshield") >= 5
    assert "Evidence for General Data Protection Regulation (Regulation (EU) 2016/679): Art. 5(1)(f)" in page
    assert "not a certification" in page


def test_html_escapes_the_tables_text(audited: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    table = load_table()
    gdpr = table.framework("gdpr")
    hostile_requirements = tuple(dataclasses.replace(r, title=HOSTILE, note=HOSTILE) for r in gdpr.requirements)
    hostile = dataclasses.replace(
        table,
        frameworks=(*table.frameworks[:2], dataclasses.replace(gdpr, name=HOSTILE, sources=(HOSTILE,),
                                                               requirements=hostile_requirements)),
    )  # fmt: skip
    monkeypatch.setattr(html_module, "load_table", lambda: hostile)
    monkeypatch.setattr("modelshield.reporting.compliance.load_table", lambda: hostile)
    page = render_html(audited)
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


def test_terminal_shows_coverage_and_gaps_per_framework(audited: Report) -> None:
    buffer = io.StringIO()
    render_terminal(audited, Console(file=buffer, width=200, color_system=None))
    lines = buffer.getvalue().splitlines()
    nist = next(line for line in lines if line.startswith("NIST AI Risk Management Framework"))
    coverage = next(f for f in assess(audited).frameworks if f.framework.key == "nist_ai_rmf")
    assert f"{len(coverage.covered)}/{len(coverage.requirements)}" in nist and "MEASURE 2.9" in nist
    assert "MEASURE 2.3" not in nist  # covered by the clean baseline run
    assert lines[-1].startswith("Verdict:")  # the verdict stays last


def test_finding_compliance_uses_the_shipped_table() -> None:
    finding = _finding("extraction.model-theft", "extraction")
    assert finding_compliance(finding) == load_table().for_finding("extraction.model-theft", "extraction")
    assert isinstance(load_table(), ComplianceTable) and load_table() is load_table()


def test_the_docs_per_check_table_agrees_with_the_data() -> None:
    docs = (PACKAGE.parents[1] / "docs" / "compliance.md").read_text("utf-8")
    section = docs.split("## What each check tests", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `([a-z]+)` \| (.+) \| (.+) \| (.+) \|", line)
        if match:
            rows[match[1]] = tuple(() if cell == "-" else tuple(cell.split(", ")) for cell in match.groups()[1:])
    table = load_table()
    expected = {c: tuple(table.for_check(c).values()) for c in table.checks}
    assert rows == expected
    assert f"version {table.version}" in docs
