"""Key pairs for signing and for encryption, classical and post-quantum hybrid, as PEM files.

    >>> from modelshield.supply_chain.keys import KeyAlgorithm, generate_keypair, write_keypair
    >>> keys = generate_keypair(KeyAlgorithm.HYBRID)
    >>> keys.public().algorithm
    <KeyAlgorithm.HYBRID: 'hybrid'>
    >>> write_keypair(keys, Path("keys/"), passphrase=b"...")  # doctest: +SKIP

Algorithms:

- ``ed25519`` and ``ecdsa-p256``: one classical signing key. ``ecdsa-p256`` is what the OpenSSF model-signing
  tool verifies.
- ``hybrid``: ECDSA P-256 plus ML-DSA-65 (FIPS 204); a signature holds only when both halves verify, so it stays
  sound if either scheme is broken (a quantum computer against P-256, a flaw in the young lattice scheme).
- ``x25519-mlkem768``: an encryption recipient, X25519 plus ML-KEM-768 (FIPS 203), for wrapping data keys.

A key file is one or two PKCS #8 (private) or SubjectPublicKeyInfo (public) PEM blocks, in the order above, so
standard tools read each half. Private keys are encrypted with the passphrase when one is given (PKCS #8
encryption as ``cryptography`` chooses it, scrypt-based or PBES2) and written with mode 0600.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, x25519

from modelshield._internal.atomic import write_bytes_atomic
from modelshield.errors import FileFormatError, InvalidParameterError

__all__ = [
    "KeyAlgorithm",
    "PrivateKeySet",
    "PublicKeySet",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "passphrase_from_env",
    "write_keypair",
]

PrivateKey: TypeAlias = (
    ed25519.Ed25519PrivateKey
    | ec.EllipticCurvePrivateKey
    | mldsa.MLDSA65PrivateKey
    | x25519.X25519PrivateKey
    | mlkem.MLKEM768PrivateKey
)
PublicKey: TypeAlias = (
    ed25519.Ed25519PublicKey
    | ec.EllipticCurvePublicKey
    | mldsa.MLDSA65PublicKey
    | x25519.X25519PublicKey
    | mlkem.MLKEM768PublicKey
)


class KeyAlgorithm(enum.StrEnum):
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"
    HYBRID = "hybrid"  # ECDSA P-256 + ML-DSA-65
    X25519_MLKEM768 = "x25519-mlkem768"  # encryption recipients

    @property
    def signs(self) -> bool:
        return self is not KeyAlgorithm.X25519_MLKEM768


def _kind(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "p256" if isinstance(key.curve, ec.SECP256R1) else f"ec-{key.curve.name}"
    if isinstance(key, mldsa.MLDSA65PrivateKey | mldsa.MLDSA65PublicKey):
        return "mldsa65"
    if isinstance(key, x25519.X25519PrivateKey | x25519.X25519PublicKey):
        return "x25519"
    return "mlkem768"


_LAYOUT: dict[tuple[str, ...], KeyAlgorithm] = {
    ("ed25519",): KeyAlgorithm.ED25519,
    ("p256",): KeyAlgorithm.ECDSA_P256,
    ("p256", "mldsa65"): KeyAlgorithm.HYBRID,
    ("x25519", "mlkem768"): KeyAlgorithm.X25519_MLKEM768,
}


def _algorithm(keys: tuple[PrivateKey, ...] | tuple[PublicKey, ...], path: Path | None = None) -> KeyAlgorithm:
    kinds = tuple(_kind(k) for k in keys)
    algorithm = _LAYOUT.get(kinds)
    if algorithm is None:
        where = f"{path}: " if path else ""
        raise FileFormatError(
            f"{where}keys {', '.join(kinds) or 'none'} are not a supported combination.",
            remedy=_SUPPORTED,
        )
    return algorithm


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class PublicKeySet:
    """The public half: one key, or two for the hybrid algorithms (classical first)."""

    keys: tuple[PublicKey, ...]

    @property
    def algorithm(self) -> KeyAlgorithm:
        return _algorithm(self.keys)

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) over the DER SubjectPublicKeyInfo of each key, in order."""
        h = hashlib.sha256()
        for key in self.keys:
            h.update(_spki(key))
        return h.hexdigest()

    def pem(self) -> bytes:
        return b"".join(
            k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            for k in self.keys
        )


