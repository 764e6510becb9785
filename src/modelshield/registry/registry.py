"""The model registry: versions of models, content-addressed, with signature, scan and audit attached.

    >>> from modelshield.registry import Registry
    >>> registry = Registry(Path("registry/"))  # doctest: +SKIP
    >>> v = registry.add("churn", Path("model/"), signature=Path("model.sig"),
    ...                  audit_report=Path("report.json"))  # doctest: +SKIP
    >>> registry.promote("churn", v.version, public_key=Path("keys/modelshield.pub"))  # doctest: +SKIP
    >>> registry.show("churn", "production").version  # doctest: +SKIP

A version is promoted to ``production`` only when its signature verifies against the stored bytes with the given
public key, its scan report has no finding at or above the threshold, and an audit report is attached with no such
finding and no failed check; otherwise the promotion is refused, the refusal is recorded in the history, and
:class:`PromotionRefusedError` names every reason. Model files are copied and hashed, never loaded.

Given a release ``policy`` (:class:`modelshield.audit.policy.ReleasePolicy`, or anything with its ``evaluate``),
the policy judges the stored audit report instead of the severity threshold: each failed rule is a reason. The
signature, the scan and the attachments are checked as without one.
"""

from __future__ import annotations

import getpass
import hmac
import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modelshield._internal.hashing import sha256_file
from modelshield.errors import (
    FileFormatError,
    InvalidParameterError,
    PromotionRefusedError,
    RegistryError,
    VerificationError,
)
from modelshield.findings import JSONValue, PolicyResult, Report, Severity
from modelshield.registry.index import (
    AliasRow,
    HistoryEntry,
    HistoryRow,
    Index,
    ModelRow,
    ModelSummary,
    ModelVersion,
    VerifiedHistory,
    VersionRow,
    _now,
)
from modelshield.registry.store import ArtifactKind, BlobStore, canonical_json
from modelshield.supply_chain.keys import PublicKeySet

# PromotionRefusedError lives in modelshield.errors; it is re-exported here, where it used to be defined.
__all__ = ["PRODUCTION", "PromotionRefusedError", "Registry", "ReportPolicy", "default_actor"]

PRODUCTION = "production"


class ReportPolicy(Protocol):
    """What :meth:`Registry.promote` needs of a release policy (:class:`modelshield.audit.policy.ReleasePolicy`)."""

    @property
    def sha256(self) -> str: ...

    def evaluate(self, report: Report, *, signer: str | None = None) -> PolicyResult: ...


