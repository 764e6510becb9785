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
- ``x25519``: an age encryption recipient (``age1...``), classical.
- ``x25519-mlkem768``: an age post-quantum hybrid recipient (``age1pq1...``): ML-KEM-768 (FIPS 203) and X25519
  combined (MLKEM768-X25519, "X-Wing"), so a file stays confidential if either is broken.

Signing key files are one or two PKCS #8 (private) or SubjectPublicKeyInfo (public) PEM blocks, in the order
above, so standard tools read each half; private keys are encrypted with the passphrase when one is given (PKCS #8
encryption as ``cryptography`` chooses it) and written with mode 0600.

Encryption key files are age's own, so `age` and `rage` use them as they are: ``NAME.key`` is an identity file
(``AGE-SECRET-KEY-1...`` or ``AGE-SECRET-KEY-PQ-1...``; with a passphrase, that file encrypted with age's scrypt
recipient, as ``age-keygen | age -p`` writes it), ``NAME.pub`` a recipients file (``age1...`` or ``age1pq1...``).
The loaders also read an age identity or recipients file made by ``age-keygen``, and the PEM encryption keys that
modelshield wrote before it adopted age (those keep working, but have no ``AGE-SECRET-KEY-PQ-1`` form).
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, x25519

from modelshield._internal.atomic import write_bytes_atomic
from modelshield.errors import FileFormatError, InvalidParameterError
from modelshield.supply_chain import _age

__all__ = [
    "KeyAlgorithm",
    "PrivateKeySet",
    "PublicKeySet",
    "generate_keypair",
    "load_identities",
    "load_private_key",
    "load_public_key",
    "load_recipients",
    "parse_age_identity",
    "parse_age_recipient",
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
    X25519 = "x25519"  # age encryption recipients, classical
    X25519_MLKEM768 = "x25519-mlkem768"  # age encryption recipients, post-quantum hybrid (MLKEM768-X25519)

    @property
    def signs(self) -> bool:
        return self not in (KeyAlgorithm.X25519, KeyAlgorithm.X25519_MLKEM768)


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
    ("x25519",): KeyAlgorithm.X25519,
    ("x25519", "mlkem768"): KeyAlgorithm.X25519_MLKEM768,
}

_NOT_FOR_AGE = "Use an x25519 or x25519-mlkem768 key (`modelshield keygen --algorithm x25519-mlkem768`)."


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

    def age_recipient(self) -> str:
        """The age recipient string: ``age1...`` (x25519) or ``age1pq1...`` (x25519-mlkem768)."""
        match self.keys:
            case (x25519.X25519PublicKey() as x,):
                return _age.bech32_encode("age", x.public_bytes_raw())
            case (x25519.X25519PublicKey() as x, mlkem.MLKEM768PublicKey() as k):
                # MLKEM768-X25519 encodes the ML-KEM-768 key first, then the X25519 key.
                return _age.bech32_encode("age1pq", k.public_bytes_raw() + x.public_bytes_raw())
        raise InvalidParameterError(f"A {self.algorithm.value} key is not an age recipient.", remedy=_NOT_FOR_AGE)


@dataclass(frozen=True, repr=False)
class PrivateKeySet:
    """The private half. Its repr never shows key material.

    ``seed`` is the 32-byte age identity of an x25519-mlkem768 key made from one (both halves derive from it);
    None for keys read from PEM.
    """

    keys: tuple[PrivateKey, ...]
    seed: bytes | None = field(default=None, compare=False)

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

    def age_identity(self) -> str:
        """The age identity string: ``AGE-SECRET-KEY-1...`` (x25519) or ``AGE-SECRET-KEY-PQ-1...``."""
        match self.keys, self.seed:
            case (x25519.X25519PrivateKey() as x,), _:
                return _age.bech32_encode("age-secret-key-", x.private_bytes_raw()).upper()
            case (x25519.X25519PrivateKey(), mlkem.MLKEM768PrivateKey()), bytes() as seed:
                return _age.bech32_encode("age-secret-key-pq-", seed).upper()
            case (x25519.X25519PrivateKey(), mlkem.MLKEM768PrivateKey()), None:
                raise InvalidParameterError(
                    "This x25519-mlkem768 key was read from PEM (written by modelshield before it adopted age): its "
                    "two halves were generated apart, so it has no AGE-SECRET-KEY-PQ-1 form.",
                    remedy="It still works with modelshield; for age, generate a new key (`modelshield keygen`).",
                )
        raise InvalidParameterError(f"A {self.algorithm.value} key is not an age identity.", remedy=_NOT_FOR_AGE)

    def __repr__(self) -> str:
        return f"PrivateKeySet(algorithm={self.algorithm.value!r}, fingerprint={self.public().fingerprint[:16]})"


