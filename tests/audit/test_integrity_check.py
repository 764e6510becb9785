"""The ``integrity`` check: its rules on hand-made measurements, and its measurement of real files."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from modelshield.audit.checks.integrity import INTEGRITY, IntegrityMeasurement
from modelshield.audit.interface import Budget, CheckContext, NoSettings
from modelshield.findings import Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.testing.targets import tiny_target

SAFE = IntegrityMeasurement(
    path="/models/model.safetensors",
    size=1234,
    sha256="ab" * 32,
    format=ModelFormat.SAFETENSORS,
    detail="safetensors file",
    can_execute_code=False,
    suffix_matches=True,
)


def rules(m: IntegrityMeasurement) -> list[tuple[str, Severity]]:
    return [(f.id, f.severity) for f in INTEGRITY.judge(m)]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"format": ModelFormat.UNKNOWN, "suffix_matches": None}, [("integrity.unknown-format", Severity.LOW)]),
        ({"format": ModelFormat.PICKLE, "can_execute_code": True}, [("integrity.code-on-load", Severity.MEDIUM)]),
        ({"suffix_matches": False}, [("integrity.misleading-suffix", Severity.MEDIUM)]),
        ({"suffix_matches": None}, []),  # a format with no usual suffix: nothing to mislead
    ],
)
def test_rules(changes: dict[str, object], expected: list[tuple[str, Severity]]) -> None:
    found = rules(dataclasses.replace(SAFE, **changes))  # type: ignore[arg-type]
    assert found == [("integrity.model-file", Severity.INFO), *expected]


def test_identity_finding_carries_digest_size_and_location() -> None:
    (finding,) = INTEGRITY.judge(SAFE)
    assert finding.evidence["sha256"] == "ab" * 32
    assert finding.metrics["size_bytes"] == 1234
    assert finding.location == "/models/model.safetensors" and finding.check == "integrity"
    assert "Content of model.safetensors (1,234 bytes): safetensors file." in finding.description


def test_measures_a_pickle_behind_an_onnx_name(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    target = dataclasses.replace(tiny_target("tabular", white_box=False), model_path=path)
    context = CheckContext(target=target, budget=Budget.QUICK, seed=0, rng=np.random.default_rng(0))
    m = INTEGRITY.measure(context, NoSettings())
    assert (m.format, m.can_execute_code, m.suffix_matches, m.size) == (
        ModelFormat.PICKLE,
        True,
        False,
        path.stat().st_size,
    )
    assert m.sha256 == target.model_sha256
    assert [f.id for f in INTEGRITY.run(context)] == [
        "integrity.model-file",
        "integrity.code-on-load",
        "integrity.misleading-suffix",
    ]
