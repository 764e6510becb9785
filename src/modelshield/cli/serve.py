"""``modelshield serve``: run the security gateway in front of a model, under uvicorn.

$ modelshield serve --config gateway/gateway.toml --registry churn@production --workers 2
$ modelshield serve --target zoo:digits-cnn          # the demo: a gateway directory, keys and a curl line

With ``--config`` the configuration file says everything; a model flag replaces its ``[model]`` source. Without
``--config`` a demo gateway is set up in ``./modelshield-gateway`` (created once, reused after): a publisher key that
signs the model, the gateway's own signing key for its log, the configuration, and on each start a fresh admin
key and client key, printed once with a curl line to try.

Everything is checked before a port is opened: the configuration, the model's signature, the stores. Several
workers need Redis for their shared limits (``[store] redis``); each worker loads the model and writes one shared,
verifiable audit log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.cli.options import choice_option
from modelshield.errors import InvalidParameterError
from modelshield.reporting.interface import printable

if TYPE_CHECKING:
    from modelshield.gateway.app import Gateway
    from modelshield.gateway.config import GatewayConfig

__all__ = ["register"]

DEMO_DIR = Path("modelshield-gateway")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time (UTC, ISO 8601), level, logger, message, and the exception's type."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__  # the type only: tracebacks stay out of shipped logs
        return json.dumps(entry, ensure_ascii=True)


def _logging(log_format: str) -> dict[str, Any]:
    """The logging set-up of the server process (and its workers): uvicorn's and modelshield's loggers on stderr."""
    from modelshield.cli._console import LOG_HANDLER

    formatter = JsonFormatter() if log_format == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    LOG_HANDLER.setFormatter(formatter)
    logging.getLogger("modelshield").setLevel(min(logging.getLogger("modelshield").level or logging.INFO, logging.INFO))
    LOG_HANDLER.setLevel(min(LOG_HANDLER.level, logging.INFO))
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    main = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"format": "%(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": main},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "modelshield": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }


def _source_flags(target: str | None, model: Path | None, registry: str | None, upstream: str | None) -> dict[str, str]:
    given = {
        k: str(v)
        for k, v in (("target", target), ("file", model), ("registry", registry), ("upstream", upstream))
        if v is not None
    }
    if len(given) > 1:
        raise InvalidParameterError(
            f"Give one model source, not {len(given)}.",
            cli_remedy="Pass one of --target, --model, --registry or --upstream.",
        )
    if "file" in given:
        given["file"] = str(Path(given["file"]).resolve())  # relative to where the command runs, not the config
    return given


def demo_config(directory: Path, target: str) -> Path:
    """A gateway directory for ``target`` (created on first use): keys, the model's signature and the configuration."""
    from modelshield.gateway.config import template
    from modelshield.supply_chain.keys import generate_keypair, load_private_key, write_keypair
    from modelshield.supply_chain.signing import sign_model
    from modelshield.zoo import load_target

    config = directory / "gateway.toml"
    keys = directory / "keys"
    if not (keys / "publisher.key").is_file():
        write_keypair(generate_keypair("ed25519"), keys, name="publisher")
    if not (keys / "gateway.key").is_file():
        write_keypair(generate_keypair("ed25519"), keys, name="gateway")
    if not (keys / "watermark.key").is_file():
        from modelshield.monitoring.watermark import WatermarkKey

        WatermarkKey.generate(keys / "watermark.key")
    built = load_target(target)
    if built.model_path is None:
        raise InvalidParameterError(f"{target} has no model file to sign and serve.")
    stem = target.removeprefix("zoo:")
    signature = directory / f"{stem}.sig"
    sign_model(built.model_path, load_private_key(keys / "publisher.key"), signature)
    if not config.is_file():
        text = template(source=f'target = "{target}"\nsignature = "{signature.name}"')
        config.write_text(text, encoding="utf-8")
    return config


def serve_command(
    config: Annotated[Path | None, typer.Option(help="Gateway configuration (TOML, from `gateway init`).")] = None,
    target: Annotated[str | None, typer.Option(help="Serve a reference target, e.g. zoo:digits-cnn.")] = None,
    model: Annotated[Path | None, typer.Option(help="Serve a model file (ONNX, skops, safetensors...).")] = None,
    registry: Annotated[str | None, typer.Option(help="Serve a registry stage, NAME@STAGE; hot-swapped.")] = None,
    upstream: Annotated[
        str | None, typer.Option(help="Proxy an Open Inference Protocol v2 server at this URL.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: the config's, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: the config's, 8080).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes (default: the config's).")
    ] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM); with --ssl-keyfile.")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM); with --ssl-certfile.")] = None,
    require_signature: Annotated[
        bool | None,
        typer.Option(
            "--require-signature/--no-require-signature",
            help="Serve only a model whose signature verifies against [model] public_key (default: the config's, on).",
        ),
    ] = None,
    log_format: Annotated[
        str,
        choice_option(
            "--log-format", ("json", "text"), help="Server logs on stderr: one JSON object per line, or text."
        ),
    ] = "json",
) -> None:
    """Serve a model behind the security gateway: keys, limits, validation, guards and a tamper-evident log."""
    from modelshield.gateway.config import load_config

    source = _source_flags(target, model, registry, upstream)
    demo = config is None
    if demo:
        if set(source) != {"target"}:
            raise InvalidParameterError(
                "Without --config only the demo runs, and it serves a reference target.",
                cli_remedy="Pass --config FILE (write one with `modelshield gateway init`), or --target zoo:NAME.",
            )
        config = demo_config(DEMO_DIR, source["target"])
        source = {}
    assert config is not None  # noqa: S101 - set above
    settings = load_config(config).with_source(**source)
    server = settings.server
    updates = {
        k: v
        for k, v in (
            ("host", host),
            ("port", port),
            ("workers", workers),
            ("ssl_certfile", ssl_certfile.resolve() if ssl_certfile else None),
            ("ssl_keyfile", ssl_keyfile.resolve() if ssl_keyfile else None),
        )
        if v is not None
    }
    settings = settings.model_copy(update={"server": server.model_copy(update=updates)})
    if require_signature is not None:
        settings = settings.with_model(require_signature=require_signature)
    _check_serving(settings)
    run(settings, config_path=config, demo=demo, log_format=log_format)


