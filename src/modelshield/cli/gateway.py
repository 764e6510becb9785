"""``modelshield gateway``: set up a gateway, manage its API keys, and check or export its audit log.

$ modelshield gateway init --config gw/gateway.toml --model model.onnx --public-key keys/publisher.pub
$ modelshield gateway keys create --config gw/gateway.toml --client partner-a --role client --budget 50000
$ modelshield gateway keys list --config gw/gateway.toml
$ modelshield gateway keys revoke --config gw/gateway.toml KEY_ID
$ modelshield gateway log verify --config gw/gateway.toml
$ modelshield gateway log export --config gw/gateway.toml --since 2026-12-01 --out log.jsonl

Keys are shown once, on stdout, and stored only as SHA-256 digests. ``log verify`` exits 0 when the hash chain and
every signed checkpoint hold, 1 naming the first edited, deleted, inserted or reordered record.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield.cli.options import EXIT_FINDINGS, OutputFormat, choice_option, text_or_json
from modelshield.errors import FileFormatError, InvalidParameterError
from modelshield.reporting.interface import printable

if TYPE_CHECKING:
    from modelshield.gateway.config import GatewayConfig
    from modelshield.gateway.identity import KeyStore

__all__ = ["register"]

ConfigOption = Annotated[Path, typer.Option("--config", help="Gateway configuration file (TOML).")]
ROLES = ("client", "analyst", "admin")


def init_command(
    config: ConfigOption,
    target: Annotated[str | None, typer.Option(help="Serve a reference target, e.g. zoo:digits-cnn.")] = None,
    model: Annotated[Path | None, typer.Option(help="Serve this model file.")] = None,
    registry: Annotated[str | None, typer.Option(help="Serve this registry stage, NAME@STAGE.")] = None,
    upstream: Annotated[str | None, typer.Option(help="Proxy this Open Inference Protocol v2 server.")] = None,
    public_key: Annotated[
        Path | None, typer.Option(help="The trusted publisher's public key (models must verify against it).")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="The owner's data (CSV, Parquet): the input schema and the guards' calibration."),
    ] = None,
) -> None:
    """Write a commented configuration with safe defaults, and the gateway's own key for signing its log."""
    from modelshield._internal.atomic import write_text_atomic
    from modelshield.gateway.config import parse_config, template
    from modelshield.supply_chain.keys import generate_keypair, write_keypair

    if config.exists():
        raise FileFormatError(f"{config} already exists.", remedy="Pick another path, or edit the existing file.")
    base = config.parent
    lines = []
    for key, value in (("target", target), ("file", model), ("registry", registry), ("upstream", upstream)):
        if value is not None:
            shown = str(Path(value).resolve()) if key == "file" else str(value)
            lines.append(f"{key} = {json.dumps(shown)}")
    if len(lines) > 1:
        raise InvalidParameterError(
            "Give one model source.", cli_remedy="Pass one of --target, --model, --registry or --upstream."
        )
    publisher = str(public_key.resolve()) if public_key is not None else "keys/publisher.pub"
    data = str(reference.resolve()) if reference is not None else ""
    text = template(source=lines[0] if lines else "", public_key=publisher, reference=data)
    parse_config(text, base=base, where="The generated configuration")  # the template always validates
    base.mkdir(parents=True, exist_ok=True)
    keys = base / "keys"
    if not (keys / "gateway.key").exists():
        write_keypair(generate_keypair("ed25519"), keys, name="gateway")
    write_text_atomic(config, text)
    typer.echo(printable(f"wrote {config} and the log-signing key {keys / 'gateway.key'}"))
    if public_key is None:
        typer.echo(
            printable(f"put the model publisher's public key at {keys / 'publisher.pub'} (or edit [model] public_key)")
        )


def _store(config: Path) -> tuple[GatewayConfig, KeyStore]:
    from modelshield.gateway.config import load_config
    from modelshield.gateway.identity import KeyStore

    settings = load_config(config)
    return settings, KeyStore(settings.database_url)


def _audit(settings: GatewayConfig, kind: str, detail: str) -> None:
    """Record a key change made from the command line in the gateway's audit log, as the admin API would."""
    import getpass
    import time
    import uuid

    from modelshield.gateway.auditlog import AuditLog, AuditRecord
    from modelshield.supply_chain.keys import load_private_key

    key = settings.audit.signing_key
    signing = load_private_key(settings.path(key)) if key is not None else None
    with AuditLog(settings.database_url, signing_key=signing, checkpoint_every=settings.audit.checkpoint_every) as log:
        log.append(
            AuditRecord(
                time=time.time(),
                request_id=uuid.uuid4().hex,
                kind=kind,
                client=f"cli:{getpass.getuser()}"[:64],
                role="admin",
                model_digest="",
                input_sha256="",
                status=0,
                decision="allow",
                reasons=(detail,),
            )
        ).result(timeout=30)


