"""What the gateway serves: a model from one source, verified before it is served, and hot-swapped when it changes.

Four sources (:class:`~modelshield.gateway.config.ModelSettings`):

- ``target = "zoo:NAME"``: a reference target (its model file, training data as reference);
- ``file = PATH``: a model file, read through the safe loader (scanned first; pickles refused);
- ``registry = "NAME@STAGE"``: the version a registry stage points at, exported (every blob checked against its
  digest) and re-read whenever the stage moves (promote, rollback);
- ``upstream = URL``: an Open Inference Protocol v2 server the gateway stands in front of.

Verification is fail-closed and free of time-of-check/time-of-use gaps: a file is first copied into a private
directory, the *copy* is verified against the trusted publisher key (``[model] public_key``) and the copy is what
is loaded. A model whose signature does not verify is never served: at start the gateway refuses to start, at a
swap the old version keeps serving and the refusal is logged. An upstream model's bytes are not the gateway's to
verify; its identity is the upstream's name and version.

A :class:`Deployment` is everything one request needs, built before it is served: the model, the input schema, the
guards fitted on it. Swapping replaces one reference (atomic in Python), so requests in flight finish on the
version they started with and none fails during a swap; every response and audit record names the digest of the
version that answered it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield._internal.hashing import sha256_file
from modelshield.defenses.interface import GuardStage, InferenceGuard
from modelshield.errors import InvalidParameterError, ModelShieldError, VerificationError
from modelshield.gateway.config import GatewayConfig, GuardMode
from modelshield.gateway.validation import InputSchema

if TYPE_CHECKING:
    from modelshield.data.interface import Dataset
    from modelshield.models.interface import Classifier

__all__ = [
    "Deployment",
    "ModelWatcher",
    "ServedModel",
    "build_deployment",
    "discard",
    "load_served",
    "source_state",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A loaded, verified model: its protocol name and version, the digest of the bytes served, and its data."""

    name: str
    version: str
    digest: str  # "sha256:<hex>" of the artifact served (for an upstream: of its URL, name and version)
    classifier: Classifier
    classes: tuple[str, ...] | None
    reference: Dataset | None
    source: str
    signer: str | None = None  # fingerprint of the key its signature verified against
    workdir: Path | None = None  # the private copy it was loaded from (removed when replaced)


@dataclass(frozen=True, eq=False)
class Deployment:
    """One servable version: the model, its input schema, and the guards fitted on it with their modes."""

    model: ServedModel
    schema: InputSchema | None
    input_guards: tuple[tuple[InferenceGuard, GuardMode], ...] = ()
    output_guards: tuple[tuple[InferenceGuard, GuardMode], ...] = ()


def _public_key(config: GatewayConfig) -> Any:
    from modelshield.supply_chain.keys import load_public_key

    if config.model.public_key is None:
        raise InvalidParameterError(
            "[model] require_signature is on but public_key is not set.",
            remedy="Set [model] public_key to the trusted publisher's public key file.",
        )
    return load_public_key(config.path(config.model.public_key))


def _verify(config: GatewayConfig, model: Path, signature: Path, what: str) -> str | None:
    """The signer's fingerprint once ``model`` verifies against ``signature`` with the trusted key (None when not
    required); VerificationError otherwise."""
    if not config.model.require_signature:
        return None
    from modelshield.supply_chain.signing import verify_model

    key = _public_key(config)
    if not signature.is_file():
        raise VerificationError(
            f"{what} has no signature at {signature}; the gateway serves only signed models.",
            remedy="Sign it with `modelshield sign`, or set [model] signature to its signature file.",
        )
    verify_model(model, signature, key)
    fingerprint: str = key.fingerprint
    return fingerprint


