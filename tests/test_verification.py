"""Verification fails closed: no public verifier of the supply-chain, registry and gateway layers can return on failure.

The verifiers are found by walking the public modules of ``modelshield.supply_chain``, ``modelshield.registry`` and
``modelshield.gateway``
(every public function named ``verify*``, and every public method named ``verify*`` of a public class, defined in
those layers), so a new one cannot be forgotten: until it is listed in :data:`CASES` with a failing input,
``test_every_public_verifier_is_listed`` fails. Each case builds one input that verifies and one that must not;
the first must return, the second must raise :class:`VerificationError`. No verifier's return type may be a bool
or carry an ``ok`` flag.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from modelshield.data import Dataset, Schema
from modelshield.errors import VerificationError

ROOTS = ("modelshield.supply_chain", "modelshield.registry", "modelshield.gateway")


class Case(NamedTuple):
    """Two calls of one verifier: on an input that verifies, and on the same input after it was tampered with."""

    good: Callable[[], object]
    bad: Callable[[], object]


# -- discovery -----------------------------------------------------------------------------------------------------


def _modules() -> Iterator[types.ModuleType]:
    for root in ROOTS:
        package = importlib.import_module(root)
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            if not any(part.startswith("_") for part in info.name.split(".")):  # private modules: only what a
                yield importlib.import_module(info.name)  # public module re-exports is public


def _ours(obj: object) -> bool:
    return any(getattr(obj, "__module__", "").startswith(f"{root}.") for root in ROOTS)


def public_verifiers() -> dict[str, Callable[..., object]]:
    """Every public callable named ``verify*`` in the two layers, by ``module.qualname``."""
    found: dict[str, Callable[..., object]] = {}
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or not _ours(obj):
                continue
            if inspect.isfunction(obj) and name.startswith("verify"):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
            elif inspect.isclass(obj):
                for attr, member in inspect.getmembers(obj, callable):
                    if attr.startswith("verify"):
                        found[f"{obj.__module__}.{obj.__qualname__}.{attr}"] = member
    return found


# -- failing inputs, one factory per verifier ----------------------------------------------------------------------


def _signed_model(tmp_path: Path, cleanup: ExitStack) -> Case:
    from modelshield.supply_chain.keys import generate_keypair
    from modelshield.supply_chain.signing import sign_model, verify_model

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00" * 100)
    key = generate_keypair("ed25519")
    signature = tmp_path / "model.sig"
    sign_model(model, key, signature)

    def bad() -> object:
        (model / "weights.bin").write_bytes(b"\x01" * 100)
        return verify_model(model, signature, key.public())

    return Case(lambda: verify_model(model, signature, key.public()), bad)


def _model_wrong_key(tmp_path: Path, cleanup: ExitStack) -> Case:
    from modelshield.supply_chain.keys import generate_keypair
    from modelshield.supply_chain.signing import sign_model, verify_model

    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    key = generate_keypair("hybrid")
    sign_model(model, key, tmp_path / "model.sig")
    other = generate_keypair("hybrid").public()
    return Case(
        lambda: verify_model(model, tmp_path / "model.sig", key.public()),
        lambda: verify_model(model, tmp_path / "model.sig", other),
    )


def _dataset(flip: int | None = None) -> Dataset:

    rng = np.random.default_rng(0)
    x, y = rng.random((12, 3), dtype=np.float32), rng.integers(0, 2, 12)
    if flip is not None:
        y[flip] = 1 - y[flip]
    return Dataset(x=x, y=y, schema=Schema.continuous(["a", "b", "c"]), label_names=("n", "p"), name="toy")


def _dataset_case(tmp_path: Path, cleanup: ExitStack) -> Case:
    from modelshield.supply_chain.provenance import build_manifest, verify_dataset

    manifest = build_manifest(_dataset(), source="test")
    return Case(
        lambda: verify_dataset(manifest, _dataset()),
        lambda: verify_dataset(manifest, _dataset(flip=3)),
    )


def _parent_case(tmp_path: Path, cleanup: ExitStack) -> Case:
    from modelshield.supply_chain.provenance import build_manifest, verify_parent, write_manifest

    parent = tmp_path / "parent.json"
    write_manifest(build_manifest(_dataset(), source="raw"), parent)
    child = build_manifest(_dataset(), source="copy", parent=parent, transform="none")

    def bad() -> object:
        write_manifest(build_manifest(_dataset(flip=0), source="raw"), parent, overwrite=True)
        return verify_parent(child)

    return Case(lambda: verify_parent(child), bad)


def _blob_case(tmp_path: Path, cleanup: ExitStack) -> Case:
    from modelshield.registry import BlobStore

    store = BlobStore(tmp_path / "objects")
    digest = store.put_bytes(b"scan report")

    def bad() -> object:
        blob = store.path_of(digest)
        blob.chmod(0o644)
        blob.write_bytes(b"forged report")
        return store.verify(digest)  # type: ignore[func-returns-value]

    return Case(lambda: store.verify(digest), bad)


def _history_case(tmp_path: Path, cleanup: ExitStack, *, via_index: bool) -> Case:
    from sqlalchemy import text

    from modelshield.registry import Registry

    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    registry = cleanup.enter_context(Registry(tmp_path / "registry"))
    registry.add("m", model, actor="alice")
    registry.add("m", model, actor="alice")
    verify = registry.index.verify_history if via_index else registry.verify_history

    def bad() -> object:
        with registry.index._engine.begin() as conn:
            conn.execute(text("UPDATE ms_history SET actor = 'mallory' WHERE seq = 1"))
        return verify("m")

    return Case(lambda: verify("m"), bad)


def _message_case(tmp_path: Path, cleanup: ExitStack) -> Case:
    from modelshield.supply_chain.keys import generate_keypair
    from modelshield.supply_chain.signing import sign_message, verify_message

    key = generate_keypair("hybrid")
    signatures = sign_message(b"checkpoint 7", key)
    return Case(
        lambda: verify_message(b"checkpoint 7", signatures, key.public()),  # type: ignore[func-returns-value]
        lambda: verify_message(b"checkpoint 8", signatures, key.public()),  # type: ignore[func-returns-value]
    )


def _audit_log_case(tmp_path: Path, cleanup: ExitStack) -> Case:
    import sqlite3
    import time

    from modelshield.gateway.auditlog import AuditLog, AuditRecord, verify_log
    from modelshield.supply_chain.keys import generate_keypair

    key = generate_keypair("ed25519")
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog(url, signing_key=key) as log:
        for i in range(3):
            log.append(AuditRecord(time.time(), f"r{i}", "infer", "alice", "client", "sha256:m", "", 200, "allow"))

    def bad() -> object:
        with sqlite3.connect(tmp_path / "audit.db") as db:
            db.execute("UPDATE ms_audit_records SET client = 'mallory' WHERE seq = 2")
        return verify_log(url, key.public())

    return Case(lambda: verify_log(url, key.public()), bad)


Factory = Callable[[Path, ExitStack], Case]  # (tmp_path, cleanup) -> Case

CASES: dict[str, list[Factory]] = {
    "modelshield.supply_chain.signing.verify_model": [_signed_model, _model_wrong_key],
    "modelshield.supply_chain.provenance.verify_dataset": [_dataset_case],
    "modelshield.supply_chain.provenance.verify_parent": [_parent_case],
    "modelshield.registry.store.BlobStore.verify": [_blob_case],
    "modelshield.registry.index.Index.verify_history": [partial(_history_case, via_index=True)],
    "modelshield.registry.registry.Registry.verify_history": [partial(_history_case, via_index=False)],
    "modelshield.supply_chain.signing.verify_message": [_message_case],
    "modelshield.gateway.auditlog.verify_log": [_audit_log_case],
}


# -- the tests -----------------------------------------------------------------------------------------------------


def test_every_public_verifier_is_listed() -> None:
    found = set(public_verifiers())
    unlisted, stale = sorted(found - set(CASES)), sorted(set(CASES) - found)
    assert not unlisted, f"new public verifier(s) {unlisted}: add a failing-input factory to CASES"
    assert not stale, f"CASES lists {stale}, which no longer exist: remove them"


@pytest.mark.parametrize(
    ("name", "factory"),
    [(name, factory) for name, factories in CASES.items() for factory in factories],
    ids=[
        f"{name.rsplit('.', 2)[-2]}.{name.rsplit('.', 1)[-1]}-{i}" for name, fs in CASES.items() for i in range(len(fs))
    ],
)
def test_a_verifier_raises_on_a_failing_input(name: str, factory: Factory, tmp_path: Path) -> None:
    with ExitStack() as cleanup:
        case = factory(tmp_path, cleanup)
        case.good()  # the same input verifies before it is tampered with: the failure below is the tampering's
        with pytest.raises(VerificationError) as err:
            case.bad()
    assert err.value.message and err.value.remedy


def _flags(hint: object) -> list[str]:
    """What in a return type could be mistaken for a verdict: bool, an ``ok`` attribute, ``__bool__``."""
    found = []
    for t in typing.get_args(hint) or (hint,):
        if t is bool:
            found.append("bool")
        elif isinstance(t, type) and t is not type(None):
            names = {f.name for f in dataclasses.fields(t)} if dataclasses.is_dataclass(t) else set()
            if "ok" in names or hasattr(t, "ok"):
                found.append(f"{t.__name__}.ok")
            if "__bool__" in vars(t):
                found.append(f"{t.__name__}.__bool__")
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_verifier_returns_no_verdict(name: str) -> None:
    verifier = public_verifiers()[name]
    hint = typing.get_type_hints(verifier)["return"]
    assert not _flags(hint), f"{name} returns {hint}: raise VerificationError instead of returning a verdict"


def test_the_verdict_check_can_fail() -> None:
    @dataclasses.dataclass(frozen=True)
    class Outcome:
        ok: bool

    assert _flags(bool) == ["bool"]
    assert _flags(Outcome) == ["Outcome.ok"]
    assert _flags(Outcome | None) == ["Outcome.ok"]
