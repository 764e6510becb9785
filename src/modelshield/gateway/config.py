"""The gateway's one configuration file (TOML): read, validated at start, every error naming the key and the fix.

    >>> from modelshield.gateway.config import template, parse_config
    >>> config = parse_config(template(), base=Path("."))  # doctest: +SKIP
    >>> config.limits.rows_per_day  # doctest: +SKIP
    100000

Deny by default: without a key nothing is answered (``[auth] allow_anonymous`` opens inference to everyone, with a
role of its own); a model must verify against the trusted publisher key before it is served
(``[model] require_signature``); the limits, the body size and the batch size all have finite defaults; input
validation and the extraction monitor are on. Relative paths are resolved against the configuration file's
directory, so a gateway directory can be moved as a whole.

:func:`template` is what ``modelshield gateway init`` writes: every key, commented, with its safe default.
"""

from __future__ import annotations

import enum
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelshield.errors import FileFormatError, InvalidParameterError

__all__ = [
    "AlertSettings",
    "AuditSettings",
    "AuthSettings",
    "ConsoleSettings",
    "GatewayConfig",
    "GuardMode",
    "GuardSettings",
    "LimitsSettings",
    "ModelSettings",
    "MonitoringSettings",
    "OutputPolicy",
    "OutputSettings",
    "ResponseSettings",
    "ServerSettings",
    "StoreSettings",
    "ValidationSettings",
    "WatermarkSettings",
    "load_config",
    "parse_config",
    "template",
]

_MAX_CONFIG_BYTES = 1 << 20


class GuardMode(enum.StrEnum):
    """What a guard does on an alarm: nothing (``off``: not run), record it (``log``), or refuse (``block``)."""

    OFF = "off"
    LOG = "log"
    BLOCK = "block"


