"""The ``signature`` audit check: unsigned, unverified, verified, tampered, wrong key; and its judge on its own."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelshield.audit.checks.signature import SIGNATURE, SignatureMeasurement, SignatureStatus
from modelshield.audit.interface import Budget, CheckContext
from modelshield.findings import Finding, Severity
from modelshield.supply_chain.keys import generate_keypair, write_keypair
from modelshield.supply_chain.signing import sign_model
from modelshield.target import Target
from modelshield.zoo import load_target


@pytest.fixture
def target(zoo_cache: Path, tmp_path: Path) -> Target:
    loaded = load_target("zoo:cancer-gbm", cache_dir=zoo_cache)
    assert loaded.model_path is not None
    model = tmp_path / loaded.model_path.name
    shutil.copy(loaded.model_path, model)
    return dataclasses.replace(loaded, model_path=model)


def _run(target: Target) -> list[Finding]:
    context = CheckContext(target=target, budget=Budget.QUICK, seed=0, rng=np.random.default_rng(0))
    return SIGNATURE.run(context)


def _signature_findings(target: Target) -> list[tuple[str, Severity]]:
    return [(f.id, f.severity) for f in _run(target)]


def test_unsigned_then_unverified_then_verified(target: Target, tmp_path: Path) -> None:
    assert target.model_path is not None
    assert _signature_findings(target) == [("signature.unsigned", Severity.MEDIUM)]
    keys = generate_keypair("hybrid")
    _, public = write_keypair(keys, tmp_path / "keys")
    sign_model(target.model_path, keys, target.model_path.with_name(target.model_path.name + ".sig"))
    assert _signature_findings(target) == [("signature.unverified", Severity.MEDIUM)]
    verified = dataclasses.replace(target, public_key_path=public)
    assert _signature_findings(verified) == [("signature.verified", Severity.INFO)]


def test_a_changed_model_or_another_key_is_critical(target: Target, tmp_path: Path) -> None:
    assert target.model_path is not None
    keys = generate_keypair("ecdsa-p256")
    _, public = write_keypair(keys, tmp_path / "keys")
    signature = tmp_path / "elsewhere.sig"
    sign_model(target.model_path, keys, signature)
    signed = dataclasses.replace(target, signature_path=signature, public_key_path=public)
    _, other = write_keypair(generate_keypair("ecdsa-p256"), tmp_path / "other")
    (finding,) = _run(dataclasses.replace(signed, public_key_path=other))
    assert (finding.id, finding.severity) == ("signature.invalid", Severity.CRITICAL)
    assert "does not hold" in finding.description and finding.evidence["changed"] == []
    not_a_bundle = tmp_path / "not.sig"
    not_a_bundle.write_text("{}")
    (finding,) = _run(dataclasses.replace(signed, signature_path=not_a_bundle))
    assert (finding.id, finding.title) == ("signature.invalid", "Model signature cannot be checked")
    with target.model_path.open("ab") as fh:
        fh.write(b"\0")
    (finding,) = _run(signed)
    assert (finding.id, finding.severity) == ("signature.invalid", Severity.CRITICAL)
    assert finding.evidence["changed"] == [target.model_path.name]
    assert finding.owasp is not None and "AML.T0010" in finding.atlas


def test_judge_turns_each_measurement_into_one_finding() -> None:
    def judged(status: SignatureStatus, **fields: object) -> Finding:
        (finding,) = SIGNATURE.judge(SignatureMeasurement(status, "m.skops", "/x/m.skops.sig", **fields))  # type: ignore[arg-type]
        return finding

    assert (judged(SignatureStatus.UNSIGNED).id, judged(SignatureStatus.UNSIGNED).severity) == (
        "signature.unsigned",
        Severity.MEDIUM,
    )
    assert judged(SignatureStatus.UNVERIFIED).severity is Severity.MEDIUM
    verified = judged(SignatureStatus.VERIFIED, algorithm="hybrid")
    assert (verified.id, verified.severity, verified.evidence["algorithm"]) == (
        "signature.verified",
        Severity.INFO,
        "hybrid",
    )
    altered = judged(SignatureStatus.ALTERED, detail="Model m.skops does not match.", changed=("m.skops",))
    assert (altered.id, altered.severity) == ("signature.invalid", Severity.CRITICAL)
    assert altered.evidence["changed"] == ["m.skops"] and altered.description.startswith("Model m.skops does not")
    assert judged(SignatureStatus.UNUSABLE, detail="not a bundle").title == "Model signature cannot be checked"
