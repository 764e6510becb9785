"""The registry's index: model versions, aliases and a hash-chained history, in SQLite or PostgreSQL.

    >>> from modelshield.registry.index import Index
    >>> index = Index("sqlite:///registry/index.db")  # doctest: +SKIP
    >>> index.verify_history().summary()  # doctest: +SKIP
    'history intact: 12 entries of 2 model(s), every hash and link verified'

Every change to a model happens in one transaction that first locks that model's row in ``ms_models``
(``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE``, which takes SQLite's single write lock, on SQLite).
Under that lock the next version number is ``max + 1`` and the next history entry links to the model's head hash,
so concurrent writers get consecutive version numbers and the chain cannot fork. The unique constraints on
(model, version) and (model, seq) are the backstop: a violation, a ``database is locked`` or a PostgreSQL
serialization failure rolls the whole transaction back and it is retried, a bounded number of times with jitter.

Each history entry's ``hash`` is the SHA-256 of the canonical JSON of the entry (model, seq, version, action,
actor, timestamp, detail) together with ``prev_hash``, the previous entry's hash (64 zeros for the first);
:meth:`Index.verify_history` recomputes the chain and fails closed: it returns a :class:`VerifiedHistory` only when
every link holds, and raises :class:`~modelshield.errors.VerificationError` naming the model and the entry of the
first broken link otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TypeVar

from modelshield._extras import require
from modelshield.errors import InvalidParameterError, RegistryError, VerificationError
from modelshield.findings import JSONValue, Severity
from modelshield.registry.store import ArtifactKind, canonical_json

require("sqlalchemy", extra="registry", feature="The model registry")

from sqlalchemy import (  # noqa: E402 - after the check that names the extra
    JSON,
    BigInteger,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

__all__ = [
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "AliasRow",
    "Base",
    "HistoryEntry",
    "HistoryRow",
    "Index",
    "ModelRow",
    "ModelSummary",
    "ModelVersion",
    "SchemaRow",
    "VerifiedHistory",
    "VersionRow",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64
_RETRIES = 12
_BUSY_TIMEOUT_MS = 30_000
_RETRY_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
_T = TypeVar("_T")


def _now() -> datetime:
    return datetime.now(UTC)


# -- tables -------------------------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    """Declarative base of the registry's tables."""


class SchemaRow(Base):
    __tablename__ = "ms_schema"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class ModelRow(Base):
    """One row per model: the lock target of every change, and the head of its history chain."""

    __tablename__ = "ms_models"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    head_seq: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)


