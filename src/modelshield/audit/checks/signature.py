"""The ``signature`` check: is the target's model file signed, by the expected key, and unchanged since?

    >>> from modelshield.audit.checks.signature import SIGNATURE
    >>> SIGNATURE.requires
    frozenset({<Requirement.MODEL_FILE: 'model-file'>})

The signature is ``Target.signature_path``, or ``MODEL.sig`` beside the model file; it is checked against
``Target.public_key_path`` with :func:`modelshield.supply_chain.signing.verify_model`. An unsigned model, or a
signature with no key to check it against, is a medium finding (nothing vouches for the file); a signature that
does not hold, or a file that no longer matches it, is critical: the :class:`~modelshield.errors.VerificationError`
that ``verify_model`` raises becomes that finding, with the files changed, added and removed as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelshield.audit.interface import Check, CheckContext, Requirement
from modelshield.errors import ModelShieldError, VerificationError
from modelshield.findings import Finding, OwaspMl, Severity

__all__ = ["SIGNATURE"]

_ATLAS = ("AML.T0010", "AML.T0011")


def _finding(
    rule: str, severity: Severity, title: str, description: str, remediation: str, **evidence: object
) -> Finding:
    return Finding(
        id=f"signature.{rule}",
        check="signature",
        title=title,
        severity=severity,
        description=description,
        remediation=remediation,
        owasp=OwaspMl.ML06,
        atlas=_ATLAS,
        evidence=evidence,  # type: ignore[arg-type]
    )


def signature_findings(context: CheckContext) -> Sequence[Finding]:
    target = context.target
    model = target.model_path
    if model is None:  # the runner skips such targets (Requirement.MODEL_FILE)
        return []
    signature = target.signature_path or model.with_name(model.name + ".sig")
    sign_it = f"modelshield keygen --out keys/ && modelshield sign {model.name} --key keys/modelshield.key"
    if not signature.exists():
        return [
            _finding(
                "unsigned",
                Severity.MEDIUM,
                "Model file is not signed",
                f"No signature for {model.name} (looked for {signature.name}): nothing shows who produced the file "
                "or that it is unchanged since.",
                f"Sign the model where it is produced ({sign_it}) and verify it where it is loaded.",
                signature=str(signature),
            )
        ]
    if target.public_key_path is None:
        return [
            _finding(
                "unverified",
                Severity.MEDIUM,
                "Model signature present but not verified",
                f"{signature.name} exists, but no public key was given to check it against: a signature by an "
                "unknown key vouches for nothing.",
                "Pass the signer's public key (modelshield audit --public-key KEY.pub).",
                signature=str(signature),
            )
        ]
    from modelshield.supply_chain.keys import load_public_key
    from modelshield.supply_chain.signing import verify_model

    try:
        verified = verify_model(Path(model), signature, load_public_key(target.public_key_path))
    except VerificationError as exc:  # verification fails closed; the failure becomes the finding
        return [
            _finding(
                "invalid",
                Severity.CRITICAL,
                "Model does not match its signature",
                f"{' '.join(exc.message.split())} The file was altered after signing, or signed by another key.",
                "Do not load it: obtain the model again from a trusted source and verify it.",
                signature=str(signature),
                changed=list(exc.changed),
                added=list(exc.added),
                removed=list(exc.removed),
            )
        ]
    except ModelShieldError as exc:
        return [
            _finding(
                "invalid",
                Severity.CRITICAL,
                "Model signature cannot be checked",
                f"{signature.name}: {exc.message}",
                "Obtain the model and its signature again from a trusted source.",
                signature=str(signature),
            )
        ]
    return [
        _finding(
            "verified",
            Severity.INFO,
            "Model signature verified",
            f"{signature.name} holds ({verified.algorithm.value}) and every file matches it.",
            "",
            signature=str(signature),
            algorithm=verified.algorithm.value,
        )
    ]


SIGNATURE = Check(
    name="signature",
    title="Model signature",
    description="Checks that the model file is signed, by the given key, and unchanged since it was signed.",
    run=signature_findings,
    requires=frozenset({Requirement.MODEL_FILE}),
)