_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MAX_JSON = 256 << 20


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def default_actor() -> str:
    """The operating-system user, recorded as the actor of a change when none is given."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _check_report_is_about(report: Report, report_path: Path, model: Path) -> None:
    """Refuse an audit report of another model file: a report records the SHA-256 of the file it audited (a report
    of a directory, or of a target without a file, records none and cannot be checked here)."""
    audited = report.target.model_sha256
    if audited is None or not model.is_file():
        return
    actual = sha256_file(model)
    if not hmac.compare_digest(audited, actual):
        raise RegistryError(
            f"Audit report {report_path.name} is about another file (sha256:{audited[:16]}...), not {model.name} "
            f"(sha256:{actual[:16]}...).",
            remedy="Attach the report of an audit of this very file.",
        )


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameterError(
            f"Model name {name!r} is not allowed.",
            remedy="Use 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return name


def _read_json(path: Path, what: str, remedy: str) -> tuple[bytes, Any]:
    try:
        if path.stat().st_size > _MAX_JSON:
            raise FileFormatError(f"{what} {path} is too large.", remedy=remedy)
        raw = path.read_bytes()
        return raw, json.loads(raw)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise FileFormatError(f"{what} {path} does not exist or is not a file.", remedy=remedy) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(f"{what} {path} is not JSON.", remedy=remedy) from exc


class Registry:
    """Model versions under ``root``: blobs in ``root/objects``, the index in ``url`` (default ``root/index.db``).

    ``url`` may name a PostgreSQL database (``postgresql+psycopg://user@host/db``) shared by several hosts, as long
    as they share ``root`` too. Safe for several processes at once.
    """

    def __init__(self, root: Path, url: str | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.store = BlobStore(root / "objects")
        self.index = Index(url or f"sqlite:///{(root / 'index.db').resolve()}")

    def close(self) -> None:
        """Release the database connections."""
        self.index.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- adding -----------------------------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        path: Path,
        *,
        signature: Path | None = None,
        audit_report: Path | None = None,
        data_manifest: Path | None = None,
        metadata: Mapping[str, JSONValue] | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Store ``path`` (a file or directory) as the next version of ``name``, scanned, with its attachments.

        The signature must be a model-signing bundle, the audit report JSON written by ``modelshield audit``, the
        data manifest JSON; each is stored as a blob. ``actor`` defaults to the operating-system user. A signature
        whose manifest describes other files, or a report of another model file, is refused: attached, they would
        vouch for this version. (Who signed is checked at promotion, with the signer's key.)
        """
        from modelshield.supply_chain.scan import scan_paths
        from modelshield.supply_chain.signing import check_signature_matches

        _check_name(name)
        actor = actor or default_actor()
        meta = dict(metadata or {})
        try:
            canonical_json(meta)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"Metadata {meta!r} is not plain JSON data ({exc}).") from exc
        if path.is_symlink() or not path.exists():
            raise FileFormatError(f"{path} does not exist or is a symbolic link.", remedy="Check the model path.")
        signature_digest = None
        if signature is not None:
            check_signature_matches(path, signature)  # a bundle, and about these files
            signature_digest = self.store.put_file(signature)[0]
        audit_digest, audit = None, None
        if audit_report is not None:
            remedy = "Pass the report.json that `modelshield audit` writes."
            raw, _ = _read_json(audit_report, "Audit report", remedy)
            try:
                audit = Report.from_json(raw.decode("utf-8"))
            except (KeyError, TypeError, ValueError) as exc:
                raise FileFormatError(
                    f"Audit report {audit_report} is not a modelshield report ({type(exc).__name__}: {exc}).",
                    remedy=remedy,
                ) from exc
            _check_report_is_about(audit, audit_report, path)
            audit_digest = self.store.put_bytes(raw)
        manifest_digest = None
        if data_manifest is not None:
            raw, _ = _read_json(data_manifest, "Data manifest", "Pass the JSON manifest of the training data.")
            manifest_digest = self.store.put_bytes(raw)
        scan = scan_paths([path])
        scan_digest = self.store.put_bytes(json.dumps(scan.to_dict(), indent=2, sort_keys=True).encode())
        artifact = self.store.put_model(path)
        scan_max = scan.max_severity.value if scan.max_severity else None
        audit_max = audit.max_severity.value if audit and audit.max_severity else None
        detail: dict[str, JSONValue] = {
            "artifact_digest": artifact.digest,
            "kind": artifact.kind.value,
            "size": artifact.size,
            "signature_digest": signature_digest,
            "scan_digest": scan_digest,
            "scan_max_severity": scan_max,
            "audit_digest": audit_digest,
            "audit_max_severity": audit_max,
            "data_manifest_digest": manifest_digest,
        }

        def work(session: Session, model: ModelRow) -> ModelVersion:
            latest = session.scalar(select(func.max(VersionRow.version)).where(VersionRow.model == name))
            row = VersionRow(
                model=name,
                version=(latest or 0) + 1,
                artifact_digest=artifact.digest,
                kind=artifact.kind.value,
                size=artifact.size,
                source_name=path.resolve().name,
                signature_digest=signature_digest,
                signer_fingerprint=None,
                scan_digest=scan_digest,
                scan_max_severity=scan_max,
                audit_digest=audit_digest,
                audit_max_severity=audit_max,
                audit_complete=audit.complete if audit else None,
                data_manifest_digest=manifest_digest,
                meta=meta,
                actor=actor,
                created_at=_now(),
            )
            session.add(row)
            session.flush()
            Index.append_history(session, model, action="add", version=row.version, actor=actor, detail=detail)
            return ModelVersion._from_row(row)

        return self.index.write(name, work, create=True)

    # -- reading ----------------------------------------------------------------------------------------------------

    def list(self) -> tuple[ModelSummary, ...]:
        """Every model: its number of versions, latest version and production version."""
        return self.index.models()

    def versions(self, name: str) -> tuple[ModelVersion, ...]:
        """Every version of ``name``, oldest first."""
        return self.index.versions(name)

    def show(self, name: str, version: int | str = PRODUCTION) -> ModelVersion:
        """One version: by number, by alias (``"production"``), or ``"latest"``."""
        found = self.versions(name)
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        if version == "latest":
            return found[-1]
        for v in found:
            if v.version == version or (isinstance(version, str) and version in v.aliases):
                return v
        what = f"version {version}" if isinstance(version, int) else f"version or alias {version!r}"
        raise RegistryError(
            f"Model {name!r} has no {what}.", remedy=f"Pick one of: {', '.join(str(v.version) for v in found)}."
        )

    def history(self, name: str) -> tuple[HistoryEntry, ...]:
        """Every change to ``name``, in order."""
        self.versions(name)  # unknown model -> RegistryError
        return self.index.history(name)

    def verify_history(self, name: str | None = None) -> VerifiedHistory:
        """Recompute the history's hash chain (of ``name``, or of every model); see :meth:`Index.verify_history`.

        Fails closed: raises :class:`VerificationError` naming the model and entry of the first broken link.
        """
        return self.index.verify_history(name)

    def export(self, name: str, version: int | str, dest: Path) -> Path:
        """Write the model into directory ``dest`` under its original name (and its signature as NAME.sig); the path.

        Every blob is verified as it is copied: VerificationError if the store was tampered with, and then nothing
        is left in ``dest`` (neither the model nor its signature).
        """
        v = self.show(name, version)
        target = dest / v.source_name
        sig = dest / f"{v.source_name}.sig"
        for path in (target, sig) if v.signature_digest else (target,):
            if path.exists() or path.is_symlink():
                raise FileFormatError(f"{path} already exists.", remedy="Export into an empty directory.")
        self.store.materialize(v.artifact_digest, target, kind=v.kind)
        if v.signature_digest:
            try:
                self.store.materialize(v.signature_digest, sig, kind=ArtifactKind.FILE)
            except BaseException:
                _remove(target)  # the model verified, but an export is both or nothing
                raise
        return target

    # -- promotion --------------------------------------------------------------------------------------------------

    def promote(
        self,
        name: str,
        version: int | str,
        *,
        public_key: Path,
        fail_on: Severity | str = Severity.HIGH,
        actor: str | None = None,
        policy: ReportPolicy | None = None,
    ) -> ModelVersion:
        """Make ``version`` the production version of ``name``, or refuse with :class:`PromotionRefusedError`.

        Refused when the version is unsigned, its signature does not verify against the stored bytes with
        ``public_key``, its scan has findings at or above ``fail_on``, or it has no audit report, or one with
        findings at or above ``fail_on`` or with failed checks. With a ``policy``, the audit report is judged by
        the policy instead (the signer passed to it is ``public_key``, once the signature verified with it), and
        each failed rule is a reason. A refusal is recorded in the history.
        """
        from modelshield.supply_chain.keys import load_public_key

        threshold = Severity.parse(fail_on)
        actor = actor or default_actor()
        key = load_public_key(public_key)
        v = self.show(name, version)
        reasons = self._problems(v, key, threshold, policy)
        base: dict[str, JSONValue] = {"fail_on": threshold.value, "public_key_fingerprint": key.fingerprint}
        if policy is not None:
            base["policy_sha256"] = policy.sha256
        if reasons:
            refusal: dict[str, JSONValue] = {**base, "reasons": list(reasons)}
            self.index.write(
                name,
                lambda s, m: Index.append_history(
                    s, m, action="refused", version=v.version, actor=actor, detail=refusal
                ),
            )
            raise PromotionRefusedError(name, v.version, reasons, stage=PRODUCTION)

        def work(session: Session, model: ModelRow) -> None:
            previous = _set_alias(session, name, v.version)
            row = session.scalars(
                select(VersionRow).where(VersionRow.model == name, VersionRow.version == v.version)
            ).one()
            row.signer_fingerprint = key.fingerprint
            detail: dict[str, JSONValue] = {**base, "previous": previous}
            Index.append_history(session, model, action="promote", version=v.version, actor=actor, detail=detail)

        self.index.write(name, work)
        return self.show(name, v.version)

    def _problems(
        self, v: ModelVersion, key: PublicKeySet, threshold: Severity, policy: ReportPolicy | None = None
    ) -> tuple[str, ...]:
        from modelshield.supply_chain.signing import verify_model

        reasons: list[str] = []
        signer: str | None = None  # the key's fingerprint, once the signature verified with it
        if v.signature_digest is None:
            reasons.append(f"v{v.version} is unsigned")
        else:
            with tempfile.TemporaryDirectory(prefix="modelshield-promote-") as tmp:
                try:
                    model = self.store.materialize(v.artifact_digest, Path(tmp, "model", v.source_name), kind=v.kind)
                    sig = self.store.materialize(v.signature_digest, Path(tmp, "model.sig"), kind=ArtifactKind.FILE)
                except (VerificationError, FileFormatError) as exc:
                    reasons.append(f"the stored artifact or signature is damaged: {exc.message}")
                else:
                    try:
                        verify_model(model, sig, key)
                        signer = key.fingerprint
                    except VerificationError as exc:
                        reasons.append(f"the signature does not verify with key {key.fingerprint[:16]}: {exc.message}")
                    except FileFormatError as exc:
                        reasons.append(f"the stored signature is unusable: {exc.message}")
        try:
            self.store.verify(v.scan_digest)
        except (VerificationError, FileFormatError):
            reasons.append("the stored scan report is missing or does not match its digest")
        else:
            if v.scan_max_severity is not None and v.scan_max_severity >= threshold:
                reasons.append(f"the scan found issues up to {v.scan_max_severity.value} (threshold {threshold.value})")
        if v.audit_digest is None:
            reasons.append("no audit report is attached")
        else:
            try:
                audit = Report.from_json(self.store.read_bytes(v.audit_digest).decode("utf-8"))
            except (VerificationError, FileFormatError, KeyError, TypeError, ValueError) as exc:
                reasons.append(f"the stored audit report is unreadable or damaged ({exc})")
            else:
                if policy is not None:
                    judged = policy.evaluate(audit, signer=signer)
                    reasons += [f"policy rule {r.rule} failed: {r.message}" for r in judged.failed]
                else:
                    reasons += _audit_problems(audit, threshold)
                sha = audit.target.model_sha256
                if v.kind is ArtifactKind.FILE and sha and sha != v.artifact_digest:
                    reasons.append(f"the audit report is about another model (sha256 {sha[:16]}…)")
        return tuple(reasons)

    def rollback(self, name: str, *, actor: str | None = None) -> ModelVersion:
        """Make the version that was in production before the current one production again (from the history)."""
        actor = actor or default_actor()

        def work(session: Session, model: ModelRow) -> int:
            rows = session.scalars(select(HistoryRow).where(HistoryRow.model == name).order_by(HistoryRow.seq))
            stack = _production_stack(rows)
            if len(stack) < 2:
                raise RegistryError(
                    f"Model {name!r} has no earlier production version to roll back to.",
                    remedy="Promote a version instead (`modelshield registry promote`).",
                )
            current, target = stack[-1], stack[-2]
            _set_alias(session, name, target)
            detail: dict[str, JSONValue] = {"from": current, "to": target}
            Index.append_history(session, model, action="rollback", version=target, actor=actor, detail=detail)
            return target

        return self.show(name, self.index.write(name, work))


