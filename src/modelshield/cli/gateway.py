"""``modelshield gateway``: set up a gateway, manage its API keys, and check or export its audit log.

$ modelshield gateway init --config gw/gateway.toml --model model.onnx --public-key keys/publisher.pub
$ modelshield gateway keys create --config gw/gateway.toml --client partner-a --role client --budget 50000
$ modelshield gateway keys list --config gw/gateway.toml
$ modelshield gateway keys revoke --config gw/gateway.toml KEY_ID
$ modelshield gateway log verify --config gw/gateway.toml
$ modelshield gateway log export --config gw/gateway.toml --since 2026-12-01 --out log.jsonl
$ modelshield gateway alerts --config gw/gateway.toml [--format json]
$ modelshield gateway verdict --config gw/gateway.toml 12 false-positive --suppress-days 7 --note "load test"
$ modelshield gateway review list --config gw/gateway.toml
$ modelshield gateway review approve --config gw/gateway.toml 3
$ modelshield gateway ownership --config gw/gateway.toml --suspect copy.onnx

Keys are shown once, on stdout, and stored only as SHA-256 digests. ``log verify`` exits 0 when the hash chain and
every signed checkpoint hold, 1 naming the first edited, deleted, inserted or reordered record. ``ownership`` exits 1
when the suspect model carries the watermark (p below --alpha): a finding, as the scanners report one.
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
    from modelshield.gateway.response import ActionStore

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
    watermark = keys / "watermark.key"
    if not watermark.exists():
        from modelshield.monitoring.watermark import WatermarkKey

        WatermarkKey.generate(watermark)
    write_text_atomic(config, text)
    typer.echo(
        printable(f"wrote {config}, the log-signing key {keys / 'gateway.key'} and the watermark key {watermark}")
    )
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


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")


def alerts_command(
    config: ConfigOption,
    status: Annotated[str | None, choice_option("--status", ("open", "closed"), help="Only these incidents.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many incidents.")] = 50,
    format: Annotated[OutputFormat, text_or_json()] = OutputFormat.TEXT,
) -> None:
    """List incidents, highest risk first, with the client each concerns and its alerts."""
    from modelshield.gateway.config import load_config
    from modelshield.monitoring.alerts import AlertStore, risk_label

    settings = load_config(config)
    store = AlertStore(settings.database_url)
    try:
        incidents = store.incidents(status=status, limit=limit)
        detail = [(i, store.incident(i.id)[1]) for i in incidents]
    finally:
        store.close()
    if format is OutputFormat.JSON:
        rows = [{**i.to_dict(), "alert_list": [a.to_dict() for a in alerts]} for i, alerts in detail]
        typer.echo(json.dumps({"incidents": rows}, indent=2))
        return
    if not detail:
        typer.echo("no incidents")
        return
    for incident, alerts in detail:
        verdict = f", judged {incident.verdict.value}" if incident.verdict is not None else ""
        clients = ", ".join(incident.clients[:5]) + (" ..." if len(incident.clients) > 5 else "")
        typer.echo(
            printable(
                f"#{incident.id}  risk {incident.risk:.0f} ({risk_label(incident.risk)})  {incident.status}{verdict}  "
                f"{incident.technique}  client {clients}  {incident.alerts} alert(s), last {_when(incident.updated)}"
            )
        )
        for stored in alerts[-5:]:
            a = stored.alert
            times = f" x{stored.count}" if stored.count > 1 else ""
            typer.echo(printable(f"    {_when(a.time)}  {a.severity.value:<8} {a.detector}{times}: {a.summary}"))


def verdict_command(
    config: ConfigOption,
    incident: Annotated[int, typer.Argument(min=1, help="The incident's number (from `gateway alerts`).")],
    verdict: Annotated[str, typer.Argument(help="true-positive or false-positive.")],
    note: Annotated[str, typer.Option(help="Why (kept with the verdict).")] = "",
    suppress_days: Annotated[
        float | None,
        typer.Option(min=0.001, max=366, help="With false-positive: silence these detectors for this client."),
    ] = None,
) -> None:
    """Record an analyst's verdict on an incident; the ranking of every open incident learns from it."""
    import getpass

    from modelshield.gateway.config import load_config
    from modelshield.monitoring.alerts import AlertStore, Verdict

    if verdict not in {v.value for v in Verdict}:
        raise InvalidParameterError(f"{verdict!r} is not a verdict.", cli_remedy="Say true-positive or false-positive.")
    settings = load_config(config)
    store = AlertStore(settings.database_url)
    try:
        result = store.set_verdict(
            incident,
            Verdict(verdict),
            analyst=f"cli:{getpass.getuser()}",
            note=note,
            suppress_s=None if suppress_days is None else suppress_days * 86_400.0,
        )
    finally:
        store.close()
    _audit(settings, "verdict", f"incident {result.id}: {verdict}")
    typer.echo(printable(f"incident #{result.id} judged {verdict}; closed"))


def _actions(config: Path) -> tuple[GatewayConfig, ActionStore]:
    from modelshield.gateway.config import load_config
    from modelshield.gateway.response import ActionStore

    settings = load_config(config)
    return settings, ActionStore(settings.database_url)