def _hybrid_from_seed(seed: bytes) -> PrivateKeySet:
    """MLKEM768-X25519 DeriveKeyPair: SHAKE256(seed) gives the ML-KEM-768 seed (d || z), then the X25519 key."""
    expanded = hashlib.shake_256(seed).digest(96)
    keys = (
        x25519.X25519PrivateKey.from_private_bytes(expanded[64:]),
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
    )
    return PrivateKeySet(keys, seed=seed)


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
    elif algorithm is KeyAlgorithm.X25519:
        keys = (x25519.X25519PrivateKey.generate(),)
    else:
        return _hybrid_from_seed(secrets.token_bytes(32))
    return PrivateKeySet(keys)


# The scrypt work factor of a passphrase-protected identity file: age's own default (256 MiB, about a second).
_KEY_FILE_WORK_FACTOR = 18
_KEY_FILE_MAX_WORK_FACTOR = 22


def _age_key_files(keys: PrivateKeySet, passphrase: bytes | None) -> tuple[bytes, bytes]:
    recipient = keys.public().age_recipient()
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    identity = f"# created: {created}\n# public key: {recipient}\n{keys.age_identity()}\n".encode("ascii")
    if passphrase:
        file_key = secrets.token_bytes(_age.FILE_KEY_SIZE)
        stanza = _age.wrap_scrypt(file_key, passphrase, _KEY_FILE_WORK_FACTOR, secrets.token_bytes(16))
        identity = _age.seal(identity, [stanza], file_key, secrets.token_bytes(_age.NONCE_SIZE))
    return identity, f"{recipient}\n".encode("ascii")


def write_keypair(
    keys: PrivateKeySet, directory: Path, *, name: str = "modelshield", passphrase: bytes | None = None
) -> tuple[Path, Path]:
    """Write ``NAME.key`` (mode 0600) and ``NAME.pub`` into ``directory``; refuses to overwrite either.

    Signing keys are PEM; encryption keys are an age identity file (passphrase-encrypted with age's scrypt
    recipient when ``passphrase`` is given) and an age recipients file, for `age -d -i` and `age -R` alike.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise InvalidParameterError(f"Key name {name!r} must be letters, digits, '.', '_' or '-' (64 at most).")
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private, public):
        if path.exists():
            raise FileFormatError(f"{path} already exists.", remedy="Choose another --out directory or --name.")
    if keys.algorithm.signs:
        private_bytes, public_bytes = keys.pem(passphrase), keys.public().pem()
    else:
        private_bytes, public_bytes = _age_key_files(keys, passphrase)
    write_bytes_atomic(private, private_bytes, mode=0o600)
    try:
        write_bytes_atomic(public, public_bytes)
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
_SUPPORTED = "Use ed25519, ecdsa-p256, hybrid, x25519 or x25519-mlkem768 keys (`modelshield keygen`)."
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)
_MAX_KEY_FILE = 1 << 20


def _read_key_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > _MAX_KEY_FILE:
            raise FileFormatError(f"{path} is too large to be a key file.")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise FileFormatError(f"Key file {path} does not exist.", remedy="Check the path.") from exc
    except IsADirectoryError as exc:
        raise FileFormatError(f"{path} is a directory, not a key file.", remedy="Pass the .key or .pub file.") from exc


def _is_pem(data: bytes) -> bool:
    """A PEM key file of modelshield's (an OpenSSH private key is PEM-like, but not one of ours)."""
    return not data.startswith(_age.VERSION_LINE) and b"-----BEGIN" in data and b"OPENSSH PRIVATE KEY" not in data


