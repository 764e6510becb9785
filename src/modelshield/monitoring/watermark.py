"""A keyed output watermark on a small fraction of answers, and the ownership test that finds it in a stolen copy.

    >>> import numpy as np
    >>> from modelshield.monitoring.watermark import OutputWatermark, WatermarkKey
    >>> wm = OutputWatermark(WatermarkKey(bytes(32)), rate=0.2).fit(n_classes=3)  # a real key: WatermarkKey.load
    >>> x = np.arange(60, dtype=np.float32).reshape(20, 3)
    >>> p = np.tile(np.float32([0.7, 0.2, 0.1]), (20, 1))
    >>> answer = wm.apply(x, p)
    >>> answer.n_marked, answer.probabilities[answer.marked][0].tolist()  # a wrong label, the same values swapped
    (5, [0.10000000149011612, 0.20000000298023224, 0.699999988079071])
    >>> bool(np.array_equal(wm.apply(x, p).probabilities, answer.probabilities))  # the same input, the same answer
    True

**The watermark** (after DAWN, Szyller et al. 2021). For every answered row, HMAC-SHA256 under a secret 32-byte
:class:`WatermarkKey` of the row's canonical bytes (float32, little-endian, ``-0.0`` as ``0.0``, with its shape) gives
three independent keyed numbers: ``u`` in [0, 1), a shift ``s`` in ``1..k-1`` and a rank. A row with ``u < rate`` is
*marked*: the gateway answers the label ``(original + s) mod k`` (a wrong one) and releases the probabilities with the
top class's and that label's values swapped, so the answer looks like any other. The selection depends on the input
alone (not on the client): the same input always gets the same answer, so repeating a query, or asking it from a
second account, reveals nothing; without the key nobody can tell which answers are wrong. Rows with
``rate <= u < rate + control_rate`` are *controls*: answered truthfully, recorded for the test.

**The rate.** An honest client gets a wrong label on about ``rate`` of its queries, so the accuracy cost is ``rate``
(2.5 % by default; the tests measure 2.1 % on digits and 3.2 % on breast cancer, samples of 1,797 and 569 rows).
A thief who trains a copy on N answers learns about ``rate * N`` wrong labels: 2,000 queries give ~50 marked rows.
That is enough: the tests' copies stolen with 2,000 queries reproduce only 1-6 of them outright, but lean towards them
so clearly that p is at the floor of the default permutation test (1e-4), and copies trained to fit their data
reproduce most of them. 1 % would leave ~20 rows and a proof that depends on how well the copy was trained; higher
rates cost honest clients more without being needed.

**The ledger** (:class:`WatermarkLedger`, SQLite or PostgreSQL through SQLAlchemy Core) keeps marked and control rows
per client: the input, the original label and the watermark label (for a control row, the label it would have had).
Each kind keeps at most ``max_rows_per_client`` rows per client and ``max_rows`` in all; beyond that the rows with
the smallest keyed rank stay (bottom-k sampling), so what is kept is a uniform sample of the distinct rows, whatever
their order or how often each was asked. A request with no selected row does not touch the database.

**The ownership test** (:func:`ownership_test`). Ask the suspect about the recorded marked and control rows and count
how often it answers the watermark label. If the suspect was not trained on our answers, the key is independent of
it, so which of the recorded rows were marked is a random split of them: its agreement with the watermark label
cannot be higher on marked rows than on control rows, beyond chance. The control rows measure how often the suspect
gives that label anyway, which matters most for binary models, where the wrong label is simply the other class and a
suspect that disagrees with us often would match it often. Fisher's exact test on the 2x2 table (marked / control by
match / no match), one-sided, gives the p-value: exact for any suspect, binary or not, with no rate to estimate.
A suspect that releases probabilities is also asked how close the watermark label comes to its top class: copies
trained briefly rarely answer the wrong label outright but lean towards it (the tests' stolen copies answer it on 1-6
of 42-56 marked rows, yet rank it higher on marked than on control rows with probability ~0.94). A permutation test
of the rank sum (valid for any number of permutations: ``(1 + as extreme) / (1 + permutations)``) measures that; the
reported p-value is twice the smaller of the two p-values (Bonferroni), so it stays valid while both kinds of copy
are found.

Limits: a thief who asks many slightly perturbed copies of each input and votes undoes the watermark for those
inputs (each copy is a new input, marked independently). The watermark must be the last step that chooses the label:
output defenses that change labels run before :meth:`OutputWatermark.apply`, those that only coarsen probabilities
(rounding, top-k) may run after it. The test proves that the suspect was trained on answers from this gateway; the
ledger's clients say who asked. The ledger holds real inputs: protect its database like the audit log.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import stat
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield._extras import require
from modelshield.errors import InvalidInputError, InvalidParameterError, ModelShieldError, NotFittedError
from modelshield.findings import JSONValue
from modelshield.models.interface import Classifier

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table

__all__ = [
    "DEFAULT_RATE",
    "LedgerError",
    "LedgerRows",
    "OutputWatermark",
    "OwnershipMethod",
    "OwnershipResult",
    "OwnershipVerdict",
    "WatermarkAnswer",
    "WatermarkKey",
    "WatermarkLedger",
    "ownership_test",
    "prove_ownership",
]

logger = logging.getLogger(__name__)

DEFAULT_RATE = 0.025
"""The default fraction of answers that carry the watermark (and the accuracy cost to honest clients)."""

_KEY_BYTES = 32
_DOMAIN = b"modelshield-watermark-v1\x00"
_TWO64 = float(2**64)
_KEY_REMEDY = "Generate a key with WatermarkKey.generate(path) and keep the file secret (mode 0600)."
_URL_REMEDY = "Use sqlite:///PATH/watermark.db or postgresql+psycopg://USER@HOST:PORT/DATABASE."
_PG_LOCK_ID = 7163534922  # serialises table creation and writers on PostgreSQL
_MARKED = "marked"
_CONTROL = "control"


class LedgerError(ModelShieldError):
    """The watermark ledger's database cannot be read or written."""

    default_remedy = "Check the ledger's database URL and that the database server is up, then try again."