class VersionRow(Base):
    __tablename__ = "ms_versions"
    __table_args__ = (UniqueConstraint("model", "version", name="uq_ms_versions_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64), ForeignKey("ms_models.name"))
    version: Mapped[int] = mapped_column(Integer)
    artifact_digest: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    source_name: Mapped[str] = mapped_column(String(255))
    signature_digest: Mapped[str | None] = mapped_column(String(64))
    signer_fingerprint: Mapped[str | None] = mapped_column(String(64))
    scan_digest: Mapped[str] = mapped_column(String(64))
    scan_max_severity: Mapped[str | None] = mapped_column(String(16))
    audit_digest: Mapped[str | None] = mapped_column(String(64))
    audit_max_severity: Mapped[str | None] = mapped_column(String(16))
    audit_complete: Mapped[bool | None] = mapped_column()
    data_manifest_digest: Mapped[str | None] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    actor: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AliasRow(Base):
    __tablename__ = "ms_aliases"

    model: Mapped[str] = mapped_column(String(64), ForeignKey("ms_models.name"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HistoryRow(Base):
    """Append-only; ``hash`` chains each entry to the one before it (``prev_hash``)."""

    __tablename__ = "ms_history"
    __table_args__ = (UniqueConstraint("model", "seq", name="uq_ms_history_model_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64), ForeignKey("ms_models.name"))
    seq: Mapped[int] = mapped_column(Integer)
    version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(256))
    timestamp: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, kept as text because it is hashed
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# -- results ------------------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)  # SQLite drops the zone


def _severity(value: str | None) -> Severity | None:
    return Severity(value) if value else None


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, with the digests of everything attached to it."""

    name: str
    version: int
    artifact_digest: str
    kind: ArtifactKind
    size: int
    source_name: str
    scan_digest: str
    scan_max_severity: Severity | None
    created_at: datetime
    actor: str
    signature_digest: str | None = None
    signer_fingerprint: str | None = None
    audit_digest: str | None = None
    audit_max_severity: Severity | None = None
    audit_complete: bool | None = None
    data_manifest_digest: str | None = None
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @classmethod
    def _from_row(cls, row: VersionRow, aliases: tuple[str, ...] = ()) -> ModelVersion:
        return cls(
            name=row.model,
            version=row.version,
            artifact_digest=row.artifact_digest,
            kind=ArtifactKind(row.kind),
            size=row.size,
            source_name=row.source_name,
            scan_digest=row.scan_digest,
            scan_max_severity=_severity(row.scan_max_severity),
            created_at=_utc(row.created_at),
            actor=row.actor,
            signature_digest=row.signature_digest,
            signer_fingerprint=row.signer_fingerprint,
            audit_digest=row.audit_digest,
            audit_max_severity=_severity(row.audit_max_severity),
            audit_complete=row.audit_complete,
            data_manifest_digest=row.data_manifest_digest,
            metadata=row.meta,
            aliases=aliases,
        )

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "artifact_digest": self.artifact_digest,
            "kind": self.kind.value,
            "size": self.size,
            "source_name": self.source_name,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "signature_digest": self.signature_digest,
            "signer_fingerprint": self.signer_fingerprint,
            "scan_digest": self.scan_digest,
            "scan_max_severity": self.scan_max_severity.value if self.scan_max_severity else None,
            "audit_digest": self.audit_digest,
            "audit_max_severity": self.audit_max_severity.value if self.audit_max_severity else None,
            "audit_complete": self.audit_complete,
            "data_manifest_digest": self.data_manifest_digest,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class ModelSummary:
    """A model in :meth:`Index.models`: how many versions, the latest, and which one is in production."""

    name: str
    versions: int
    latest: int
    production: int | None


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of a model's history (``action`` is add, promote, rollback or refused)."""

    model: str
    seq: int
    version: int | None
    action: str
    actor: str
    timestamp: str
    detail: Mapping[str, JSONValue]
    prev_hash: str
    hash: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", MappingProxyType(dict(self.detail)))

    def record(self) -> dict[str, JSONValue]:
        """What :attr:`hash` covers."""
        return {
            "model": self.model,
            "seq": self.seq,
            "version": self.version,
            "action": self.action,
            "actor": self.actor,
            "timestamp": self.timestamp,
            "detail": dict(self.detail),
            "prev_hash": self.prev_hash,
        }

    def computed_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.record())).hexdigest()

    def to_dict(self) -> dict[str, JSONValue]:
        return {**self.record(), "hash": self.hash}

    @classmethod
    def _from_row(cls, row: HistoryRow) -> HistoryEntry:
        return cls(
            row.model, row.seq, row.version, row.action, row.actor, row.timestamp, row.detail, row.prev_hash, row.hash
        )


@dataclass(frozen=True)
class VerifiedHistory:
    """A history whose every hash and link verified: of one model, or of every model.

    Only :meth:`Index.verify_history` returns one, and only on success; a broken chain raises
    :class:`~modelshield.errors.VerificationError` instead.
    """

    entries: int
    heads: Mapping[str, str]  # model -> the hash of its last entry, where its verified chain ends

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", MappingProxyType(dict(self.heads)))

    @property
    def models(self) -> tuple[str, ...]:
        """The models whose history verified, by name."""
        return tuple(sorted(self.heads))

    def summary(self) -> str:
        """One line for people."""
        return f"history intact: {self.entries} entries of {len(self.heads)} model(s), every hash and link verified"


def _broken(model: str, seq: int, problem: str) -> VerificationError:
    return VerificationError(
        f"The registry history of model {model!r} is broken at entry #{seq}: {problem}.",
        remedy="Do not trust the registry's record of this model; restore the index from backup and investigate "
        "who could write to the database.",
        subject=model,
    )


# -- the index ----------------------------------------------------------------------------------------------------


def _retryable(exc: SQLAlchemyError) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # the unique constraints are the backstop of version and seq allocation
    if isinstance(exc, DBAPIError):
        if getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES:
            return True
        message = str(exc.orig).lower()
        return "database is locked" in message or "database is busy" in message
    return False


class Index:
    """The registry's tables behind one SQLAlchemy engine (``sqlite:///...`` or ``postgresql+psycopg://...``)."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except SQLAlchemyError as exc:
            raise InvalidParameterError(f"{url!r} is not a database URL.", remedy=_URL_REMEDY) from exc
        self.url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "postgresql":
            require("psycopg", extra="registry", feature="A PostgreSQL registry index")
        elif self.dialect != "sqlite":
            raise InvalidParameterError(f"Unsupported registry database {self.url!r}.", remedy=_URL_REMEDY)
        self._engine = create_engine(parsed)
        if self.dialect == "sqlite":
            _configure_sqlite(self._engine)
        self._writer = self._engine.execution_options(modelshield_immediate=True)
        # verify_history reads several tables: on PostgreSQL they must come from one snapshot, or a concurrent add
        # would look like a broken chain (SQLite in WAL mode holds one snapshot per read transaction anyway).
        self._snapshot = (
            self._engine.execution_options(isolation_level="REPEATABLE READ")
            if self.dialect == "postgresql"
            else self._engine
        )
        self._create()

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def _create(self) -> None:
        with self._errors("create the registry tables"), self._writer.begin() as conn:
            if self.dialect == "postgresql":  # two processes creating the tables at once: one waits
                conn.execute(text("SELECT pg_advisory_xact_lock(7163534920)"))
            Base.metadata.create_all(conn)
            found = conn.execute(select(SchemaRow.version).where(SchemaRow.id == 1)).scalar_one_or_none()
            if found is None:
                conn.execute(insert(SchemaRow).values(id=1, version=SCHEMA_VERSION))
            elif found != SCHEMA_VERSION:
                raise RegistryError(
                    f"The registry index {self.url} has schema version {found}; "
                    f"this modelshield reads {SCHEMA_VERSION}.",
                    remedy="Use the modelshield release that created this registry.",
                )

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            cause = exc.orig if isinstance(exc, DBAPIError) else exc
            raise RegistryError(
                f"Could not {doing} in the registry index {self.url}: {type(cause).__name__}: {cause}.",
                remedy="Check --db-url (and that the database server is up), then try again.",
            ) from exc

    # -- transactions -----------------------------------------------------------------------------------------------

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Session]:
        """A read-only session (one snapshot on SQLite in WAL mode; with ``snapshot``, on PostgreSQL too)."""
        engine = self._snapshot if snapshot else self._engine
        with self._errors("read"), Session(engine, expire_on_commit=False) as session, session.begin():
            yield session

    def write(self, model: str, work: Callable[[Session, ModelRow], _T], *, create: bool = False) -> _T:
        """Run ``work(session, model_row)`` in one transaction holding ``model``'s lock; commit; retry when busy.

        With ``create``, the model's row is made if it does not exist; else an unknown model is a RegistryError.
        """
        for attempt in range(_RETRIES):
            try:
                with Session(self._writer, expire_on_commit=False) as session, session.begin():
                    row = self._lock(session, model, create=create)
                    return work(session, row)
            except SQLAlchemyError as exc:
                if not _retryable(exc) or attempt == _RETRIES - 1:
                    with self._errors(f"update model {model!r}"):
                        raise
                delay = min(2.0, 0.02 * 2**attempt) * (0.5 + random.random())  # noqa: S311 - jitter, not secrets
                logger.debug("registry index busy (%s); retry %d in %.3f s", exc.__class__.__name__, attempt + 1, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _lock(self, session: Session, model: str, *, create: bool) -> ModelRow:
        if create:
            upsert: Any
            if self.dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as upsert
            else:
                from sqlalchemy.dialects.sqlite import insert as upsert
            values = {"name": model, "created_at": _now(), "head_seq": 0, "head_hash": GENESIS_HASH}
            session.execute(upsert(ModelRow).values(**values).on_conflict_do_nothing(index_elements=["name"]))
        row = session.execute(select(ModelRow).where(ModelRow.name == model).with_for_update()).scalar_one_or_none()
        if row is None:
            raise RegistryError(f"No model named {model!r} in the registry.", remedy=_LIST_REMEDY)
        return row

    @staticmethod
    def append_history(
        session: Session,
        model: ModelRow,
        *,
        action: str,
        version: int | None,
        actor: str,
        detail: Mapping[str, JSONValue],
    ) -> HistoryEntry:
        """Chain a new entry onto ``model``'s history (call inside :meth:`write`, which holds the lock)."""
        draft = HistoryEntry(
            model=model.name,
            seq=model.head_seq + 1,
            version=version,
            action=action,
            actor=actor,
            timestamp=_now().isoformat(timespec="microseconds"),
            detail=detail,
            prev_hash=model.head_hash,
            hash="",
        )
        digest = draft.computed_hash()
        session.add(
            HistoryRow(
                model=draft.model,
                seq=draft.seq,
                version=draft.version,
                action=draft.action,
                actor=draft.actor,
                timestamp=draft.timestamp,
                detail=dict(draft.detail),
                prev_hash=draft.prev_hash,
                hash=digest,
            )
        )
        model.head_seq, model.head_hash = draft.seq, digest
        session.flush()
        return HistoryEntry(**{**draft.__dict__, "hash": digest})

    # -- queries ----------------------------------------------------------------------------------------------------

    @staticmethod
    def aliases_of(session: Session, model: str) -> dict[int, tuple[str, ...]]:
        found: dict[int, list[str]] = {}
        for alias in session.scalars(select(AliasRow).where(AliasRow.model == model).order_by(AliasRow.alias)):
            found.setdefault(alias.version, []).append(alias.alias)
        return {v: tuple(a) for v, a in found.items()}

    def models(self) -> tuple[ModelSummary, ...]:
        """Every model, by name."""
        with self.read() as session:
            counts = session.execute(
                select(VersionRow.model, func.count(), func.max(VersionRow.version)).group_by(VersionRow.model)
            ).all()
            production = dict(
                session.execute(select(AliasRow.model, AliasRow.version).where(AliasRow.alias == "production")).all()
            )
        return tuple(
            ModelSummary(name, int(n), int(latest), production.get(name)) for name, n, latest in sorted(counts)
        )

    def versions(self, model: str) -> tuple[ModelVersion, ...]:
        """Every version of ``model``, oldest first; RegistryError for an unknown model."""
        with self.read() as session:
            rows = session.scalars(select(VersionRow).where(VersionRow.model == model).order_by(VersionRow.version))
            aliases = self.aliases_of(session, model)
            found = tuple(ModelVersion._from_row(r, aliases.get(r.version, ())) for r in rows)
        if not found:
            raise RegistryError(f"No model named {model!r} in the registry.", remedy=_LIST_REMEDY)
        return found

    def history(self, model: str | None = None) -> tuple[HistoryEntry, ...]:
        """The history of ``model`` (of every model when None), in order."""
        query = select(HistoryRow).order_by(HistoryRow.model, HistoryRow.seq)
        if model is not None:
            query = query.where(HistoryRow.model == model)
        with self.read() as session:
            return tuple(HistoryEntry._from_row(r) for r in session.scalars(query))

    def verify_history(self, model: str | None = None) -> VerifiedHistory:
        """Recompute every hash and link of the history (of ``model``, or of every model).

        Fails closed: returns a :class:`VerifiedHistory` only when every entry's hash matches its contents, each
        links to the one before, each chain ends at its model's head, each version's digests are those its ``add``
        entry recorded, and every version was added by an entry. Otherwise raises :class:`VerificationError`
        naming the model (``subject``) and the entry of the first broken link. An unknown ``model`` is a
        :class:`RegistryError`.
        """
        with self.read(snapshot=True) as session:
            models = session.scalars(
                select(ModelRow).where(ModelRow.name == model) if model else select(ModelRow).order_by(ModelRow.name)
            ).all()
            heads = {m.name: (m.head_seq, m.head_hash) for m in models}
            query = select(HistoryRow).order_by(HistoryRow.model, HistoryRow.seq)
            rows = session.scalars(query.where(HistoryRow.model == model) if model else query).all()
            entries = [HistoryEntry._from_row(r) for r in rows]
            query_versions = select(VersionRow).where(VersionRow.model == model) if model else select(VersionRow)
            versions = {(v.model, v.version): v for v in session.scalars(query_versions)}
        if model is not None and not heads and not entries and not versions:
            raise RegistryError(f"No model named {model!r} in the registry.", remedy=_LIST_REMEDY)
        last: dict[str, HistoryEntry] = {}
        added: set[tuple[str, int | None]] = set()
        for entry in entries:
            before = last.get(entry.model)
            expected_seq = before.seq + 1 if before else 1
            expected_prev = before.hash if before else GENESIS_HASH
            problem = None
            if entry.model not in heads:
                problem = "the model it belongs to is missing from the index"
            elif entry.seq != expected_seq:
                problem = f"expected entry #{expected_seq} here: an entry was removed or inserted"
            elif entry.prev_hash != expected_prev:
                problem = "its prev_hash is not the previous entry's hash: an entry before it was changed or removed"
            elif entry.computed_hash() != entry.hash:
                problem = "its hash does not match its contents: the entry was changed"
            elif entry.action == "add":
                problem = _check_version(entry, versions.get((entry.model, entry.version or 0)))
                added.add((entry.model, entry.version))
            if problem:
                raise _broken(entry.model, entry.seq, problem)
            last[entry.model] = entry
        for name, (head_seq, head_hash) in heads.items():
            end = last.get(name)
            if (end.seq if end else 0, end.hash if end else GENESIS_HASH) != (head_seq, head_hash):
                raise _broken(name, head_seq, "the chain does not end at the model's head: entries are missing")
        orphans = sorted(set(versions) - added)
        if orphans:
            name, version = orphans[0]
            problem = (
                f"version {version} is in the index but no entry added it: it was inserted behind the registry's back"
            )
            raise _broken(name, heads.get(name, (0, ""))[0], problem)
        return VerifiedHistory(len(entries), {name: head_hash for name, (_, head_hash) in heads.items()})


_ADD_FIELDS = ("artifact_digest", "signature_digest", "scan_digest", "audit_digest", "data_manifest_digest")


def _check_version(entry: HistoryEntry, row: VersionRow | None) -> str | None:
    if row is None:
        return f"version {entry.version} that it added is missing from the index"
    for name in _ADD_FIELDS:
        if entry.detail.get(name) != getattr(row, name):
            return f"version {entry.version}'s {name} differs from the one recorded when it was added"
    return None


_URL_REMEDY = "Use sqlite:///PATH/index.db or postgresql+psycopg://USER@HOST:PORT/DATABASE."
_LIST_REMEDY = "Check the name with `modelshield registry list`."


def _wal(cursor: Any) -> None:
    """Switch to WAL. Switching takes an exclusive lock and SQLite does not always wait on the busy handler for it:
    processes opening a new index at once (a busy machine) get "database is locked" at once, so retry with jitter
    for as long as the busy timeout."""
    import sqlite3

    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.02, 0.2))  # noqa: S311 - jitter, not a secret


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, and transactions that we begin ourselves (IMMEDIATE for writers)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own: the "begin" hook does
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        _wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("modelshield_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
