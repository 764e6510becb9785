"""Who is calling the gateway: API keys in a SQL table, JWTs from an identity provider, and the roles they carry.

    >>> from modelshield.gateway.identity import Authenticator, KeyStore, Role
    >>> store = KeyStore("sqlite:///gateway/keys.db")  # doctest: +SKIP
    >>> secret, info = store.create("acme-batch", Role.CLIENT, expires_days=90)  # doctest: +SKIP
    >>> auth = Authenticator(store)  # doctest: +SKIP
    >>> auth.authenticate(f"Bearer {secret}", None).client  # doctest: +SKIP
    'acme-batch'

**API keys.** A key is ``msk_<key id>_<secret>``: 16 hex characters that name the key (they appear in logs and in
``modelshield keys list``) and 43 base64url characters, 32 random bytes from :func:`secrets.token_bytes`. The key
is shown once, when it is created; the table ``gateway_keys`` stores only its SHA-256 digest. A fast hash is the
right one here: a slow password hash (bcrypt, scrypt, Argon2) exists to make guessing a *low-entropy* password
expensive, but nobody can enumerate 2^256 random secrets, so a stolen table reveals nothing either way, and a fast
hash lets every request be checked in microseconds without a per-request cost that an attacker could amplify.

**Lookup.** A presented key is first checked for its exact shape (length 64, the charset of each part) and only
then hashed; the digest is looked up in an in-memory snapshot of the active keys, and the stored digest is
compared with :func:`hmac.compare_digest`. The snapshot is reloaded from the database when it is older than
``refresh_s`` (so a key revoked or created by another process or replica takes effect everywhere within
``refresh_s``) and, on a miss, at most every 0.2 s: a key created a moment ago works at once, while someone
spraying random keys cannot turn each guess into a database query. Expiry is checked on every request against the
clock. When the database cannot be read, requests fail closed with :class:`KeyStoreError` rather than trusting an
old snapshot (a revoked key must not come back because the database is down); failed reloads are retried at most
every 0.2 s.

**JWTs.** With :class:`JwtSettings`, a bearer token that is not an API key is verified as a JWT against the keys of a
JWKS file (reloaded when the file changes): asymmetric algorithms only (never ``none`` or HMAC, so a public key
cannot be used as an HMAC secret), the signature, and the claims ``exp``, ``iss``, ``aud`` and ``sub``. The client
is ``sub``; the role is the claim ``role_claim`` (absent means ``client``; an unknown role is refused).

**Anonymous access** is off unless ``anonymous_role`` is set, and then only for a request that sends no credential
at all: a wrong credential is always refused, never downgraded to anonymous.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from modelshield._extras import require
from modelshield.errors import (
    FileFormatError,
    InvalidParameterError,
    ModelShieldError,
    UnknownTargetError,
)

require("sqlalchemy", extra="serve", feature="The gateway's key store")
require("jwt", extra="serve", feature="JWT authentication in the gateway")

import jwt  # noqa: E402 - after the check that names the extra
from sqlalchemy import (  # noqa: E402
    BigInteger,
    Column,
    Double,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError  # noqa: E402
from sqlalchemy.schema import CreateIndex, CreateTable  # noqa: E402

__all__ = [
    "ANONYMOUS_CLIENT",
    "AuthenticationError",
    "Authenticator",
    "JwtSettings",
    "KeyInfo",
    "KeyStore",
    "KeyStoreError",
    "Permission",
    "Principal",
    "Role",
    "validate_client_name",
]

logger = logging.getLogger(__name__)

ANONYMOUS_CLIENT = "anonymous"
"""The client name of an anonymous principal; reserved, so no key or token can claim it."""

_KEY_PREFIX = "msk_"
_KEY_ID_HEX = 16
_SECRET_CHARS = 43  # base64url of 32 bytes, without padding
_KEY_LENGTH = len(_KEY_PREFIX) + _KEY_ID_HEX + 1 + _SECRET_CHARS  # 64
_KEY_RE = re.compile(r"msk_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")
_CLIENT_RE = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_MISS_RELOAD_S = 0.2
_RELOAD_WAIT_S = 2.5  # longest a request waits for another thread's reload (above PostgreSQL's statement timeout)
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
_URL_REMEDY = "Use sqlite:///PATH/keys.db or postgresql+psycopg://USER@HOST:PORT/DATABASE."
_AUTH_REMEDY = (
    "Send a valid API key as `Authorization: Bearer msk_...` or `X-API-Key: msk_...` (or a valid JWT as a bearer "
    "token); ask an administrator for a new key if yours was revoked or has expired."
)


class AuthenticationError(ModelShieldError):
    """A request's credential is missing, malformed, unknown, revoked or expired, or its token does not verify.

    The gateway answers 401 with ``WWW-Authenticate: Bearer``. The message is safe to send to the client and to log:
    it never contains the credential. ``reason`` is a short word for logs and metrics (``missing``, ``malformed``,
    ``unknown``, ``expired``, ``token``); ``key_id`` names the API key when the credential had a valid shape.
    """

    default_remedy = _AUTH_REMEDY

    def __init__(self, message: str, *, reason: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.key_id = key_id


class KeyStoreError(ModelShieldError):
    """The gateway's key database cannot be read or written (the gateway answers 503: it fails closed)."""

    default_remedy = "Check the key database URL and that the database server is up, then try again."