# -- the key --------------------------------------------------------------------------------------------------------


class WatermarkKey:
    """The secret of the watermark: 32 random bytes. Its repr and str never show it.

    Whoever holds the key can tell marked answers from true ones, so it lives in a file of mode 0600, written once by
    :meth:`generate` and read by :meth:`load`; the file holds the 32 bytes as 64 hex characters.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != _KEY_BYTES:
            raise InvalidParameterError(
                f"A watermark key is exactly {_KEY_BYTES} bytes.", remedy="Use WatermarkKey.random() or .load(path)."
            )
        self._secret = secret

    @classmethod
    def random(cls) -> WatermarkKey:
        """A fresh key from :func:`secrets.token_bytes`."""
        return cls(secrets.token_bytes(_KEY_BYTES))

    @classmethod
    def generate(cls, path: str | Path, *, overwrite: bool = False) -> WatermarkKey:
        """Make a fresh key and write it to ``path`` (mode 0600, atomically: a crash leaves no partial file).

        An existing file is kept and refused unless ``overwrite``: a new key cannot prove ownership of copies
        stolen under the old one (keep the old key as long as its ledger rows matter).
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise InvalidParameterError(
                f"The watermark key file {target} exists already.",
                remedy="Load it with WatermarkKey.load(path), or pass overwrite=True (the old key is then lost).",
            )
        key = cls.random()
        fd, tmp = tempfile.mkstemp(prefix=".wmkey-", dir=target.parent)  # mkstemp creates the file with mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(key._secret.hex() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    @classmethod
    def load(cls, path: str | Path) -> WatermarkKey:
        """Read a key written by :meth:`generate` (64 hex characters; a trailing newline is fine)."""
        source = Path(path)
        try:
            mode = source.stat().st_mode
            text = source.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"Cannot read the watermark key file {source}.", remedy=_KEY_REMEDY) from exc
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning("The watermark key file %s can be read by other users; chmod 600 it.", source)
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) != _KEY_BYTES:
            raise InvalidInputError(
                f"The watermark key file {source} does not hold {_KEY_BYTES} bytes as hex.", remedy=_KEY_REMEDY
            )
        return cls(secret)

    @property
    def fingerprint(self) -> str:
        """16 hex characters that name the key (safe to log and to store): a keyed digest, not the key."""
        return hmac.new(self._secret, b"modelshield-watermark-fingerprint", hashlib.sha256).hexdigest()[:16]

    def digests(self, x: NDArray[np.float32]) -> list[bytes]:
        """HMAC-SHA256 of each row's canonical bytes (float32 little-endian, ``-0.0`` as ``0.0``, with the shape)."""
        rows = _canonical(x)
        header = _DOMAIN + struct.pack("<I", rows.ndim - 1) + struct.pack(f"<{rows.ndim - 1}q", *rows.shape[1:])
        flat = rows.reshape(len(rows), int(np.prod(rows.shape[1:])))
        return [hmac.digest(self._secret, header + flat[i].tobytes(), "sha256") for i in range(len(flat))]

    def __repr__(self) -> str:
        return f"WatermarkKey(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WatermarkKey) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.fingerprint)