def _check_serving(settings: GatewayConfig) -> None:
    server = settings.server
    if (server.ssl_certfile is None) != (server.ssl_keyfile is None):
        raise InvalidParameterError(
            "TLS needs both a certificate and its key.", cli_remedy="Pass both --ssl-certfile and --ssl-keyfile."
        )
    if server.workers > 1 and settings.store.redis is None:
        raise InvalidParameterError(
            f"{server.workers} workers would each keep their own limits, giving every client {server.workers} times "
            "its budget.",
            remedy="Set [store] redis (e.g. redis://127.0.0.1:6379) so that workers share limits, or use one worker.",
        )


def _one_blas_thread() -> None:
    """One BLAS thread per request thread: the gateway answers many requests at once, and BLAS thread pools in each
    fight over the cores (a detector's 32-row batch took 23 ms instead of 2 under contention). The server process
    owns its threads, so the command sets this once, at start-up; library code never does."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # worker processes, before they import numpy
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def run(settings: GatewayConfig, *, config_path: Path, demo: bool = False, log_format: str = "json") -> None:
    """Check everything by building the gateway once, then serve it with uvicorn."""
    import uvicorn

    from modelshield.gateway.app import Gateway

    log_config = _logging(log_format)
    server = settings.server
    ssl = {}
    if server.ssl_certfile is not None and server.ssl_keyfile is not None:
        ssl = {
            "ssl_certfile": str(settings.path(server.ssl_certfile)),
            "ssl_keyfile": str(settings.path(server.ssl_keyfile)),
        }
    common = {
        "host": server.host,
        "port": server.port,
        "server_header": False,
        "access_log": False,  # every request is in the audit log, with its client and decision
        "log_config": log_config,
        **ssl,
    }
    _one_blas_thread()
    gateway = Gateway(settings)  # loads and verifies the model, opens the stores: fails before a port opens
    model = gateway.deployment.model
    scheme = "https" if ssl else "http"
    base = f"{scheme}://{server.host}:{server.port}"
    sys.stderr.write(printable(f"serving {model.name} v{model.version} ({model.digest}) from {model.source}") + "\n")
    if demo:
        _print_demo_keys(gateway, base, model.name, model.classifier.input_shape)
    if server.workers == 1:
        try:
            uvicorn.run(gateway.app, **common)  # type: ignore[arg-type]
        finally:
            gateway.close()
        return
    gateway.close()
    os.environ["MODELSHIELD_GATEWAY_CONFIG"] = str(config_path.resolve())
    os.environ["MODELSHIELD_GATEWAY_MODEL"] = settings.model.model_dump_json()
    os.environ["MODELSHIELD_GATEWAY_SERVER"] = server.model_dump_json()
    uvicorn.run(
        "modelshield.cli.serve:app_from_environment",
        factory=True,
        workers=server.workers,
        **common,  # type: ignore[arg-type]
    )


def app_from_environment() -> Any:
    """The app of one worker process (uvicorn's factory): the configuration the parent checked, from the environment.

    ``modelshield serve --workers N`` sets ``MODELSHIELD_GATEWAY_CONFIG`` (the file), ``MODELSHIELD_GATEWAY_MODEL``
    and ``MODELSHIELD_GATEWAY_SERVER`` (the ``[model]`` and ``[server]`` settings after the command-line flags) before
    uvicorn starts the workers.
    """
    from modelshield.gateway.app import create_app
    from modelshield.gateway.config import ModelSettings, ServerSettings, load_config

    _one_blas_thread()
    config = load_config(os.environ["MODELSHIELD_GATEWAY_CONFIG"])
    model = os.environ.get("MODELSHIELD_GATEWAY_MODEL")
    if model:
        config = config.model_copy(update={"model": ModelSettings.model_validate_json(model)})
    server = os.environ.get("MODELSHIELD_GATEWAY_SERVER")
    if server:
        config = config.model_copy(update={"server": ServerSettings.model_validate_json(server)})
    return create_app(config)


def _print_demo_keys(gateway: Gateway, base: str, name: str, input_shape: tuple[int, ...]) -> None:
    from modelshield.gateway.identity import Role

    keys = gateway.keys
    admin, _ = keys.create("demo-admin", Role.ADMIN, expires_days=1)
    client, _ = keys.create("demo-client", Role.CLIENT, expires_days=1)
    n = 1
    for d in input_shape:
        n *= d
    data = ",".join(["0"] * n)
    shape = ", ".join(str(d) for d in input_shape)
    body = f'{{"inputs":[{{"name":"input","shape":[1, {shape}],"datatype":"FP32","data":[{data}]}}]}}'
    typer.echo(f"admin key:  {admin}")
    typer.echo(f"client key: {client}")
    typer.echo("These keys are shown once and expire in a day. Try:")
    typer.echo(
        f"curl -s -H 'Authorization: Bearer {client}' -H 'Content-Type: application/json' "
        f"-d '{body}' {base}/v2/models/{name}/infer"
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
