"""Fixtures for the registry: keys, signed models, audit reports, and a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelshield.findings import CheckRun, CheckStatus, Finding, Report, Severity, TargetInfo
from modelshield.supply_chain.keys import generate_keypair, write_keypair
from modelshield.supply_chain.signing import sign_model

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Keys:
    private: Path
    public: Path
    other_public: Path  # a key that did not sign anything


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("keys")
    private, public = write_keypair(generate_keypair("ecdsa-p256"), root)
    _, other = write_keypair(generate_keypair("ecdsa-p256"), root, name="other")
    return Keys(private, public, other)


@pytest.fixture
def make_model(tmp_path: Path, keys: Keys) -> Callable[..., tuple[Path, Path]]:
    """A model directory (or one file with ``single=True``) and its signature."""
    from modelshield.supply_chain.keys import load_private_key

    private = load_private_key(keys.private)

    def make(name: str = "model", *, content: bytes = b"weights", single: bool = False) -> tuple[Path, Path]:
        base = tmp_path / f"src-{secrets.token_hex(4)}"
        base.mkdir()
        path = base / name
        if single:
            path.write_bytes(content)
        else:
            (path / "sub").mkdir(parents=True)
            (path / "weights.bin").write_bytes(content * 1000)
            (path / "config.json").write_text('{"layers": 3}')
            (path / "sub" / "vocab.txt").write_text("a\nb\n")
        signature = base / f"{name}.sig"
        sign_model(path, private, signature)
        return path, signature

    return make


@pytest.fixture
def make_audit(tmp_path: Path) -> Callable[..., Path]:
    """An audit report JSON file, clean unless given a finding severity or a failed check."""

    def make(severity: Severity | None = None, *, failed_check: bool = False, model_sha256: str | None = None) -> Path:
        findings = ()
        if severity is not None:
            findings = (
                Finding(
                    id="evasion.low-robustness",
                    check="evasion",
                    title="Robust accuracy is low",
                    severity=severity,
                    description="PGD drives accuracy down.",
                ),
            )
        checks = (
            CheckRun("evasion", CheckStatus.FINDINGS if findings else CheckStatus.PASSED, 0.1),
            CheckRun("membership", CheckStatus.ERROR if failed_check else CheckStatus.PASSED, 0.1, "boom"),
        )
        report = Report(
            target=TargetInfo("m", "skops", model_sha256, 2, (4,), "LogisticRegression", white_box=False),
            findings=findings,
            checks=checks,
            seed=0,
            budget="quick",
            started_at="2025-01-01T00:00:00+00:00",
            duration_s=0.2,
            versions={"modelshield": "0"},
        )
        path = tmp_path / f"audit-{secrets.token_hex(4)}.json"
        path.write_text(report.to_json())
        return path

    return make


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    if os.environ.get("CI_NO_SERVICES"):
        pytest.skip("CI_NO_SERVICES is set: no PostgreSQL")
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"modelshield_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc.orig}). Start it, or set CI_NO_SERVICES=1 to skip "
            "the tests marked 'services'.",
            pytrace=False,
        )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