def _private_copy(path: Path, signature: Path | None) -> tuple[Path, Path | None, Path]:
    """Copies of the model (file or directory) and its signature in a new private directory (mode 0700)."""
    workdir = Path(tempfile.mkdtemp(prefix="modelshield-gateway-"))
    try:
        target = workdir / path.name
        if path.is_dir():
            shutil.copytree(path, target, symlinks=True)
        else:
            shutil.copyfile(path, target)
        sig_copy = None
        if signature is not None and signature.is_file():
            sig_copy = workdir / f"{path.name}.sig"
            shutil.copyfile(signature, sig_copy)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return target, sig_copy, workdir


def _reference(config: GatewayConfig) -> Dataset | None:
    if config.model.reference is None:
        return None
    from modelshield.data import load_table

    return load_table(config.path(config.model.reference), label=config.model.label)


def _from_target(config: GatewayConfig) -> ServedModel:
    from modelshield.zoo import load_target

    spec = config.model.target
    assert spec is not None  # noqa: S101 - the caller dispatched on it
    target = load_target(spec)
    if target.model_path is None:
        raise InvalidParameterError(f"{spec} has no model file to verify and serve.")
    signature = config.path(config.model.signature) if config.model.signature else Path(f"{target.model_path}.sig")
    signer = _verify(config, target.model_path, signature, spec)
    return ServedModel(
        name=config.model.name or spec.removeprefix("zoo:"),
        version="1",
        digest=f"sha256:{target.model_sha256}",
        classifier=target.classifier,
        classes=target.test.label_names,
        reference=target.train if target.train is not None else target.test,
        source=spec,
        signer=signer,
    )


def _load_file(config: GatewayConfig, model: Path, signature: Path | None, name: str, version: str) -> ServedModel:
    from modelshield.loading import align_data, load_model, model_classes

    copy, sig_copy, workdir = _private_copy(model, signature)
    try:
        signer = _verify(config, copy, sig_copy or workdir / "missing.sig", str(model))
        reference = _reference(config)
        shape = config.model.input_shape or (reference.schema.input_shape if reference is not None else None)
        n_classes = config.model.n_classes or (reference.n_classes if reference is not None else None)
        loaded = load_model(copy, architecture=config.model.architecture, input_shape=shape, n_classes=n_classes)
        classifier = loaded.classifier
        classes = config.model.classes or model_classes(classifier)
        if reference is not None:
            reference = align_data(classifier, reference, classes=classes)
            classes = classes or reference.label_names
        digest = sha256_file(copy) if copy.is_file() else _tree_digest(copy)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return ServedModel(
        name=name,
        version=version,
        digest=f"sha256:{digest}",
        classifier=classifier,
        classes=classes,
        reference=reference,
        source=f"file {model.name}",  # the name only: no internal path reaches a response
        signer=signer,
        workdir=workdir,
    )


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return h.hexdigest()


def _from_file(config: GatewayConfig) -> ServedModel:
    path = config.path(config.model.file) if config.model.file else None
    assert path is not None  # noqa: S101 - the caller dispatched on it
    signature = config.path(config.model.signature) if config.model.signature else Path(f"{path}.sig")
    name = config.model.name or path.name.split(".")[0] or "model"
    return _load_file(config, path, signature, _protocol_name(name), "1")


def _protocol_name(name: str) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-.") or "model"
    return cleaned[:64]


def _registry(config: GatewayConfig) -> Any:
    from modelshield.registry import Registry

    return Registry(config.path(config.model.registry_dir), config.model.registry_db)


def _registry_spec(config: GatewayConfig) -> tuple[str, str]:
    spec = config.model.registry
    assert spec is not None  # noqa: S101 - the caller dispatched on it
    name, _, stage = spec.partition("@")
    return name, stage


