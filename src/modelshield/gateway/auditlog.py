"""The gateway's tamper-evident audit log: one hash-chained record per request, in SQLite or PostgreSQL.

    >>> from modelshield.gateway.auditlog import AuditLog, AuditRecord, verify_log
    >>> log = AuditLog("sqlite:///audit.db", signing_key=key)  # doctest: +SKIP
    >>> seq = log.append(record).result()  # doctest: +SKIP
    >>> log.close()  # doctest: +SKIP
    >>> verify_log("sqlite:///audit.db", key.public).summary()  # doctest: +SKIP
    'audit log intact: 1 record(s), head #1; 1 of 1 checkpoint(s) signature-verified, the last at #1'

**Writing.** :meth:`AuditLog.append` queues a record and returns a future; one background thread per
:class:`AuditLog` takes every record queued while the previous transaction ran (up to ``max_batch``; with
``max_wait_s`` above 0 it also waits that long after the first for more) and writes them in ONE transaction (group
commit): under load batches grow by themselves, and at a low rate no record waits for others. The future resolves
to the record's sequence number only once that transaction has committed, so an HTTP handler that answers after
``future.result()`` never answers for a request that is not in the log. When the database cannot be reached or
refuses the write, every future of the batch fails with :class:`AuditLogUnavailable` (the gateway answers 503); the
next batch simply tries again.

**The chain.** Several processes (uvicorn workers, gateway replicas) append to one chain in one database. Each
transaction first locks the head row of ``ms_audit_head``, which holds the last sequence number and hash
(``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE``, SQLite's single write lock, on SQLite), so sequence
numbers are consecutive and the chain cannot fork. Record ``seq`` stores ``prev_hash`` (the hash of record
``seq - 1``; 64 zeros for the first) and ``hash = SHA-256(bytes.fromhex(prev_hash) || canonical)``, where
``canonical`` is the record's JSON with ``seq`` added: sorted keys, no whitespace, UTF-8, floats as ``repr``
(:meth:`AuditRecord.chain_hash`).

**Checkpoints.** With a ``signing_key``, every ``checkpoint_every`` records or ``checkpoint_interval_s`` seconds
(whichever comes first, and when the log is closed) the writer adds a row to ``ms_audit_checkpoints``: the sequence
number, the chain hash there, the time and the key's fingerprint, signed with
:func:`~modelshield.supply_chain.signing.sign_message` over a canonical statement of those four. What that buys:

- The chain alone catches an edit, deletion, insertion or reordering made by someone who does not bother to
  recompute hashes. But anyone who can write to the database can edit a record and recompute every later hash (and
  the head row); the chain then verifies. A signed checkpoint catches that for every record up to it: the rewritten
  chain no longer reaches the signed hash, and the attacker cannot sign a new checkpoint without the private key.
- Records after the last checkpoint are protected by the chain only. Deleting checkpoint rows, or truncating the
  log together with every checkpoint after the cut, is not detectable from the database alone: compare
  :attr:`LogVerification.last_checkpoint_seq` with a copy kept elsewhere (an export, the gateway's own logs).
- Every writer of one log must sign with the same key: :func:`verify_log` checks every checkpoint against the one
  public key it is given and fails closed on any other.

**Verification.** :func:`verify_log` streams records and checkpoints in sequence order, in chunks of a bounded size
(memory does not grow with the log), inside one read snapshot. It returns a :class:`LogVerification` only when every
link, hash and checkpoint holds, and raises :class:`LogTamperedError` naming the FIRST bad record (its ``seq`` and a
:class:`Tampering` kind) otherwise. A rewrite caught by a checkpoint is named from the first record after the last
checkpoint that still held: the hashes cannot say which record of that stretch was changed.

**Durability.** SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed record is in the WAL file and
survives the process being killed (``kill -9``, a crash of the gateway); it may be lost, but the database is not
corrupted, if the operating system crashes or the power fails before the WAL is synced. PostgreSQL keeps its own
``synchronous_commit`` setting (on by default: a committed record survives power loss). If the SQLite file or its
directory vanishes or is replaced while the log is open, the writer notices (it compares the file's identity before
every transaction) and fails every batch from then on: starting a new chain in a new file would hide that the
history vanished, so the gateway answers 503 until the file is restored and the gateway restarted.
A commit whose outcome is unknown (the connection dropped during COMMIT) fails its futures: the log can then hold a
record whose request was answered 503, never the other way round.

No record content appears in this module's log messages or errors: at most sequence numbers and client names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

from modelshield._extras import require
from modelshield.errors import InvalidParameterError, ModelShieldError, VerificationError
from modelshield.findings import JSONValue
from modelshield.registry.store import canonical_json
from modelshield.supply_chain.keys import PrivateKeySet, PublicKeySet
from modelshield.supply_chain.signing import sign_message, verify_message

require("sqlalchemy", extra="serve", feature="The gateway's audit log")

from sqlalchemy import (  # noqa: E402 - after the check that names the extra
    BigInteger,
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url  # noqa: E402
from sqlalchemy.exc import DBAPIError, SQLAlchemyError  # noqa: E402

__all__ = [
    "GENESIS_HASH",
    "AuditLog",
    "AuditLogUnavailable",
    "AuditRecord",
    "LogTamperedError",
    "LogVerification",
    "Tampering",
    "export_log",
    "read_records",
    "verify_log",
]

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
CHECKPOINT_TYPE = "modelshield.audit-checkpoint/v1"
_BUSY_TIMEOUT_MS = 10_000
_PG_CONNECT_TIMEOUT_S = 3
_CHUNK = 5_000
_PROBE_HEALTHY_S = 5.0
_PROBE_UNHEALTHY_S = 1.0
_PING_AFTER_IDLE_S = 1.0  # a connection idle this long is pinged before the next transaction
_URL_REMEDY = "Pass sqlite:///path/to/audit.db or postgresql+psycopg://user@host:5432/dbname."
_TAMPERED_REMEDY = (
    "Do not trust the log from this record on: compare it with an export or backup kept elsewhere, and investigate "
    "who could write to the database."
)
_PG_LOCK_ID = 7163534921  # advisory lock that serialises table creation by processes starting at once

# -- tables -------------------------------------------------------------------------------------------------------

_metadata = MetaData()

_head = Table(
    "ms_audit_head",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("checkpoint_seq", BigInteger, nullable=False),
    Column("checkpoint_time", Double, nullable=False),
)

_records = Table(
    "ms_audit_records",
    _metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", Double, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("client", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("model_digest", Text, nullable=False),
    Column("input_sha256", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("decision", Text, nullable=False),
    Column("reasons", Text, nullable=False),  # canonical JSON list
    Column("output", Text, nullable=False),  # canonical JSON object
    Column("latency_ms", Double, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_ms_audit_records_time", "time"),
)

_checkpoints = Table(
    "ms_audit_checkpoints",
    _metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("time", Double, nullable=False),
    Column("key_fingerprint", String(64), nullable=False),
    Column("signatures", Text, nullable=False),  # JSON list of {"sig", "keyid"}
)

# Statements built once: building a SQLAlchemy expression costs more than running it on SQLite.
_LOCK_HEAD = select(_head).where(_head.c.id == 1).with_for_update()
_UPDATE_HEAD = update(_head).where(_head.c.id == 1)
_RECORD_COLUMNS = tuple(c.name for c in _records.columns)


@dataclass(frozen=True)
class _HotSql:
    """The append transaction's statements as the driver's own SQL (its parameter style)."""

    lock_head: str
    insert_records: str
    update_head: str

    @classmethod
    def for_dialect(cls, dialect: str) -> _HotSql:
        mark = "%s" if dialect == "postgresql" else "?"
        lock = " FOR UPDATE" if dialect == "postgresql" else ""  # SQLite: BEGIN IMMEDIATE holds the write lock
        columns = ", ".join(_RECORD_COLUMNS)
        marks = ", ".join([mark] * len(_RECORD_COLUMNS))
        # Fixed table and column names; every value is a bound parameter.
        head = "SELECT seq, hash, checkpoint_seq, checkpoint_time FROM ms_audit_head WHERE id = 1"
        return cls(
            lock_head=head + lock,
            insert_records=f"INSERT INTO ms_audit_records ({columns}) VALUES ({marks})",  # noqa: S608
            update_head=(
                f"UPDATE ms_audit_head SET seq = {mark}, hash = {mark}, checkpoint_seq = {mark}, "  # noqa: S608
                f"checkpoint_time = {mark} WHERE id = 1"
            ),
        )


# -- records ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRecord:
    """What the gateway records about one request (``kind="infer"``) or admin event (``"key-create"``, ...).

    ``time`` is Unix seconds (UTC); ``decision`` one of allow, flag, block, reject, error; ``output`` a summary of
    the answer (``{"rows": 3, "labels": [...]}``), never the raw tensors. Numbers are normalised on construction
    (``time`` and ``latency_ms`` to float, ``status`` to int) so that the stored record hashes as it was appended.
    """

    time: float
    request_id: str
    kind: str
    client: str
    role: str
    model_digest: str
    input_sha256: str
    status: int
    decision: str
    reasons: tuple[str, ...] = ()
    output: Mapping[str, JSONValue] = field(default_factory=dict)
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("request_id", "kind", "client", "role", "model_digest", "input_sha256", "decision"):
            value = getattr(self, name)
            if not isinstance(value, str) or "\x00" in value:
                raise InvalidParameterError(f"AuditRecord.{name} must be a string without NUL characters.")
        for name in ("time", "latency_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidParameterError(f"AuditRecord.{name} must be a finite number.")
            object.__setattr__(self, name, float(value))
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise InvalidParameterError("AuditRecord.status must be an integer (the HTTP status).")
        reasons = tuple(self.reasons)
        if not all(isinstance(r, str) for r in reasons):
            raise InvalidParameterError("AuditRecord.reasons must be strings.")
        object.__setattr__(self, "reasons", reasons)
        if not isinstance(self.output, Mapping):
            raise InvalidParameterError("AuditRecord.output must be a mapping of JSON values.")
        try:  # a deep copy through JSON: what is hashed is exactly what is stored and read back
            output = json.loads(canonical_json(dict(self.output)))
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(
                "AuditRecord.output must hold only JSON values (finite numbers, valid Unicode text)."
            ) from exc
        object.__setattr__(self, "output", MappingProxyType(output))

    def to_dict(self) -> dict[str, JSONValue]:
        """The record as JSON data (without ``seq``)."""
        return {
            "time": self.time,
            "request_id": self.request_id,
            "kind": self.kind,
            "client": self.client,
            "role": self.role,
            "model_digest": self.model_digest,
            "input_sha256": self.input_sha256,
            "status": self.status,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "output": dict(self.output),
            "latency_ms": self.latency_ms,
        }

    def canonical(self, seq: int) -> bytes:
        """The bytes that are hashed for this record at position ``seq``: canonical JSON including ``seq``."""
        return canonical_json({**self.to_dict(), "seq": seq})

    def chain_hash(self, seq: int, prev_hash: str) -> str:
        """``SHA-256(bytes.fromhex(prev_hash) || canonical(seq))``, hex: the record's ``hash`` in the chain."""
        return hashlib.sha256(bytes.fromhex(prev_hash) + self.canonical(seq)).hexdigest()


