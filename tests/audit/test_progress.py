"""Progress: every check's start, the steps a long check reports inside it, and the end, in order."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr
from types import MappingProxyType

import pytest
from sklearn.linear_model import LogisticRegression

from modelshield import run_audit
from modelshield.audit import AuditOptions, Auditor, AuditProgress, Check, CheckContext, CheckRegistry
from modelshield.audit.interface import Budget
from modelshield.cli._progress import audit_progress, describe
from modelshield.data import load_breast_cancer, train_test_split
from modelshield.findings import Finding
from modelshield.models import SklearnClassifier
from modelshield.target import Target


class _Steps(Check[int, int]):
    """Reports its steps as a long measurement would."""

    name = "steps"
    title = "Steps"
    description = "Counts to three, reporting each step."
    budgets: Mapping[Budget, int] = MappingProxyType(dict.fromkeys(Budget, 3))

    def measure(self, context: CheckContext, settings: int) -> int:
        for i in range(settings):
            context.progress("counting", i + 1, settings)
        return settings

    def judge(self, measurement: int) -> Sequence[Finding]:
        return []


@pytest.fixture(scope="module")
def target() -> Target:
    split = train_test_split(load_breast_cancer(), test_size=0.3, seed=0)
    model = LogisticRegression(max_iter=5000).fit(split.train.flat(), split.train.y)
    return Target("logreg", SklearnClassifier(model), test=split.test, train=split.train)


def test_the_runner_reports_checks_and_the_steps_inside_them(target: Target) -> None:
    registry = CheckRegistry([_Steps()])
    events: list[AuditProgress] = []
    Auditor(AuditOptions(checks=("steps",)), registry=registry).run(target, progress=events.append)
    assert [(e.check, e.step, e.done, e.steps) for e in events] == [
        ("steps", "", 0, 0),
        ("steps", "counting", 1, 3),
        ("steps", "counting", 2, 3),
        ("steps", "counting", 3, 3),
        ("", "", 0, 0),
    ]
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert describe(events[2]) == "[1/1] steps: counting 2/3"


def test_the_python_api_takes_a_progress_callback(target: Target) -> None:
    events: list[AuditProgress] = []
    run_audit(target, checks=["integrity", "baseline"], progress=events.append)
    assert [e.check for e in events if not e.step] == ["integrity", "baseline", ""]


def test_without_a_terminal_progress_is_a_line_per_check_and_at_most_one_every_few_seconds() -> None:
    err = io.StringIO()
    with redirect_stderr(err), audit_progress(None) as progress:
        assert progress is not None
        for check, index in (("a", 0), ("a", 0), ("b", 1)):
            for done in range(50):  # many steps in a fraction of a second: one line for the check
                progress(AuditProgress(check, index, 2, "step", done, 50))
        progress(AuditProgress("", 2, 2))
    lines = err.getvalue().splitlines()
    assert [re.sub(r"^audit \(\d+ s\) ", "", line) for line in lines] == [
        "[1/2] a: step 0/50",
        "[2/2] b: step 0/50",
        "[2/2] done",
    ]


def test_hostile_check_names_are_printed_safely() -> None:
    assert "\x1b" not in describe(AuditProgress("evil\x1b]0;title\x07", 0, 1, "step\x1b[2J", 1, 2))


@pytest.mark.slow
def test_a_long_check_moves_the_bar_inside_it() -> None:
    from modelshield.testing import tiny_target

    events: list[AuditProgress] = []
    Auditor(AuditOptions(checks=("poisoning",))).run(tiny_target(), progress=events.append)
    steps = [e.step for e in events if e.check == "poisoning" and e.step]
    assert steps[0] == "retraining on backdoored data" and steps[-1] == "done" and len(steps) == 6
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions)


def test_a_step_without_news_still_gets_a_line_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from modelshield.cli import _progress

    monkeypatch.setattr(_progress, "LINE_EVERY_S", 0.2)
    err = io.StringIO()
    with redirect_stderr(err), _progress.step_progress("harden") as step:
        assert step is not None
        step("training", 0, 0)
        time.sleep(0.9)  # a long step that reports nothing inside it
    lines = err.getvalue().splitlines()
    assert 3 <= len(lines) <= 6 and all(line.endswith(" training") for line in lines)
    assert lines[0].startswith("harden (0 s)")
