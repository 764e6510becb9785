"""The audit log on SQLite and PostgreSQL: appends, tampering of every kind (by raw SQL), store outages, export."""

from __future__ import annotations

import io
import itertools
import json
import math
import multiprocessing
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from modelshield.errors import InvalidParameterError, VerificationError
from modelshield.gateway.auditlog import (
    GENESIS_HASH,
    AuditLog,
    AuditLogUnavailable,
    AuditRecord,
    LogTamperedError,
    Tampering,
    export_log,
    verify_log,
)
from modelshield.supply_chain.keys import PrivateKeySet, generate_keypair

# -- helpers ------------------------------------------------------------------------------------------------------


def _record(i: int, *, client: str = "alice", at: float | None = None) -> AuditRecord:
    return AuditRecord(
        time=1_700_000_000.0 + i if at is None else at,
        request_id=f"req-{i}",
        kind="infer",
        client=client,
        role="user",
        model_digest="a" * 64,
        input_sha256=f"{i:064x}",
        status=200,
        decision="allow" if i % 3 else "flag",
        reasons=() if i % 3 else ("drift",),
        output={"rows": i, "labels": [i % 2, 0.1 * i]},
        latency_ms=1.5 + i / 7,
    )


def _fill(url: str, n: int, *, key: PrivateKeySet | None = None, every: int = 1000) -> None:
    """``n`` records, one transaction each (so that checkpoints fall exactly every ``every`` records)."""
    log = AuditLog(url, signing_key=key, checkpoint_every=every)
    try:
        for i in range(1, n + 1):
            assert log.append(_record(i)).result(timeout=30) == i
    finally:
        log.close()


def _sql(url: str, *statements: str, **params: Any) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), params)
    finally:
        engine.dispose()