def _from_registry(config: GatewayConfig) -> ServedModel:
    name, stage = _registry_spec(config)
    exported = Path(tempfile.mkdtemp(prefix="modelshield-export-"))
    try:
        with _registry(config) as registry:
            version = registry.show(name, stage)
            path = registry.export(name, version.version, exported)  # every blob checked against its digest
        signature = exported / f"{path.name}.sig"
        served = _load_file(config, path, signature, config.model.name or name, str(version.version))
    finally:
        shutil.rmtree(exported, ignore_errors=True)
    return ServedModel(
        name=served.name,
        version=served.version,
        digest=f"sha256:{version.artifact_digest}",
        classifier=served.classifier,
        classes=served.classes,
        reference=served.reference,
        source=f"registry {name}@{stage} (v{version.version})",
        signer=served.signer,
        workdir=served.workdir,
    )


def _from_upstream(config: GatewayConfig) -> ServedModel:
    from modelshield.models.remote_classifier import connect

    url = config.model.upstream
    assert url is not None  # noqa: S101 - the caller dispatched on it
    reference = _reference(config)
    name = config.model.name
    if name is None:
        raise InvalidParameterError(
            "An upstream server needs the model's name there.", remedy="Set [model] name to the upstream model name."
        )
    shape = config.model.input_shape or (reference.schema.input_shape if reference is not None else None)
    n_classes = config.model.n_classes or (reference.n_classes if reference is not None else None)
    if shape is None or n_classes is None:
        raise InvalidParameterError(
            "An upstream model needs its input shape and class count.",
            remedy="Set [model] reference to the owner's data, or input_shape and n_classes.",
        )
    headers = {}
    if config.model.upstream_token_file is not None:
        token = _read_token(config.path(config.model.upstream_token_file))
        headers["Authorization"] = f"Bearer {token}"
    classifier = connect(
        url, name, input_shape=shape, n_classes=n_classes, classes=config.model.classes, headers=headers
    )
    identity = hashlib.sha256(f"{url}\0{name}".encode()).hexdigest()
    return ServedModel(
        name=name,
        version="upstream",
        digest=f"sha256:{identity}",
        classifier=classifier,
        classes=config.model.classes or (reference.label_names if reference is not None else None),
        reference=reference,
        source=f"upstream model {name}",
    )


