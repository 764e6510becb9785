"""Known-answer vectors (data/encryption-kat.json, written by data/make_encryption_kat.py): encryption with every
random input fixed gives the recorded bytes, decryption gives the plaintext back, and each field of the file,
changed, truncated or reordered, is refused."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke

from modelshield.errors import FileFormatError, VerificationError
from modelshield.supply_chain import _age
from modelshield.supply_chain.encryption import _encrypt, decrypt_stream
from modelshield.supply_chain.keys import parse_age_identity, parse_age_recipient

DATA = Path(__file__).parent / "data"
VECTORS: list[dict[str, Any]] = json.loads((DATA / "encryption-kat.json").read_text())["vectors"]
BY_NAME = {v["name"]: v for v in VECTORS}


def _plaintext(vector: dict[str, Any]) -> bytes:
    spec = vector["plaintext"]
    return spec["text"].encode() if "text" in spec else bytes(i % 251 for i in range(spec["pattern"]))


def _draws(vector: dict[str, Any]) -> list[bytes]:
    """The random bytes in the order encryption draws them: file key, per-stanza randomness, payload nonce."""
    stanza = [bytes.fromhex(e) for e in vector.get("ephemeral_secrets", [])]
    if "salt" in vector:
        stanza = [bytes.fromhex(vector["salt"])]
    return [bytes.fromhex(vector["file_key"]), *stanza, bytes.fromhex(vector["payload_nonce"])]


def _replay(vector: dict[str, Any]) -> Callable[[bytes, hpke.MLKEM768X25519PublicKey], _age.Stanza]:
    """Hand out the recorded post-quantum stanzas, after checking each opens to the file key for its recipient."""
    recorded = [_age.Stanza(tuple(s["args"]), bytes.fromhex(s["body"])) for s in vector.get("recorded_stanzas", [])]
    identities = [parse_age_identity(i) for i in vector.get("identities", [])] if recorded else []
    pending = list(zip(recorded, identities, strict=True))

    def wrap(file_key: bytes, public: hpke.MLKEM768X25519PublicKey) -> _age.Stanza:
        stanza, identity = pending.pop(0)
        x, k = identity.keys
        private = hpke.MLKEM768X25519PrivateKey(k, x)  # type: ignore[arg-type]
        assert _age.unwrap_hybrid(stanza, private, x, "kat") == file_key  # type: ignore[arg-type]
        return stanza

    return wrap


def _encrypt_vector(vector: dict[str, Any]) -> bytes:
    draws = _draws(vector)

    def entropy(size: int) -> bytes:
        value = draws.pop(0)
        assert len(value) == size
        return value

    out = io.BytesIO()
    _encrypt(
        io.BytesIO(_plaintext(vector)),
        out,
        recipients=[parse_age_recipient(r) for r in vector.get("recipients", [])],
        passphrase=vector["passphrase"].encode() if "passphrase" in vector else None,
        work_factor=vector.get("work_factor", 18),
        entropy=entropy,
        wrap_hybrid=_replay(vector),
    )
    assert draws == []
    return out.getvalue()


def _decrypt(blob: bytes, vector: dict[str, Any], identity: int = 0) -> bytes:
    out = io.BytesIO()
    if "passphrase" in vector:
        decrypt_stream(io.BytesIO(blob), out, passphrase=vector["passphrase"].encode())
    else:
        decrypt_stream(io.BytesIO(blob), out, identities=[parse_age_identity(vector["identities"][identity])])
    return out.getvalue()


def test_the_vectors_cover_each_kind_and_size() -> None:
    assert {v["name"] for v in VECTORS} == {
        "x25519-two-recipients",
        "x25519-three-chunks",
        "x25519-empty",
        "scrypt",
        "mlkem768x25519",
        "mlkem768x25519-exact-chunk",
        "mlkem768x25519-two-recipients-three-chunks",
    }


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_keys_map_to_the_recorded_age_strings(vector: dict[str, Any]) -> None:
    for identity, recipient in zip(vector.get("identities", []), vector.get("recipients", []), strict=True):
        keys = parse_age_identity(identity)
        assert keys.age_identity() == identity
        assert keys.public().age_recipient() == recipient


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_encryption_gives_the_recorded_bytes(vector: dict[str, Any]) -> None:
    blob = _encrypt_vector(vector)
    assert len(blob) == vector["ciphertext_bytes"]
    assert hashlib.sha256(blob).hexdigest() == vector["ciphertext_sha256"]
    if "ciphertext" in vector:
        assert blob.hex() == vector["ciphertext"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_decryption_gives_the_plaintext(vector: dict[str, Any]) -> None:
    blob = bytes.fromhex(vector["ciphertext"]) if "ciphertext" in vector else _encrypt_vector(vector)
    for index in range(len(vector.get("identities", [None]))):
        assert _decrypt(blob, vector, index) == _plaintext(vector)


# --- every field of a known file, changed --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def known() -> tuple[dict[str, Any], bytes, int]:
    """The two-recipient, three-chunk post-quantum vector: its bytes and the size of its header."""
    vector = BY_NAME["mlkem768x25519-two-recipients-three-chunks"]
    blob = _encrypt_vector(vector)
    return vector, blob, _age.read_header(io.BytesIO(blob), "kat").size


def _flip(blob: bytes, offset: int) -> bytes:
    changed = bytearray(blob)
    changed[offset] ^= 0x01
    return bytes(changed)


def _fields(blob: bytes, header: int) -> dict[str, int]:
    """An offset inside each field of the file."""
    text = blob[:header]
    first_stanza = text.index(b"-> mlkem768x25519 ")
    second_stanza = text.index(b"-> mlkem768x25519 ", first_stanza + 1)
    body_line = text.index(b"\n", first_stanza) + 1
    mac = text.index(b"\n--- ") + 5
    return {
        "version line": 5,
        "stanza type": first_stanza + 5,
        "stanza enc (ML-KEM part)": first_stanza + 30,
        "stanza enc (X25519 part)": body_line - 10,
        "stanza body": body_line + 3,
        "second stanza": second_stanza + 40,
        "MAC": mac + 10,
        "payload nonce": header + 3,
        "chunk 0": header + 16 + 100,
        "chunk 1 tag": header + 16 + 2 * (_age.CHUNK_SIZE + 16) - 1,
        "final chunk": len(blob) - 30,
    }


@pytest.mark.parametrize(
    "field",
    [
        "version line",
        "stanza type",
        "stanza enc (ML-KEM part)",
        "stanza enc (X25519 part)",
        "stanza body",
        "second stanza",
        "MAC",
        "payload nonce",
        "chunk 0",
        "chunk 1 tag",
        "final chunk",
    ],
)
def test_each_field_changed_is_refused(known: tuple[dict[str, Any], bytes, int], field: str) -> None:
    vector, blob, header = known
    offset = _fields(blob, header)[field]
    for identity in (0, 1):
        with pytest.raises((VerificationError, FileFormatError)):
            _decrypt(_flip(blob, offset), vector, identity)


def test_the_known_file_decrypts_unchanged(known: tuple[dict[str, Any], bytes, int]) -> None:
    vector, blob, _ = known
    assert _decrypt(blob, vector, 1) == _plaintext(vector)


@pytest.mark.parametrize("cut", [-1, -17, -(_age.CHUNK_SIZE + 16 + 116), 16, 0])
def test_truncated_known_file_is_refused(known: tuple[dict[str, Any], bytes, int], cut: int) -> None:
    vector, blob, header = known
    end = len(blob) + cut if cut < 0 else header + cut
    with pytest.raises(VerificationError):
        _decrypt(blob[:end], vector)


@pytest.mark.parametrize("order", [[1, 0, 2], [0, 2, 1], [0, 2], [0, 1, 1, 2], [2]])
def test_reordered_chunks_of_the_known_file_are_refused(
    known: tuple[dict[str, Any], bytes, int], order: list[int]
) -> None:
    vector, blob, header = known
    start, sealed = header + 16, _age.CHUNK_SIZE + 16
    chunks = [blob[start + i * sealed : start + (i + 1) * sealed] for i in range(3)]
    with pytest.raises(VerificationError, match=r"does not authenticate|without a final chunk"):
        _decrypt(blob[:start] + b"".join(chunks[i] for i in order), vector)