def review_list_command(
    config: ConfigOption,
    status: Annotated[
        str,
        choice_option("--status", ("pending", "active", "approved", "denied", "lifted"), help="Which actions."),
    ] = "pending",
    format: Annotated[OutputFormat, text_or_json()] = OutputFormat.TEXT,
) -> None:
    """List the response actions (by default those waiting for a reviewer)."""
    _, store = _actions(config)
    try:
        actions = store.actions(status=status)
    finally:
        store.close()
    if format is OutputFormat.JSON:
        typer.echo(json.dumps({"actions": [a.to_dict() for a in actions]}, indent=2))
        return
    if not actions:
        typer.echo(f"no {status} actions")
    for a in actions:
        clients = ", ".join(a.clients[:5]) or a.actor
        line = f"{a.id}  {a.kind.value:<13} {a.status:<8} client {clients}  {a.reason}  ({_when(a.created)})"
        typer.echo(printable(line))


def review_show_command(
    config: ConfigOption,
    action: Annotated[int, typer.Argument(min=1, help="The action's number (from `review list`).")],
) -> None:
    """Show one action with its incident and the incident's alerts."""
    from modelshield.monitoring.alerts import AlertStore

    settings, store = _actions(config)
    try:
        found = store.get(action)
    finally:
        store.close()
    shown: dict[str, object] = {"action": found.to_dict()}
    if found.incident_id is not None:
        alerts = AlertStore(settings.database_url)
        try:
            incident, stored = alerts.incident(found.incident_id)
        finally:
            alerts.close()
        shown["incident"] = {**incident.to_dict(), "alert_list": [a.to_dict() for a in stored]}
    typer.echo(json.dumps(shown, indent=2))


def _decide(config: Path, action: int, decision: str) -> None:
    import getpass

    settings, store = _actions(config)
    reviewer = f"cli:{getpass.getuser()}"
    try:
        if decision == "lift":
            done = store.lift(action, reviewer=reviewer)
        else:
            done = store.decide(action, approve=decision == "approve", reviewer=reviewer)
    finally:
        store.close()
    _audit(settings, f"review-{decision}", f"action {done.id}: {done.kind.value} on {done.actor} -> {done.status}")
    when = "; in force on every worker within [response] refresh_s" if done.status == "active" else ""
    typer.echo(printable(f"action {done.id} ({done.kind.value} on {done.actor}) is {done.status}{when}"))


def review_approve_command(
    config: ConfigOption, action: Annotated[int, typer.Argument(min=1, help="The pending action's number.")]
) -> None:
    """Approve a pending action: it takes effect now."""
    _decide(config, action, "approve")


def review_deny_command(
    config: ConfigOption, action: Annotated[int, typer.Argument(min=1, help="The pending action's number.")]
) -> None:
    """Deny a pending action: it never takes effect."""
    _decide(config, action, "deny")


def review_lift_command(
    config: ConfigOption, action: Annotated[int, typer.Argument(min=1, help="The active action's number.")]
) -> None:
    """End an active action now (a suspension lifted, a throttle removed)."""
    _decide(config, action, "lift")


def ownership_command(
    config: ConfigOption,
    suspect: Annotated[Path, typer.Option(help="The suspect model file (loaded by the safe loader).")],
    client: Annotated[str | None, typer.Option(help="Only the answers given to this client.")] = None,
    alpha: Annotated[float, typer.Option(min=1e-12, max=0.5, help="Claim ownership below this p-value.")] = 0.001,
    architecture: Annotated[
        str | None, typer.Option(help="For weights-only files: zoo:NAME or package.module:Class.")
    ] = None,
    trust_type: Annotated[
        list[str] | None,
        typer.Option("--trust-type", help="A type the suspect's skops file may hold (repeatable), after review."),
    ] = None,
    format: Annotated[OutputFormat, text_or_json()] = OutputFormat.TEXT,
) -> None:
    """Test whether a suspect model was trained on this gateway's answers (its watermark), with a p-value."""
    from modelshield.gateway.config import load_config
    from modelshield.loading import load_model
    from modelshield.monitoring.watermark import WatermarkLedger, prove_ownership

    settings = load_config(config)
    if not suspect.is_file():
        raise FileFormatError(f"No suspect model at {suspect}.", remedy="Pass the path of the model to test.")
    m = settings.model
    shape = tuple(m.input_shape) if m.input_shape is not None else None
    loaded = load_model(
        suspect, architecture=architecture, input_shape=shape, n_classes=m.n_classes, trusted_types=trust_type or ()
    )
    ledger = WatermarkLedger(settings.database_url)
    try:
        result = prove_ownership(loaded.classifier, ledger, clients=client, alpha=alpha)
    finally:
        ledger.close()
    if format is OutputFormat.JSON:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(printable(result.summary))
    if result.p_value < alpha:
        raise typer.Exit(EXIT_FINDINGS)


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
    gateway.command("alerts")(alerts_command)
    gateway.command("verdict")(verdict_command)
    gateway.command("ownership")(ownership_command)
    review = typer.Typer(
        help="Response actions waiting for a person: list, show, approve, deny, lift.", no_args_is_help=True
    )
    review.command("list")(review_list_command)
    review.command("show")(review_show_command)
    review.command("approve")(review_approve_command)
    review.command("deny")(review_deny_command)
    review.command("lift")(review_lift_command)
    gateway.add_typer(keys, name="keys")
    gateway.add_typer(logs, name="log")
    gateway.add_typer(review, name="review")
    app.add_typer(gateway, name="gateway")