def _read_token(path: Path) -> str:
    """The upstream's bearer token from ``path``: one line of printable text (never logged or shown)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(
            f"Cannot read the upstream token file {path.name}: {type(exc).__name__}.",
            remedy="Set [model] upstream_token_file to a readable file holding the token.",
        ) from None
    if not token or len(token) > 8192 or not token.isprintable() or " " in token:
        raise InvalidParameterError(
            f"The upstream token file {path.name} does not hold one token.",
            remedy="Write the bearer token alone on one line.",
        )
    return token


_LOADERS: dict[str, Callable[[GatewayConfig], ServedModel]] = {
    "target": _from_target,
    "file": _from_file,
    "registry": _from_registry,
    "upstream": _from_upstream,
}


def load_served(config: GatewayConfig) -> ServedModel:
    """Load and verify the configured model; raises (VerificationError, ...) rather than serve an unverified one."""
    source = config.model.source
    if source is None:
        raise InvalidParameterError(
            "No model to serve.",
            remedy="Set one of [model] target, file, registry or upstream in the configuration.",
            cli_remedy="Pass one of --target, --model, --registry or --upstream (or set it in the configuration).",
        )
    return _LOADERS[source](config)


def source_state(config: GatewayConfig) -> object:
    """A cheap fingerprint of what the source points at now; a change means a new version to load."""
    if config.model.registry is not None:
        name, stage = _registry_spec(config)
        with _registry(config) as registry:
            v = registry.show(name, stage)
            return (v.version, v.artifact_digest)
    if config.model.file is not None:
        path = config.path(config.model.file)
        signature = config.path(config.model.signature) if config.model.signature else Path(f"{path}.sig")
        return tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None for p in (path, signature))
    return None


def _guard(name: str, mode: GuardMode) -> InferenceGuard:
    from modelshield.defenses import ExtractionMonitor, FeatureSqueezingDetector

    on_alarm = "block" if mode is GuardMode.BLOCK else "flag"
    if name == "extraction_monitor":
        return ExtractionMonitor(on_alarm=on_alarm)
    return FeatureSqueezingDetector(on_alarm=on_alarm)


def build_deployment(config: GatewayConfig, model: ServedModel, *, seed: int = 0) -> Deployment:
    """The model with its input schema and fitted guards; InvalidParameterError naming the key when something the
    configuration asks for has no data to build it from."""
    schema = None
    if config.validation.enabled:
        if config.validation.schema_file is not None:
            from modelshield.data.validation import read_schema

            table = read_schema(config.path(config.validation.schema_file))
            schema = InputSchema.from_table_schema(table)
            if schema.input_shape != model.classifier.input_shape:
                raise InvalidParameterError(
                    f"[validation] schema describes inputs of shape {schema.input_shape}; the model takes "
                    f"{model.classifier.input_shape}.",
                    remedy="Point [validation] schema at the schema of the model's own training data.",
                )
        elif model.reference is not None:
            schema = InputSchema.from_dataset(model.reference, tolerance=config.validation.tolerance)
        else:
            raise InvalidParameterError(
                "[validation] is enabled but there is nothing to derive the model's input schema from.",
                remedy="Set [validation] schema (from `modelshield data schema`) or [model] reference, or set "
                "[validation] enabled = false.",
            )
    inputs: list[tuple[InferenceGuard, GuardMode]] = []
    outputs: list[tuple[InferenceGuard, GuardMode]] = []
    for key, mode in (
        ("adversarial_detector", config.guards.adversarial_detector),
        ("extraction_monitor", config.guards.extraction_monitor),
    ):
        if mode is GuardMode.OFF:
            continue
        if model.reference is None:
            raise InvalidParameterError(
                f"[guards] {key} is {mode.value} but there is no reference data to calibrate it on.",
                remedy=f'Set [model] reference to the owner\'s data, or [guards] {key} = "off".',
            )
        guard = _guard(key, mode)
        reference = model.reference
        guard.fit(model.classifier, reference.x[:2000], reference.y[:2000], seed=seed)
        (inputs if guard.stage is GuardStage.INPUT else outputs).append((guard, mode))
    return Deployment(model=model, schema=schema, input_guards=tuple(inputs), output_guards=tuple(outputs))


class ModelWatcher:
    """Polls the model's source every ``[model] poll_s`` and swaps in a new version once it verifies and loads.

    ``swap(deployment)`` installs a new deployment; ``on_refused(reason)`` hears about a version that was not
    served (the old one keeps serving). Only registry and file sources change; others are never polled.
    """

    def __init__(
        self,
        config: GatewayConfig,
        current: object,
        swap: Callable[[Deployment], None],
        on_refused: Callable[[str], None],
    ) -> None:
        self._config = config
        self._state = current
        self._swap = swap
        self._on_refused = on_refused
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelshield-model-watcher", daemon=True)

    def start(self) -> None:
        if self._config.model.registry is not None or self._config.model.file is not None:
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def check_now(self) -> bool:
        """Look once; True when a new version was swapped in."""
        try:
            state = source_state(self._config)
        except (ModelShieldError, OSError) as exc:
            self._on_refused(f"cannot read the model source: {exc}")
            return False
        if state == self._state:
            return False
        try:
            deployment = build_deployment(self._config, load_served(self._config))
        except Exception as exc:  # any failure refuses the version; the watcher must live on
            self._state = state  # do not retry the same refused version every poll
            known = isinstance(exc, ModelShieldError | OSError | ValueError)
            self._on_refused(str(getattr(exc, "message", exc)) if known else f"loading failed ({type(exc).__name__})")
            return False
        self._state = state
        self._swap(deployment)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._config.model.poll_s):
            self.check_now()


def discard(model: ServedModel) -> None:
    """Remove the private copy a replaced model was loaded from."""
    if model.workdir is not None:
        shutil.rmtree(model.workdir, ignore_errors=True)