class Permission(StrEnum):
    """What a request may do."""

    INFER = "infer"
    READ_METADATA = "read-metadata"
    READ_LOG = "read-log"
    ADMIN = "admin"


class Role(StrEnum):
    """A principal's role: ``client`` infers, ``analyst`` reads the audit log and alerts, ``admin`` may do all."""

    CLIENT = "client"
    ANALYST = "analyst"
    ADMIN = "admin"

    def allows(self, permission: Permission) -> bool:
        """Whether this role grants ``permission`` (an analyst may not infer; an admin may do everything)."""
        return permission in _GRANTS[self]


_GRANTS: Mapping[Role, frozenset[Permission]] = {
    Role.CLIENT: frozenset({Permission.INFER, Permission.READ_METADATA}),
    Role.ANALYST: frozenset({Permission.READ_METADATA, Permission.READ_LOG}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request.

    ``via`` says how: ``"api-key"`` (then ``key_id`` names the key), ``"jwt"`` or ``"anonymous"``.
    ``rows_per_day`` is the key's own daily row budget, or None for the gateway's default.
    """

    client: str
    role: Role
    key_id: str | None
    via: Literal["api-key", "jwt", "anonymous"]
    rows_per_day: int | None = None

    def allows(self, permission: Permission) -> bool:
        """Whether this principal's role grants ``permission``."""
        return self.role.allows(permission)


@dataclass(frozen=True)
class KeyInfo:
    """One API key as the store lists it: never its secret or digest. Times are Unix seconds."""

    key_id: str
    client: str
    role: Role
    created: float
    expires: float | None
    revoked: float | None
    rows_per_day: int | None

    def status(self, now: float) -> Literal["active", "expired", "revoked"]:
        """``active``, ``expired`` or ``revoked`` at time ``now`` (revocation wins)."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "active"


def validate_client_name(name: str) -> str:
    """Return ``name`` if it is a valid client name (1–64 of ``A-Z a-z 0-9 . _ @ -``), else raise.

    Client names go into logs and HTML pages, so they are held to a charset that needs no escaping anywhere.
    """
    if not isinstance(name, str) or _CLIENT_RE.fullmatch(name) is None:
        raise InvalidParameterError(
            f"{name!r} is not a valid client name.",
            remedy="Use 1 to 64 characters from A-Z, a-z, 0-9 and . _ @ -",
        )
    return name


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


_metadata = MetaData()
_keys = Table(
    "gateway_keys",
    _metadata,
    Column("key_id", String(32), primary_key=True),
    Column("digest", LargeBinary(32), nullable=False, unique=True),
    Column("client", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("created", Double, nullable=False),
    Column("expires", Double, nullable=True),
    Column("revoked", Double, nullable=True),
    Column("rows_per_day", BigInteger, nullable=True),
)
_INFO_COLUMNS = (
    _keys.c.key_id,
    _keys.c.client,
    _keys.c.role,
    _keys.c.created,
    _keys.c.expires,
    _keys.c.revoked,
    _keys.c.rows_per_day,
)


def _info(row: Any) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        client=row.client,
        role=Role(row.role),
        created=float(row.created),
        expires=None if row.expires is None else float(row.expires),
        revoked=None if row.revoked is None else float(row.revoked),
        rows_per_day=None if row.rows_per_day is None else int(row.rows_per_day),
    )


class KeyStore:
    """The API keys in the table ``gateway_keys`` of a SQL database (``sqlite:///...`` or ``postgresql+psycopg://...``).

    The table is created if missing; two processes starting at once on PostgreSQL serialize on an advisory lock.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except SQLAlchemyError as exc:
            raise InvalidParameterError(f"{url!r} is not a database URL.", remedy=_URL_REMEDY) from exc
        self.url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "postgresql":
            require("psycopg", extra="serve", feature="A PostgreSQL key store")
        elif self.dialect != "sqlite":
            raise InvalidParameterError(f"Unsupported key database {self.url!r}.", remedy=_URL_REMEDY)
        if self.dialect == "postgresql":
            # Bounded waits: a locked table or a stalled server must give KeyStoreError (503), not a hung request.
            self._engine: Engine = create_engine(
                parsed,
                hide_parameters=True,
                pool_pre_ping=True,
                connect_args={
                    "connect_timeout": 3,
                    "options": "-c statement_timeout=2000 -c lock_timeout=1000",
                    "application_name": "modelshield-keys",
                },
            )
        else:
            self._engine = create_engine(parsed, hide_parameters=True)
        if self.dialect == "sqlite":
            _configure_sqlite(self._engine)
        self._create_table()

    def __repr__(self) -> str:
        return f"KeyStore({self.url!r})"

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            cause = exc.orig if isinstance(exc, DBAPIError) else exc
            raise KeyStoreError(
                f"Could not {doing} in the key database {self.url}: {type(cause).__name__}: {cause}."
            ) from exc

    def _create_table(self) -> None:
        with self._errors("create the table gateway_keys"), self._engine.begin() as conn:
            if self.dialect == "postgresql":  # CREATE ... IF NOT EXISTS still races on PostgreSQL: serialize
                conn.execute(text("SELECT pg_advisory_xact_lock(7163534921)"))
            conn.execute(CreateTable(_keys, if_not_exists=True))
            for index in _keys.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))

    def create(
        self,
        client: str,
        role: Role,
        *,
        expires_days: float | None = None,
        rows_per_day: int | None = None,
    ) -> tuple[str, KeyInfo]:
        """Make a key for ``client``; return its secret (shown this once, stored only as a digest) and its info."""
        validate_client_name(client)
        if client == ANONYMOUS_CLIENT:
            raise InvalidParameterError(
                f"The client name {ANONYMOUS_CLIENT!r} is reserved for anonymous requests.",
                remedy="Pick another client name.",
            )
        role = Role(role)
        if expires_days is not None and not expires_days > 0:
            raise InvalidParameterError(
                f"expires_days must be positive, got {expires_days!r}.", remedy="Pass a number of days, or None."
            )
        if rows_per_day is not None and (isinstance(rows_per_day, bool) or rows_per_day < 0):
            raise InvalidParameterError(
                f"rows_per_day must be a non-negative integer, got {rows_per_day!r}.",
                remedy="Pass a daily row budget, or None for the gateway's default.",
            )
        for _attempt in range(3):  # a key id collision (2^-64) is retried
            key_id = secrets.token_hex(_KEY_ID_HEX // 2)
            secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
            key = f"{_KEY_PREFIX}{key_id}_{secret}"
            now = time.time()
            info = KeyInfo(
                key_id=key_id,
                client=client,
                role=role,
                created=now,
                expires=None if expires_days is None else now + expires_days * 86400.0,
                revoked=None,
                rows_per_day=rows_per_day,
            )
            try:
                with self._errors("add a key"), self._engine.begin() as conn:
                    conn.execute(
                        insert(_keys).values(
                            key_id=key_id,
                            digest=_digest(key),
                            client=client,
                            role=role.value,
                            created=info.created,
                            expires=info.expires,
                            revoked=None,
                            rows_per_day=rows_per_day,
                        )
                    )
            except KeyStoreError as exc:
                if isinstance(exc.__cause__, IntegrityError):
                    continue
                raise
            logger.info("created API key %s for client %s with role %s", key_id, client, role.value)
            return key, info
        raise KeyStoreError("Could not add a key: three key id collisions in a row.")  # pragma: no cover

    def list(self) -> list[KeyInfo]:
        """Every key, revoked and expired ones included, oldest first."""
        with self._errors("list the keys"), self._engine.connect() as conn:
            rows = conn.execute(select(*_INFO_COLUMNS).order_by(_keys.c.created, _keys.c.key_id)).all()
        return [_info(row) for row in rows]

    def get(self, key_id: str) -> KeyInfo:
        """The key ``key_id``; :class:`~modelshield.errors.UnknownTargetError` if there is none."""
        with self._errors("read a key"), self._engine.connect() as conn:
            row = conn.execute(select(*_INFO_COLUMNS).where(_keys.c.key_id == key_id)).one_or_none()
        if row is None:
            raise UnknownTargetError(
                f"There is no API key with id {key_id!r}.",
                remedy="List the keys (`modelshield keys list`) and pass one of their ids.",
            )
        return _info(row)

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke ``key_id`` now (revoking twice keeps the first time) and return its info.

        Every :class:`Authenticator` on this database refuses the key within its ``refresh_s``.
        """
        with self._errors("revoke a key"), self._engine.begin() as conn:
            conn.execute(
                update(_keys).where(_keys.c.key_id == key_id, _keys.c.revoked.is_(None)).values(revoked=time.time())
            )
        info = self.get(key_id)
        logger.info("revoked API key %s of client %s", key_id, info.client)
        return info

    def active_digests(self) -> dict[bytes, KeyInfo]:
        """The SHA-256 digest of each key neither revoked nor expired now, with its info."""
        now = time.time()
        query = select(_keys.c.digest, *_INFO_COLUMNS).where(
            _keys.c.revoked.is_(None), (_keys.c.expires.is_(None)) | (_keys.c.expires > now)
        )
        with self._errors("read the keys"), self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {bytes(row.digest): _info(row) for row in rows}


def _configure_sqlite(engine: Engine) -> None:
    """A busy timeout, so that writers from several processes wait for each other, and WAL for concurrent reads."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 2000")  # a locked key table answers 503 in bounded time
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()


@dataclass(frozen=True)
class JwtSettings:
    """How to verify JWTs: the JWKS file of the identity provider's public keys, and the expected claims.

    ``algorithms`` may only name asymmetric algorithms: ``none`` and HMAC are refused, so a public key can never
    be used as an HMAC secret. ``leeway_s`` is the clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    """

    jwks_path: Path
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    role_claim: str = "role"
    leeway_s: float = 30.0

    def __post_init__(self) -> None:
        bad = [alg for alg in self.algorithms if alg not in _ASYMMETRIC]
        if bad or not self.algorithms:
            raise InvalidParameterError(
                f"JWT algorithms {bad or list(self.algorithms)} are not allowed.",
                remedy=f"Use asymmetric algorithms only: {', '.join(sorted(_ASYMMETRIC))}.",
            )
        if not self.issuer or not self.audience:
            raise InvalidParameterError(
                "JWT verification needs an issuer and an audience.", remedy="Pass the issuer and audience to expect."
            )
        if self.leeway_s < 0:
            raise InvalidParameterError(f"leeway_s must be >= 0, got {self.leeway_s!r}.")


@dataclass(frozen=True)
class _Jwks:
    signature: tuple[int, int, int]  # (inode, size, mtime_ns) of the file it was read from
    keys: Mapping[str | None, jwt.PyJWK]  # by kid; None maps the only key when the set holds just one


@dataclass
class _Snapshot:
    keys: Mapping[bytes, tuple[bytes, KeyInfo]] = field(default_factory=dict)
    loaded_at: float = float("-inf")  # time.monotonic() of the last successful load
    failed_at: float = float("-inf")  # time.monotonic() of the last failed load


class Authenticator:
    """Turns a request's credential into a :class:`Principal`, or raises :class:`AuthenticationError`.

    Safe to share between threads. ``refresh_s`` bounds how long a revocation (or a key created elsewhere) takes to
    be seen; ``jwt`` enables bearer JWTs; ``anonymous_role`` lets requests without any credential in.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        refresh_s: float = 1.0,
        jwt: JwtSettings | None = None,
        anonymous_role: Role | None = None,
    ) -> None:
        if not refresh_s > 0:
            raise InvalidParameterError(f"refresh_s must be positive, got {refresh_s!r}.")
        self.store = store
        self.refresh_s = float(refresh_s)
        self.jwt = jwt
        self.anonymous_role = None if anonymous_role is None else Role(anonymous_role)
        self._lock = threading.Lock()
        self._snapshot = _Snapshot()
        self._jwks_lock = threading.Lock()
        self._jwks: _Jwks | None = None
        self._reload(force=True)
        if jwt is not None:
            self._jwks_now(jwt)  # a missing or broken JWKS file fails at start, not at the first request

    def __repr__(self) -> str:
        return f"Authenticator({self.store!r}, refresh_s={self.refresh_s})"

    def refresh(self) -> None:
        """Reload the keys now (after this process created or revoked one, so that it takes effect at once here)."""
        self._reload(force=True)

    # -- the request path -------------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> Principal:
        """The principal of a request with these ``Authorization`` and ``X-API-Key`` header values (None: absent).

        Raises :class:`AuthenticationError` for any credential that is not valid, and :class:`KeyStoreError` when the
        key database cannot be read (fail closed).
        """
        if authorization is None and x_api_key is None:
            if self.anonymous_role is None:
                raise AuthenticationError("The request carries no credential.", reason="missing")
            return Principal(client=ANONYMOUS_CLIENT, role=self.anonymous_role, key_id=None, via="anonymous")
        bearer = None
        if authorization is not None:
            scheme, _, bearer = authorization.strip().partition(" ")
            bearer = bearer.strip()
            if scheme.lower() != "bearer" or not bearer:
                raise AuthenticationError("The Authorization header is not `Bearer <credential>`.", reason="malformed")
        if bearer is not None and x_api_key is not None and not hmac.compare_digest(bearer, x_api_key):
            raise AuthenticationError(
                "The request carries two different credentials (Authorization and X-API-Key).", reason="malformed"
            )
        credential = bearer if bearer is not None else x_api_key
        if credential is None:  # not reached: one of the two headers is set here
            raise AuthenticationError("The request carries no credential.", reason="missing")
        if credential.startswith(_KEY_PREFIX) or x_api_key is not None or self.jwt is None:
            return self._api_key(credential)
        return self._token(credential, self.jwt)

    def _api_key(self, key: str) -> Principal:
        match = _KEY_RE.fullmatch(key) if len(key) == _KEY_LENGTH else None
        if match is None:
            raise AuthenticationError("The API key is malformed.", reason="malformed")
        key_id = match.group(1)
        digest = _digest(key)
        info = self._lookup(digest)
        if info is None or info.key_id != key_id:
            raise AuthenticationError(
                "The API key is not valid (unknown, revoked or expired).", reason="unknown", key_id=key_id
            )
        if info.expires is not None and time.time() >= info.expires:
            raise AuthenticationError("The API key has expired.", reason="expired", key_id=key_id)
        return Principal(
            client=info.client, role=info.role, key_id=info.key_id, via="api-key", rows_per_day=info.rows_per_day
        )

    def _lookup(self, digest: bytes) -> KeyInfo | None:
        snapshot = self._snapshot
        if time.monotonic() - snapshot.loaded_at > self.refresh_s:
            snapshot = self._reload(force=False)
        info = _find(snapshot.keys, digest)
        if info is None and time.monotonic() - snapshot.loaded_at >= _MISS_RELOAD_S:
            info = _find(self._reload(force=False, miss=True).keys, digest)
        return info

    def _reload(self, *, force: bool, miss: bool = False) -> _Snapshot:
        if not self._lock.acquire(timeout=_RELOAD_WAIT_S):
            # Another thread is stuck reading the database: fail closed rather than queue every request behind it.
            raise KeyStoreError(f"The key database {self.store.url} is not answering.")
        try:
            return self._reload_locked(force=force, miss=miss)
        finally:
            self._lock.release()

    def _reload_locked(self, *, force: bool, miss: bool) -> _Snapshot:
        current = self._snapshot
        now = time.monotonic()
        age = now - current.loaded_at
        if not force and age < (_MISS_RELOAD_S if miss else self.refresh_s):
            return current  # another thread reloaded while this one waited
        if not force and now - current.failed_at < _MISS_RELOAD_S:
            raise KeyStoreError(f"The key database {self.store.url} could not be read a moment ago.")
        try:
            keys = self.store.active_digests()
        except KeyStoreError:
            self._snapshot = _Snapshot(current.keys, current.loaded_at, now)
            raise
        self._snapshot = _Snapshot({digest: (digest, info) for digest, info in keys.items()}, time.monotonic())
        return self._snapshot

    def _token(self, token: str, settings: JwtSettings) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("The bearer token is neither an API key nor a JWT.", reason="malformed") from exc
        alg = header.get("alg")
        if alg not in settings.algorithms:
            raise AuthenticationError(f"The token's algorithm {alg!r} is not accepted.", reason="token")
        kid = header.get("kid")
        jwks = self._jwks_now(settings)
        key = jwks.keys.get(kid) if kid is None or isinstance(kid, str) else None
        if key is None:
            raise AuthenticationError(f"The token's key id {kid!r} is not in the JWKS.", reason="token")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"The token does not verify: {exc}.", reason="token") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or _CLIENT_RE.fullmatch(subject) is None or subject == ANONYMOUS_CLIENT:
            raise AuthenticationError("The token's subject is not a valid client name.", reason="token")
        role_value = claims.get(settings.role_claim, Role.CLIENT.value)
        try:
            role = Role(role_value)
        except ValueError:
            raise AuthenticationError(f"The token's role {role_value!r} is unknown.", reason="token") from None
        return Principal(client=subject, role=role, key_id=None, via="jwt")

    def _jwks_now(self, settings: JwtSettings) -> _Jwks:
        """The JWKS, read again when the file changed (inode, size or modification time)."""
        path = settings.jwks_path
        try:
            st = os.stat(path)
        except OSError as exc:
            raise FileFormatError(
                f"Cannot read the JWKS file {path}: {exc.strerror}.", remedy="Check the path of the JWKS file."
            ) from exc
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._jwks
        if cached is not None and cached.signature == signature:
            return cached
        with self._jwks_lock:
            cached = self._jwks
            if cached is not None and cached.signature == signature:
                return cached
            loaded = _Jwks(signature, _read_jwks(path, settings))
            self._jwks = loaded
            logger.info("loaded %d key(s) from the JWKS file %s", len(loaded.keys), path)
            return loaded


def _find(keys: Mapping[bytes, tuple[bytes, KeyInfo]], digest: bytes) -> KeyInfo | None:
    entry = keys.get(digest)
    if entry is None:
        return None
    # The dict found the entry by the digest's hash already; comparing the stored digest in constant time keeps the
    # rule (secrets and tags are compared with compare_digest) true of the code that decides.
    stored, info = entry
    return info if hmac.compare_digest(stored, digest) else None


def _read_jwks(path: Path, settings: JwtSettings) -> dict[str | None, jwt.PyJWK]:
    """The usable keys of a JWKS file, by kid: those of an accepted (asymmetric) algorithm only."""
    remedy = "Write the identity provider's JWKS (a JSON object with a `keys` list of public keys) to the file."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        jwks = jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        raise FileFormatError(f"The JWKS file {path} is not usable: {exc}.", remedy=remedy) from exc
    keys: dict[str | None, jwt.PyJWK] = {
        key.key_id: key for key in jwks.keys if key.algorithm_name in settings.algorithms
    }
    if not keys:
        raise FileFormatError(
            f"The JWKS file {path} holds no key for the accepted algorithms {', '.join(settings.algorithms)}.",
            remedy=remedy,
        )
    if len(keys) == 1:
        keys[None] = next(iter(keys.values()))  # a token without kid may use the only key
    else:
        keys.pop(None, None)  # with several keys, a token must say which
    return keys