_RECORD_FIELDS = tuple(f.name for f in fields(AuditRecord))


def _row_values(record: AuditRecord, seq: int, prev_hash: str, digest: str) -> dict[str, Any]:
    return {
        **{name: getattr(record, name) for name in _RECORD_FIELDS},
        "reasons": canonical_json(list(record.reasons)).decode(),
        "output": canonical_json(dict(record.output)).decode(),
        "seq": seq,
        "prev_hash": prev_hash,
        "hash": digest,
    }


def _record_of(row: Row[Any]) -> AuditRecord:
    """The record a row holds; ValueError/TypeError/InvalidParameterError when it cannot be one."""
    values = {name: getattr(row, name) for name in _RECORD_FIELDS}
    values["reasons"] = json.loads(row.reasons)
    values["output"] = json.loads(row.output)
    if not isinstance(values["reasons"], list) or not isinstance(values["output"], dict):
        raise TypeError("reasons or output of the wrong JSON type")
    return AuditRecord(**values)


def _checkpoint_statement(seq: int, digest: str, at: float, fingerprint: str) -> bytes:
    """The canonical bytes a checkpoint's signatures cover."""
    return canonical_json({"type": CHECKPOINT_TYPE, "seq": seq, "hash": digest, "time": at, "key": fingerprint})


