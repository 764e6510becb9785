"""The HTML report's newer sections in a real browser (issue 20): real audits, rendered by ``render_html``, shown
in headless Chromium at 1280 and 390 CSS pixels wide.

Two audits, kept small (quick budget, a few checks each): a loan model with a bias against one group built into
its training data (checks ``fairness``, ``explain`` and ``evasion``, whose robustness per group is shown), judged
by a release policy that it fails; and the reference CNN ``zoo:digits-cnn`` (checks ``explain`` and ``evasion``).
In every frame nothing leaves its card (the check of ``test_html_layout.py``), and, with every ``<details>`` open,
these are on the page with a height: a section per finding, the fairness, explanation and evasion findings with
their charts, the release policy's "failed" badge and its failing rule, and the compliance mapping's table per
framework of the shipped table, a row per requirement.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import CHROMIUM, OVERFLOWS, SKIP_REASON, VISIBLE, probe
from sklearn.linear_model import LogisticRegression

from modelshield.audit import AuditOptions, Auditor
from modelshield.audit.policy import ReleasePolicy
from modelshield.data.interface import Dataset, Feature, FeatureKind, Schema
from modelshield.findings import Report
from modelshield.models import SklearnClassifier
from modelshield.reporting import render_html
from modelshield.reporting.compliance import load_table
from modelshield.target import Target
from modelshield.zoo import load_target

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)]

WIDTHS = (1280, 390)
PAGES = ("loans", "digits")
PARITY_RULE = "approval rates within 80% across groups"
POLICY = f"""
fail_on = "high"
[[rule]]
name = "{PARITY_RULE}"
finding = "fairness.group"
metric = "demographic_parity_ratio"
min = 0.8
"""

#: What the page shows of each finding, the release policy and the compliance mapping (null where absent).
SECTIONS = """
function sections() {
  const text = (e) => (e ? e.textContent.replace(/\\s+/g, " ").trim() : null);
  const findings = [...document.querySelectorAll("section.finding")].map((s) => ({
    id: text(s.querySelector("p.muted code")),
    visible: visible(s),
    charts: [...s.querySelectorAll("svg")].filter(visible).length,
  }));
  const section = document.querySelector("section#policy");
  let policy = null;
  if (section) {
    const verdict = section.querySelector("div.verdict");
    const table = section.querySelector("table.policy");
    policy = {
      visible: visible(section.querySelector("h2")),
      badge: verdict ? text(verdict.querySelector(".badge")) : null,
      badgeVisible: verdict ? visible(verdict.querySelector(".badge")) : false,
      rules: table ? [...table.querySelectorAll("tbody tr")].map((r) => ({
        cells: [...r.cells].map(text),
        visible: visible(r),
      })) : [],
    };
  }
  const compliance = document.querySelector("h2#compliance");
  const frameworks = [...document.querySelectorAll("section.framework")].map((s) => ({
    anchor: s.id,
    name: text(s.querySelector("h3")),
    table: visible(s.querySelector("table.compliance")),
    rows: [...s.querySelectorAll("table.compliance tbody tr")].filter(visible).length,
  }));
  return {findings, policy, compliance: compliance ? visible(compliance) : null, frameworks};
}
"""

_SCHEMA = Schema(
    features=(Feature("group", FeatureKind.BINARY, 0.0, 1.0), Feature("x1"), Feature("x2")),
    input_shape=(3,),
    label="approved",
)


def _loans(n: int, seed: int) -> Dataset:
    """Applicants in two groups with two merit features; group 1's log-odds of approval are lowered by 2 (the
    bias of ``loan_target(seed, bias=2.0)`` in tests/audit/test_fairness.py)."""
    rng = np.random.default_rng(seed)
    group = (rng.random(n) < 0.4).astype(np.float32)
    x1, x2 = rng.normal(size=(2, n)).astype(np.float32)
    logit = 1.5 * x1 - x2 - 2.0 * group
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return Dataset(
        x=np.stack([group, x1, x2], axis=1), y=y, schema=_SCHEMA, label_names=("denied", "approved"), name="loans"
    )


def _loan_target() -> Target:
    train, test = _loans(1500, 0), _loans(800, 1000)
    model = LogisticRegression(max_iter=500).fit(train.x, train.y)
    return Target("loans", SklearnClassifier(model), test, train=train, sensitive=("group",))


@dataclasses.dataclass(frozen=True)
class _Shown:
    reports: dict[str, Report]
    frames: dict[str, tuple[int, Any]]  # "PAGE@WIDTH" -> (width the page saw, {"overflows": ..., "sections": ...})


@pytest.fixture(scope="module")
def shown(zoo_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> _Shown:
    """Both audits, the loan one judged by :data:`POLICY`, rendered and probed in Chromium at each width."""
    loans = Auditor(AuditOptions(checks=("fairness", "explain", "evasion"), budget="quick", seed=0)).run(_loan_target())
    loans = dataclasses.replace(loans, policy=ReleasePolicy.from_toml(POLICY, source="policy.toml").evaluate(loans))
    digits_target = load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")
    digits = Auditor(AuditOptions(checks=("explain", "evasion"), budget="quick", seed=0)).run(digits_target)
    reports = {"loans": loans, "digits": digits}
    frames = probe(
        {name: render_html(report) for name, report in reports.items()},
        WIDTHS,
        tmp_path_factory.mktemp("browser"),
        "{overflows: overflows(), sections: sections()}",
        helpers=OVERFLOWS + VISIBLE + SECTIONS,
    )
    assert set(frames) == {f"{p}@{w}" for p in PAGES for w in WIDTHS}, "a frame did not report"
    for frame, (width, _) in frames.items():
        assert str(width) == frame.split("@")[1], f"{frame} was laid out {width} px wide"
    return _Shown(reports, frames)


def _sections(shown: _Shown, page: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{page}@{w}", shown.frames[f"{page}@{w}"][1]["sections"]) for w in WIDTHS]


def test_the_audits_have_the_findings_the_page_is_checked_for(shown: _Shown) -> None:
    """The pages below are checked for these findings, so the audits must have produced them."""
    ids = {page: {f.id for f in report.findings} for page, report in shown.reports.items()}
    assert {"fairness.group", "explain.global-attribution", "evasion.by-group.group"} <= ids["loans"]
    assert {"explain.global-attribution", "evasion.robust-accuracy"} <= ids["digits"]
    policy = shown.reports["loans"].policy
    assert policy is not None
    assert not policy.passed
    assert {r.rule for r in policy.failed} == {"fail_on", PARITY_RULE}


def test_nothing_overflows_its_card(shown: _Shown) -> None:
    for frame, (_, result) in sorted(shown.frames.items()):
        assert result["overflows"] == [], f"{frame}: " + "\n".join(result["overflows"])


@pytest.mark.parametrize(
    ("page", "charted"),
    [
        ("loans", ("fairness.group", "explain.global-attribution", "evasion.by-group.group")),
        ("digits", ("explain.global-attribution", "evasion.robust-accuracy")),
    ],
)
def test_each_finding_has_a_visible_section_and_its_charts(shown: _Shown, page: str, charted: tuple[str, ...]) -> None:
    """A visible section per finding, in the report's order; the named findings show at least their charts."""
    report = shown.reports[page]
    for frame, sections in _sections(shown, page):
        found = sections["findings"]
        assert [f["id"] for f in found] == [f.id for f in report.sorted_findings()], frame
        assert all(f["visible"] for f in found), f"{frame}: hidden finding sections {found}"
        charts = {f["id"]: f["charts"] for f in found}
        for finding in report.findings:
            if finding.id in charted:
                assert len(finding.charts) > 0, f"{finding.id} has no charts to show"
                assert charts[finding.id] >= len(finding.charts), f"{frame}: {finding.id} shows {charts[finding.id]}"