def _rows(url: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    export_log(url, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _as_record(line: dict[str, Any]) -> AuditRecord:
    return AuditRecord(**{k: v for k, v in line.items() if k not in {"seq", "prev_hash", "hash"}})


def _tampered(url: str, key: PrivateKeySet | None = None) -> LogTamperedError:
    with pytest.raises(LogTamperedError) as info:
        verify_log(url, key.public() if key else None)
    assert isinstance(info.value, VerificationError)
    return info.value


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture(scope="module")
def key() -> PrivateKeySet:
    return generate_keypair("ed25519")


# -- appending and verifying --------------------------------------------------------------------------------------


def test_append_and_verify(url: str, key: PrivateKeySet) -> None:
    with AuditLog(url.replace("postgresql+psycopg://", "postgresql://"), signing_key=key, checkpoint_every=10) as log:
        futures = [log.append(_record(i)) for i in range(1, 31)]
        assert [f.result(timeout=30) for f in futures] == list(range(1, 31))
        assert log.healthy()
        assert not futures[0].cancel()  # a handed-over record cannot be withdrawn
    result = verify_log(url, key.public())
    assert (result.records, result.head_seq, result.last_checkpoint_seq) == (30, 30, 30)
    assert result.checkpoints == result.checkpoints_verified >= 1
    assert "30 record(s)" in result.summary()
    lines = _rows(url)
    assert [r["seq"] for r in lines] == list(range(1, 31))
    assert lines[0]["prev_hash"] == GENESIS_HASH
    for line in lines:  # an exported line recomputes to its hash: the chain can be checked outside modelshield
        assert _as_record(line).chain_hash(line["seq"], line["prev_hash"]) == line["hash"]


def test_checkpoints_every_n_and_unsigned_verification(url: str, key: PrivateKeySet) -> None:
    _fill(url, 25, key=key, every=10)
    signed = verify_log(url, key.public())
    assert (signed.checkpoints, signed.checkpoints_verified, signed.last_checkpoint_seq) == (3, 3, 25)  # 10, 20, close
    unsigned = verify_log(url)
    assert (unsigned.checkpoints, unsigned.checkpoints_verified) == (3, 0)


def test_a_closed_log_refuses_and_close_flushes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = AuditLog(url)
    futures = [log.append(_record(i)) for i in range(1, 201)]
    log.close()
    assert all(f.done() for f in futures)
    assert verify_log(url).records == 200
    with pytest.raises(AuditLogUnavailable):
        log.append(_record(1)).result(timeout=5)
    log.close()  # twice is harmless


def test_records_are_normalised_and_validated() -> None:
    record = AuditRecord(
        time=5, request_id="r", kind="infer", client="c", role="user", model_digest="", input_sha256="", status=200,
        decision="allow", reasons=["x"], output={"p": (1, 2)}, latency_ms=2,
    )  # fmt: skip
    assert isinstance(record.time, float) and record.reasons == ("x",) and record.output["p"] == [1, 2]
    assert b'"time":5.0' in record.canonical(1)
    for bad in ({"latency_ms": math.nan}, {"client": "a\x00b"}, {"output": {"x": object()}}, {"status": True}):
        with pytest.raises(InvalidParameterError):
            AuditRecord(**{**_record(1).__dict__, **bad})
    with pytest.raises(InvalidParameterError):
        AuditLog("mysql://nobody@localhost/x")
    with pytest.raises(InvalidParameterError):
        AuditLog("sqlite://")


# -- tampering ----------------------------------------------------------------------------------------------------


def test_edit_is_detected(url: str) -> None:
    _fill(url, 20)
    _sql(url, "UPDATE ms_audit_records SET client = 'mallory' WHERE seq = 7")
    err = _tampered(url)
    assert (err.seq, err.tampering) == (7, Tampering.EDITED)
    assert "mallory" not in str(err)


def test_delete_is_detected(url: str) -> None:
    _fill(url, 20)
    _sql(url, "DELETE FROM ms_audit_records WHERE seq = 7")
    err = _tampered(url)
    assert (err.seq, err.tampering) == (7, Tampering.DELETED)


def test_delete_with_renumbering_is_detected(url: str) -> None:
    _fill(url, 20)
    _sql(
        url,
        "DELETE FROM ms_audit_records WHERE seq = 7",
        "UPDATE ms_audit_records SET seq = -seq WHERE seq > 7",
        "UPDATE ms_audit_records SET seq = -seq - 1 WHERE seq < 0",
        "UPDATE ms_audit_head SET seq = 19",
    )
    err = _tampered(url)
    assert (err.seq, err.tampering) == (7, Tampering.DELETED)


def _forge_at(url: str, seq: int, *, prev_hash: str) -> None:
    forged = _record(999, client="mallory")
    _sql(
        url,
        "INSERT INTO ms_audit_records (seq, time, request_id, kind, client, role, model_digest, input_sha256, status,"
        " decision, reasons, output, latency_ms, prev_hash, hash) VALUES (:seq, :time, 'forged', 'infer', 'mallory',"
        " 'user', '', '', 200, 'allow', '[]', '{}', 1.0, :prev, :hash)",
        seq=seq,
        time=forged.time,
        prev=prev_hash,
        hash="f" * 64,
    )


@pytest.mark.parametrize("consistent", [True, False])
def test_insert_in_the_middle_is_detected(url: str, consistent: bool) -> None:
    _fill(url, 20)
    prev = _rows(url)[5]["hash"] if consistent else "e" * 64  # record 6's hash: the forged 7 links properly
    _sql(
        url,
        "UPDATE ms_audit_records SET seq = -seq WHERE seq >= 7",
        "UPDATE ms_audit_records SET seq = -seq + 1 WHERE seq < 0",
    )
    if consistent:  # an attacker who hashes the forged record properly
        forged = AuditRecord(
            time=1.0, request_id="forged", kind="infer", client="mallory", role="user", model_digest="",
            input_sha256="", status=200, decision="allow", latency_ms=1.0,
        )  # fmt: skip
        _sql(
            url,
            "INSERT INTO ms_audit_records (seq, time, request_id, kind, client, role, model_digest, input_sha256,"
            " status, decision, reasons, output, latency_ms, prev_hash, hash) VALUES (7, 1.0, 'forged', 'infer',"
            " 'mallory', 'user', '', '', 200, 'allow', '[]', '{}', 1.0, :prev, :hash)",
            prev=prev,
            hash=forged.chain_hash(7, prev),
        )
    else:
        _forge_at(url, 7, prev_hash=prev)
    err = _tampered(url)
    assert (err.seq, err.tampering) == (7, Tampering.INSERTED)


def test_insert_at_the_end_is_detected(url: str) -> None:
    _fill(url, 20)
    _forge_at(url, 21, prev_hash=_rows(url)[-1]["hash"])
    err = _tampered(url)
    assert (err.seq, err.tampering) == (21, Tampering.INSERTED)


def test_reorder_is_detected(url: str) -> None:
    _fill(url, 20)
    _sql(
        url,
        "UPDATE ms_audit_records SET seq = -1 WHERE seq = 7",
        "UPDATE ms_audit_records SET seq = 7 WHERE seq = 8",
        "UPDATE ms_audit_records SET seq = 8 WHERE seq = -1",
    )
    err = _tampered(url)
    assert (err.seq, err.tampering) == (7, Tampering.REORDERED)


def test_truncation_is_detected_by_the_head_row(url: str) -> None:
    _fill(url, 20)
    _sql(url, "DELETE FROM ms_audit_records WHERE seq > 15")
    err = _tampered(url)
    assert (err.seq, err.tampering) == (16, Tampering.TRUNCATED)


def test_truncation_after_a_checkpoint_is_detected(url: str, key: PrivateKeySet) -> None:
    _fill(url, 25, key=key, every=10)
    hash_15 = _rows(url)[14]["hash"]
    _sql(  # the attacker also moves the head row back: the checkpoints at 20 and 25 still say more
        url,
        "DELETE FROM ms_audit_records WHERE seq > 15",
        "UPDATE ms_audit_head SET seq = 15, hash = :hash",
        hash=hash_15,
    )
    err = _tampered(url, key)
    assert (err.seq, err.tampering) == (16, Tampering.TRUNCATED)
    assert "checkpoint" in str(err)


def _rewrite_from(url: str, seq: int) -> None:
    """What a database-level attacker can do: edit record ``seq`` and recompute every later hash and the head."""
    lines = _rows(url)
    prev = lines[seq - 2]["hash"] if seq > 1 else GENESIS_HASH
    for line in lines[seq - 1 :]:
        record = _as_record(line)
        if line["seq"] == seq:
            record = AuditRecord(**{**record.__dict__, "decision": "allow", "client": "someone-else"})
            _sql(url, "UPDATE ms_audit_records SET decision = 'allow', client = 'someone-else' WHERE seq = :s", s=seq)
        digest = record.chain_hash(line["seq"], prev)
        _sql(
            url,
            "UPDATE ms_audit_records SET prev_hash = :p, hash = :h WHERE seq = :s",
            p=prev,
            h=digest,
            s=line["seq"],
        )
        prev = digest
    _sql(url, "UPDATE ms_audit_head SET hash = :h", h=prev)


def test_a_recomputed_chain_is_caught_by_the_signed_checkpoint(url: str, key: PrivateKeySet) -> None:
    _fill(url, 25, key=key, every=10)
    _rewrite_from(url, 13)
    err = _tampered(url, key)
    assert (err.seq, err.tampering) == (11, Tampering.REWRITTEN)  # somewhere in 11..20, after the good checkpoint 10
    # The attacker then rewrites the checkpoints' hashes too: their signatures no longer hold.
    lines = _rows(url)
    for seq in (20, 25):
        _sql(url, "UPDATE ms_audit_checkpoints SET hash = :h WHERE seq = :s", h=lines[seq - 1]["hash"], s=seq)
    assert verify_log(url).records == 25  # without the key, nothing is left to catch it
    err = _tampered(url, key)
    assert (err.seq, err.tampering) == (20, Tampering.CHECKPOINT_INVALID)


def test_a_checkpoint_signed_with_another_key_fails(url: str, key: PrivateKeySet) -> None:
    other = generate_keypair("ed25519")
    _fill(url, 12, key=other, every=10)
    err = _tampered(url, key)
    assert (err.seq, err.tampering) == (10, Tampering.CHECKPOINT_INVALID)
    assert verify_log(url, other.public()).checkpoints_verified == 2


def test_hybrid_keys_sign_checkpoints(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    hybrid = generate_keypair("hybrid")
    _fill(url, 3, key=hybrid)
    assert verify_log(url, hybrid.public()).checkpoints_verified == 1


# -- several processes --------------------------------------------------------------------------------------------


def _append_many(url: str, client: str, n: int, barrier: Any) -> None:
    log = AuditLog(url, max_wait_s=0.002)
    try:
        barrier.wait(timeout=120)  # every process has imported and opened the log: start together
        for start in range(0, n, 5):  # a few in flight at a time, as from concurrent requests
            futures = [log.append(_record(i, client=client)) for i in range(start, min(start + 5, n))]
            for f in futures:
                f.result(timeout=60)
    finally:
        log.close()


@pytest.mark.slow
def test_two_processes_append_to_one_chain(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=_append_many, args=(url, f"worker-{w}", 300, barrier)) for w in range(2)]
    for w in workers:
        w.start()
    _append_many(url, "parent", 100, barrier)
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert verify_log(url).records == 700
    lines = _rows(url)
    seen = {(r["client"], r["request_id"]) for r in lines}
    expected = {(f"worker-{w}", f"req-{i}") for w in range(2) for i in range(300)}
    assert seen == expected | {("parent", f"req-{i}") for i in range(100)}
    switches = sum(a["client"] != b["client"] for a, b in itertools.pairwise(lines))
    assert switches > 2  # the writers really interleaved in the one chain


# -- the store down -----------------------------------------------------------------------------------------------


def test_sqlite_directory_missing_then_back(tmp_path: Path) -> None:
    directory = tmp_path / "gone"
    url = f"sqlite:///{directory / 'audit.db'}"
    log = AuditLog(url)
    try:
        with pytest.raises(AuditLogUnavailable):
            log.append(_record(1)).result(timeout=5)
        assert not log.healthy()
        directory.mkdir()
        assert log.append(_record(2)).result(timeout=5) == 1
        assert log.healthy()
    finally:
        log.close()
    assert verify_log(url).records == 1


def test_sqlite_directory_removed_while_open(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    directory.mkdir()
    url = f"sqlite:///{directory / 'audit.db'}"
    log = AuditLog(url)
    try:
        assert log.append(_record(1)).result(timeout=5) == 1
        shutil.rmtree(directory)  # the open connection could still write into the unlinked file
        with pytest.raises(AuditLogUnavailable):
            log.append(_record(2)).result(timeout=5)
        directory.mkdir()
        with pytest.raises(AuditLogUnavailable, match="removed"):  # no new chain that would hide the loss
            log.append(_record(3)).result(timeout=5)
        assert not log.healthy()
    finally:
        log.close()
    assert not (directory / "audit.db").exists()


def test_postgresql_down_fails_fast() -> None:
    log = AuditLog("postgresql://postgres@127.0.0.1:1/audit")
    try:
        futures = [log.append(_record(i, client="c-secret")) for i in range(5)]
        for f in futures:
            with pytest.raises(AuditLogUnavailable) as info:
                f.result(timeout=10)
            assert "req-" not in str(info.value)
        assert not log.healthy()
    finally:
        log.close()


@pytest.mark.services
def test_postgresql_connections_dropped_by_the_server(pg_url: str) -> None:
    with AuditLog(pg_url) as log:
        assert log.append(_record(1)).result(timeout=10) == 1
        name = pg_url.rsplit("/", 1)[1]
        _sql(
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name",
            name=name,
        )
        assert log.append(_record(2)).result(timeout=10) == 2  # the pool notices and reconnects
    assert verify_log(pg_url).records == 2


def test_tampering_errors_pickle() -> None:
    err = LogTamperedError("sqlite:///a.db", 7, Tampering.EDITED, "its content no longer matches its hash")
    back = pickle.loads(pickle.dumps(err))
    assert (back.seq, back.tampering, str(back)) == (7, Tampering.EDITED, str(err))


def test_verify_of_a_missing_log(tmp_path: Path) -> None:
    with pytest.raises(AuditLogUnavailable):
        verify_log(f"sqlite:///{tmp_path / 'nothing.db'}")
    assert not (tmp_path / "nothing.db").exists()


# -- export -------------------------------------------------------------------------------------------------------


def test_export_since(url: str) -> None:
    log = AuditLog(url)
    try:
        futures = [log.append(_record(i, at=100.0 + i)) for i in range(20)]
        assert [f.result(timeout=30) for f in futures] == list(range(1, 21))
    finally:
        log.close()
    out = io.StringIO()
    assert export_log(url, out, since=110.0) == 10
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == list(range(11, 21))
    assert lines[0]["time"] == 110.0 and lines[0]["output"] == {"rows": 10, "labels": [0, 1.0]}
    assert export_log(url, io.StringIO()) == 20


# -- the signing primitives the checkpoints use -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256", "hybrid"])
def test_sign_and_verify_message_fail_closed(algorithm: str) -> None:
    from modelshield.supply_chain.signing import sign_message, verify_message

    key = generate_keypair(algorithm)
    signatures = sign_message(b"statement", key)
    assert len(signatures) == (2 if algorithm == "hybrid" else 1)
    verify_message(b"statement", signatures, key.public())
    for message, sigs, public in (
        (b"statement!", signatures, key.public()),
        (b"statement", signatures, generate_keypair(algorithm).public()),
        (b"statement", [], key.public()),
        (b"statement", [{"sig": "not base64!", "keyid": ""}], key.public()),
    ):
        with pytest.raises(VerificationError):
            verify_message(message, sigs, public)
    if algorithm == "hybrid":  # the post-quantum half is required
        with pytest.raises(VerificationError):
            verify_message(b"statement", signatures[:1], key.public())
