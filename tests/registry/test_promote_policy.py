"""``Registry.promote(policy=...)``: the release policy judges the stored audit report, each failed rule a reason."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelshield.audit.policy import ReleasePolicy
from modelshield.findings import Severity
from modelshield.registry import PromotionRefusedError, Registry

from .conftest import Keys

MakeModel = Callable[..., tuple[Path, Path]]
MakeAudit = Callable[..., Path]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry(tmp_path / "registry") as reg:
        yield reg


def test_the_policy_judges_the_audit_report(
    registry: Registry, make_model: MakeModel, make_audit: MakeAudit, keys: Keys
) -> None:
    path, sig = make_model()
    registry.add("m", path, signature=sig, audit_report=make_audit(Severity.MEDIUM))
    strict = ReleasePolicy.from_toml('fail_on = "medium"\n[[rule]]\ncheck = "evasion"\nmetric = "robust"\nmin = 0.5')
    with pytest.raises(PromotionRefusedError) as err:
        registry.promote("m", 1, public_key=keys.public, fail_on="critical", policy=strict)
    reasons = err.value.reasons
    assert len(reasons) == 2
    assert reasons[0].startswith("policy rule fail_on failed: 1 finding(s) at or above medium")
    assert reasons[1].startswith("policy rule evasion robust >= 0.5 failed")
    refused = registry.history("m")[-1]
    assert refused.action == "refused"
    assert refused.detail["policy_sha256"] == strict.sha256
    # the policy replaces --fail-on for the audit report: a lenient policy lets a medium finding through
    lenient = ReleasePolicy.from_toml('fail_on = "high"')
    with pytest.raises(PromotionRefusedError):
        registry.promote("m", 1, public_key=keys.public, fail_on="medium")
    assert registry.promote("m", 1, public_key=keys.public, fail_on="critical", policy=lenient).version == 1


def test_the_signer_is_the_key_the_registry_verified_with(
    registry: Registry, make_model: MakeModel, make_audit: MakeAudit, keys: Keys
) -> None:
    from modelshield.supply_chain.keys import load_public_key

    path, sig = make_model()
    registry.add("m", path, signature=sig, audit_report=make_audit())
    trusted = load_public_key(keys.public).fingerprint
    other = load_public_key(keys.other_public).fingerprint
    with pytest.raises(PromotionRefusedError, match="not a trusted key"):
        registry.promote("m", 1, public_key=keys.public, policy=ReleasePolicy.from_toml(f'trusted_keys = ["{other}"]'))
    policy = ReleasePolicy.from_toml(f'trusted_keys = ["{trusted}"]')
    assert registry.promote("m", 1, public_key=keys.public, policy=policy).version == 1


def test_a_signature_that_does_not_verify_leaves_no_signer(
    registry: Registry, make_model: MakeModel, make_audit: MakeAudit, keys: Keys
) -> None:
    path, sig = make_model()
    registry.add("m", path, signature=sig, audit_report=make_audit())
    with pytest.raises(PromotionRefusedError) as err:
        registry.promote(
            "m", 1, public_key=keys.other_public, policy=ReleasePolicy.from_toml("require_signature = true")
        )
    assert any("signature does not verify" in r for r in err.value.reasons)
    assert any(r.startswith("policy rule require_signature failed") for r in err.value.reasons)
