"""The gateway's identities: API keys in SQLite and PostgreSQL, their lookup and revocation, JWTs, and roles."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import create_engine, text

from modelshield.errors import FileFormatError, InvalidParameterError, UnknownTargetError
from modelshield.gateway.identity import (
    AuthenticationError,
    Authenticator,
    JwtSettings,
    KeyInfo,
    KeyStore,
    KeyStoreError,
    Permission,
    Principal,
    Role,
    validate_client_name,
)

# -- stores -----------------------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a SQLite file, and (marked services) a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keys.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def stores(db_url: str) -> Iterator[Callable[[], KeyStore]]:
    """A factory of key stores on one database (each one a separate engine, like another process), closed after."""
    made: list[KeyStore] = []

    def make() -> KeyStore:
        made.append(KeyStore(db_url))
        return made[-1]

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(stores: Callable[[], KeyStore]) -> KeyStore:
    return stores()


def _rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text("SELECT * FROM gateway_keys"))]
    finally:
        engine.dispose()


def test_create_list_revoke(store: KeyStore) -> None:
    secret, info = store.create("acme-batch", Role.CLIENT, expires_days=30, rows_per_day=500)
    _, other = store.create("ops@example.org", Role.ADMIN)
    assert secret.startswith(f"msk_{info.key_id}_") and len(secret) == 64
    assert info.client == "acme-batch" and info.role is Role.CLIENT and info.rows_per_day == 500
    assert info.expires is not None and info.expires - info.created == pytest.approx(30 * 86400)
    assert [k.key_id for k in store.list()] == [info.key_id, other.key_id]
    assert store.list()[0] == info

    revoked = store.revoke(info.key_id)
    assert revoked.revoked is not None and revoked.status(time.time()) == "revoked"
    assert store.revoke(info.key_id).revoked == revoked.revoked  # revoking twice keeps the first time
    assert set(store.active_digests().values()) == {other}


def test_revoke_unknown_key_names_the_fix(store: KeyStore) -> None:
    with pytest.raises(UnknownTargetError, match="no API key with id 'nope'") as caught:
        store.revoke("nope")
    assert "keys list" in caught.value.remedy


def test_only_the_digest_is_stored(store: KeyStore, db_url: str) -> None:
    secret, info = store.create("acme", Role.CLIENT)
    rows = _rows(db_url)
    assert len(rows) == 1
    assert bytes(rows[0]["digest"]) == hashlib.sha256(secret.encode()).digest()
    random_part = secret[21:]  # after msk_<16 hex>_
    everything = repr(rows) + repr(info) + repr(store.list()) + repr(store)
    assert random_part not in everything
    for value in rows[0].values():  # no column holds the secret in any encoding
        raw = value if isinstance(value, bytes | memoryview) else str(value).encode()
        assert base64.urlsafe_b64decode(random_part + "=") not in bytes(raw)
        assert random_part.encode() not in bytes(raw)
    assert "digest" not in repr(info)


@pytest.mark.parametrize("client", ["", "a" * 65, "has space", "<script>", "név", "a/b", "a\nb", "anonymous"], ids=repr)
def test_client_names_are_validated(store: KeyStore, client: str) -> None:
    with pytest.raises(InvalidParameterError):
        store.create(client, Role.CLIENT)
    assert store.list() == []


def test_valid_client_names() -> None:
    for name in ("a", "A" * 64, "svc.batch-1_x@corp"):
        assert validate_client_name(name) == name


def test_bad_create_arguments(store: KeyStore) -> None:
    with pytest.raises(InvalidParameterError):
        store.create("acme", Role.CLIENT, expires_days=0)
    with pytest.raises(InvalidParameterError):
        store.create("acme", Role.CLIENT, rows_per_day=-1)
    with pytest.raises(ValueError, match="'root'"):
        store.create("acme", "root")  # type: ignore[arg-type]


def test_bad_urls() -> None:
    with pytest.raises(InvalidParameterError, match="Unsupported"):
        KeyStore("mysql://localhost/keys")
    with pytest.raises(InvalidParameterError, match="not a database URL"):
        KeyStore("::::")


@pytest.mark.services
def test_unreachable_database_is_a_key_store_error() -> None:
    with pytest.raises(KeyStoreError, match="Could not create the table") as caught:
        KeyStore("postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nothing?connect_timeout=1")
    assert "hunter2" not in str(caught.value)


@pytest.mark.services
def test_tables_created_by_racing_processes(pg_url: str) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            KeyStore(pg_url).close()
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- roles ------------------------------------------------------------------------------------------------------------


def test_roles() -> None:
    grants = {role: {p for p in Permission if role.allows(p)} for role in Role}
    assert grants[Role.CLIENT] == {Permission.INFER, Permission.READ_METADATA}
    assert grants[Role.ANALYST] == {Permission.READ_METADATA, Permission.READ_LOG}
    assert grants[Role.ADMIN] == set(Permission)
    assert Principal("a", Role.ANALYST, None, "jwt").allows(Permission.READ_LOG)


# -- API keys ---------------------------------------------------------------------------------------------------------


def test_api_key_by_bearer_and_by_header(store: KeyStore) -> None:
    secret, info = store.create("acme", Role.ANALYST, rows_per_day=7)
    auth = Authenticator(store)
    expected = Principal("acme", Role.ANALYST, info.key_id, "api-key", rows_per_day=7)
    assert auth.authenticate(f"Bearer {secret}", None) == expected
    assert auth.authenticate(f"bearer   {secret} ", None) == expected
    assert auth.authenticate(None, secret) == expected
    assert auth.authenticate(f"Bearer {secret}", secret) == expected


def _refused(auth: Authenticator, authorization: str | None, x_api_key: str | None = None) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate(authorization, x_api_key)
    for credential in (authorization, x_api_key):
        if credential and len(credential) > 12:
            assert credential.removeprefix("Bearer ") not in str(caught.value)  # never echoed
    return caught.value


def test_missing_and_malformed_credentials(store: KeyStore) -> None:
    secret, _ = store.create("acme", Role.CLIENT)
    auth = Authenticator(store)
    assert _refused(auth, None).reason == "missing"
    malformed = [
        "",
        "Bearer",
        "Bearer ",
        f"Basic {secret}",
        secret,  # no scheme
        "Bearer msk_",
        f"Bearer {secret}x",
        f"Bearer {secret[:-1]}",
        f"Bearer {secret[:-1]}!",
        f"Bearer {secret.upper()}",  # the key id is lowercase hex
        f"Bearer {secret[:-1]}é",
        "Bearer " + "msk_" + "0" * 16 + "_" + "A" * 42 + "=",
    ]
    for header in malformed:
        assert _refused(auth, header).reason == "malformed", header
    assert _refused(auth, None, "not-a-key").reason == "malformed"
    assert _refused(auth, None, "").reason == "malformed"
    other, _ = store.create("acme", Role.CLIENT)
    assert _refused(auth, f"Bearer {secret}", other).reason == "malformed"  # two different credentials


def test_unknown_keys(store: KeyStore) -> None:
    secret, info = store.create("acme", Role.CLIENT)
    auth = Authenticator(store)
    random_key = "msk_" + secrets.token_hex(8) + "_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()[:43]
    assert _refused(auth, f"Bearer {random_key}").reason == "unknown"
    wrong_secret = secret[:-5] + ("AAAAA" if not secret.endswith("AAAAA") else "BBBBB")
    error = _refused(auth, None, wrong_secret)
    assert error.reason == "unknown" and error.key_id == info.key_id
    # the right secret under another key's id is no key either
    _, other = store.create("acme", Role.CLIENT)
    assert _refused(auth, f"Bearer msk_{other.key_id}_{secret[21:]}").reason == "unknown"


def test_revoked_key_refused(store: KeyStore) -> None:
    secret, info = store.create("acme", Role.CLIENT)
    auth = Authenticator(store, refresh_s=0.05)
    auth.authenticate(f"Bearer {secret}", None)
    store.revoke(info.key_id)
    time.sleep(0.06)
    assert _refused(auth, f"Bearer {secret}").reason == "unknown"
    assert _refused(Authenticator(store), None, secret).reason == "unknown"


def test_expired_keys_refused(store: KeyStore, db_url: str) -> None:
    secret, info = store.create("acme", Role.CLIENT, expires_days=0.3 / 86400)
    auth = Authenticator(store, refresh_s=60)
    assert auth.authenticate(f"Bearer {secret}", None).key_id == info.key_id
    time.sleep(0.35)  # still in the snapshot: expiry is checked per request
    error = _refused(auth, f"Bearer {secret}")
    assert error.reason == "expired" and error.key_id == info.key_id
    # expired in the database: not even loaded
    late, late_info = store.create("acme", Role.CLIENT, expires_days=1)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE gateway_keys SET expires = :t WHERE key_id = :k"), {"t": 1.0, "k": late_info.key_id})
    engine.dispose()
    assert late_info not in store.active_digests().values()
    assert _refused(Authenticator(store), f"Bearer {late}").reason == "unknown"
    assert store.list()[-1].status(time.time()) == "expired"


def test_anonymous_only_without_any_credential(store: KeyStore) -> None:
    secret, _ = store.create("acme", Role.CLIENT)
    closed = Authenticator(store)
    assert _refused(closed, None).reason == "missing"
    auth = Authenticator(store, anonymous_role=Role.CLIENT)
    assert auth.authenticate(None, None) == Principal("anonymous", Role.CLIENT, None, "anonymous")
    for authorization, x_api_key in [("Bearer nope", None), (None, "nope"), ("", None), (f"Bearer {secret}x", None)]:
        _refused(auth, authorization, x_api_key)  # a wrong credential is never downgraded to anonymous
    assert auth.authenticate(None, secret).via == "api-key"


def test_revocation_seen_by_another_process_within_refresh_s(stores: Callable[[], KeyStore]) -> None:
    admin, worker = stores(), stores()
    secret, info = admin.create("acme", Role.CLIENT)
    auth = Authenticator(worker, refresh_s=0.3)
    auth.authenticate(f"Bearer {secret}", None)
    admin.revoke(info.key_id)
    deadline = time.monotonic() + 0.3 + 0.25
    while time.monotonic() < deadline:
        try:
            auth.authenticate(f"Bearer {secret}", None)
        except AuthenticationError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the revocation was not seen within refresh_s")


def test_new_key_from_another_process_works_at_once(stores: Callable[[], KeyStore]) -> None:
    admin, worker = stores(), stores()
    auth = Authenticator(worker, refresh_s=60)
    time.sleep(0.21)  # a miss reloads when the snapshot is at least 0.2 s old
    secret, _ = admin.create("acme", Role.CLIENT)
    assert auth.authenticate(f"Bearer {secret}", None).client == "acme"


class _CountingStore(KeyStore):
    loads = 0

    def active_digests(self) -> dict[bytes, KeyInfo]:
        self.loads += 1
        return super().active_digests()


def test_spraying_random_keys_does_not_hammer_the_database(db_url: str) -> None:
    store = _CountingStore(db_url)
    auth = Authenticator(store, refresh_s=60)
    started = time.monotonic()
    store.loads = 0
    tries = 0
    while time.monotonic() - started < 0.5:
        key = "msk_" + secrets.token_hex(8) + "_" + "A" * 43
        with pytest.raises(AuthenticationError):
            auth.authenticate(None, key)
        tries += 1
    assert tries > 50
    assert store.loads <= 3  # at most one reload per 0.2 s
    store.close()


def test_threads_share_one_authenticator(store: KeyStore) -> None:
    keys = [store.create(f"client-{i}", Role.CLIENT)[0] for i in range(4)]
    auth = Authenticator(store, refresh_s=0.01)  # reloads race with lookups
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(200):
                assert auth.authenticate(f"Bearer {keys[i % 4]}", None).client == f"client-{i % 4}"
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_unreadable_database_fails_closed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    store = KeyStore(url)
    secret, _ = store.create("acme", Role.CLIENT)
    auth = Authenticator(store, refresh_s=0.05)
    auth.authenticate(f"Bearer {secret}", None)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE gateway_keys"))
    engine.dispose()
    time.sleep(0.06)
    with pytest.raises(KeyStoreError):
        auth.authenticate(f"Bearer {secret}", None)  # not served from the old snapshot
    with pytest.raises(KeyStoreError, match="a moment ago"):
        auth.authenticate(f"Bearer {secret}", None)  # and not retried at once either
    store.close()


# -- JWT --------------------------------------------------------------------------------------------------------------

ISSUER = "https://idp.example.org/"
AUDIENCE = "modelshield-gateway"


class _Idp:
    """An identity provider: an EC P-256 and an Ed25519 key, and a JWKS file of their public halves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.write(["ec-1", "ed-1"])

    def jwk(self, kid: str) -> dict[str, Any]:
        if kid.startswith("ec"):
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True)
        else:
            jwk = jwt.algorithms.OKPAlgorithm.to_jwk(self.ed.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig"}

    def write(self, kids: list[str], extra: list[dict[str, Any]] | None = None) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [self.jwk(kid) for kid in kids] + (extra or [])}))
        tmp.replace(self.path)  # atomic, as an operator should

    def token(self, *, kid: str | None = "ec-1", alg: str = "ES256", **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-1", "iat": now, "exp": now + 300, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        key = self.ec if alg == "ES256" else self.ed
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(payload, key, algorithm=alg, headers=headers)

    def settings(self) -> JwtSettings:
        return JwtSettings(jwks_path=self.path, issuer=ISSUER, audience=AUDIENCE)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def idp(tmp_path: Path) -> _Idp:
    return _Idp(tmp_path / "jwks.json")


@pytest.fixture
def jwt_auth(idp: _Idp, tmp_path: Path) -> Iterator[Authenticator]:
    store = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    yield Authenticator(store, jwt=idp.settings())
    store.close()


def test_good_tokens(idp: _Idp, jwt_auth: Authenticator) -> None:
    assert jwt_auth.authenticate(f"Bearer {idp.token()}", None) == Principal("svc-1", Role.CLIENT, None, "jwt")
    analyst = jwt_auth.authenticate(f"Bearer {idp.token(kid='ed-1', alg='EdDSA', role='analyst')}", None)
    assert analyst == Principal("svc-1", Role.ANALYST, None, "jwt")
    old = idp.token(exp=int(time.time()) - 10)  # within the 30 s leeway
    assert jwt_auth.authenticate(f"Bearer {old}", None).client == "svc-1"


def test_bad_tokens(idp: _Idp, jwt_auth: Authenticator) -> None:
    now = int(time.time())
    bad = {
        "expired": idp.token(exp=now - 120),
        "wrong issuer": idp.token(iss="https://evil.example.org/"),
        "wrong audience": idp.token(aud="another-service"),
        "no exp": idp.token(exp=None),
        "no sub": idp.token(sub=None),
        "no aud": idp.token(aud=None),
        "bad subject": idp.token(sub="<script>alert(1)</script>"),
        "anonymous subject": idp.token(sub="anonymous"),
        "unknown role": idp.token(role="root"),
        "role not a string": idp.token(role=["admin"]),
        "unknown kid": idp.token(kid="ec-9"),
        "no kid with two keys": idp.token(kid=None),
        "kid of the other key": idp.token(kid="ed-1"),  # ES256 signature, Ed25519 key
        "not before": idp.token(nbf=now + 600),
        "garbage": "eyJhbGciOi.not.a-token",
    }
    for name, token in bad.items():
        error = _refused(jwt_auth, f"Bearer {token}")
        assert error.reason in {"token", "malformed"}, name


def test_alg_none_and_hmac_with_the_public_key_are_refused(idp: _Idp, jwt_auth: Authenticator) -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-1", "exp": int(time.time()) + 300}
    body = _b64(json.dumps(claims).encode())
    none = _b64(json.dumps({"alg": "none", "kid": "ec-1"}).encode()) + "." + body + "."
    assert _refused(jwt_auth, f"Bearer {none}").reason == "token"
    # HS256 "signed" with the public key as the secret, in every form a confused verifier might use
    public_pem = idp.ec.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, json.dumps(idp.jwk("ec-1")).encode()):
        head = _b64(json.dumps({"alg": "HS256", "kid": "ec-1", "typ": "JWT"}).encode())
        signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        assert _refused(jwt_auth, f"Bearer {head}.{body}.{_b64(signature)}").reason == "token"


