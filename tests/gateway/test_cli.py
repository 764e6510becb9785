"""The gateway's command line: keys, TLS and JWT against a running server, the log commands, bad input."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from modelshield.cli import main

from .conftest import Running, Site


def _body() -> dict[str, object]:
    return {"inputs": [{"name": "input", "shape": [1, 9], "datatype": "FP32", "data": [0.0] * 9}]}


def test_keys_create_list_revoke(site: Site, serve: Callable[..., Running], capsys: pytest.CaptureFixture[str]) -> None:
    config = site.config({"auth": {"key_refresh_s": 0.2}})
    running = serve(config)
    assert main(["gateway", "keys", "create", "--config", str(config), "--client", "k1", "--budget", "50"]) == 0
    captured = capsys.readouterr()
    secret = captured.out.strip()
    assert secret.startswith("msk_") and secret not in captured.err
    time.sleep(0.25)  # another process's new key is seen at the next miss reload (at most every 0.2 s)
    url = f"{running.url}/v2/models/phishing-lr/infer"
    assert httpx.post(url, json=_body(), headers={"X-API-Key": secret}).status_code == 200
    assert main(["gateway", "keys", "list", "--config", str(config), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    (entry,) = [k for k in listed if k["client"] == "k1"]
    assert entry["rows_per_day"] == 50 and entry["status"] == "active"
    assert secret not in json.dumps(listed)
    assert main(["gateway", "keys", "revoke", "--config", str(config), entry["key_id"]]) == 0
    deadline = time.monotonic() + 5
    while httpx.post(url, json=_body(), headers={"X-API-Key": secret}).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.05)
    assert main(["gateway", "keys", "revoke", "--config", str(config), "0123456789abcdef"]) == 2
    assert main(["gateway", "keys", "create", "--config", str(config), "--client", "bad name<script>"]) == 2
    assert main(["gateway", "keys", "create", "--config", str(config), "--client", "x", "--role", "root"]) == 2


def test_log_verify_names_the_edited_record(
    site: Site, serve: Callable[..., Running], capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    config = site.config()
    running = serve(config)
    assert main(["gateway", "keys", "create", "--config", str(config), "--client", "k2"]) == 0
    secret = capsys.readouterr().out.strip()
    time.sleep(0.25)  # another process's new key is seen at the next miss reload (at most every 0.2 s)
    for _ in range(4):
        httpx.post(f"{running.url}/v2/models/phishing-lr/infer", json=_body(), headers={"X-API-Key": secret})
    running.stop()
    assert main(["gateway", "log", "verify", "--config", str(config)]) == 0
    assert "verified" in capsys.readouterr().out
    with sqlite3.connect(site.root / "gateway.db") as db:
        seq = db.execute("SELECT min(seq) FROM ms_audit_records WHERE kind = 'infer'").fetchone()[0]
        db.execute("UPDATE ms_audit_records SET client = 'someone-else' WHERE seq = ?", (seq,))
    assert main(["gateway", "log", "verify", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert ("NOT VERIFIED" in out and f"#{seq}" in out) or f"record {seq}" in out, out
    assert main(["gateway", "log", "export", "--config", str(config), "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["gateway", "log", "export", "--config", str(config), "--since", "yesterday"]) == 2


def _self_signed(root: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = root / "cert.pem", root / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.slow
def test_serve_over_tls_sends_hsts(site: Site, tmp_path: Path) -> None:
    import ssl
    import subprocess
    import sys

    from .conftest import free_port

    cert, key = _self_signed(tmp_path)
    config = site.config()
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelshield",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--ssl-certfile",
                str(cert),
                "--ssl-keyfile",
                str(key),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            context = ssl.create_default_context(cafile=cert)
            deadline = time.monotonic() + 60
            while True:
                try:
                    response = httpx.get(f"https://127.0.0.1:{port}/v2/health/live", verify=context)
                    break
                except httpx.HTTPError:
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert response.status_code == 200
            assert response.headers["strict-transport-security"].startswith("max-age=")
        finally:
            process.kill()
            process.wait()


def test_jwt_bearer_tokens(site: Site, serve: Callable[..., Running]) -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "ES256", "use": "sig"})
    (site.root / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    running = serve(
        site.config({"auth": {"jwt_jwks": "jwks.json", "jwt_issuer": "https://idp.test", "jwt_audience": "gw"}})
    )

    def token(**claims: object) -> str:
        base = {"sub": "svc-a", "iss": "https://idp.test", "aud": "gw", "exp": int(time.time()) + 60}
        return jwt.encode({**base, **claims}, key, algorithm="ES256", headers={"kid": "k1"})

    url = f"{running.url}/v2/models/phishing-lr/infer"
    ok = httpx.post(url, json=_body(), headers={"Authorization": f"Bearer {token()}"})
    assert ok.status_code == 200
    for bad in (token(aud="other"), token(iss="https://evil"), token(exp=int(time.time()) - 600)):
        assert httpx.post(url, json=_body(), headers={"Authorization": f"Bearer {bad}"}).status_code == 401
    analyst = httpx.post(url, json=_body(), headers={"Authorization": f"Bearer {token(role='analyst')}"})
    assert analyst.status_code == 403