def keys_create_command(
    config: ConfigOption,
    client: Annotated[str, typer.Option(help="The client's name (letters, digits, . _ @ -).")],
    role: Annotated[
        str, choice_option("--role", ROLES, help="client (infer), analyst (read the log) or admin.")
    ] = "client",
    expires: Annotated[
        float | None, typer.Option(min=0.001, help="Days until the key expires (default: never).")
    ] = None,
    budget: Annotated[int | None, typer.Option(min=1, help="Rows per day for this key (default: [limits]).")] = None,
) -> None:
    """Create an API key; it is printed once, on stdout, and stored only as its SHA-256 digest."""
    from modelshield.gateway.identity import Role

    settings, store = _store(config)
    secret, info = store.create(client, Role(role), expires_days=expires, rows_per_day=budget)
    _audit(settings, "key-create", f"{info.key_id} for {info.client} ({info.role.value})")
    sys.stderr.write(printable(f"key {info.key_id} for {info.client} ({info.role.value}); shown once:") + "\n")
    typer.echo(secret)


def keys_list_command(
    config: ConfigOption,
    format: Annotated[OutputFormat, text_or_json()] = OutputFormat.TEXT,
) -> None:
    """List the API keys (never their secrets)."""
    keys = _store(config)[1].list()
    if format is OutputFormat.JSON:
        now = datetime.now(UTC).timestamp()
        shown = [{**dataclasses.asdict(k), "role": k.role.value, "status": k.status(now)} for k in keys]
        typer.echo(json.dumps(shown, indent=2))
        return
    for k in keys:
        state = k.status(datetime.now(UTC).timestamp())
        budget = f", {k.rows_per_day} rows/day" if k.rows_per_day else ""
        typer.echo(printable(f"{k.key_id}  {k.client}  {k.role.value}  {state}{budget}"))


def keys_revoke_command(
    config: ConfigOption,
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
) -> None:
    """Revoke a key; every worker and replica refuses it within [auth] key_refresh_s."""
    settings, store = _store(config)
    info = store.revoke(key_id)
    _audit(settings, "key-revoke", f"{info.key_id} of {info.client}")
    typer.echo(printable(f"revoked {info.key_id} of {info.client}"))


def log_verify_command(config: ConfigOption) -> None:
    """Check the audit log's hash chain and signed checkpoints; exit 1 naming the first bad record."""
    from modelshield.gateway.auditlog import LogTamperedError, verify_log
    from modelshield.gateway.config import load_config
    from modelshield.supply_chain.keys import load_private_key, load_public_key

    settings = load_config(config)
    key = None
    if settings.audit.signing_key is not None:
        private = settings.path(settings.audit.signing_key)
        public = private.with_suffix(".pub")
        key = load_public_key(public) if public.is_file() else load_private_key(private).public()
    try:
        result = verify_log(settings.database_url, key)
    except LogTamperedError as exc:
        typer.echo(printable(f"NOT VERIFIED: {exc.message}"))
        raise typer.Exit(EXIT_FINDINGS) from None
    typer.echo(printable(f"verified: {result.summary()}"))


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParameterError(
            f"--since {value!r} is neither a date nor a Unix time.",
            cli_remedy="Pass e.g. 2026-12-01 or 2026-12-01T08:00Z.",
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def log_export_command(
    config: ConfigOption,
    since: Annotated[
        str | None, typer.Option(help="Only records from this time (ISO 8601 date or Unix seconds).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write JSON lines here (default: stdout).")] = None,
) -> None:
    """Write the audit log's records as JSON lines."""
    from modelshield._internal.atomic import write_text_atomic
    from modelshield.gateway.auditlog import export_log
    from modelshield.gateway.config import load_config

    settings = load_config(config)
    start = _since(since)
    if out is None:
        export_log(settings.database_url, sys.stdout, since=start)
        return
    import io

    buffer = io.StringIO()
    n = export_log(settings.database_url, buffer, since=start)
    write_text_atomic(out, buffer.getvalue())
    sys.stderr.write(printable(f"wrote {n} records to {out}") + "\n")


def register(app: typer.Typer) -> None:
    gateway = typer.Typer(help="Set up the gateway, manage its keys, check its audit log.", no_args_is_help=True)
    keys = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
    logs = typer.Typer(help="The audit log: verify, export.", no_args_is_help=True)
    gateway.command("init")(init_command)
    keys.command("create")(keys_create_command)
    keys.command("list")(keys_list_command)
    keys.command("revoke")(keys_revoke_command)
    logs.command("verify")(log_verify_command)
    logs.command("export")(log_export_command)
    gateway.add_typer(keys, name="keys")
    gateway.add_typer(logs, name="log")
    app.add_typer(gateway, name="gateway")