def test_jwt_settings_refuse_symmetric_algorithms(tmp_path: Path) -> None:
    for algorithms in [("HS256",), ("none",), ("ES256", "HS512"), ()]:
        with pytest.raises(InvalidParameterError):
            JwtSettings(tmp_path / "jwks.json", ISSUER, AUDIENCE, algorithms=algorithms)


def test_jwks_reloaded_when_the_file_changes(idp: _Idp, jwt_auth: Authenticator) -> None:
    token = idp.token()
    jwt_auth.authenticate(f"Bearer {token}", None)
    idp.write(["ed-1"])  # the EC key is rotated out
    assert _refused(jwt_auth, f"Bearer {token}").reason == "token"
    assert jwt_auth.authenticate(f"Bearer {idp.token(kid=None, alg='EdDSA')}", None).via == "jwt"  # the only key
    idp.write(["ec-1", "ed-1"])
    assert jwt_auth.authenticate(f"Bearer {token}", None).client == "svc-1"


def test_unusable_jwks_files(idp: _Idp, tmp_path: Path) -> None:
    store = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    settings = idp.settings()
    idp.path.write_text("{not json")
    with pytest.raises(FileFormatError, match="not usable"):
        Authenticator(store, jwt=settings)
    idp.write([], extra=[{"kty": "oct", "k": _b64(b"s" * 32), "kid": "hmac"}])  # a symmetric key only
    with pytest.raises(FileFormatError, match="no key for the accepted algorithms"):
        Authenticator(store, jwt=settings)
    idp.path.unlink()
    with pytest.raises(FileFormatError, match="Cannot read"):
        Authenticator(store, jwt=settings)
    store.close()


def test_api_keys_still_work_beside_jwt(idp: _Idp, jwt_auth: Authenticator) -> None:
    secret, _ = jwt_auth.store.create("acme", Role.CLIENT)
    jwt_auth.refresh()  # this process made the key: no need to wait for a reload
    assert jwt_auth.authenticate(f"Bearer {secret}", None).via == "api-key"
    assert _refused(jwt_auth, None, idp.token()).reason == "malformed"  # X-API-Key takes keys only