def test_the_release_policy_shows_failed_and_its_failing_rule(shown: _Shown) -> None:
    for frame, sections in _sections(shown, "loans"):
        policy = sections["policy"]
        assert policy is not None, f"{frame}: no release policy section"
        assert policy["visible"], frame
        assert (policy["badge"], policy["badgeVisible"]) == ("failed", True), frame
        rows = {r["cells"][0]: r for r in policy["rules"]}
        assert PARITY_RULE in rows, f"{frame}: rules shown {list(rows)}"
        assert rows[PARITY_RULE]["cells"][1] == "fail", frame
        assert rows[PARITY_RULE]["visible"], frame
        assert len(rows) == len(shown.reports["loans"].policy.rules)  # type: ignore[union-attr]
    for frame, sections in _sections(shown, "digits"):
        assert sections["policy"] is None, f"{frame}: a policy section without a policy"


@pytest.mark.parametrize("page", PAGES)
def test_the_compliance_mapping_has_a_table_per_framework_with_a_row_per_requirement(shown: _Shown, page: str) -> None:
    frameworks = load_table().frameworks
    assert frameworks
    for frame, sections in _sections(shown, page):
        assert sections["compliance"] is True, f"{frame}: compliance heading missing or hidden"
        found = sections["frameworks"]
        assert [f["anchor"] for f in found] == [f"compliance-{f.key}" for f in frameworks], frame
        for framework, shown_framework in zip(frameworks, found, strict=True):
            assert framework.name in shown_framework["name"], frame
            assert shown_framework["table"], f"{frame}: {framework.key}'s table missing or hidden"
            assert shown_framework["rows"] == len(framework.requirements), f"{frame}: {framework.key}"