def _canonical(x: NDArray[np.floating]) -> NDArray[np.float32]:
    """``x`` as C-contiguous little-endian float32 with negative zeros made positive (the same value, one encoding)."""
    rows = np.ascontiguousarray(x, dtype="<f4")
    return np.ascontiguousarray(rows + np.float32(0.0), dtype="<f4")


# -- the watermark --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WatermarkAnswer:
    """What :meth:`OutputWatermark.apply` releases for one batch, and what the ledger needs to record it.

    ``probabilities`` are the rows to release; ``marked`` says which rows carry the watermark and ``control`` which
    are recorded as controls (answered truthfully). ``original`` is the model's own label of every row and
    ``watermark`` the label a marked row gets (for the other rows, the label they would have got); ``rank`` is each
    row's keyed sampling rank for the ledger. ``key_fingerprint`` names the key.
    """

    probabilities: NDArray[np.float32]
    marked: NDArray[np.bool_]
    control: NDArray[np.bool_]
    original: NDArray[np.int64]
    watermark: NDArray[np.int64]
    rank: NDArray[np.int64]
    key_fingerprint: str

    @property
    def n_marked(self) -> int:
        return int(self.marked.sum())


class OutputWatermark:
    """Marks a keyed fraction ``rate`` of answers with a wrong label (see the module docstring).

    ``control_rate`` is the fraction recorded as controls (default: ``rate``). Stateless apart from the key, so one
    instance serves any number of threads. ``fit(classifier)`` (or ``fit(n_classes=k)``) learns the class count.
    """

    def __init__(self, key: WatermarkKey, *, rate: float = DEFAULT_RATE, control_rate: float | None = None) -> None:
        if not isinstance(key, WatermarkKey):
            raise InvalidParameterError("key must be a WatermarkKey.", remedy=_KEY_REMEDY)
        control = rate if control_rate is None else control_rate
        if not (0.0 < rate <= 0.2 and math.isfinite(rate)):
            raise InvalidParameterError(
                f"rate must lie in (0, 0.2], got {rate}.", remedy="Use a small fraction such as 0.025 (2.5 %)."
            )
        if not (control > 0.0 and rate + control <= 1.0 and math.isfinite(control)):
            raise InvalidParameterError(
                f"control_rate must be positive with rate + control_rate <= 1, got {control}.",
                remedy="Leave control_rate unset (it then equals rate).",
            )
        self.key = key
        self.rate = float(rate)
        self.control_rate = float(control)
        self._marked_below = int(self.rate * _TWO64)
        self._control_below = min(int((self.rate + self.control_rate) * _TWO64), 2**64)

    def __repr__(self) -> str:
        return f"OutputWatermark(key={self.key!r}, rate={self.rate}, control_rate={self.control_rate})"

    def fit(self, classifier: Classifier | None = None, *, n_classes: int | None = None) -> Self:
        """Learn the number of classes from ``classifier`` (or take ``n_classes``); returns ``self``."""
        k = classifier.n_classes if classifier is not None else n_classes
        if k is None or int(k) < 2:
            raise InvalidParameterError(
                f"The watermark needs a model with at least two classes, got {k}.",
                remedy="Pass the served classifier, or n_classes >= 2.",
            )
        self.n_classes_ = int(k)
        return self

    def apply(self, x: ArrayLike, probabilities: ArrayLike) -> WatermarkAnswer:
        """The answer to release for inputs ``x`` (shape ``(n, ...)``) and the model's ``probabilities`` ``(n, k)``.

        Deterministic: the same rows and probabilities always give the same answer.
        """
        k = getattr(self, "n_classes_", None)
        if k is None:
            raise NotFittedError("The OutputWatermark is not fitted.", remedy="Call fit(classifier) first.")
        rows = np.asarray(x)
        proba = np.array(probabilities, dtype=np.float32, copy=True)
        if rows.ndim < 2 or proba.ndim != 2 or proba.shape != (len(rows), k):
            raise InvalidInputError(
                f"Expected inputs (n, ...) and probabilities (n, {k}); got {rows.shape} and {proba.shape}.",
                remedy="Pass the batch as the model saw it and the model's probabilities for it.",
            )
        if not (np.issubdtype(rows.dtype, np.number) and np.all(np.isfinite(rows))):
            raise InvalidInputError("Watermarked inputs must be finite numbers.", remedy="Validate the input first.")
        n = len(rows)
        digests = self.key.digests(rows.astype(np.float32, copy=False))
        words = np.frombuffer(b"".join(d[:24] for d in digests), dtype="<u8").reshape(n, 3) if n else None
        if words is None:
            empty = np.zeros(0, dtype=bool)
            none = np.zeros(0, dtype=np.int64)
            return WatermarkAnswer(proba, empty, empty.copy(), none, none.copy(), none.copy(), self.key.fingerprint)
        u, s, r = words[:, 0], words[:, 1], words[:, 2]
        original = np.asarray(proba.argmax(axis=1), dtype=np.int64)
        shift = (s % np.uint64(k - 1)).astype(np.int64) + 1
        watermark = (original + shift) % k
        marked = u < np.uint64(self._marked_below)
        control = ~marked & (u < np.uint64(self._control_below)) if self._control_below < 2**64 else ~marked
        idx = np.flatnonzero(marked)
        top = proba[idx, original[idx]].copy()
        proba[idx, original[idx]] = proba[idx, watermark[idx]]
        proba[idx, watermark[idx]] = top
        # A tie between the two swapped values leaves the label unchanged: such a row is answered truthfully.
        marked[idx] = proba[idx].argmax(axis=1) == watermark[idx]
        return WatermarkAnswer(
            probabilities=proba,
            marked=marked,
            control=control,
            original=original,
            watermark=watermark,
            rank=(r >> np.uint64(1)).astype(np.int64),
            key_fingerprint=self.key.fingerprint,
        )


