"""``modelshield registry``: add model versions, promote them to production, roll back, read the history.

$ modelshield registry add churn model/ --signature model.sig --audit-report report/report.json --meta owner=ml
$ modelshield registry promote churn 1 --public-key keys/modelshield.pub
$ modelshield registry promote churn 2 --public-key keys/modelshield.pub --policy policy.toml
$ modelshield registry show churn production --format json
$ modelshield registry history churn --verify

Every command takes ``--registry DIR`` (env ``MODELSHIELD_REGISTRY``, default ``./modelshield-registry``) and
``--db-url URL`` (env ``MODELSHIELD_REGISTRY_DB``, default SQLite inside the registry directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli.options import EXIT_CLEAN, EXIT_FINDINGS, SEVERITIES, OutputFormat, choice_option, text_or_json
from modelshield.errors import InvalidParameterError, PromotionRefusedError, VerificationError
from modelshield.reporting.interface import printable

if TYPE_CHECKING:
    from modelshield.registry import ModelVersion, Registry

__all__ = ["register"]

DEFAULT_REGISTRY = Path("modelshield-registry")

RegistryDir = Annotated[
    Path,
    typer.Option("--registry", envvar="MODELSHIELD_REGISTRY", help="Registry directory (blobs and SQLite index)."),
]
DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        envvar="MODELSHIELD_REGISTRY_DB",
        help="Index database URL (sqlite:///... or postgresql+psycopg://...); default: SQLite in the registry.",
    ),
]


def _open(registry: Path, db_url: str | None) -> Registry:
    from modelshield.registry import Registry

    return Registry(registry, db_url or None)


def _describe(v: ModelVersion) -> list[str]:
    def sev(value: object) -> str:
        return str(getattr(value, "value", value)) if value is not None else "none"

    lines = [
        f"{v.name} v{v.version}" + (f" ({', '.join(v.aliases)})" if v.aliases else ""),
        f"  artifact:  sha256:{v.artifact_digest} ({v.kind.value}, {v.size} bytes, as {v.source_name})",
        f"  added:     {v.created_at.isoformat()} by {v.actor}",
        f"  signature: {('sha256:' + v.signature_digest) if v.signature_digest else 'none'}"
        + (
            f" (key {v.signer_fingerprint[:16]} verified it at promotion; this listing does not re-check it, "
            "`verify` on an export does)"
            if v.signer_fingerprint
            else ""
        ),
        f"  scan:      max severity {sev(v.scan_max_severity)} (sha256:{v.scan_digest})",
        "  audit:     "
        + (
            f"max severity {sev(v.audit_max_severity)}, complete: {v.audit_complete} (sha256:{v.audit_digest})"
            if v.audit_digest
            else "none"
        ),
        f"  data:      {('sha256:' + v.data_manifest_digest) if v.data_manifest_digest else 'none'}",
    ]
    lines += [f"  {key} = {json.dumps(value)}" for key, value in sorted(v.metadata.items())]
    return lines


def _failed(exc: VerificationError) -> typer.Exit:
    """Say on stderr, in one line, what did not verify; the exit (1) to raise."""
    typer.echo(f"verification failed: {printable(' '.join(exc.message.split()))}", err=True)
    return typer.Exit(EXIT_FINDINGS)


def _parse_meta(items: list[str] | None) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidParameterError(f"--meta {item!r} is not KEY=VALUE.", remedy="Pass --meta owner=ml-team.")
        meta[key.strip()] = value
    return meta


def add_command(
    name: Annotated[str, typer.Argument(help="Model name: lower-case letters, digits, '.', '_', '-'.")],
    path: Annotated[Path, typer.Argument(help="Model file or directory.")],
    signature: Annotated[Path | None, typer.Option(help="Signature bundle of the model (`modelshield sign`).")] = None,
    audit_report: Annotated[Path | None, typer.Option(help="report.json from `modelshield audit`.")] = None,
    data_manifest: Annotated[Path | None, typer.Option(help="JSON provenance manifest of the training data.")] = None,
    meta: Annotated[list[str] | None, typer.Option(help="KEY=VALUE metadata (repeatable).")] = None,
    registry: RegistryDir = DEFAULT_REGISTRY,
    db_url: DbUrl = None,
) -> None:
    """Add a model file or directory as the next version of NAME: stored, scanned, with its attachments."""
    with _open(registry, db_url) as reg:
        v = reg.add(
            name,
            path,
            signature=signature,
            audit_report=audit_report,
            data_manifest=data_manifest,
            metadata=_parse_meta(meta),
        )
    typer.echo(f"added {v.name} v{v.version}: sha256:{v.artifact_digest} ({v.kind.value}, {v.size} bytes)")
    scan = v.scan_max_severity.value if v.scan_max_severity else "no findings"
    # Attached is all that is known now: the signature describes these files, but who signed is checked only by
    # `registry promote`, with the signer's key.
    signed = "attached, signer not yet checked" if v.signature_digest else "none"
    audited = "attached" if v.audit_digest else "none"
    typer.echo(f"scan: {scan}; signature: {signed}; audit report: {audited}")


def list_command(registry: RegistryDir = DEFAULT_REGISTRY, db_url: DbUrl = None) -> None:
    """List the models: number of versions, latest version, production version."""
    with _open(registry, db_url) as reg:
        models = reg.list()
    if not models:
        typer.echo("no models")
    for m in models:
        production = f"v{m.production}" if m.production is not None else "-"
        typer.echo(f"{m.name}\tversions: {m.versions}\tlatest: v{m.latest}\tproduction: {production}")


def show_command(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version number, 'production' or 'latest'.")] = "production",
    format: Annotated[OutputFormat, text_or_json()] = OutputFormat.TEXT,
    registry: RegistryDir = DEFAULT_REGISTRY,
    db_url: DbUrl = None,
) -> None:
    """Show one version of a model and what is attached to it."""
    with _open(registry, db_url) as reg:
        v = reg.show(name, version)
    if format is OutputFormat.JSON:
        typer.echo(json.dumps(v.to_dict(), indent=2))
    else:
        typer.echo("\n".join(_describe(v)))


def promote_command(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version number (or 'latest').")],
    public_key: Annotated[Path, typer.Option(help="Public key of the signer; the signature must verify with it.")],
    fail_on: Annotated[
        str,
        choice_option("--fail-on", SEVERITIES, help="Refuse when scan or audit findings reach this severity."),
    ] = "high",
    policy: Annotated[
        Path | None,
        typer.Option(
            help="A release policy (TOML, as for `audit --policy`): the stored audit report must pass it (instead of "
            "--fail-on, which still applies to the scan); each failed rule is named."
        ),
    ] = None,
    registry: RegistryDir = DEFAULT_REGISTRY,
    db_url: DbUrl = None,
) -> None:
    """Promote a version to production; refused (exit 1) unless signed, verified, scanned and audited clean."""
    release_policy = None
    if policy is not None:  # a bad policy file is one line and exit 2, before the registry is opened
        from modelshield.audit.policy import ReleasePolicy

        release_policy = ReleasePolicy.load(policy)
    with _open(registry, db_url) as reg:
        try:
            v = reg.promote(name, version, public_key=public_key, fail_on=fail_on, policy=release_policy)
        except PromotionRefusedError as exc:
            shown = f"v{version}" if version.isdigit() else f"version {version!r}"
            typer.echo(f"refused: {name} {shown} was not promoted to production", err=True)
            for reason in exc.reasons:
                typer.echo(f"  - {printable(reason)}", err=True)
            raise typer.Exit(EXIT_FINDINGS) from None
    typer.echo(f"promoted {v.name} v{v.version} to production")


def rollback_command(
    name: Annotated[str, typer.Argument(help="Model name.")],
    registry: RegistryDir = DEFAULT_REGISTRY,
    db_url: DbUrl = None,
) -> None:
    """Make the previous production version production again."""
    with _open(registry, db_url) as reg:
        v = reg.rollback(name)
    typer.echo(f"rolled {v.name} back: production is v{v.version}")


def history_command(
    name: Annotated[str, typer.Argument(help="Model name.")],
    verify: Annotated[bool, typer.Option(help="Recompute the hash chain; exit 1 if it is broken.")] = False,
    format: Annotated[OutputFormat, text_or_json()] = OutputFormat.TEXT,
    registry: RegistryDir = DEFAULT_REGISTRY,
    db_url: DbUrl = None,
) -> None:
    """Show every change to a model: add, promote, rollback and refused promotions, hash-chained."""
    with _open(registry, db_url) as reg:
        entries = reg.history(name)
        failure: VerificationError | None = None
        verified = None
        if verify:
            try:
                verified = reg.verify_history(name)
            except VerificationError as exc:
                failure = exc
    if format is OutputFormat.JSON:
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2))
    else:
        for e in entries:
            version = f"v{e.version}" if e.version is not None else "-"
            detail = json.dumps(dict(e.detail), sort_keys=True)
            typer.echo(f"#{e.seq}\t{e.timestamp}\t{e.action}\t{version}\t{e.actor}\t{e.hash[:16]}\t{detail}")
    if failure is not None:
        raise _failed(failure)
    if verified is not None:
        typer.echo(verified.summary(), err=format is OutputFormat.JSON)
        raise typer.Exit(EXIT_CLEAN)


def export_command(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version number, 'production' or 'latest'.")],
    output: Annotated[Path, typer.Option(help="Directory to write the model (and NAME.sig) into.")],
    registry: RegistryDir = DEFAULT_REGISTRY,
    db_url: DbUrl = None,
) -> None:
    """Write a stored version back out, verified byte for byte, under its original name (exit 1 if tampered)."""
    with _open(registry, db_url) as reg:
        try:
            path = reg.export(name, version, output)
        except VerificationError as exc:
            raise _failed(exc) from None
    typer.echo(f"exported {name} {version} -> {path}")


def register(app: typer.Typer) -> None:
    """Add the ``registry`` command group to ``app``."""
    group = typer.Typer(
        name="registry",
        help="Model registry: versions with signature, scan and audit attached; promote and roll back.",
        no_args_is_help=True,
    )
    group.command("add")(add_command)
    group.command("list")(list_command)
    group.command("show")(show_command)
    group.command("promote")(promote_command)
    group.command("rollback")(rollback_command)
    group.command("history")(history_command)
    group.command("export")(export_command)
    app.add_typer(group, name="registry")
