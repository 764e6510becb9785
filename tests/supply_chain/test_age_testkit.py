"""The C2SP CCTV age test vectors (made by the age reference implementation) through modelshield's decryption.

Each vector names the outcome: ``success`` (the plaintext's SHA-256 is given), ``no match`` (no stanza unwraps
with the identities given), ``HMAC failure``, ``header failure`` (the header must be refused while parsing or
unwrapping) or ``payload failure`` (STREAM must fail, and whatever plaintext was released before must match the
hash). modelshield reports no match, HMAC and payload failures as :class:`VerificationError`; a header failure is
a :class:`VerificationError` (malformed), a :class:`FileFormatError` (not age v1) or, for a stanza of a known type
that does not fit the credential, nothing else; the message tells which.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import pytest

from modelshield.errors import FileFormatError, InvalidParameterError, VerificationError
from modelshield.supply_chain.encryption import EncryptionResult, decrypt_file, decrypt_stream
from modelshield.supply_chain.keys import KeyAlgorithm, generate_keypair, parse_age_identity

TESTKIT = Path(__file__).parent / "data" / "age-testkit"
VECTORS = sorted(p for p in TESTKIT.iterdir() if p.name != "README.md")


def _parse(path: Path) -> tuple[dict[str, list[str]], bytes]:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    meta: dict[str, list[str]] = {}
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        meta.setdefault(key, []).append(value)
    if meta.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return meta, body


def _decrypt(meta: dict[str, list[str]], body: bytes, writer: io.BytesIO) -> EncryptionResult:
    # "empty" (a zero-byte file) names no credential: any identity shows that the file is refused.
    identities = [parse_age_identity(i) for i in meta.get("identity", [])] or [generate_keypair(KeyAlgorithm.X25519)]
    passphrases = meta.get("passphrase", [])
    if passphrases:  # one, or two for "scrypt_double", which is refused before either is tried
        return decrypt_stream(io.BytesIO(body), writer, passphrase=passphrases[0].encode(), max_scrypt_work_factor=22)
    return decrypt_stream(io.BytesIO(body), writer, identities=identities)


def test_the_testkit_is_complete() -> None:
    assert len(VECTORS) == 110
    expectations = {_parse(p)[0]["expect"][0] for p in VECTORS}
    assert expectations == {"success", "no match", "HMAC failure", "header failure", "payload failure"}


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.name)
def test_vector(path: Path) -> None:
    meta, body = _parse(path)
    (expect,) = meta["expect"]
    released = io.BytesIO()
    if expect == "success":
        result = _decrypt(meta, body, released)
        assert hashlib.sha256(released.getvalue()).hexdigest() == meta["payload"][0]
        assert result.plaintext_bytes == len(released.getvalue())
        assert result.ciphertext_bytes == len(body)
        return
    errors: tuple[type[Exception], ...] = (VerificationError,)
    if expect == "header failure":
        errors = (VerificationError, FileFormatError)
    with pytest.raises(errors) as info:
        _decrypt(meta, body, released)
    message = str(info.value)
    if expect == "no match":
        assert "unwraps with" in message or "does not unwrap" in message, message
    elif expect == "HMAC failure":
        assert "header MAC does not verify" in message
    elif expect == "payload failure":
        assert "header MAC" not in message and "unwrap" not in message, message
        assert hashlib.sha256(released.getvalue()).hexdigest() == meta["payload"][0]
    else:
        assert "unwrap" not in message, message  # refused as malformed, not as a wrong key


@pytest.mark.parametrize(
    "name", ["x25519", "hybrid", "scrypt", "stream_bad_tag_second_chunk", "hmac_bad", "x25519_low_order"]
)
def test_the_file_api_releases_nothing_on_failure(name: str, tmp_path: Path) -> None:
    meta, body = _parse(TESTKIT / name)
    src, dst = tmp_path / "in.age", tmp_path / "out.bin"
    src.write_bytes(body)
    kwargs: dict[str, object] = (
        {"passphrase": meta["passphrase"][0].encode(), "max_scrypt_work_factor": 22}
        if "passphrase" in meta
        else {"identities": [parse_age_identity(i) for i in meta["identity"]]}
    )
    if meta["expect"] == ["success"]:
        decrypt_file(src, dst, **kwargs)  # type: ignore[arg-type]
        assert hashlib.sha256(dst.read_bytes()).hexdigest() == meta["payload"][0]
        return
    with pytest.raises((VerificationError, InvalidParameterError)):
        decrypt_file(src, dst, **kwargs)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.age"]