# -- the ledger -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LedgerRows:
    """Recorded rows for the ownership test: inputs ``x`` ``(n, ...)``, the model's ``original`` labels, the
    ``watermark`` labels, which rows were ``marked`` (the rest are controls), and who asked when."""

    x: NDArray[np.float32]
    original: NDArray[np.int64]
    watermark: NDArray[np.int64]
    marked: NDArray[np.bool_]
    clients: tuple[str, ...] = ()
    times: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float32)
        n = len(x)
        arrays = {"original": self.original, "watermark": self.watermark, "marked": self.marked}
        for name, value in arrays.items():
            if np.shape(value) != (n,):
                raise InvalidInputError(f"LedgerRows: {n} inputs but {name} of shape {np.shape(value)}.")
        clients = tuple(self.clients) or ("",) * n
        times = np.asarray(self.times, dtype=np.float64)
        if len(clients) != n or (times.size and times.shape != (n,)):
            raise InvalidInputError(f"LedgerRows: {n} inputs but {len(clients)} clients and {times.size} times.")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "original", np.asarray(self.original, dtype=np.int64))
        object.__setattr__(self, "watermark", np.asarray(self.watermark, dtype=np.int64))
        object.__setattr__(self, "marked", np.asarray(self.marked, dtype=bool))
        object.__setattr__(self, "clients", clients)
        object.__setattr__(self, "times", times if times.size else np.zeros(n))

    def __len__(self) -> int:
        return len(self.x)