# -- errors and results -------------------------------------------------------------------------------------------


class AuditLogUnavailable(ModelShieldError):  # noqa: N818 - the name the gateway's API uses
    """The audit store could not be reached or refused a write: the record is NOT in the log.

    The gateway answers 503 and does not serve the request; a later append tries the store again.
    """

    default_remedy = "Check that the audit database is reachable and writable (its URL, server, disk), then retry."


class Tampering(StrEnum):
    """What :func:`verify_log` found wrong at the first bad record."""

    EDITED = "edited"  # a record's content or hash no longer matches
    DELETED = "deleted"  # records are missing from the sequence (or were deleted and the rest renumbered)
    INSERTED = "inserted"  # a record that the log did not write sits in the chain
    REORDERED = "reordered"  # two records swapped places
    TRUNCATED = "truncated"  # the log ends before its head row or a checkpoint says it does
    REWRITTEN = "rewritten"  # the chain verifies, but no longer reaches a checkpoint's (or the head's) hash
    CHECKPOINT_INVALID = "checkpoint-invalid"  # a checkpoint's signature does not hold for the key, or is malformed


class LogTamperedError(VerificationError):
    """The audit log does not verify; ``seq`` is the first bad record and ``tampering`` what happened to it."""

    def __init__(self, url: str, seq: int, tampering: Tampering, detail: str) -> None:
        super().__init__(
            f"The audit log {url} does not verify at record #{seq} ({tampering.value}): {detail}.",
            remedy=_TAMPERED_REMEDY,
            subject=url,
        )
        self.url = url
        self.seq = seq
        self.tampering = tampering
        self.detail = detail

    def __reduce__(self) -> tuple[type[LogTamperedError], tuple[str, int, Tampering, str]]:
        return (type(self), (self.url, self.seq, self.tampering, self.detail))


@dataclass(frozen=True)
class LogVerification:
    """An audit log whose every record, link and checkpoint verified.

    Only :func:`verify_log` returns one, and only on success. ``checkpoints_verified`` counts checkpoints whose
    signature held for the public key (0 when no key was given: the checkpoints' hashes were still compared with
    the chain, but they prove nothing without the key). Records after ``last_checkpoint_seq`` rest on the chain
    alone.
    """

    records: int
    head_seq: int
    head_hash: str
    checkpoints: int
    checkpoints_verified: int
    last_checkpoint_seq: int | None
    last_checkpoint_time: float | None

    def summary(self) -> str:
        """One line for people."""
        if not self.checkpoints:
            signed = "no checkpoints"
        else:
            signed = (
                f"{self.checkpoints_verified} of {self.checkpoints} checkpoint(s) signature-verified, "
                f"the last at #{self.last_checkpoint_seq}"
            )
        return f"audit log intact: {self.records} record(s), head #{self.head_seq}; {signed}"


