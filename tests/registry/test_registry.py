"""The model registry: store round trips, promotion policy, rollback, the history chain, concurrency, the CLI."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from modelshield.errors import (
    FileFormatError,
    InvalidParameterError,
    RegistrationError,
    RegistryError,
    VerificationError,
)
from modelshield.findings import Severity
from modelshield.registry import ArtifactKind, BlobStore, PromotionRefusedError, Registry, VerifiedHistory
from modelshield.registry.store import canonical_json

from .conftest import Keys

MakeModel = Callable[..., tuple[Path, Path]]
MakeAudit = Callable[..., Path]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry(tmp_path / "registry") as reg:
        yield reg


def _files(root: Path) -> dict[str, bytes]:
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class _Reduce:
    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.fn, self.args


# -- store, add, show, export ---------------------------------------------------------------------------------------


def test_round_trip_directory(registry: Registry, make_model: MakeModel, make_audit: MakeAudit, tmp_path: Path) -> None:
    path, sig = make_model("bert")
    manifest = tmp_path / "data.json"
    manifest.write_text('{"digest": "abc"}')
    v = registry.add(
        "bert-base",
        path,
        signature=sig,
        audit_report=make_audit(),
        data_manifest=manifest,
        metadata={"owner": "ml", "epochs": 3},
        actor="alice",
    )
    assert (v.name, v.version, v.kind, v.source_name) == ("bert-base", 1, ArtifactKind.DIRECTORY, "bert")
    assert v.actor == "alice"
    assert v.size == sum(len(b) for b in _files(path).values())
    assert dict(v.metadata) == {"owner": "ml", "epochs": 3}
    assert registry.store.read_bytes(v.data_manifest_digest or "") == manifest.read_bytes()
    scan = json.loads(registry.store.read_bytes(v.scan_digest))
    assert scan["summary"]["files"] == 3
    [summary] = registry.list()
    assert (summary.name, summary.versions, summary.latest, summary.production) == ("bert-base", 1, 1, None)
    assert registry.show("bert-base", 1) == registry.show("bert-base", "latest") == registry.show("bert-base", "1") == v
    json.dumps(v.to_dict())

    out = registry.export("bert-base", 1, tmp_path / "out")
    assert out == tmp_path / "out" / "bert"
    assert _files(out) == _files(path)
    assert (tmp_path / "out" / "bert.sig").read_bytes() == sig.read_bytes()
    with pytest.raises(FileFormatError, match="already exists"):
        registry.export("bert-base", 1, tmp_path / "out")


def test_round_trip_file_and_dedupe(registry: Registry, make_model: MakeModel, tmp_path: Path) -> None:
    path, _ = make_model("model.onnx", content=b"\x08\x07onnx", single=True)
    v1 = registry.add("m", path)
    assert v1.kind is ArtifactKind.FILE
    assert v1.artifact_digest == hashlib.sha256(path.read_bytes()).hexdigest()
    blobs = {p for p in (registry.root / "objects" / "sha256").rglob("*") if p.is_file()}
    v2 = registry.add("m", path)
    assert (v2.version, v2.artifact_digest) == (2, v1.artifact_digest)
    new = {p for p in (registry.root / "objects" / "sha256").rglob("*") if p.is_file()} - blobs
    assert new <= {registry.store.path_of(v2.scan_digest)}  # only the new scan report (its timing differs)
    assert _files(registry.export("m", 2, tmp_path / "out")) == _files(path)
    assert [v.version for v in registry.versions("m")] == [1, 2]


def test_bad_input(registry: Registry, make_model: MakeModel, tmp_path: Path) -> None:
    path, _ = make_model()
    with pytest.raises(InvalidParameterError, match="Model name"):
        registry.add("Bad/Name", path)
    not_report = tmp_path / "r.json"
    not_report.write_text('{"findings": []}')
    with pytest.raises(FileFormatError, match="not a modelshield report") as err:
        registry.add("m", path, audit_report=not_report)
    assert "modelshield audit" in err.value.remedy
    with pytest.raises(FileFormatError, match=r"not a signature bundle|not a model signature"):
        registry.add("m", path, signature=not_report)
    with pytest.raises(FileFormatError, match="does not exist"):
        registry.add("m", tmp_path / "missing")
    assert registry.list() == ()  # nothing half-written
    with pytest.raises(RegistryError, match="No model named 'nope'") as err:
        registry.show("nope")
    assert not isinstance(err.value, RegistrationError)  # that one is for plug-ins
    with pytest.raises(RegistryError, match="No model named 'nope'"):
        registry.verify_history("nope")
    registry.add("m", path)
    with pytest.raises(RegistryError, match="no version 7"):
        registry.show("m", 7)
    with pytest.raises(RegistryError, match="production"):
        registry.show("m", "production")


def test_materialize_refuses_path_traversal(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "objects")
    blob = store.put_bytes(b"evil")
    for name in ("../escape", "/etc/passwd", "a/../../b", "a//b", "./a"):
        tree = store.put_bytes(canonical_json([{"name": name, "digest": blob, "size": 4}]))
        with pytest.raises(FileFormatError, match="Unsafe file name"):
            store.materialize(tree, tmp_path / f"out-{secrets.token_hex(2)}", kind=ArtifactKind.DIRECTORY)
    assert not (tmp_path / "escape").exists()


def test_tampered_blob_is_detected_on_read(registry: Registry, make_model: MakeModel, tmp_path: Path) -> None:
    path, _ = make_model("m.bin", single=True)
    v = registry.add("m", path)
    blob = registry.store.path_of(v.artifact_digest)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(VerificationError, match="tampered") as err:
        registry.store.verify(v.artifact_digest)
    assert err.value.subject == v.artifact_digest
    with pytest.raises(VerificationError, match="tampered"):
        registry.export("m", 1, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # nothing unverified is left behind, not even a partial file
    blob.unlink()
    with pytest.raises(VerificationError, match="missing"):
        registry.store.verify(v.artifact_digest)
    registry.store.verify(v.scan_digest)  # an intact blob verifies (and returns nothing)


@pytest.mark.parametrize("tampered", ["a file of the model", "the signature"])
def test_a_failed_export_leaves_nothing(
    registry: Registry, make_model: MakeModel, tmp_path: Path, tampered: str
) -> None:
    """A directory model whose one blob (or whose signature) was altered: the export raises and writes nothing,
    neither the verified parts nor staging files."""
    path, sig = make_model("model")
    v = registry.add("m", path, signature=sig)
    if tampered == "the signature":
        assert v.signature_digest is not None
        blob = registry.store.path_of(v.signature_digest)
    else:
        tree = {e.name: e.digest for e in registry.store.read_tree(v.artifact_digest)}
        blob = registry.store.path_of(tree["weights.bin"])
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    out = tmp_path / "export"
    out.mkdir()
    with pytest.raises(VerificationError, match="does not match its digest"):
        registry.export("m", 1, out)
    assert list(out.iterdir()) == []


# -- promotion ------------------------------------------------------------------------------------------------------


def _refusal(registry: Registry, name: str, version: int, public_key: Path, reason: str) -> None:
    with pytest.raises(PromotionRefusedError) as err:
        registry.promote(name, version, public_key=public_key)
    assert any(reason in r for r in err.value.reasons), err.value.reasons
    last = registry.history(name)[-1]
    assert (last.action, last.version) == ("refused", version)
    assert any(reason in r for r in last.detail["reasons"])  # type: ignore[union-attr]
    assert registry.show(name, version).aliases == ()
    registry.verify_history(name)


def test_promote_refused_unsigned(registry: Registry, make_model: MakeModel, make_audit: MakeAudit, keys: Keys) -> None:
    path, _ = make_model()
    registry.add("m", path, audit_report=make_audit())
    _refusal(registry, "m", 1, keys.public, "unsigned")


def test_promote_refused_wrong_key(
    registry: Registry, make_model: MakeModel, make_audit: MakeAudit, keys: Keys
) -> None:
    path, sig = make_model()
    registry.add("m", path, signature=sig, audit_report=make_audit())
    _refusal(registry, "m", 1, keys.other_public, "signature does not verify")


def test_promote_refused_tampered(registry: Registry, make_model: MakeModel, make_audit: MakeAudit, keys: Keys) -> None:
    path, sig = make_model()
    v = registry.add("m", path, signature=sig, audit_report=make_audit())
    weights = next(e for e in registry.store.read_tree(v.artifact_digest) if e.name == "weights.bin")
    blob = registry.store.path_of(weights.digest)
    blob.chmod(0o644)
    blob.write_bytes(b"backdoored")
    _refusal(registry, "m", 1, keys.public, "damaged")


def test_a_signature_of_other_files_is_refused_when_added(
    registry: Registry, make_model: MakeModel, make_audit: MakeAudit, tmp_path: Path
) -> None:
    path, sig = make_model()
    (path / "config.json").write_text('{"layers": 4}')  # changed after signing
    with pytest.raises(VerificationError, match=r"changed: config\.json"):
        registry.add("m", path, signature=sig, audit_report=make_audit())
    _, other_sig = make_model("other.bin", single=True)
    with pytest.raises(VerificationError):
        registry.add("m", path, signature=other_sig)  # another model's signature
    assert registry.list() == ()  # nothing added


def test_an_audit_report_of_another_file_is_refused_when_added(
    registry: Registry, make_model: MakeModel, make_audit: MakeAudit
) -> None:
    path, sig = make_model("m.bin", single=True)
    with pytest.raises(RegistryError, match="about another file"):
        registry.add("m", path, signature=sig, audit_report=make_audit(model_sha256="f" * 64))
    from modelshield._internal.hashing import sha256_file

    v = registry.add("m", path, signature=sig, audit_report=make_audit(model_sha256=sha256_file(path)))
    assert v.audit_digest is not None


def test_promote_refused_scan(registry: Registry, make_model: MakeModel, make_audit: MakeAudit, keys: Keys) -> None:
    path, _ = make_model()
    (path / "model.pkl").write_bytes(pickle.dumps(_Reduce(os.system, "echo"), protocol=4))  # written, never loaded
    from modelshield.supply_chain.keys import load_private_key
    from modelshield.supply_chain.signing import sign_model

    sig = path.with_name("model.sig")
    sign_model(path, load_private_key(keys.private), sig)
    v = registry.add("m", path, signature=sig, audit_report=make_audit())
    assert v.scan_max_severity is not None and v.scan_max_severity >= Severity.HIGH
    _refusal(registry, "m", 1, keys.public, "the scan found issues")


@pytest.mark.parametrize(
    ("audit", "reason"),
    [
        (None, "no audit report"),
        ({"severity": Severity.HIGH}, "finding(s) at or above high"),
        ({"failed_check": True}, "failed to run: membership"),
    ],
)
def test_promote_refused_audit(
    registry: Registry,
    make_model: MakeModel,
    make_audit: MakeAudit,
    keys: Keys,
    audit: dict[str, Any] | None,
    reason: str,
) -> None:
    path, sig = make_model("m.bin", single=True)
    registry.add("m", path, signature=sig, audit_report=None if audit is None else make_audit(**audit))
    _refusal(registry, "m", 1, keys.public, reason)


def test_refusal_names_every_reason(registry: Registry, make_model: MakeModel, keys: Keys) -> None:
    path, _ = make_model()
    registry.add("m", path)
    with pytest.raises(PromotionRefusedError) as err:
        registry.promote("m", 1, public_key=keys.public)
    assert len(err.value.reasons) == 2
    assert "(1)" in err.value.message and "(2)" in err.value.message


def test_promote_and_rollback(registry: Registry, make_model: MakeModel, make_audit: MakeAudit, keys: Keys) -> None:
    for i in range(3):
        path, sig = make_model(content=b"w%d" % i)
        registry.add("m", path, signature=sig, audit_report=make_audit(Severity.MEDIUM))
    with pytest.raises(RegistryError, match="no earlier production version"):
        registry.rollback("m")
    for version in (1, 2, 3):
        promoted = registry.promote("m", version, public_key=keys.public, actor="bob")
        assert promoted.aliases == ("production",)
    assert promoted.signer_fingerprint is not None
    assert registry.list()[0].production == 3
    assert registry.rollback("m").version == 2
    assert registry.show("m", "production").version == 2
    assert registry.rollback("m").version == 1
    with pytest.raises(RegistryError, match="no earlier production version"):
        registry.rollback("m")
    actions = [(e.action, e.version) for e in registry.history("m")]
    assert actions[3:] == [("promote", 1), ("promote", 2), ("promote", 3), ("rollback", 2), ("rollback", 1)]
    assert registry.history("m")[4].detail["previous"] == 1
    # a stricter threshold refuses what passed before
    with pytest.raises(PromotionRefusedError, match="at or above medium") as err:
        registry.promote("m", 3, public_key=keys.public, fail_on="medium")
    assert isinstance(err.value, RegistryError) and not isinstance(err.value, RegistrationError)
    assert (err.value.name, err.value.version) == ("m", 3)
    registry.verify_history()


# -- history chain --------------------------------------------------------------------------------------------------


def _sql(registry: Registry, statement: str) -> None:
    from sqlalchemy import text

    with registry.index._engine.begin() as conn:
        conn.execute(text(statement))


def _broken_at(registry: Registry, name: str | None) -> VerificationError:
    with pytest.raises(VerificationError) as err:
        registry.verify_history(name)
    return err.value


def test_history_chain_detects_tampering(registry: Registry, make_model: MakeModel) -> None:
    path, _ = make_model()
    for _ in range(3):
        registry.add("m", path, actor="alice")
    verified = registry.verify_history("m")
    assert isinstance(verified, VerifiedHistory)
    assert (verified.entries, verified.models) == (3, ("m",))
    assert verified.heads["m"] == registry.history("m")[-1].hash
    _sql(registry, "UPDATE ms_history SET actor = 'mallory' WHERE seq = 2")
    err = _broken_at(registry, None)
    assert err.subject == "m" and "entry #2" in err.message and "changed" in err.message
    _sql(registry, "UPDATE ms_history SET actor = 'alice' WHERE seq = 2")
    assert registry.verify_history().entries == 3
    _sql(registry, "UPDATE ms_versions SET artifact_digest = '" + "0" * 64 + "' WHERE version = 3")
    err = _broken_at(registry, "m")
    assert "entry #3" in err.message and "artifact_digest" in err.message


def test_history_chain_detects_deletion(registry: Registry, make_model: MakeModel) -> None:
    path, _ = make_model()
    for _ in range(3):
        registry.add("m", path)
    _sql(registry, "DELETE FROM ms_history WHERE seq = 3")
    err = _broken_at(registry, "m")
    assert err.subject == "m" and "head" in err.message


def test_history_chain_detects_a_version_inserted_behind_its_back(registry: Registry, make_model: MakeModel) -> None:
    path, _ = make_model()
    registry.add("m", path)
    _sql(
        registry,
        "INSERT INTO ms_versions (model, version, artifact_digest, kind, size, source_name, scan_digest, metadata, "
        "actor, created_at) SELECT model, 2, artifact_digest, kind, size, source_name, scan_digest, metadata, "
        "'mallory', created_at FROM ms_versions WHERE version = 1",
    )
    err = _broken_at(registry, "m")
    assert err.subject == "m" and "version 2" in err.message and "no entry added it" in err.message


# -- concurrency ----------------------------------------------------------------------------------------------------

WRITERS, PER_WRITER = 6, 3


def _writer(root: str, url: str | None, model: str, worker: int, start: Any, out: Any) -> None:
    """Add PER_WRITER versions of ``model`` once every writer is ready (runs in a spawned process)."""
    base = Path(root) / f"src-{worker}"
    base.mkdir()
    try:
        with Registry(Path(root) / "registry", url) as reg:
            start.wait(60)
            versions = []
            for i in range(PER_WRITER):
                path = base / f"model-{i}.bin"
                path.write_bytes(b"weights %d %d" % (worker, i))
                versions.append(reg.add(model, path, actor=f"worker-{worker}").version)
        out.put(versions)
    except BaseException as exc:
        out.put(repr(exc))
        raise


def _concurrent_adds(tmp_path: Path, url: str | None, model: str) -> Registry:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(str(tmp_path), url, model, w, start, out), daemon=True)
        for w in range(WRITERS)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    errors = [r for r in results if isinstance(r, str)]
    assert not errors, errors
    got = sorted(v for r in results for v in r)
    assert got == list(range(1, WRITERS * PER_WRITER + 1))
    for r in results:
        assert r == sorted(r)  # each writer sees its own versions increase
    reg = Registry(tmp_path / "registry", url)
    assert reg.verify_history(model).entries == WRITERS * PER_WRITER
    history = reg.history(model)
    assert [e.seq for e in history] == list(range(1, WRITERS * PER_WRITER + 1))
    assert sorted(e.version or 0 for e in history) == got
    return reg


def test_concurrent_writers_sqlite(tmp_path: Path) -> None:
    _concurrent_adds(tmp_path, None, "shared").close()


@pytest.mark.services
def test_concurrent_writers_postgresql(tmp_path: Path, pg_url: str) -> None:
    _concurrent_adds(tmp_path, pg_url, f"shared-{secrets.token_hex(3)}").close()


@pytest.mark.services
def test_postgresql_promote_rollback_and_tamper(
    tmp_path: Path, pg_url: str, make_model: MakeModel, make_audit: MakeAudit, keys: Keys
) -> None:
    name = f"pg-{secrets.token_hex(3)}"
    with Registry(tmp_path / "registry", pg_url) as reg:
        for i in range(2):
            path, sig = make_model(content=b"v%d" % i)
            reg.add(name, path, signature=sig, audit_report=make_audit(), metadata={"i": i})
        reg.promote(name, 1, public_key=keys.public)
        reg.promote(name, 2, public_key=keys.public)
        assert reg.rollback(name).version == 1
        with pytest.raises(PromotionRefusedError):
            reg.promote(name, 2, public_key=keys.other_public)
        reg.verify_history(name)
        assert _files(reg.export(name, 2, tmp_path / "out")) == _files(path)
        _sql(reg, f"UPDATE ms_history SET detail = '{{}}' WHERE model = '{name}' AND seq = 4")  # noqa: S608
        with pytest.raises(VerificationError, match="entry #4") as err:
            reg.verify_history(name)
        assert err.value.subject == name


# -- CLI ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    from modelshield.cli import registry as registry_cli
    from modelshield.errors import ModelShieldError

    app = typer.Typer()
    app.callback()(lambda: None)
    registry_cli.register(app)
    monkeypatch.setenv("MODELSHIELD_REGISTRY", str(tmp_path / "cli-registry"))
    monkeypatch.delenv("MODELSHIELD_REGISTRY_DB", raising=False)
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(app, ["registry", *args])
        if result.exception and not isinstance(result.exception, SystemExit | ModelShieldError):
            raise result.exception
        return result

    return run


def test_cli(cli: Callable[..., Any], make_model: MakeModel, make_audit: MakeAudit, keys: Keys, tmp_path: Path) -> None:
    path, sig = make_model()
    r = cli("add", "demo", str(path), "--signature", str(sig), "--audit-report", str(make_audit()), "--meta", "k=v")
    assert r.exit_code == 0, r.output
    assert "added demo v1" in r.output
    assert "signature: attached, signer not yet checked; audit report: attached" in r.output  # not "signed: yes"
    r = cli("add", "demo", str(path))
    assert r.exit_code == 0, r.output
    r = cli("list")
    assert "demo\tversions: 2\tlatest: v2\tproduction: -" in r.output
    r = cli("show", "demo", "1", "--format", "json")
    assert json.loads(r.output)["metadata"] == {"k": "v"}
    r = cli("promote", "demo", "2", "--public-key", str(keys.public))
    assert r.exit_code == 1
    assert "unsigned" in r.output and "no audit report" in r.output
    r = cli("promote", "demo", "latest", "--public-key", str(keys.public))
    assert "refused: demo version 'latest' was not promoted" in r.output  # not "vlatest"
    r = cli("promote", "demo", "1", "--public-key", str(keys.public))
    assert (r.exit_code, "promoted demo v1" in r.output) == (0, True)
    r = cli("show", "demo")
    assert "demo v1 (production)" in r.output
    r = cli("rollback", "demo")
    assert isinstance(r.exception, RegistryError)  # nothing to roll back to: an error (exit 2 in the app)
    r = cli("history", "demo", "--verify")
    assert r.exit_code == 0, r.output
    assert "refused" in r.output and "history intact: 5 entries" in r.output
    r = cli("export", "demo", "1", "--output", str(tmp_path / "exported"))
    assert r.exit_code == 0, r.output
    assert _files(tmp_path / "exported" / path.name) == _files(path)
    r = cli("add", "demo", str(path), "--meta", "novalue")
    assert isinstance(r.exception, InvalidParameterError)


def test_the_root_cli_wires_registry_commands(tmp_path: Path) -> None:
    from modelshield.cli.app import main

    model = tmp_path / "weights.bin"
    model.write_bytes(b"\x00" * 64)
    registry = ["--registry", str(tmp_path / "reg")]
    assert main(["registry", "add", "demo", str(model), *registry]) == 0
    assert main(["registry", "list", *registry]) == 0
    assert main(["registry", "promote", "demo", "1", "--public-key", str(tmp_path / "none.pub"), *registry]) == 2
    assert main(["registry", "history", "demo", "--verify", *registry]) == 0
    assert main(["registry", "show", "nope", "1", *registry]) == 2


def test_the_root_cli_exits_1_when_verification_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelshield.cli.app import main

    model = tmp_path / "weights.bin"
    model.write_bytes(b"\x01" * 64)
    root = tmp_path / "reg"
    registry = ["--registry", str(root)]
    assert main(["registry", "add", "demo", str(model), *registry]) == 0
    with Registry(root) as reg:
        digest = reg.show("demo", 1).artifact_digest
        _sql(reg, "UPDATE ms_history SET actor = 'mallory' WHERE seq = 1")
    capsys.readouterr()
    assert main(["registry", "history", "demo", "--verify", "--format", "json", *registry]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["actor"] == "mallory"  # the history is still shown, and stays valid JSON
    assert err.count("\n") == 1 and "verification failed" in err and "entry #1" in err
    blob = BlobStore(root / "objects").path_of(digest)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    assert main(["registry", "export", "demo", "1", "--output", str(tmp_path / "out"), *registry]) == 1
    assert "does not match its digest" in capsys.readouterr().err
    assert main(["registry", "history", "nope", "--verify", *registry]) == 2  # unknown model: bad input
