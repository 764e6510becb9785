"""Writes encryption-kat.json: known-answer vectors for modelshield's age encryption (run from the repository root).

    $ .venv/bin/python tests/supply_chain/data/make_encryption_kat.py

Every random input is fixed: key material is SHA-256 of a label, and the file key, payload nonce, X25519 ephemeral
secrets and scrypt salt are handed to ``encryption._encrypt`` in the order it draws them. The one exception is the
post-quantum stanza: ``cryptography``'s HPKE draws its ML-KEM and X25519 randomness itself, so the generator records
the stanza it made, and the test injects that stanza (after checking that it was made for the vector's file key and
recipient by decrypting it). Running this again therefore changes the mlkem768x25519 vectors (a fresh stanza) and
nothing else.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hpke

from modelshield.supply_chain import _age
from modelshield.supply_chain.encryption import _encrypt
from modelshield.supply_chain.keys import parse_age_identity

OUT = Path(__file__).with_name("encryption-kat.json")
CHUNK = _age.CHUNK_SIZE


def fixed(label: str, size: int = 32) -> bytes:
    return hashlib.sha256(f"modelshield-kat {label}".encode()).digest()[:size]


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def queue(draws: list[bytes]) -> Callable[[int], bytes]:
    pending = list(draws)

    def entropy(size: int) -> bytes:
        value = pending.pop(0)
        assert len(value) == size, (len(value), size)
        return value

    return entropy


VECTORS: list[dict[str, object]] = [
    {
        "name": "x25519-two-recipients",
        "identities": [f"x25519 identity {i}" for i in (1, 2)],
        "kind": "X25519",
        "plaintext": {"text": "modelshield known-answer test\n"},
    },
    {
        "name": "x25519-three-chunks",
        "identities": ["x25519 identity 1"],
        "kind": "X25519",
        "plaintext": {"pattern": 2 * CHUNK + 100},
    },
    {"name": "x25519-empty", "identities": ["x25519 identity 1"], "kind": "X25519", "plaintext": {"text": ""}},
    {
        "name": "scrypt",
        "passphrase": "correct horse battery staple",
        "work_factor": 15,
        "kind": "scrypt",
        "plaintext": {"text": "modelshield known-answer test\n"},
    },
    {
        "name": "mlkem768x25519",
        "identities": ["hybrid identity 1"],
        "kind": "mlkem768x25519",
        "plaintext": {"text": "modelshield known-answer test\n"},
    },
    {
        "name": "mlkem768x25519-exact-chunk",
        "identities": ["hybrid identity 1"],
        "kind": "mlkem768x25519",
        "plaintext": {"pattern": CHUNK},
    },
    {
        "name": "mlkem768x25519-two-recipients-three-chunks",
        "identities": ["hybrid identity 1", "hybrid identity 2"],
        "kind": "mlkem768x25519",
        "plaintext": {"pattern": 2 * CHUNK + 100},
    },
]


def plaintext_of(spec: dict[str, object]) -> bytes:
    return str(spec["text"]).encode() if "text" in spec else pattern(int(str(spec["pattern"])))


def main() -> None:
    vectors = []
    for spec in VECTORS:
        name, kind = str(spec["name"]), str(spec["kind"])
        vector: dict[str, object] = {"name": name, "plaintext": spec["plaintext"]}
        plaintext = plaintext_of(spec["plaintext"])  # type: ignore[arg-type]
        file_key, nonce = fixed(f"{name} file key", 16), fixed(f"{name} nonce", 16)
        draws, recipients = [file_key], []
        stanzas: list[dict[str, object]] = []
        if kind == "scrypt":
            salt = fixed(f"{name} salt", 16)
            draws.append(salt)
            vector |= {"passphrase": spec["passphrase"], "work_factor": spec["work_factor"], "salt": salt.hex()}
        else:
            prefix = "AGE-SECRET-KEY-1" if kind == "X25519" else "AGE-SECRET-KEY-PQ-1"
            identities = []
            for label in spec["identities"]:  # type: ignore[attr-defined]
                hrp = "age-secret-key-" if kind == "X25519" else "age-secret-key-pq-"
                identities.append(_age.bech32_encode(hrp, fixed(label)).upper())
                assert identities[-1].startswith(prefix)
            recipients = [parse_age_identity(i).public() for i in identities]
            vector |= {"identities": identities, "recipients": [r.age_recipient() for r in recipients]}
            if kind == "X25519":
                ephemerals = [fixed(f"{name} ephemeral {i}") for i in range(len(recipients))]
                draws += ephemerals
                vector["ephemeral_secrets"] = [e.hex() for e in ephemerals]
        draws.append(nonce)

        def record(
            key: bytes, public: hpke.MLKEM768X25519PublicKey, stanzas: list[dict[str, object]] = stanzas
        ) -> _age.Stanza:
            stanza = _age.wrap_hybrid(key, public)
            stanzas.append({"args": list(stanza.args), "body": stanza.body.hex()})
            return stanza

        out = io.BytesIO()
        _encrypt(
            io.BytesIO(plaintext),
            out,
            recipients=recipients,
            passphrase=str(spec["passphrase"]).encode() if kind == "scrypt" else None,
            work_factor=int(str(spec.get("work_factor", 18))),
            entropy=queue(draws),
            wrap_hybrid=record,
        )
        ciphertext = out.getvalue()
        vector |= {"file_key": file_key.hex(), "payload_nonce": nonce.hex()}
        if stanzas:
            vector["recorded_stanzas"] = stanzas
        vector["ciphertext_bytes"] = len(ciphertext)
        vector["ciphertext_sha256"] = hashlib.sha256(ciphertext).hexdigest()
        if len(ciphertext) <= 4096:
            vector["ciphertext"] = ciphertext.hex()
        vectors.append(vector)
    document = {
        "description": "Known-answer vectors for modelshield encryption (age v1). Generated by "
        "make_encryption_kat.py; see its docstring for what is fixed and how.",
        "format": "age-encryption.org/v1",
        "vectors": vectors,
    }
    OUT.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