@functools.cache
def _table() -> Table:
    """The ledger's table (built on first use: SQLAlchemy is imported only by those who keep a ledger)."""
    require("sqlalchemy", extra="serve", feature="The watermark ledger")
    import sqlalchemy as sa

    metadata = sa.MetaData()
    rows = sa.Table(
        "ms_watermark_rows",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("client", sa.Text, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("time", sa.Double, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("rank", sa.BigInteger, nullable=False),
        sa.Column("key_fingerprint", sa.String(16), nullable=False),
        sa.Column("shape", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("original", sa.Integer, nullable=False),
        sa.Column("watermark", sa.Integer, nullable=False),
        sa.Index("ux_ms_watermark_rows_client", "client", "kind", "digest", unique=True),
        sa.Index("ix_ms_watermark_rows_rank", "kind", "rank"),
        sa.Index("ix_ms_watermark_rows_client_rank", "client", "kind", "rank"),
    )
    return rows


class WatermarkLedger:
    """The marked and control rows the gateway answered, in the table ``ms_watermark_rows`` of a SQL database.

    ``url`` is ``sqlite:///PATH`` or ``postgresql+psycopg://...``; the table is created if missing. Each kind
    (marked, control) keeps at most ``max_rows_per_client`` distinct rows per client and ``max_rows`` in all, the
    rows of smallest keyed rank when there are more (a uniform sample). Thread-safe; several processes may share a
    database (writers serialise on a lock of the database).
    """

    def __init__(self, url: str, *, max_rows_per_client: int = 5_000, max_rows: int = 200_000) -> None:
        if max_rows_per_client < 1 or max_rows < max_rows_per_client:
            raise InvalidParameterError(
                f"Need 1 <= max_rows_per_client <= max_rows, got {max_rows_per_client} and {max_rows}."
            )
        self.max_rows_per_client = int(max_rows_per_client)
        self.max_rows = int(max_rows)
        self._engine = _make_engine(url)
        self.url: str = self._engine.url.render_as_string(hide_password=True)
        self.dialect: str = self._engine.dialect.name
        self._lock = threading.Lock()
        self._create()

    def __repr__(self) -> str:
        return f"WatermarkLedger({self.url!r})"

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        try:
            yield
        except SQLAlchemyError as exc:
            cause = exc.orig if isinstance(exc, DBAPIError) else exc
            raise LedgerError(f"Could not {doing} in the watermark ledger {self.url}: {type(cause).__name__}.") from exc

    @contextmanager
    def _write(self, doing: str) -> Iterator[Any]:
        from sqlalchemy import text

        with self._lock, self._errors(doing), self._engine.connect() as plain:
            conn = plain.execution_options(modelshield_immediate=True)  # SQLite: BEGIN IMMEDIATE, the write lock
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})"))
                yield conn

    def _create(self) -> None:
        from sqlalchemy.schema import CreateIndex, CreateTable

        table = _table()
        with self._write("create the table ms_watermark_rows") as conn:
            conn.execute(CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))

    def record(self, client: str, time: float, x: ArrayLike, answer: WatermarkAnswer) -> int:
        """Record the marked and control rows of one answered batch ``x``; return how many rows were stored.

        A batch with no marked or control row returns 0 at once, without touching the database. A row already
        recorded for this client is not recorded twice.
        """
        keep = np.flatnonzero(answer.marked | answer.control)
        if len(keep) == 0:
            return 0
        if np.shape(x)[0] != len(answer.marked):
            raise InvalidInputError(
                f"record got {np.shape(x)[0]} inputs for an answer of {len(answer.marked)} rows.",
                remedy="Record each batch with the answer that OutputWatermark.apply gave for it.",
            )
        rows = _canonical(np.asarray(x)[keep])
        if not isinstance(client, str) or not client:
            raise InvalidInputError("The client must be a non-empty name.")
        shape = json.dumps(list(rows.shape[1:]))
        stored = 0
        from sqlalchemy import insert, select

        table = _table()
        with self._write("record watermarked rows") as conn:
            for j, i in enumerate(keep):
                kind = _MARKED if answer.marked[i] else _CONTROL
                data = rows[j].tobytes()
                digest = hashlib.sha256(shape.encode() + data).hexdigest()
                rank = int(answer.rank[i])
                same = (table.c.client == client) & (table.c.kind == kind)
                if conn.execute(select(table.c.id).where(same & (table.c.digest == digest))).first() is not None:
                    continue
                if not self._make_room(conn, same, table.c.kind == kind, rank):
                    continue
                conn.execute(
                    insert(table).values(
                        client=client,
                        kind=kind,
                        time=float(time),
                        digest=digest,
                        rank=rank,
                        key_fingerprint=answer.key_fingerprint,
                        shape=shape,
                        data=data,
                        original=int(answer.original[i]),
                        watermark=int(answer.watermark[i]),
                    )
                )
                stored += 1
        return stored

    def _make_room(self, conn: Any, client_rows: Any, kind_rows: Any, rank: int) -> bool:
        """Whether a row of ``rank`` may join its client's rows of its kind (at most ``max_rows_per_client``) and all
        rows of its kind (at most ``max_rows``). Where a cap is reached, the row must have a smaller rank than the
        largest there, which it then replaces; nothing is deleted unless the row is admitted."""
        from sqlalchemy import delete, func, select

        table = _table()

        def count(where: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())

        def worst(where: Any) -> Any:
            return conn.execute(
                select(table.c.id, table.c.rank).where(where).order_by(table.c.rank.desc()).limit(1)
            ).one()

        evict: list[int] = []
        if count(client_rows) >= self.max_rows_per_client:
            mine = worst(client_rows)
            if rank >= mine.rank:
                return False
            evict.append(int(mine.id))
        if count(kind_rows) - len(evict) >= self.max_rows:
            others = worst(kind_rows & table.c.id.not_in(evict)) if evict else worst(kind_rows)
            if rank >= others.rank:
                return False
            evict.append(int(others.id))
        if evict:
            conn.execute(delete(table).where(table.c.id.in_(evict)))
        return True

    def counts(self) -> dict[str, int]:
        """How many rows each kind holds: ``{"marked": ..., "control": ...}``."""
        from sqlalchemy import func, select

        table = _table()
        with self._errors("count rows"), self._engine.connect() as conn:
            query = select(table.c.kind, func.count()).group_by(table.c.kind)
            found = {str(kind): int(n) for kind, n in conn.execute(query)}
        return {_MARKED: int(found.get(_MARKED, 0)), _CONTROL: int(found.get(_CONTROL, 0))}

    def rows(self, client: str | Sequence[str] | None = None) -> LedgerRows:
        """The recorded rows (of ``client`` or of the clients named, else of all), marked and control, by id.

        A row asked by several clients is returned once. All rows must have one input shape (one model's inputs).
        """
        from sqlalchemy import select

        table = _table()
        query = select(table).order_by(table.c.id)
        if client is not None:
            names = [client] if isinstance(client, str) else list(client)
            query = query.where(table.c.client.in_(names))
        with self._errors("read rows"), self._engine.connect() as conn:
            found = conn.execute(query).all()
        seen: set[tuple[str, str]] = set()
        kept = []
        for row in found:
            if (row.kind, row.digest) not in seen:
                seen.add((row.kind, row.digest))
                kept.append(row)
        both = {d for k, d in seen if k == _MARKED} & {d for k, d in seen if k == _CONTROL}
        kept = [row for row in kept if row.digest not in both]  # marked under one key and control under another
        shapes = {row.shape for row in kept}
        if len(shapes) > 1:
            raise InvalidInputError(
                f"The ledger holds inputs of several shapes ({', '.join(sorted(shapes))}).",
                remedy="Keep one ledger per served model, or select the clients of one model.",
            )
        dims = tuple(json.loads(shapes.pop())) if shapes else (0,)
        x = np.frombuffer(b"".join(row.data for row in kept), dtype="<f4").reshape(len(kept), *dims)
        return LedgerRows(
            x=x.astype(np.float32),
            original=np.array([row.original for row in kept], dtype=np.int64),
            watermark=np.array([row.watermark for row in kept], dtype=np.int64),
            marked=np.array([row.kind == _MARKED for row in kept], dtype=bool),
            clients=tuple(row.client for row in kept),
            times=np.array([row.time for row in kept], dtype=np.float64),
        )