class OutputPolicy(enum.StrEnum):
    """What a client receives: every probability, the top k, rounded probabilities, or the label alone."""

    PROBABILITIES = "probabilities"
    TOP_K = "top-k"
    ROUNDED = "rounded"
    LABEL = "label"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    max_body_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = 4 << 20
    request_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    admin_prefix: str = "/admin"
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @field_validator("admin_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.rstrip("/") in ("", "/v2") or value.startswith("/v2/"):
            raise ValueError("must be a path such as '/admin', apart from the inference API under /v2")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: set both for TLS, or neither")
        return self


class ModelSettings(_Section):
    target: str | None = None
    file: Path | None = None
    registry: str | None = None
    upstream: str | None = None
    upstream_token_file: Path | None = None
    name: str | None = None
    require_signature: bool = True
    public_key: Path | None = None
    signature: Path | None = None
    architecture: str | None = None
    input_shape: tuple[int, ...] | None = None
    n_classes: Annotated[int, Field(ge=2)] | None = None
    classes: tuple[str, ...] | None = None
    registry_dir: Path = Path("modelshield-registry")
    registry_db: str | None = None
    poll_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    reference: Path | None = None
    label: str = "label"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @property
    def source(self) -> str | None:
        """Which source is set: ``target``, ``file``, ``registry`` or ``upstream`` (None when none is)."""
        chosen = [k for k in ("target", "file", "registry", "upstream") if getattr(self, k) is not None]
        return chosen[0] if len(chosen) == 1 else None

    @model_validator(mode="after")
    def _one_source(self) -> ModelSettings:
        chosen = [k for k in ("target", "file", "registry", "upstream") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"set one model source, not {len(chosen)} ({', '.join(chosen)})")
        if self.registry is not None and "@" not in self.registry:
            raise ValueError("registry takes NAME@STAGE, e.g. 'churn@production'")
        if self.require_signature and self.public_key is None and chosen and chosen[0] != "upstream":
            raise ValueError("require_signature is on but no public_key names the trusted publisher's key")
        return self


class StoreSettings(_Section):
    database: str = "sqlite:///gateway.db"
    redis: str | None = None

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be sqlite:///PATH or postgresql://HOST:PORT/DB")
        return value

    @field_validator("redis")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be redis://HOST:PORT (or rediss:// for TLS); leave it out for one process")
        return value


class AuthSettings(_Section):
    allow_anonymous: bool = False
    anonymous_role: Literal["client"] = "client"
    key_refresh_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    jwt_jwks: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_role_claim: Annotated[str, Field(min_length=1, max_length=64)] = "role"
    jwt_algorithms: tuple[Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"], ...] = (
        "RS256",
        "ES256",
        "EdDSA",
    )
    jwt_leeway_s: Annotated[float, Field(ge=0, le=300)] = 30.0

    @model_validator(mode="after")
    def _jwt(self) -> AuthSettings:
        parts = (self.jwt_jwks, self.jwt_issuer, self.jwt_audience)
        if any(p is not None for p in parts) and not all(p is not None for p in parts):
            raise ValueError("JWT needs jwt_jwks, jwt_issuer and jwt_audience together")
        return self


class LimitsSettings(_Section):
    requests_per_second: Annotated[float, Field(gt=0, le=1e6)] = 20.0
    rows_per_second: Annotated[float, Field(gt=0, le=1e9)] = 2000.0
    rows_per_day: Annotated[int, Field(ge=1)] = 100_000
    max_batch_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    on_storage_error: Literal["reject", "allow"] = "reject"


class ValidationSettings(_Section):
    enabled: bool = True
    schema_file: Annotated[Path | None, Field(alias="schema")] = None
    tolerance: Annotated[float, Field(ge=0, le=10)] = 0.0
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OutputSettings(_Section):
    default: OutputPolicy = OutputPolicy.PROBABILITIES
    top_k: Annotated[int, Field(ge=1)] = 1
    decimals: Annotated[int, Field(ge=0, le=6)] = 2
    roles: dict[Literal["client", "analyst", "admin"], OutputPolicy] = Field(default_factory=dict)
    clients: dict[str, OutputPolicy] = Field(default_factory=dict)


class GuardSettings(_Section):
    extraction_monitor: GuardMode = GuardMode.LOG
    adversarial_detector: GuardMode = GuardMode.OFF


class WatermarkSettings(_Section):
    rate: Annotated[float, Field(ge=0, le=0.2)] = 0.0
    key: Path = Path("keys/watermark.key")


MonitorName = Literal["extraction", "evasion", "probing", "sybil", "behaviour"]


class MonitoringSettings(_Section):
    enabled: bool = False
    detectors: tuple[MonitorName, ...] = ("extraction", "evasion", "probing", "sybil", "behaviour")
    max_clients: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    drift_window: Annotated[int, Field(ge=0, le=1_000_000)] = 1000
    drift_step: Annotated[int, Field(ge=1, le=1_000_000)] = 250
    drift_alpha: Annotated[float, Field(gt=0, lt=1)] = 0.01
    state_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    watermark: WatermarkSettings = Field(default_factory=WatermarkSettings)


class ResponseSettings(_Section):
    enabled: bool = True
    policy: Path | None = None
    refresh_s: Annotated[float, Field(gt=0, le=1.0)] = 0.25


class AlertSettings(_Section):
    jsonl: Path | None = None
    webhook: str | None = None
    webhook_secret: Path | None = None
    dedup_s: Annotated[float, Field(ge=0, le=86_400)] = 600.0
    incident_idle_s: Annotated[float, Field(gt=0, le=30 * 86_400)] = 86_400.0

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> AlertSettings:
        if (self.webhook is None) != (self.webhook_secret is None):
            raise ValueError("webhook and webhook_secret go together: set both or neither")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ValueError("webhook must be an http:// or https:// URL")
        return self


class AuditSettings(_Section):
    signing_key: Path | None = None
    checkpoint_every: Annotated[int, Field(ge=1)] = 1000
    checkpoint_interval_s: Annotated[float, Field(gt=0)] = 60.0


class ConsoleSettings(_Section):
    enabled: bool = True
    idle_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 30.0
    absolute_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 12 * 60.0


class GatewayConfig(_Section):
    """The whole configuration; :func:`load_config` builds it from a file, paths resolved against its directory."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    response: ResponseSettings = Field(default_factory=ResponseSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    base: Path = Path(".")

    def path(self, value: Path) -> Path:
        """``value`` resolved against the configuration file's directory."""
        return value if value.is_absolute() else (self.base / value).resolve()

    @property
    def database_url(self) -> str:
        """The SQL store's URL, a relative SQLite path resolved against the configuration's directory."""
        url = self.store.database
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            return "sqlite:///" + str(self.path(Path(url.removeprefix("sqlite:///"))))
        return url

    def with_model(self, **changes: Any) -> GatewayConfig:
        """A copy with ``[model]`` keys replaced (from command-line flags), validated again."""
        try:
            model = ModelSettings.model_validate({**self.model.model_dump(), **changes})
        except ValidationError as exc:
            raise _config_error(exc, "the command line", section="model") from None
        return self.model_copy(update={"model": model})

    def with_source(self, **source: str | Path | None) -> GatewayConfig:
        """A copy whose model source is the one given (command-line flags replace the file's source)."""
        given = {k: v for k, v in source.items() if v is not None}
        if not given:
            return self
        return self.with_model(**{"target": None, "file": None, "registry": None, "upstream": None, **given})


_FIXES = {
    "extra_forbidden": "remove it or check its spelling against `modelshield gateway init`",
    "missing": "add it",
}


def _config_error(exc: ValidationError, where: str, section: str | None = None) -> InvalidParameterError:
    """One error naming every ``[section] key`` that failed; ``section`` prefixes errors of one section's model."""
    lines = []
    for error in exc.errors():
        loc = ([section] if section else []) + [str(p) for p in error["loc"]]
        name = f"[{loc[0]}] " + ".".join(loc[1:]) if len(loc) > 1 else f"[{''.join(loc)}]"
        message = error["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(error["type"], "")
        lines.append(f"{name.strip()}: {message}" + (f" ({fix})" if fix else ""))
    return InvalidParameterError(
        f"{where}: " + "; ".join(lines) + ".",
        remedy="Fix the key named; `modelshield gateway init --config FILE` writes a commented template.",
    )


def parse_config(text: str, *, base: Path, where: str = "The gateway configuration") -> GatewayConfig:
    """Parse TOML ``text`` into a :class:`GatewayConfig` whose relative paths resolve against ``base``."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(f"{where} is not valid TOML: {exc}.", remedy="Fix the line named.") from None
    try:
        return GatewayConfig.model_validate({**data, "base": base.resolve()})
    except ValidationError as exc:
        raise _config_error(exc, where) from None


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate the configuration file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(
            f"No gateway configuration at {path}.",
            remedy=f"Write one with `modelshield gateway init --config {path}`.",
        )
    if path.stat().st_size > _MAX_CONFIG_BYTES:
        raise FileFormatError(f"{path} is larger than 1 MiB; it cannot be a gateway configuration.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"Cannot read {path}: {exc}.") from None
    return parse_config(text, base=path.parent, where=str(path))


def template(
    *,
    source: str = "",
    public_key: str = "keys/publisher.pub",
    signing_key: str = "keys/gateway.key",
    reference: str = "",
    monitoring: bool = True,
    watermark_rate: float = 0.025,
) -> str:
    """The commented configuration ``modelshield gateway init`` writes, with safe defaults.

    ``source`` is one TOML line naming the model (e.g. ``target = "zoo:digits-cnn"``); empty leaves it to the
    command line. ``reference`` is the path of the owner's data (a reference target brings its own).
    """
    source_line = source or '# target = "zoo:digits-cnn"'
    reference_line = (
        f"reference = {json.dumps(reference)}        # the owner's data: validation schema and guard calibration"
        if reference
        else '# reference = "train.csv"                # the owner\'s data: validation schema and guard calibration'
    )
    monitoring_value = "true" if monitoring else "false"
    return f"""\
# modelshield gateway configuration. Relative paths resolve against this file's directory.
# Start it with:  modelshield serve --config THIS_FILE
# Make keys with: modelshield gateway keys create --config THIS_FILE --client NAME --role client

[server]
host = "127.0.0.1"           # listen on loopback only; put a TLS reverse proxy in front for remote clients
port = 8080
workers = 1                  # more than 1 needs [store] redis (shared limits) and benefits from PostgreSQL
max_body_bytes = 4194304     # larger requests are refused with 413 before they are read
request_timeout_s = 10.0     # a model answer slower than this is abandoned with 504
admin_prefix = "/admin"      # the admin API (keys, log) lives here, gated by role
# ssl_certfile = "tls/cert.pem"
# ssl_keyfile = "tls/key.pem"

[model]
# Exactly one source (or give it on the command line: --target, --model, --registry, --upstream):
{source_line}
# file = "model.onnx"                    # loaded by the safe loader (scanned first; pickles refused)
# registry = "churn@production"          # hot-swapped when the stage is promoted or rolled back
# upstream = "http://127.0.0.1:9000"     # an Open Inference Protocol v2 server to proxy
# upstream_token_file = "upstream.token"  # a bearer token for the upstream, read from this file (mode 0600)
# name = "churn"                         # the model name clients use (default: the source's name)
require_signature = true                 # never serve a model whose signature does not verify
public_key = "{public_key}"   # the trusted publisher's public key
# signature = "model.onnx.sig"           # default: the model file's name + .sig
{reference_line}
label = "label"                          # the reference file's label column
# registry_dir = "modelshield-registry"
# registry_db = "postgresql://127.0.0.1:5432/registry"  # default: SQLite inside registry_dir
# poll_s = 2.0                           # how often the registry stage is checked for a new version
# For weights-only files (safetensors, PyTorch state dicts) and upstream servers:
# architecture = "zoo:cnn"               # or "package.module:Class", code you trust
# input_shape = [1, 8, 8]
# n_classes = 10
# classes = ["cat", "dog"]               # the class of each output, output 0 first

[store]
database = "sqlite:///gateway.db"        # API keys and the audit log; postgresql://127.0.0.1:5432/DB for replicas
# redis = "redis://127.0.0.1:6379"       # shared limits for several workers or replicas

[auth]
allow_anonymous = false                  # true lets requests without a key infer, with the client role
anonymous_role = "client"                # the only role anonymous requests may have
key_refresh_s = 1.0                      # a revoked key stops working on every worker within this time
# jwt_jwks = "jwks.json"                 # also accept JWT bearer tokens signed by these keys
# jwt_issuer = "https://idp.example"
# jwt_audience = "modelshield"
# jwt_role_claim = "role"                # the claim naming the role (client, analyst, admin); absent: client
# jwt_algorithms = ["RS256", "ES256", "EdDSA"]   # asymmetric only
# jwt_leeway_s = 30.0                    # clock skew allowed on exp and nbf

[limits]                                 # per client; refused with 429 and Retry-After
requests_per_second = 20.0
rows_per_second = 2000.0
rows_per_day = 100000                    # a key's own --budget replaces this
max_batch_rows = 256                     # a larger batch is refused with 413
on_storage_error = "reject"              # Redis down: "reject" answers 503, "allow" serves without limits

[validation]                             # inputs outside the model's schema are refused with 422
enabled = true
# schema = "schema.json"                 # `modelshield data schema` output; default: derived from the reference
tolerance = 0.0                          # widen ranges by this fraction of each feature's range

[output]                                 # what clients receive: probabilities, top-k, rounded or label
default = "probabilities"
top_k = 1
decimals = 2
# roles = {{ client = "rounded" }}
# clients = {{ "partner-a" = "label" }}

[guards]                                 # off, log (record the alarm) or block (refuse with 403)
extraction_monitor = "log"
adversarial_detector = "off"

[audit]
signing_key = "{signing_key}"    # signs the log's checkpoints
checkpoint_every = 1000                  # records between signed checkpoints
checkpoint_interval_s = 60.0             # and at most this many seconds

[monitoring]                             # attack detectors, behaviour analytics and drift on live traffic
enabled = {monitoring_value}
detectors = ["extraction", "evasion", "probing", "sybil", "behaviour"]
max_clients = 10000                      # clients remembered per detector (the least recently seen go first)
drift_window = 1000                      # rows per drift window against the reference (0: no drift monitor)
drift_step = 250                         # a drift test every this many rows
drift_alpha = 0.01                       # false discovery rate across features (Benjamini-Hochberg)
state_interval_s = 60.0                  # how often learned baselines are saved (they survive a restart)

[monitoring.watermark]                   # a keyed wrong label on this fraction of answers proves a copy is ours
rate = {watermark_rate!s:<33} # 0 turns it off; each marked answer is wrong for the client
key = "keys/watermark.key"               # 32 secret bytes, mode 0600 (modelshield gateway init writes it)

[response]                               # incidents -> throttle, label-only, review, suspend, block-pattern
enabled = true
# policy = "response.toml"               # default: suspend on high-risk theft, labels only at medium risk
refresh_s = 0.25                         # actions take effect on every worker and replica within this time

[alerts]
# jsonl = "alerts.jsonl"                 # one JSON object per alert
# webhook = "https://siem.example/hook"  # POSTed as JSON, HMAC-SHA256 signed, retried with backoff
# webhook_secret = "keys/webhook.secret"
dedup_s = 600.0                          # repeats of an alert within this time are counted, not re-raised
incident_idle_s = 86400.0                # an incident closes after this long without alerts

[console]                                # the security console at /console (analyst and admin keys log in)
enabled = true
idle_minutes = 30.0                      # a session unused this long ends
absolute_minutes = 720.0                 # and every session ends this long after its login
"""
