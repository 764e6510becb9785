"""One way to open the SQL stores that the gateway and the monitors share (SQLite or PostgreSQL through SQLAlchemy).

    >>> from modelshield._internal.sql import open_store
    >>> store = open_store("sqlite:///:memory:", name="alerts")  # doctest: +SKIP
    >>> store.dialect  # doctest: +SKIP
    'sqlite'

Bounded waits on both: a locked table or a stalled server raises in seconds, never hangs a request. SQLite gets a
busy timeout (writers in several processes wait for each other) and WAL (readers do not block the writer).
PostgreSQL gets connect, statement and lock timeouts. ``create`` makes the tables if missing; two processes starting
at once on PostgreSQL serialize on an advisory lock (``CREATE ... IF NOT EXISTS`` alone still races there).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from modelshield.errors import InvalidParameterError

__all__ = ["URL_REMEDY", "SqlStore", "open_store"]

URL_REMEDY = "Use sqlite:///PATH/gateway.db or postgresql+psycopg://USER@HOST:PORT/DATABASE."


@dataclass(frozen=True)
class SqlStore:
    """An engine with its dialect (``sqlite`` or ``postgresql``) and its URL with any password hidden."""

    engine: Any  # sqlalchemy.Engine
    dialect: str
    url: str

    def create(self, metadata: Any) -> None:
        """Create ``metadata``'s tables and indexes where missing."""
        from sqlalchemy import text
        from sqlalchemy.schema import CreateIndex, CreateTable

        lock = zlib.crc32(",".join(sorted(metadata.tables)).encode())
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text(f"SELECT pg_advisory_xact_lock({lock})"))
            for table in metadata.sorted_tables:
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))

    @contextmanager
    def begin(self) -> Iterator[Any]:
        """A transaction (committed on success, rolled back on error)."""
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, name: str, statement_timeout_ms: int = 2000) -> SqlStore:
    """An engine for ``url``; :class:`InvalidParameterError` for a URL that is not SQLite or PostgreSQL."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise InvalidParameterError(f"{url!r} is not a database URL.", remedy=URL_REMEDY) from exc
    shown = parsed.render_as_string(hide_password=True)
    dialect = parsed.get_backend_name()
    if dialect == "postgresql":
        try:
            import psycopg  # noqa: F401 - SQLAlchemy's PostgreSQL driver; its absence gets a clear remedy here
        except ImportError:
            raise InvalidParameterError(
                f"A PostgreSQL {name} store needs the psycopg driver.", remedy="pip install 'modelshield[serve]'"
            ) from None
        engine = create_engine(
            parsed,
            hide_parameters=True,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": 3,
                "options": f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={statement_timeout_ms}",
                "application_name": f"modelshield-{name}",
            },
        )
    elif dialect == "sqlite":
        engine = create_engine(parsed, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(statement_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.close()
    else:
        raise InvalidParameterError(f"Unsupported database {shown!r} for the {name} store.", remedy=URL_REMEDY)
    return SqlStore(engine=engine, dialect=dialect, url=shown)