def _age_lines(data: bytes, path: Path) -> list[str]:
    """The non-comment lines of an age identity or recipients file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path} is neither a PEM key nor an age key file.", remedy=_SUPPORTED) from exc
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def parse_age_recipient(text: str) -> PublicKeySet:
    """The public key of an age recipient string, ``age1...`` (X25519) or ``age1pq1...`` (post-quantum hybrid)."""
    text = text.strip()
    decoded = _age.bech32_decode(text) if text == text.lower() else None
    if decoded is not None and decoded[0] == "age" and len(decoded[1]) == 32:
        return PublicKeySet((x25519.X25519PublicKey.from_public_bytes(decoded[1]),))
    if decoded is not None and decoded[0] == "age1pq" and len(decoded[1]) == 1184 + 32:
        raw = decoded[1]
        try:
            k_public = mlkem.MLKEM768PublicKey.from_public_bytes(raw[:1184])
        except ValueError as exc:
            raise InvalidParameterError(f"{_short(text)} holds an invalid ML-KEM-768 key.") from exc
        return PublicKeySet((x25519.X25519PublicKey.from_public_bytes(raw[1184:]), k_public))
    kind = "an SSH key" if text.startswith(("ssh-", "sk-ssh-")) else "a plug-in or tag recipient"
    if decoded is None or not text.startswith("age1"):
        kind = "not an age recipient"
    raise InvalidParameterError(
        f"{_short(text)!r} is {kind}; modelshield encrypts to age X25519 (age1...) and post-quantum hybrid "
        "(age1pq1...) recipients.",
        remedy="Pass a recipient from `age-keygen` (-pq for post-quantum) or `modelshield keygen`.",
    )


def parse_age_identity(text: str) -> PrivateKeySet:
    """The private key of an age identity string, ``AGE-SECRET-KEY-1...`` or ``AGE-SECRET-KEY-PQ-1...``."""
    text = text.strip()
    decoded = _age.bech32_decode(text) if text == text.upper() else None
    if decoded is not None and decoded[0] == "age-secret-key-" and len(decoded[1]) == 32:
        return PrivateKeySet((x25519.X25519PrivateKey.from_private_bytes(decoded[1]),))
    if decoded is not None and decoded[0] == "age-secret-key-pq-" and len(decoded[1]) == 32:
        return _hybrid_from_seed(decoded[1])
    kind = "a plug-in identity" if text.startswith("AGE-PLUGIN-") else "not an age identity"
    raise InvalidParameterError(
        f"The identity is {kind}; modelshield reads AGE-SECRET-KEY-1 and AGE-SECRET-KEY-PQ-1 identities.",
        remedy="Pass an identity file from `age-keygen` or `modelshield keygen`.",
    )


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:24]}…{text[-8:]}"


def _as_file_error(path: Path, exc: InvalidParameterError) -> FileFormatError:
    return FileFormatError(f"{path}: {exc.message}", remedy=exc.remedy)


def load_recipients(path: Path) -> tuple[PublicKeySet, ...]:
    """Every public key in ``path``: a PEM public key (modelshield) or an age recipients file (one per line)."""
    data = _read_key_file(path)
    if _is_pem(data):
        return (load_public_key(path),)
    lines = _age_lines(data, path)
    if any(line.startswith("AGE-SECRET-KEY-") for line in lines):
        raise FileFormatError(f"{path} is an age identity (private key) file.", remedy="Pass the public key (.pub).")
    if not lines:
        raise FileFormatError(f"{path} holds no key.", remedy=_SUPPORTED)
    try:
        return tuple(parse_age_recipient(line) for line in lines)
    except InvalidParameterError as exc:
        raise _as_file_error(path, exc) from exc


def load_identities(
    path: Path, passphrase: bytes | None = None, *, max_work_factor: int = _KEY_FILE_MAX_WORK_FACTOR
) -> tuple[PrivateKeySet, ...]:
    """Every private key in ``path``: PEM (modelshield), an age identity file, or one encrypted with `age -p`."""
    data = _read_key_file(path)
    if _is_pem(data):
        return (load_private_key(path, passphrase),)
    if data.startswith(_age.VERSION_LINE):
        if not passphrase:
            raise FileFormatError(
                f"{path}: the identity file is encrypted and needs a passphrase.",
                remedy="Give the passphrase through --key-passphrase-env VAR.",
            )
        plain = _age.open_with_passphrase(data, passphrase, max_work_factor, str(path))
        if plain is None:
            raise FileFormatError(
                f"{path}: cannot read the identity file (wrong passphrase).", remedy="Check the passphrase."
            )
        data = plain
    elif passphrase:
        raise FileFormatError(f"{path}: the key is not encrypted.", remedy="Drop the passphrase.")
    if b"OPENSSH PRIVATE KEY" in data:
        raise FileFormatError(f"{path} is an SSH key; modelshield does not decrypt with SSH keys.", remedy=_SUPPORTED)
    lines = _age_lines(data, path)
    if lines and all(line.startswith("age1") for line in lines):
        raise FileFormatError(f"{path} is an age recipients (public key) file.", remedy="Pass the private key (.key).")
    if not lines:
        raise FileFormatError(f"{path} holds no key.", remedy=_SUPPORTED)
    try:
        return tuple(parse_age_identity(line) for line in lines)
    except InvalidParameterError as exc:
        raise _as_file_error(path, exc) from exc


def _only(keys: tuple[PrivateKeySet, ...] | tuple[PublicKeySet, ...], path: Path) -> None:
    if len(keys) != 1:
        raise FileFormatError(f"{path} holds {len(keys)} keys, not one.", remedy="Pass a file with one key.")


def _pem_blocks(path: Path, data: bytes) -> list[bytes]:
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise FileFormatError(f"{path} holds no PEM key.", remedy="Pass a key file written by `modelshield keygen`.")
    return blocks


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKeySet:
    """The private key(s) in ``path``; a wrong or missing passphrase is a clear error, never a traceback.

    PEM, or an age identity file holding one identity (see :func:`load_identities` for several).
    """
    data = _read_key_file(path)
    if not _is_pem(data):
        identities = load_identities(path, passphrase)
        _only(identities, path)
        return identities[0]
    keys: list[PrivateKey] = []
    for block in _pem_blocks(path, data):
        if b"PUBLIC KEY" in block.split(b"\n", 1)[0]:
            raise FileFormatError(f"{path} is a public key.", remedy="Pass the private key (.key).")
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
    """The public key(s) in ``path``: PEM, or an age recipients file holding one recipient."""
    data = _read_key_file(path)
    if not _is_pem(data):
        recipients = load_recipients(path)
        _only(recipients, path)
        return recipients[0]
    keys: list[PublicKey] = []
    for block in _pem_blocks(path, data):
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
