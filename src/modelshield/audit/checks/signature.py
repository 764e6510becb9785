"""The ``signature`` check: is the target's model file signed, by the expected key, and unchanged since?

    >>> from modelshield.audit.checks.signature import SIGNATURE, SignatureMeasurement, SignatureStatus
    >>> [f.id for f in SIGNATURE.judge(SignatureMeasurement(SignatureStatus.UNSIGNED, "m.skops", "m.skops.sig"))]
    ['signature.unsigned']

The signature is ``Target.signature_path``, or ``MODEL.sig`` beside the model file; it is checked against
``Target.public_key_path`` with :func:`modelshield.supply_chain.signing.verify_model`, which fails closed: the
:class:`~modelshield.errors.VerificationError` it raises becomes an ``altered`` measurement, with the files changed,
added and removed. :meth:`SignatureCheck.judge` turns the measurement into findings: an unsigned model, or a
signature with no key to check it against, is medium (nothing vouches for the file); a signature that does not
hold, a file that no longer matches it, or a signature that cannot be read is critical.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelshield.audit.interface import NO_SETTINGS, Check, CheckContext, NoSettings, Requirement
from modelshield.errors import InvalidParameterError, ModelShieldError, VerificationError
from modelshield.findings import Finding, JSONValue, OwaspMl, Severity

__all__ = ["SIGNATURE", "SignatureCheck", "SignatureMeasurement", "SignatureStatus"]

_ATLAS = ("AML.T0010", "AML.T0011")


class SignatureStatus(enum.StrEnum):
    """What the check found out about the model's signature."""

    UNSIGNED = "unsigned"  # no signature file
    UNVERIFIED = "unverified"  # a signature, but no public key to check it with
    VERIFIED = "verified"  # every signature holds and every file matches
    ALTERED = "altered"  # verification failed: a signature that does not hold, or files that differ
    UNUSABLE = "unusable"  # the signature or the key cannot be read


@dataclass(frozen=True)
class SignatureMeasurement:
    """The outcome of checking the target's signature; ``detail`` is the reason verification failed, if it did."""

    status: SignatureStatus
    model: str  # the model file's name
    signature: str  # the signature's path
    algorithm: str | None = None
    detail: str = ""
    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _finding(
    rule: str, severity: Severity, title: str, description: str, remediation: str, **evidence: JSONValue
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
        evidence=evidence,
    )


class SignatureCheck(Check[NoSettings, SignatureMeasurement]):
    """Checks that the model file is signed, by the given key, and unchanged since it was signed."""

    name = "signature"
    title = "Model signature"
    description = "Checks that the model file is signed, by the given key, and unchanged since it was signed."
    requires = frozenset({Requirement.MODEL_FILE})
    budgets = NO_SETTINGS

    def measure(self, context: CheckContext, settings: NoSettings) -> SignatureMeasurement:
        """Look for the signature and, with a public key, verify the model file against it."""
        target = context.target
        model = target.model_path
        if model is None:  # the runner skips such targets (Requirement.MODEL_FILE)
            raise InvalidParameterError("The signature check needs the target's model file.")
        signature = target.signature_path or model.with_name(model.name + ".sig")
        if not signature.exists():
            return SignatureMeasurement(SignatureStatus.UNSIGNED, model.name, str(signature))
        if target.public_key_path is None:
            return SignatureMeasurement(SignatureStatus.UNVERIFIED, model.name, str(signature))
        from modelshield.supply_chain.keys import load_public_key
        from modelshield.supply_chain.signing import verify_model

        try:
            verified = verify_model(Path(model), signature, load_public_key(target.public_key_path))
        except VerificationError as exc:  # verification fails closed; the failure is what this check measures
            return SignatureMeasurement(
                SignatureStatus.ALTERED,
                model.name,
                str(signature),
                detail=" ".join(exc.message.split()),
                changed=exc.changed,
                added=exc.added,
                removed=exc.removed,
            )
        except ModelShieldError as exc:  # a signature that is not a bundle, a key that cannot be read
            return SignatureMeasurement(SignatureStatus.UNUSABLE, model.name, str(signature), detail=exc.message)
        return SignatureMeasurement(
            SignatureStatus.VERIFIED, model.name, str(signature), algorithm=verified.algorithm.value
        )

    def judge(self, measurement: SignatureMeasurement) -> Sequence[Finding]:
        """One finding: medium when nothing vouches for the file, critical when verification failed."""
        m = measurement
        name = Path(m.signature).name
        sign_it = f"modelshield keygen --out keys/ && modelshield sign {m.model} --key keys/modelshield.key"
        if m.status is SignatureStatus.UNSIGNED:
            return [
                _finding(
                    "unsigned",
                    Severity.MEDIUM,
                    "Model file is not signed",
                    f"No signature for {m.model} (looked for {name}): nothing shows who produced the file "
                    "or that it is unchanged since.",
                    f"Sign the model where it is produced (`{sign_it}`) and verify it where it is loaded.",
                    signature=m.signature,
                )
            ]
        if m.status is SignatureStatus.UNVERIFIED:
            return [
                _finding(
                    "unverified",
                    Severity.MEDIUM,
                    "Model signature present but not verified",
                    f"{name} exists, but no public key was given to check it against: a signature by an "
                    "unknown key vouches for nothing.",
                    "Pass the signer's public key (`modelshield audit --public-key KEY.pub`).",
                    signature=m.signature,
                )
            ]
        if m.status is SignatureStatus.ALTERED:
            return [
                _finding(
                    "invalid",
                    Severity.CRITICAL,
                    "Model does not match its signature",
                    f"{m.detail} The file was altered after signing, or signed by another key.",
                    "Do not load it: obtain the model again from a trusted source and verify it.",
                    signature=m.signature,
                    changed=list(m.changed),
                    added=list(m.added),
                    removed=list(m.removed),
                )
            ]
        if m.status is SignatureStatus.UNUSABLE:
            return [
                _finding(
                    "invalid",
                    Severity.CRITICAL,
                    "Model signature cannot be checked",
                    f"{name}: {m.detail}",
                    "Obtain the model and its signature again from a trusted source.",
                    signature=m.signature,
                )
            ]
        return [
            _finding(
                "verified",
                Severity.INFO,
                "Model signature verified",
                f"{name} holds ({m.algorithm}) and every file matches it.",
                "",
                signature=m.signature,
                algorithm=m.algorithm,
            )
        ]


SIGNATURE = SignatureCheck()