def _audit_problems(audit: Report, threshold: Severity) -> list[str]:
    """Why an audit report bars promotion without a policy: findings at or above ``threshold``, failed checks."""
    reasons = []
    worst = audit.max_severity
    if worst is not None and worst >= threshold:
        n = len(audit.at_or_above(threshold))
        reasons.append(f"the audit has {n} finding(s) at or above {threshold.value} (worst {worst.value})")
    failed = [c.name for c in audit.checks if c.status.value == "error"]
    if failed:
        reasons.append(f"audit check(s) failed to run: {', '.join(failed)}")
    return reasons


def _set_alias(session: Session, name: str, version: int, alias: str = PRODUCTION) -> int | None:
    """Point ``alias`` at ``version``; the version it pointed at before."""
    row = session.get(AliasRow, (name, alias))
    if row is None:
        session.add(AliasRow(model=name, alias=alias, version=version, updated_at=_now()))
        return None
    previous: int = row.version
    row.version, row.updated_at = version, _now()
    return previous


def _production_stack(rows: Any) -> list[int]:
    """The production versions, oldest first, as promote and rollback entries leave them."""
    stack: list[int] = []
    for row in rows:
        if row.action == "promote" and row.version is not None and (not stack or stack[-1] != row.version):
            stack.append(row.version)
        elif row.action == "rollback" and stack:
            stack.pop()
    return stack
