"""The ``supply`` check: the scanner's findings, as they are, under the check's name."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np

from modelshield.audit.checks.supply import SUPPLY
from modelshield.audit.interface import Budget, CheckContext, NoSettings
from modelshield.findings import Finding, Severity
from modelshield.supply_chain.scan import FileScan
from modelshield.testing.targets import tiny_target


def test_judge_keeps_the_scanners_findings_under_its_own_name() -> None:
    scanned = (
        Finding(id="pickle.dangerous-call", check="scan", title="t", severity=Severity.CRITICAL, description="d"),
        Finding(id="format.unknown", check="scan", title="t", severity=Severity.LOW, description="d"),
    )
    judged = SUPPLY.judge(FileScan(path="m.pkl", format="pickle", size=10, findings=scanned, duration_s=0.1))
    assert [(f.check, f.id, f.severity) for f in judged] == [
        ("supply", "pickle.dangerous-call", Severity.CRITICAL),
        ("supply", "format.unknown", Severity.LOW),
    ]
    assert [dataclasses.replace(f, check="scan") for f in judged] == list(scanned)
    assert SUPPLY.judge(FileScan(path="m.safetensors", format="safetensors", size=10, findings=(), duration_s=0)) == []


class _Payload:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("id",))


def test_measures_a_payload_in_the_model_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"x": _Payload()}))
    target = dataclasses.replace(tiny_target("tabular", white_box=False), model_path=path)
    context = CheckContext(target=target, budget=Budget.QUICK, seed=0, rng=np.random.default_rng(0))
    scan = SUPPLY.measure(context, NoSettings())
    assert scan.path == str(path)
    (finding,) = SUPPLY.judge(scan)
    assert (finding.check, finding.id, finding.severity) == ("supply", "pickle.dangerous-call", Severity.CRITICAL)