# -- engines ------------------------------------------------------------------------------------------------------


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise InvalidParameterError("The audit log URL is not a database URL.", remedy=_URL_REMEDY) from exc
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "postgresql+psycopg":
        require("psycopg", extra="serve", feature="A PostgreSQL audit log")
    elif parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
            raise InvalidParameterError(
                "An SQLite audit log needs a file path (several connections and processes share it).",
                remedy=_URL_REMEDY,
            )
        parsed = parsed.set(database=str(Path(parsed.database).absolute()))
    else:
        raise InvalidParameterError(
            f"Unsupported audit log database {parsed.render_as_string(hide_password=True)!r}.", remedy=_URL_REMEDY
        )
    return parsed


def _make_engine(parsed: URL) -> Engine:
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            parsed,
            hide_parameters=True,
            pool_pre_ping=True,
            pool_size=2,
            connect_args={
                "connect_timeout": _PG_CONNECT_TIMEOUT_S,
                "application_name": "modelshield-audit",
                # A writer that stalls mid-transaction must not hold the head row's lock for long: the server ends
                # its transaction, and other writers stop waiting for the lock after a bounded time.
                "options": (
                    "-c lock_timeout=5000 -c statement_timeout=10000 -c idle_in_transaction_session_timeout=10000"
                ),
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
    engine = create_engine(parsed, hide_parameters=True, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own: the "begin" hook does
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("modelshield_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _cause(exc: BaseException) -> str:
    """What went wrong, without record content: the driver's message only for connection-level errors."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    name = type(orig).__name__ + (f" {code}" if code else "")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return f"{name}: the connection was lost"
    if type(orig).__name__ in {"OperationalError", "InterfaceError"} or isinstance(orig, OSError):
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        return f"{name}: {first[:200]}"
    return name


class _StoreDownError(Exception):
    """Internal: the store cannot take this batch (message free of record content)."""


class _ReconnectError(Exception):
    """Internal: the writer's connection died before the transaction wrote anything; safe to try once more."""


# -- the writer ---------------------------------------------------------------------------------------------------

_Item = tuple[AuditRecord, Future[int]]


class AuditLog:
    """Appends :class:`AuditRecord` s to the hash chain in ``url``, from one background thread per instance.

    Safe to call from many threads; several processes may open the same ``url``. ``checkpoint_every`` and
    ``checkpoint_interval_s`` take effect only with a ``signing_key``; ``max_pending`` bounds the queue (an append
    beyond it fails at once with :class:`AuditLogUnavailable` rather than growing memory while the store is slow).
    """

    def __init__(
        self,
        url: str,
        *,
        signing_key: PrivateKeySet | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 60.0,
        max_batch: int = 512,
        max_wait_s: float = 0.0,
        max_pending: int = 100_000,
    ) -> None:
        for name, value in (("checkpoint_every", checkpoint_every), ("max_batch", max_batch)):
            if value < 1:
                raise InvalidParameterError(f"{name} must be at least 1, not {value}.")
        if max_pending < max_batch:
            raise InvalidParameterError(f"max_pending ({max_pending}) must be at least max_batch ({max_batch}).")
        if not checkpoint_interval_s > 0 or max_wait_s < 0:
            raise InvalidParameterError("checkpoint_interval_s must be positive and max_wait_s not negative.")
        if signing_key is not None and not signing_key.algorithm.signs:
            raise InvalidParameterError(
                f"A {signing_key.algorithm.value} key cannot sign checkpoints.", remedy="Pass a signing key."
            )
        parsed = _parse_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._key = signing_key
        self._fingerprint = signing_key.public().fingerprint if signing_key is not None else ""
        self._sqlite_path = Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None
        self._file_id: tuple[int, int] | None = None
        self._lost: str | None = None  # why the SQLite file can no longer be trusted (then every write fails)
        self._engine = _make_engine(parsed)
        self._writer = self._engine.execution_options(modelshield_immediate=True)
        self._conn: Connection | None = None  # the writer thread's own connection, kept open between batches
        self._sql = _HotSql.for_dialect(self._engine.dialect.name)
        self._conn_used = 0.0
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_pending)  # None: close() was called
        self._lock = threading.Lock()
        self._closed = False
        self._healthy = False
        self._schema_ready = False
        self._unsigned = False  # this writer appended records since its last checkpoint attempt
        self._last_contact = 0.0
        self._last_checkpoint_try = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="modelshield-audit-writer", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"AuditLog({self.url!r}, signed={self._key is not None})"

    # -- the public surface -----------------------------------------------------------------------------------------

    def append(self, record: AuditRecord) -> Future[int]:
        """Queue ``record``; the future resolves to its ``seq`` once committed, or fails with AuditLogUnavailable.

        The future cannot be cancelled: a record handed over is written (or fails) whatever the caller does.
        """
        if not isinstance(record, AuditRecord):
            raise InvalidParameterError(f"append() takes an AuditRecord, not {type(record).__name__}.")
        future: Future[int] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            if self._closed:
                future.set_exception(AuditLogUnavailable(f"The audit log {self.url} is closed."))
                return future
            try:
                self._queue.put_nowait((record, future))
            except queue.Full:
                future.set_exception(
                    AuditLogUnavailable(f"The audit log {self.url} has too many records waiting to be written.")
                )
        return future

    def healthy(self) -> bool:
        """Whether the last transaction or probe of the store succeeded (probed every few seconds when idle)."""
        return self._healthy and not self._closed and self._thread.is_alive()

    def close(self) -> None:
        """Write what is queued, add a final checkpoint (with a signing key), and release the database."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the thread -------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._attempt(self._ensure_schema)
            stop = False
            while not stop:
                batch, stop = self._gather()
                if batch:
                    self._write(batch)
                elif not stop:
                    self._idle()
            if self._key is not None:
                self._attempt(lambda: self._checkpoint(force=True))
        finally:
            self._healthy = False
            self._drop_connection()
            self._engine.dispose()

    def _gather(self) -> tuple[list[_Item], bool]:
        """The next batch, and whether close() was called. Waits until the next idle duty when nothing comes."""
        try:
            item = self._queue.get(timeout=self._idle_in())
        except queue.Empty:
            return [], False
        if item is None:
            return [], True
        batch = [item]
        deadline = time.monotonic() + self.max_wait_s
        stop = False
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _idle_in(self) -> float:
        now = time.monotonic()
        probe = (_PROBE_HEALTHY_S if self._healthy else _PROBE_UNHEALTHY_S) - (now - self._last_contact)
        waits = [probe]
        if self._key is not None and self._unsigned:
            waits.append(self.checkpoint_interval_s - (now - self._last_checkpoint_try))
        return max(0.01, min(waits))

    def _idle(self) -> None:
        now = time.monotonic()
        if self._key is not None and self._unsigned and now - self._last_checkpoint_try >= self.checkpoint_interval_s:
            self._attempt(lambda: self._checkpoint(force=False))
        elif now - self._last_contact >= (_PROBE_HEALTHY_S if self._healthy else _PROBE_UNHEALTHY_S):
            self._attempt(self._probe)

    def _attempt(self, work: Callable[[], None]) -> bool:
        try:
            work()
        except (_StoreDownError, SQLAlchemyError, OSError) as exc:
            self._down(exc)
            return False
        except Exception as exc:  # a bug must not kill the writer thread
            logger.error("audit log %s: unexpected %s in the writer", self.url, type(exc).__name__)
            self._healthy = False
            return False
        self._up()
        return True

    def _up(self) -> None:
        if not self._healthy:
            logger.info("audit log %s is available", self.url)
        self._healthy = True
        self._last_contact = time.monotonic()

    def _down(self, exc: BaseException) -> None:
        cause = str(exc) if isinstance(exc, _StoreDownError) else _cause(exc)
        if self._healthy or self._last_contact == 0.0:
            logger.warning("audit log %s is unavailable: %s", self.url, cause)
        self._healthy = False
        self._last_contact = time.monotonic()  # the next probe waits _PROBE_UNHEALTHY_S
        self._drop_connection()
        self._engine.dispose()  # drop connections that may be broken; the next transaction reconnects

    def _write(self, batch: list[_Item]) -> None:
        try:
            first = self._append_batch([record for record, _ in batch])
        except (_StoreDownError, SQLAlchemyError, OSError) as exc:
            self._down(exc)
            cause = str(exc) if isinstance(exc, _StoreDownError) else _cause(exc)
            for _, future in batch:
                future.set_exception(
                    AuditLogUnavailable(f"The audit log {self.url} could not write the record ({cause}).")
                )
            return
        except Exception as exc:  # a bug must not kill the writer and leave futures hanging
            logger.error("audit log %s: unexpected %s while writing a batch", self.url, type(exc).__name__)
            for _, future in batch:
                future.set_exception(AuditLogUnavailable(f"The audit log {self.url} failed unexpectedly."))
            return
        self._up()
        for offset, (_, future) in enumerate(batch):
            future.set_result(first + offset)

    # -- transactions ----------------------------------------------------------------------------------------------

    def _check_file(self) -> None:
        """SQLite: refuse to write into a database file that was deleted or replaced while it was open, for good.

        Starting a new chain in a new file would hide that the history vanished; so the log stays unavailable (the
        gateway answers 503 and is not ready) until an operator restores the file and restarts the gateway.
        """
        if self._sqlite_path is None:
            return
        if self._lost is not None:
            raise _StoreDownError(self._lost)
        try:
            st = os.stat(self._sqlite_path)
        except FileNotFoundError:
            if self._file_id is not None:
                self._lost = "the database file was removed while the log was open; restore it and restart"
                raise _StoreDownError(self._lost) from None
            if not self._sqlite_path.parent.is_dir():
                raise _StoreDownError("the database file's directory does not exist") from None
            return  # a first use: SQLite creates the file
        identity = (st.st_dev, st.st_ino)
        if self._file_id is not None and identity != self._file_id:
            self._lost = "the database file was replaced while the log was open; check it and restart"
            raise _StoreDownError(self._lost)

    def _remember_file(self) -> None:
        if self._sqlite_path is not None and self._file_id is None:
            st = os.stat(self._sqlite_path)
            self._file_id = (st.st_dev, st.st_ino)

    def _ensure_schema(self) -> None:
        """Create the tables and the head row if missing (idempotent; processes racing at start are serialised)."""
        self._check_file()
        if self._schema_ready:
            return
        with self._writer.begin() as conn:
            if self._engine.dialect.name == "postgresql":
                conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})"))
            _metadata.create_all(conn, checkfirst=True)
            if conn.execute(select(_head.c.id).where(_head.c.id == 1)).first() is None:
                conn.execute(
                    insert(_head).values(id=1, seq=0, hash=GENESIS_HASH, checkpoint_seq=0, checkpoint_time=time.time())
                )
        self._remember_file()
        self._schema_ready = True

    def _probe(self) -> None:
        self._ensure_schema()
        with self._engine.connect() as conn:
            conn.execute(select(_head.c.seq).where(_head.c.id == 1)).one()

    def _lock_head(self, conn: Connection) -> Row[Any]:
        return conn.execute(_LOCK_HEAD).one()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction on the writer's own connection: held open between batches (a pool checkout and its
        liveness ping cost more than the transaction), dropped after any failure."""
        now = time.monotonic()
        if self._conn is not None and now - self._conn_used > _PING_AFTER_IDLE_S:
            try:  # connections die while idle (a server restart, an idle timeout): check before relying on it
                self._conn.exec_driver_sql("SELECT 1")
                self._conn.rollback()
            except SQLAlchemyError:
                self._drop_connection()
        if self._conn is None:
            self._conn = self._writer.connect()
        self._conn_used = now
        try:
            with self._conn.begin():
                yield self._conn
        except BaseException:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _append_batch(self, records: Sequence[AuditRecord]) -> int:
        """Chain ``records`` onto the head in one transaction; the seq of the first."""
        self._ensure_schema()
        try:
            return self._chain(records, retry=True)
        except _ReconnectError:  # the held connection was dead before anything was written: once more, afresh
            return self._chain(records, retry=False)

    def _chain(self, records: Sequence[AuditRecord], *, retry: bool) -> int:
        # The hot path runs fixed SQL through the driver (exec_driver_sql): compiling SQLAlchemy expressions cost more
        # than the whole transaction on SQLite. Errors are still SQLAlchemy's (DBAPIError, with connection_invalidated).
        sql = self._sql
        with self._transaction() as conn:
            try:
                head = conn.exec_driver_sql(sql.lock_head).one()
            except DBAPIError as exc:
                if retry and exc.connection_invalidated:
                    raise _ReconnectError from None
                raise
            seq, digest, checkpoint_seq, checkpoint_time = int(head[0]), str(head[1]), int(head[2]), float(head[3])
            first = seq + 1
            rows = []
            for record in records:
                seq += 1
                prev, digest = digest, record.chain_hash(seq, digest)
                values = _row_values(record, seq, prev, digest)
                rows.append(tuple(values[name] for name in _RECORD_COLUMNS))
            conn.exec_driver_sql(sql.insert_records, rows)
            now = time.time()
            if self._key is not None and (
                seq - checkpoint_seq >= self.checkpoint_every or now - checkpoint_time >= self.checkpoint_interval_s
            ):
                signed = self._checkpoint_row(conn, seq, digest, now)
                checkpoint_seq, checkpoint_time = signed["checkpoint_seq"], signed["checkpoint_time"]
                self._last_checkpoint_try = time.monotonic()
                self._unsigned = False
            else:
                self._unsigned = self._key is not None
            conn.exec_driver_sql(sql.update_head, (seq, digest, checkpoint_seq, checkpoint_time))
        return first

    def _checkpoint(self, *, force: bool) -> None:
        """Sign the head if records were added since the last checkpoint (and, unless ``force``, it is due)."""
        self._ensure_schema()
        self._last_checkpoint_try = time.monotonic()
        with self._transaction() as conn:
            head = self._lock_head(conn)
            now = time.time()
            due = force or now - float(head.checkpoint_time) >= self.checkpoint_interval_s
            pending = int(head.seq) > int(head.checkpoint_seq)
            if pending and due:
                values = self._checkpoint_row(conn, int(head.seq), str(head.hash), now)
                conn.execute(update(_head).where(_head.c.id == 1).values(**values))
        # Another writer signed recently: try again after another interval, so that no record stays unsigned.
        self._unsigned = pending and not due

    def _checkpoint_row(self, conn: Connection, seq: int, digest: str, now: float) -> dict[str, Any]:
        assert self._key is not None  # noqa: S101 - only called with a key
        signatures = sign_message(_checkpoint_statement(seq, digest, now, self._fingerprint), self._key)
        conn.execute(
            insert(_checkpoints).values(
                seq=seq, hash=digest, time=now, key_fingerprint=self._fingerprint, signatures=json.dumps(signatures)
            )
        )
        return {"checkpoint_seq": seq, "checkpoint_time": now}


# -- reading ------------------------------------------------------------------------------------------------------


def _reader(url: str) -> tuple[str, Engine]:
    parsed = _parse_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_file():
        raise AuditLogUnavailable(f"There is no audit log at {shown}: the file does not exist.")
    engine = _make_engine(parsed)
    if parsed.get_backend_name() == "postgresql":  # one snapshot for the head row, the records and the checkpoints
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    return shown, engine


def _paged(conn: Connection, table: Table, *, since: float | None = None) -> Iterator[Row[Any]]:
    """Every row of ``table`` in ``seq`` order, ``_CHUNK`` at a time (keyset pagination: memory stays flat)."""
    last = -1
    while True:
        query = select(table).where(table.c.seq > last).order_by(table.c.seq).limit(_CHUNK)
        if since is not None:
            query = query.where(table.c.time >= since)
        rows = conn.execute(query).all()
        yield from rows
        if len(rows) < _CHUNK:
            return
        last = int(rows[-1].seq)


class _Peek:
    """An iterator with one item of look-ahead."""

    def __init__(self, rows: Iterator[Row[Any]]) -> None:
        self._rows = rows
        self._next: Row[Any] | None = next(rows, None)

    def peek(self) -> Row[Any] | None:
        return self._next

    def pop(self) -> Row[Any] | None:
        current, self._next = self._next, next(self._rows, None)
        return current


@dataclass
class _Walk:
    """The state of one verification walk."""

    url: str
    key: PublicKeySet | None
    head_seq: int
    head_hash: str
    checkpoints: _Peek
    expected: int = 1
    running: str = GENESIS_HASH
    before: str = GENESIS_HASH  # the hash of the record before the last verified one
    good_checkpoint: int = 0  # the last checkpoint the chain reached
    counted: int = 0
    verified: int = 0
    last_time: float | None = None

    def fail(self, seq: int, tampering: Tampering, detail: str) -> LogTamperedError:
        return LogTamperedError(self.url, seq, tampering, detail)

    def record(self, row: Row[Any], following: Row[Any] | None) -> None:
        seq = int(row.seq)
        if seq > self.head_seq:
            raise self.fail(max(self.expected, self.head_seq + 1), Tampering.INSERTED, "it lies beyond the head row")
        if seq > self.expected:
            raise self.fail(self.expected, Tampering.DELETED, f"records #{self.expected} to #{seq - 1} are missing")
        try:
            record = _record_of(row)
            own = record.chain_hash(seq, str(row.prev_hash))
        except (ValueError, TypeError, InvalidParameterError):
            raise self.fail(seq, Tampering.EDITED, "its stored fields are not a valid record") from None
        if row.prev_hash != self.running:
            self._broken_link(seq, row, record, following)
        if own != row.hash:
            raise self.fail(seq, Tampering.EDITED, "its content no longer matches its hash")
        self.before, self.running = self.running, str(row.hash)
        self.expected += 1

    def _broken_link(self, seq: int, row: Row[Any], record: AuditRecord, following: Row[Any] | None) -> None:
        if seq > 1 and row.prev_hash == self.before and self.before != self.running:
            raise self.fail(seq - 1, Tampering.INSERTED, "the next record links past it to the one before")
        if following is not None and following.prev_hash == self.running:
            if row.prev_hash == following.hash:
                raise self.fail(seq, Tampering.REORDERED, f"it swapped places with record #{seq + 1}")
            raise self.fail(seq, Tampering.INSERTED, "the next record links past it to the one before")
        try:
            renumbered = record.chain_hash(seq + 1, str(row.prev_hash)) == row.hash
        except ValueError:
            renumbered = False
        if renumbered:
            raise self.fail(seq, Tampering.DELETED, "it was deleted and the later records renumbered")
        raise self.fail(seq, Tampering.EDITED, "it does not link to the record before it")

    def checkpoint(self, row: Row[Any]) -> None:
        seq = int(row.seq)
        if self.key is not None:
            try:
                signatures = json.loads(row.signatures)
                if not isinstance(signatures, list) or row.key_fingerprint != self.key.fingerprint:
                    raise VerificationError("signed by another key")
                statement = _checkpoint_statement(seq, str(row.hash), float(row.time), self.key.fingerprint)
                verify_message(statement, signatures, self.key)
            except (ValueError, TypeError, VerificationError):
                raise self.fail(
                    seq, Tampering.CHECKPOINT_INVALID, "the checkpoint's signature does not hold for the public key"
                ) from None
            self.verified += 1
        if seq >= self.expected:
            raise self.fail(
                self.expected,
                Tampering.TRUNCATED,
                f"the log ends at #{self.expected - 1}, but a checkpoint covers records up to #{seq}",
            )
        if seq < 1 or row.hash != self.running:
            raise self.fail(
                self.good_checkpoint + 1,
                Tampering.REWRITTEN,
                f"records #{self.good_checkpoint + 1} to #{seq} were rewritten: the chain no longer reaches the hash "
                f"of the checkpoint at #{seq}",
            )
        self.good_checkpoint = seq
        self.counted += 1
        self.last_time = float(row.time)

    def checkpoints_up_to(self, seq: int) -> None:
        while (row := self.checkpoints.peek()) is not None and int(row.seq) <= seq:
            self.checkpoints.pop()
            self.checkpoint(row)

    def finish(self) -> None:
        last = self.expected - 1
        if (row := self.checkpoints.peek()) is not None:
            self.checkpoint(row)  # lies beyond the last record: raises (truncated, or an invalid signature)
        if last < self.head_seq:
            raise self.fail(
                last + 1, Tampering.TRUNCATED, f"the log ends at #{last}, but its head row says #{self.head_seq}"
            )
        if self.running != self.head_hash:
            raise self.fail(
                self.good_checkpoint + 1,
                Tampering.REWRITTEN,
                f"records after #{self.good_checkpoint} were rewritten: the chain no longer reaches the head's hash",
            )


def verify_log(url: str, public_key: PublicKeySet | None = None) -> LogVerification:
    """Recompute the chain of the audit log at ``url`` and check its checkpoints; raise on the first bad record.

    Fails closed: returns a :class:`LogVerification` only when every record links and hashes, the log reaches its
    head row, and every checkpoint matches the chain (and, with ``public_key``, carries a valid signature by it).
    Raises :class:`LogTamperedError` (``seq``, ``tampering``) otherwise, and :class:`AuditLogUnavailable` when the
    database cannot be read or holds no audit log.
    """
    shown, engine = _reader(url)
    try:
        with engine.connect() as conn, conn.begin():
            try:
                head = conn.execute(select(_head).where(_head.c.id == 1)).one_or_none()
            except SQLAlchemyError as exc:
                raise AuditLogUnavailable(f"There is no readable audit log at {shown} ({_cause(exc)}).") from None
            if head is None:
                raise LogTamperedError(shown, 1, Tampering.DELETED, "the head row of the log is missing")
            walk = _Walk(shown, public_key, int(head.seq), str(head.hash), _Peek(_paged(conn, _checkpoints)))
            rows = _Peek(_paged(conn, _records))
            while (row := rows.pop()) is not None:
                walk.record(row, rows.peek())
                walk.checkpoints_up_to(int(row.seq))
            walk.finish()
    except SQLAlchemyError as exc:
        raise AuditLogUnavailable(f"Could not read the audit log at {shown} ({_cause(exc)}).") from None
    finally:
        engine.dispose()
    return LogVerification(
        records=walk.expected - 1,
        head_seq=walk.head_seq,
        head_hash=walk.head_hash,
        checkpoints=walk.counted,
        checkpoints_verified=walk.verified,
        last_checkpoint_seq=walk.good_checkpoint or None,
        last_checkpoint_time=walk.last_time,
    )


def export_log(url: str, out: TextIO, *, since: float | None = None) -> int:
    """Write the records of ``url`` (those at or after Unix time ``since``) to ``out`` as JSON lines, in seq order.

    Each line is the canonical JSON of the record with its ``seq``, ``prev_hash`` and ``hash``. Returns how many
    lines were written. Exporting does not verify: run :func:`verify_log` for that.
    """
    shown, engine = _reader(url)
    count = 0
    try:
        with engine.connect() as conn, conn.begin():
            for row in _paged(conn, _records, since=since):
                out.write(canonical_json(_exported(row)).decode() + "\n")
                count += 1
    except SQLAlchemyError as exc:
        raise AuditLogUnavailable(f"Could not read the audit log at {shown} ({_cause(exc)}).") from None
    finally:
        engine.dispose()
    return count


def _exported(row: Row[Any]) -> dict[str, Any]:
    """A stored record as exported: its fields, ``seq``, ``prev_hash`` and ``hash``."""
    return {
        **{name: getattr(row, name) for name in _RECORD_FIELDS},
        "reasons": json.loads(row.reasons),
        "output": json.loads(row.output),
        "seq": int(row.seq),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def read_records(url: str, *, after: int = 0, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """At most ``limit`` records after sequence number ``after`` (and at or after Unix time ``since``), in seq order,
    as :func:`export_log` writes them: one bounded query, for paging through the log (pass the last ``seq`` seen)."""
    if not 1 <= limit <= 100_000 or not 0 <= after < (1 << 62):
        raise InvalidParameterError(f"limit must lie in 1..100000 and after be >= 0, not {limit} and {after}.")
    shown, engine = _reader(url)
    try:
        with engine.connect() as conn:
            query = select(_records).where(_records.c.seq > after).order_by(_records.c.seq).limit(limit)
            if since is not None:
                query = query.where(_records.c.time >= since)
            return [_exported(row) for row in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise AuditLogUnavailable(f"Could not read the audit log at {shown} ({_cause(exc)}).") from None
    finally:
        engine.dispose()