def _make_engine(url: str) -> Engine:
    require("sqlalchemy", extra="serve", feature="The watermark ledger")
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        parsed = make_url(url)
    except SQLAlchemyError as exc:
        raise InvalidParameterError(f"{url!r} is not a database URL.", remedy=_URL_REMEDY) from exc
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "postgresql":
        require("psycopg", extra="serve", feature="A PostgreSQL watermark ledger")
        return sa.create_engine(
            parsed,
            hide_parameters=True,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": 3,
                "options": "-c statement_timeout=10000 -c lock_timeout=5000",
                "application_name": "modelshield-watermark",
            },
        )
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        raise InvalidParameterError(
            f"Unsupported watermark ledger database {parsed.render_as_string(hide_password=True)!r}.",
            remedy=_URL_REMEDY,
        )
    engine = sa.create_engine(parsed, hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own: the "begin" hook does
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("modelshield_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")  # writers lock at once: no upgrade deadlock

    return engine


# -- the ownership test ---------------------------------------------------------------------------------------------


class OwnershipVerdict(StrEnum):
    """``proved``: the suspect was trained on our answers (p < alpha); ``not-proved``: the test could not say so."""

    PROVED = "proved"
    NOT_PROVED = "not-proved"


class OwnershipMethod(StrEnum):
    """How the ownership test compared marked and control rows (chosen from the suspect alone, before any data).

    ``labels`` (a label-only suspect): Fisher's exact test on how often the suspect answers the watermark label on
    marked and on control rows. ``scores-and-labels`` (a suspect that releases probabilities): that test, and a
    permutation test of whether marked rows rank higher than control rows by a score, how close the watermark label
    comes to the suspect's top class (``log p(watermark) - max log p``, 0 when it is the top class); the p-value is
    twice the smaller of the two (Bonferroni), so a copy that learned some watermark labels outright and one that only
    leans towards them are both found.
    """

    LABELS = "labels"
    SCORES_AND_LABELS = "scores-and-labels"


@dataclass(frozen=True)
class OwnershipResult:
    """The ownership test's outcome.

    The suspect answered the watermark label on ``matches`` of ``n_marked`` marked rows and on ``control_matches`` of
    ``n_control`` control rows. ``p_value`` is the one-sided p-value of the ``method`` used: ``p_labels`` from the
    label test, and for suspects that release probabilities ``p_scores`` from the score test, with ``auc`` the
    chance that a marked row scores above a control row (0.5 for a model independent of our answers).
    ``verdict`` is ``proved`` when ``p_value < alpha``. ``clients`` are the clients whose rows were used;
    ``summary`` says it all in plain words.
    """

    p_value: float
    alpha: float
    verdict: OwnershipVerdict
    method: OwnershipMethod
    p_labels: float
    p_scores: float | None
    n_marked: int
    matches: int
    n_control: int
    control_matches: int
    auc: float | None
    clients: tuple[str, ...]
    summary: str

    @property
    def match_rate(self) -> float:
        """The suspect's agreement with the watermark label on marked rows."""
        return self.matches / self.n_marked if self.n_marked else float("nan")

    @property
    def control_rate(self) -> float:
        """How often the suspect gives the would-be watermark label on control rows (its rate by chance)."""
        return self.control_matches / self.n_control if self.n_control else float("nan")

    @property
    def proved(self) -> bool:
        """Whether the verdict is ``proved``."""
        return self.verdict is OwnershipVerdict.PROVED

    def to_dict(self) -> dict[str, JSONValue]:
        """The result as plain JSON data."""
        return {
            "verdict": self.verdict.value,
            "method": self.method.value,
            "p_value": self.p_value,
            "p_labels": self.p_labels,
            "p_scores": self.p_scores,
            "alpha": self.alpha,
            "n_marked": self.n_marked,
            "matches": self.matches,
            "match_rate": self.match_rate,
            "n_control": self.n_control,
            "control_matches": self.control_matches,
            "control_rate": self.control_rate,
            "auc": self.auc,
            "clients": list(self.clients),
            "summary": self.summary,
        }


def _fisher_greater(matches: int, n_marked: int, control_matches: int, n_control: int) -> float:
    """One-sided Fisher exact p-value: P(``matches`` or more of the matches on marked rows) under a random split."""
    from scipy.stats import hypergeom

    hits = matches + control_matches
    if hits == 0:
        return 1.0
    return float(min(1.0, max(0.0, hypergeom.sf(matches - 1, n_marked + n_control, hits, n_marked))))


def _permutation_greater(
    scores: NDArray[np.float64], marked: NDArray[np.bool_], permutations: int, seed: int
) -> tuple[float, float]:
    """Monte Carlo permutation p-value of the marked rows' rank sum (``(1 + as extreme) / (1 + permutations)``: a
    valid p-value for any number of permutations), and the AUC of marked against control scores."""
    from scipy.stats import rankdata

    ranks = np.asarray(rankdata(scores), dtype=np.float64)  # mid-ranks for ties
    observed = float(ranks[marked].sum())
    n_marked, n_control = int(marked.sum()), int((~marked).sum())
    auc = (observed - n_marked * (n_marked + 1) / 2) / (n_marked * n_control)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(permutations, 4_000_000 // len(ranks)))  # bounded memory: about 4 MB of booleans a chunk
    at_least = 0
    done = 0
    while done < permutations:
        size = min(chunk, permutations - done)
        shuffled = rng.permuted(np.broadcast_to(marked, (size, len(marked))), axis=1)
        at_least += int(np.count_nonzero(shuffled @ ranks >= observed - 1e-9))
        done += size
    return (1 + at_least) / (1 + permutations), float(auc)


def ownership_test(
    suspect: Classifier,
    evidence: WatermarkLedger | LedgerRows,
    *,
    alpha: float = 0.001,
    clients: str | Sequence[str] | None = None,
    permutations: int = 20_000,
    seed: int = 0,
    max_rows_per_kind: int = 10_000,
) -> OwnershipResult:
    """Test whether ``suspect`` was trained on our watermarked answers (see the module docstring).

    ``evidence`` is the ledger (optionally only the rows of ``clients``) or rows from it. Costs one prediction per
    recorded row. A suspect that releases probabilities gets the score test (``permutations`` random splits, drawn
    from a generator seeded with ``seed``); a label-only one gets Fisher's exact test. At most ``max_rows_per_kind``
    marked and as many control rows are used, drawn at random (seeded) where there are more: a random subsample of
    each kind keeps the test exact and bounds its cost. Raises
    :class:`InvalidInputError` when there are no marked or no control rows.
    """
    if not (0.0 < alpha < 1.0):
        raise InvalidParameterError(f"alpha must lie in (0, 1), got {alpha}.", remedy="Use e.g. 0.001.")
    if not (suspect.label_only or alpha * (permutations + 1) > 2.0):
        raise InvalidParameterError(
            f"{permutations} permutations cannot give a p-value below alpha = {alpha:g}.",
            remedy=f"Pass permutations of at least {math.ceil(40 / alpha)}.",
        )
    rows = evidence.rows(clients) if isinstance(evidence, WatermarkLedger) else _select(evidence, clients)
    rows = _subsample(rows, max_rows_per_kind, seed)
    n_marked, n_control = int(rows.marked.sum()), int((~rows.marked).sum())
    if n_marked == 0 or n_control == 0:
        raise InvalidInputError(
            f"The ownership test needs marked and control rows; the ledger has {n_marked} and {n_control}.",
            remedy="Record the answers of the watermarked gateway in the ledger (or widen the clients selected).",
        )
    if rows.x.shape[1:] != suspect.input_shape:
        raise InvalidInputError(
            f"The recorded inputs have shape {rows.x.shape[1:]}, the suspect takes {suspect.input_shape}.",
            remedy="Test a suspect that takes the served model's inputs.",
        )
    proba = np.asarray(suspect.predict_proba(rows.x), dtype=np.float64)
    if proba.shape[1] <= int(rows.watermark.max()):
        raise InvalidInputError(
            f"The suspect has {proba.shape[1]} classes; the recorded labels go up to {int(rows.watermark.max())}.",
            remedy="Test a suspect of the served model's task.",
        )
    hit = proba.argmax(axis=1) == rows.watermark
    matches = int(hit[rows.marked].sum())
    control_matches = int(hit[~rows.marked].sum())
    auc: float | None = None
    p_scores: float | None = None
    p_labels = _fisher_greater(matches, n_marked, control_matches, n_control)
    if suspect.label_only:
        method, p_value = OwnershipMethod.LABELS, p_labels
    else:
        logp = np.log(np.clip(proba, 1e-12, None))
        scores = logp[np.arange(len(logp)), rows.watermark] - logp.max(axis=1)
        p_scores, auc = _permutation_greater(scores, rows.marked, int(permutations), seed)
        method, p_value = OwnershipMethod.SCORES_AND_LABELS, min(1.0, 2 * min(p_scores, p_labels))
    verdict = OwnershipVerdict.PROVED if p_value < alpha else OwnershipVerdict.NOT_PROVED
    return OwnershipResult(
        p_value=p_value,
        alpha=float(alpha),
        verdict=verdict,
        method=method,
        p_labels=p_labels,
        p_scores=p_scores,
        n_marked=n_marked,
        matches=matches,
        n_control=n_control,
        control_matches=control_matches,
        auc=auc,
        clients=tuple(sorted(set(rows.clients) - {""})),
        summary=_summary(verdict, p_value, alpha, matches, n_marked, control_matches, n_control, auc),
    )


def _select(rows: LedgerRows, clients: str | Sequence[str] | None) -> LedgerRows:
    if clients is None:
        return rows
    names = {clients} if isinstance(clients, str) else set(clients)
    return _take(rows, np.array([c in names for c in rows.clients], dtype=bool))


def _subsample(rows: LedgerRows, cap: int, seed: int) -> LedgerRows:
    if cap < 1:
        raise InvalidParameterError(f"max_rows_per_kind must be positive, got {cap}.")
    rng = np.random.default_rng(seed)
    pick = np.zeros(len(rows), dtype=bool)
    for kind in (rows.marked, ~rows.marked):
        where = np.flatnonzero(kind)
        pick[where if len(where) <= cap else rng.choice(where, size=cap, replace=False)] = True
    return rows if pick.all() else _take(rows, pick)


def _take(rows: LedgerRows, pick: NDArray[np.bool_]) -> LedgerRows:
    return LedgerRows(
        x=rows.x[pick],
        original=rows.original[pick],
        watermark=rows.watermark[pick],
        marked=rows.marked[pick],
        clients=tuple(c for c, keep in zip(rows.clients, pick, strict=True) if keep),
        times=rows.times[pick],
    )


def _summary(
    verdict: OwnershipVerdict,
    p_value: float,
    alpha: float,
    matches: int,
    n_marked: int,
    control_matches: int,
    n_control: int,
    auc: float | None,
) -> str:
    seen = (
        f"the suspect answers our watermark label on {matches} of {n_marked} marked inputs "
        f"({matches / n_marked:.1%}) and on {control_matches} of {n_control} control inputs "
        f"({control_matches / n_control:.1%})"
    )
    if auc is not None:
        seen += f", and ranks it higher on marked than on control inputs with probability {auc:.2f} (0.5 by chance)"
    if verdict is OwnershipVerdict.PROVED:
        return (
            f"Ownership proved: {seen}. A model not trained on our answers would do this with probability "
            f"p = {p_value:.2g} < {alpha:g}: the suspect was trained on answers from this gateway."
        )
    return (
        f"No proof: {seen}; p = {p_value:.2g} is not below {alpha:g}. This does not show that the suspect is "
        "independent: a copy trained on few of our answers, or on the answers of clients not selected, may go "
        "unproved."
    )


def prove_ownership(
    suspect: Classifier,
    ledger: WatermarkLedger | str,
    *,
    alpha: float = 0.001,
    clients: str | Sequence[str] | None = None,
) -> OwnershipResult:
    """The ownership test for the command line: ``ledger`` may be the ledger's database URL (opened and closed here)."""
    if isinstance(ledger, WatermarkLedger):
        return ownership_test(suspect, ledger, alpha=alpha, clients=clients)
    with WatermarkLedger(ledger) as opened:
        return ownership_test(suspect, opened, alpha=alpha, clients=clients)