@dataclass(frozen=True, repr=False)
class PrivateKeySet:
    """The private half. Its repr never shows key material."""

    keys: tuple[PrivateKey, ...]

    @property
    def algorithm(self) -> KeyAlgorithm:
        return _algorithm(self.keys)

    def public(self) -> PublicKeySet:
        return PublicKeySet(tuple(k.public_key() for k in self.keys))

    def pem(self, passphrase: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return b"".join(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
            for k in self.keys
        )

    def __repr__(self) -> str:
        return f"PrivateKeySet(algorithm={self.algorithm.value!r}, fingerprint={self.public().fingerprint[:16]})"


def generate_keypair(algorithm: KeyAlgorithm | str) -> PrivateKeySet:
    """A fresh key pair for ``algorithm``."""
    try:
        algorithm = KeyAlgorithm(algorithm)
    except ValueError as exc:
        raise InvalidParameterError(
            f"Unknown key algorithm {algorithm!r}; choose one of {', '.join(a.value for a in KeyAlgorithm)}."
        ) from exc
    keys: tuple[PrivateKey, ...]
    if algorithm is KeyAlgorithm.ED25519:
        keys = (ed25519.Ed25519PrivateKey.generate(),)
    elif algorithm is KeyAlgorithm.ECDSA_P256:
        keys = (ec.generate_private_key(ec.SECP256R1()),)
    elif algorithm is KeyAlgorithm.HYBRID:
        keys = (ec.generate_private_key(ec.SECP256R1()), mldsa.MLDSA65PrivateKey.generate())
    else:
        keys = (x25519.X25519PrivateKey.generate(), mlkem.MLKEM768PrivateKey.generate())
    return PrivateKeySet(keys)


def write_keypair(
    keys: PrivateKeySet, directory: Path, *, name: str = "modelshield", passphrase: bytes | None = None
) -> tuple[Path, Path]:
    """Write ``NAME.key`` (mode 0600) and ``NAME.pub`` into ``directory``; refuses to overwrite either."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise InvalidParameterError(f"Key name {name!r} must be letters, digits, '.', '_' or '-' (64 at most).")
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private, public):
        if path.exists():
            raise FileFormatError(f"{path} already exists.", remedy="Choose another --out directory or --name.")
    write_bytes_atomic(private, keys.pem(passphrase), mode=0o600)
    try:
        write_bytes_atomic(public, keys.public().pem())
    except BaseException:
        private.unlink(missing_ok=True)
        raise
    return private, public


_PRIVATE_TYPES = (
    ed25519.Ed25519PrivateKey,
    ec.EllipticCurvePrivateKey,
    mldsa.MLDSA65PrivateKey,
    x25519.X25519PrivateKey,
    mlkem.MLKEM768PrivateKey,
)
_PUBLIC_TYPES = (
    ed25519.Ed25519PublicKey,
    ec.EllipticCurvePublicKey,
    mldsa.MLDSA65PublicKey,
    x25519.X25519PublicKey,
    mlkem.MLKEM768PublicKey,
)
_SUPPORTED = "Use ed25519, ecdsa-p256, hybrid or x25519-mlkem768 keys (`modelshield keygen`)."
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)
_MAX_KEY_FILE = 1 << 20


def _blocks(path: Path) -> list[bytes]:
    try:
        if path.stat().st_size > _MAX_KEY_FILE:
            raise FileFormatError(f"{path} is too large to be a key file.")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise FileFormatError(f"Key file {path} does not exist.", remedy="Check the path.") from exc
    except IsADirectoryError as exc:
        raise FileFormatError(f"{path} is a directory, not a key file.", remedy="Pass the .key or .pub file.") from exc
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise FileFormatError(f"{path} holds no PEM key.", remedy="Pass a key file written by `modelshield keygen`.")
    return blocks


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKeySet:
    """The private key(s) in ``path``; a wrong or missing passphrase is a clear error, never a traceback."""
    keys: list[PrivateKey] = []
    for block in _blocks(path):
        if b"PUBLIC KEY" in block.split(b"\n", 1)[0]:
            raise FileFormatError(f"{path} is a public key.", remedy="Pass the private key (.key) to sign.")
        try:
            key = serialization.load_pem_private_key(block, passphrase)
        except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
            problem = "the key is encrypted and needs a passphrase" if not passphrase else "the key is not encrypted"
            fix = "Give the passphrase through --passphrase-env VAR." if not passphrase else "Drop the passphrase."
            raise FileFormatError(f"{path}: {problem}.", remedy=fix) from exc
        except ValueError as exc:
            raise FileFormatError(
                f"{path}: cannot read the private key (wrong passphrase, or not a key).",
                remedy="Check the passphrase and the file.",
            ) from exc
        if not isinstance(key, _PRIVATE_TYPES) or (
            isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name != "secp256r1"
        ):
            raise FileFormatError(f"{path}: {type(key).__name__} keys are not supported.", remedy=_SUPPORTED)
        keys.append(key)
    result = PrivateKeySet(tuple(keys))
    _algorithm(result.keys, path)
    return result


def load_public_key(path: Path) -> PublicKeySet:
    """The public key(s) in ``path``."""
    keys: list[PublicKey] = []
    for block in _blocks(path):
        try:
            key = serialization.load_pem_public_key(block)
        except ValueError as exc:
            raise FileFormatError(f"{path}: not a public key ({exc}).", remedy="Pass the .pub file.") from exc
        if not isinstance(key, _PUBLIC_TYPES) or (
            isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name != "secp256r1"
        ):
            raise FileFormatError(f"{path}: {type(key).__name__} keys are not supported.", remedy=_SUPPORTED)
        keys.append(key)
    result = PublicKeySet(tuple(keys))
    _algorithm(result.keys, path)
    return result


def passphrase_from_env(variable: str | None) -> bytes | None:
    """The passphrase held in environment variable ``variable`` (never passed on the command line)."""
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise InvalidParameterError(
            f"Environment variable {variable} is not set or empty.", remedy=f"export {variable}=... first."
        )
    return value.encode("utf-8")
