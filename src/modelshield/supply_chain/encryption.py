"""Encryption at rest for data sets and model files: streaming AES-256-GCM, any size, constant memory.

    >>> from pathlib import Path
    >>> from modelshield.supply_chain.encryption import decrypt_file, encrypt_file
    >>> from modelshield.supply_chain.keys import KeyAlgorithm, generate_keypair
    >>> keys = generate_keypair(KeyAlgorithm.X25519_MLKEM768)
    >>> encrypt_file(Path("model.safetensors"), Path("model.enc"), recipient=keys.public())  # doctest: +SKIP
    >>> decrypt_file(Path("model.enc"), Path("model.safetensors"), identity=keys)  # doctest: +SKIP

Each file gets a fresh random 32-byte *file key*, wrapped for one recipient (hybrid X25519 + ML-KEM-768, so the
file stays confidential if either primitive is broken) or under a passphrase (scrypt). The payload is a STREAM
construction as in age and Tink's streaming AEAD: fixed-size chunks, each sealed with AES-256-GCM under a nonce
that holds the chunk's index and a flag marking the last chunk, so reordered, dropped, duplicated or appended
chunks and truncation anywhere (at a chunk boundary too) fail to authenticate. :func:`decrypt_file` writes to a
temporary file beside the output and renames it into place only after the last chunk authenticated: a damaged
file yields no plaintext at all.

File format, version 1 (all integers big-endian)::

    offset  size  field
    0       8     magic b"\\x89MSENC\\r\\n"
    8       1     version, 1
    9       1     key wrapping: 1 = recipient (x25519-mlkem768), 2 = passphrase (scrypt)
    10      4     chunk size C in bytes of plaintext, 64 <= C <= 64 MiB
    14      7     nonce prefix, random
    21      2     stanza length L, exactly 1200 (recipient) or 67 (passphrase)
    23      L     stanza, below
    23+L    32    header MAC: HMAC-SHA256(header key, bytes 0 .. 23+L)
    55+L    ...   chunks: C + 16 bytes each, the last one 16 .. C + 16 bytes (an empty file has one 16-byte chunk)

    recipient stanza                              passphrase stanza
    0     32    recipient fingerprint (raw)     0    16   salt, random
    32    32    ephemeral X25519 public key     16   1    log2 N, 15 .. 20
    64    1088  ML-KEM-768 ciphertext           17   1    r, 1 .. 16
    1152  48    wrapped file key                18   1    p, 1 .. 4   (and 128 * r * N <= 1 GiB)
                                                19   48   wrapped file key

Keys:

- recipient wrap key = HKDF-SHA256(ikm = X25519 shared secret || ML-KEM shared secret, salt = ephemeral public key
  || ML-KEM ciphertext, info = b"modelshield-enc/v1 x25519-mlkem768" || recipient fingerprint). The fingerprint
  is SHA-256 over both public keys' SubjectPublicKeyInfo (:attr:`PublicKeySet.fingerprint`).
- passphrase wrap key = scrypt(passphrase, salt, N, r, p), 32 bytes.
- wrapped file key = AES-256-GCM(wrap key, nonce 0^12 (each wrap key is used once), file key, associated data =
  every header byte before the wrapped key).
- header key = HKDF-SHA256(file key, info = b"modelshield-enc/v1 header"); payload key likewise with
  b"modelshield-enc/v1 payload".
- chunk i = AES-256-GCM(payload key, nonce = nonce prefix || uint32 i || 0x01 if last else 0x00, plaintext,
  associated data = header MAC), ciphertext followed by its 16-byte tag.

At most 2**32 chunks per file (4 PiB at the default 1 MiB chunk size).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import logging
import os
import secrets
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from modelshield.errors import FileFormatError, InvalidParameterError, VerificationError
from modelshield.supply_chain.keys import PrivateKeySet, PublicKeySet

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SCRYPT_LOG_N",
    "MAGIC",
    "EncryptionResult",
    "KeyWrapping",
    "decrypt_file",
    "decrypt_stream",
    "encrypt_file",
    "encrypt_stream",
    "is_encrypted",
]

logger = logging.getLogger(__name__)

MAGIC = b"\x89MSENC\r\n"
VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE, MAX_CHUNK_SIZE = 64, 1 << 26
DEFAULT_SCRYPT_LOG_N = 17
MIN_SCRYPT_LOG_N, MAX_SCRYPT_LOG_N = 15, 20
_SCRYPT_R, _SCRYPT_P = 8, 1
_MAX_SCRYPT_MEMORY = 1 << 30

_PREFIX = struct.Struct(">8sBBI7sH")  # magic, version, wrapping, chunk size, nonce prefix, stanza length
_TAG = 16
_KEY = 32
_MAC = 32
_WRAPPED = _KEY + _TAG
_X25519_PUBLIC = 32
_MLKEM_CIPHERTEXT = 1088
_RECIPIENT_STANZA = 32 + _X25519_PUBLIC + _MLKEM_CIPHERTEXT + _WRAPPED
_PASSPHRASE_STANZA = 16 + 3 + _WRAPPED
_MAX_CHUNKS = 1 << 32
_ZERO_NONCE = bytes(12)
_LABEL = b"modelshield-enc/v1 "

_TAMPERED = "Do not use the file; obtain it again from a trusted source."


class KeyWrapping(enum.StrEnum):
    """How the file key is protected."""

    RECIPIENT = "x25519-mlkem768"
    PASSPHRASE = "scrypt"  # noqa: S105 (a KDF name, not a password)


_WRAPPING_CODE = {KeyWrapping.RECIPIENT: 1, KeyWrapping.PASSPHRASE: 2}
_STANZA_LENGTH = {KeyWrapping.RECIPIENT: _RECIPIENT_STANZA, KeyWrapping.PASSPHRASE: _PASSPHRASE_STANZA}


@dataclass(frozen=True)
class EncryptionResult:
    """What one encryption or decryption did. Holds no key material."""

    wrapping: KeyWrapping
    chunk_size: int
    chunks: int
    plaintext_bytes: int
    ciphertext_bytes: int
    recipient_fingerprint: str | None = None  # hex, for KeyWrapping.RECIPIENT


@dataclass(frozen=True)
class _Header:
    raw: bytes  # every byte before the header MAC
    wrapping: KeyWrapping
    chunk_size: int
    nonce_prefix: bytes
    stanza: bytes

    @property
    def wrapped_key_aad(self) -> bytes:
        return self.raw[:-_WRAPPED]

    @property
    def wrapped_key(self) -> bytes:
        return self.raw[-_WRAPPED:]


def _hkdf(ikm: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY, salt=salt, info=_LABEL + info).derive(ikm)


def _recipient_wrap_key(ss_x25519: bytes, ss_mlkem: bytes, ephemeral: bytes, ciphertext: bytes, fpr: bytes) -> bytes:
    return _hkdf(ss_x25519 + ss_mlkem, b"x25519-mlkem768" + fpr, salt=ephemeral + ciphertext)


def _scrypt(passphrase: bytes, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=_KEY, n=1 << log_n, r=r, p=p).derive(passphrase)


def _check_scrypt(log_n: int, r: int, p: int) -> str | None:
    """Why these scrypt parameters are refused, or None: bounds keep a hostile header from costing GiBs or hours."""
    if not MIN_SCRYPT_LOG_N <= log_n <= MAX_SCRYPT_LOG_N:
        return f"scrypt log2 N is {log_n}, outside {MIN_SCRYPT_LOG_N}..{MAX_SCRYPT_LOG_N}"
    if not (1 <= r <= 16 and 1 <= p <= 4) or 128 * r * (1 << log_n) > _MAX_SCRYPT_MEMORY:
        return f"scrypt r={r}, p={p} with log2 N={log_n} is outside the accepted bounds"
    return None


_NEEDS_HYBRID = "Generate one with `modelshield keygen --algorithm x25519-mlkem768`."


def _public_halves(keys: PublicKeySet) -> tuple[x25519.X25519PublicKey, mlkem.MLKEM768PublicKey]:
    match keys.keys:
        case (x25519.X25519PublicKey() as x, mlkem.MLKEM768PublicKey() as k):
            return x, k
    raise InvalidParameterError(
        f"The recipient is a {keys.algorithm.value} key; encryption needs an x25519-mlkem768 key.",
        remedy=_NEEDS_HYBRID,
    )


def _private_halves(keys: PrivateKeySet) -> tuple[x25519.X25519PrivateKey, mlkem.MLKEM768PrivateKey]:
    match keys.keys:
        case (x25519.X25519PrivateKey() as x, mlkem.MLKEM768PrivateKey() as k):
            return x, k
    raise InvalidParameterError(
        f"The identity is a {keys.algorithm.value} key; decryption needs an x25519-mlkem768 key.",
        remedy=_NEEDS_HYBRID,
    )


def _one_of(key: object, passphrase: bytes | None, key_name: str) -> None:
    if (key is None) == (passphrase is None):
        raise InvalidParameterError(
            f"Give exactly one of {key_name} and passphrase.",
            remedy=f"Pass {key_name}= for a key pair or passphrase= for a passphrase, not both.",
        )
    if passphrase is not None and not isinstance(passphrase, bytes):
        raise InvalidParameterError("The passphrase must be bytes.", remedy="Encode it, e.g. text.encode('utf-8').")
    if passphrase is not None and not passphrase:
        raise InvalidParameterError("The passphrase is empty.", remedy="Use a long, random passphrase.")


def _new_header(
    recipient: PublicKeySet | None, passphrase: bytes | None, chunk_size: int, scrypt_log_n: int
) -> tuple[_Header, bytes]:
    """A header for a fresh file key, and that key."""
    if isinstance(chunk_size, bool) or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidParameterError(
            f"chunk_size is {chunk_size!r}; it must be an int from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes."
        )
    file_key = secrets.token_bytes(_KEY)
    nonce_prefix = secrets.token_bytes(7)
    wrap_key: bytes
    if recipient is not None:
        x_public, k_public = _public_halves(recipient)
        fpr = bytes.fromhex(recipient.fingerprint)
        ephemeral = x25519.X25519PrivateKey.generate()
        ephemeral_public = ephemeral.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        ss_mlkem, ciphertext = k_public.encapsulate()
        try:
            ss_x25519 = ephemeral.exchange(x_public)
        except ValueError as exc:  # a low-order point: not a usable public key
            raise InvalidParameterError("The recipient's X25519 public key is invalid.", remedy=_NEEDS_HYBRID) from exc
        wrap_key = _recipient_wrap_key(ss_x25519, ss_mlkem, ephemeral_public, ciphertext, fpr)
        wrapping, stanza_head = KeyWrapping.RECIPIENT, fpr + ephemeral_public + ciphertext
    elif passphrase is not None:
        problem = _check_scrypt(scrypt_log_n, _SCRYPT_R, _SCRYPT_P)
        if problem:
            raise InvalidParameterError(
                f"scrypt_log_n: {problem}.", remedy=f"Keep the default, {DEFAULT_SCRYPT_LOG_N}."
            )
        salt = secrets.token_bytes(16)
        wrap_key = _scrypt(passphrase, salt, scrypt_log_n, _SCRYPT_R, _SCRYPT_P)
        wrapping, stanza_head = KeyWrapping.PASSPHRASE, salt + bytes((scrypt_log_n, _SCRYPT_R, _SCRYPT_P))
    else:
        raise InvalidParameterError("Give a recipient or a passphrase.")
    prefix = _PREFIX.pack(MAGIC, VERSION, _WRAPPING_CODE[wrapping], chunk_size, nonce_prefix, _STANZA_LENGTH[wrapping])
    aad = prefix + stanza_head
    raw = aad + AESGCM(wrap_key).encrypt(_ZERO_NONCE, file_key, aad)
    return _Header(raw, wrapping, chunk_size, nonce_prefix, raw[_PREFIX.size :]), file_key


def _read_exact(reader: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end of the stream (tolerates short reads of pipes and sockets)."""
    data = reader.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = reader.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _corrupt(name: str, what: str) -> VerificationError:
    return VerificationError(f"{name}: {what}; the file is corrupt or was tampered with.", remedy=_TAMPERED)


def _read_header(reader: BinaryIO, name: str) -> tuple[_Header, bytes]:
    """The parsed header and its MAC; every field is bounds-checked before anything is allocated from it."""
    prefix = _read_exact(reader, _PREFIX.size)
    if prefix[: len(MAGIC)] != MAGIC:
        raise FileFormatError(
            f"{name} is not a modelshield encrypted file (no {MAGIC!r} magic).",
            remedy="Pass a file written by `modelshield encrypt` or encrypt_file().",
        )
    if prefix[8] != VERSION:
        raise FileFormatError(
            f"{name} is encrypted in format version {prefix[8]}; this modelshield reads version {VERSION}.",
            remedy="Upgrade modelshield (pip install -U modelshield).",
        )
    if len(prefix) < _PREFIX.size:
        raise _corrupt(name, "the header is truncated")
    _, _, code, chunk_size, nonce_prefix, stanza_length = _PREFIX.unpack(prefix)
    wrapping = next((w for w, c in _WRAPPING_CODE.items() if c == code), None)
    if wrapping is None:
        raise _corrupt(name, f"unknown key wrapping {code}")
    if stanza_length != _STANZA_LENGTH[wrapping]:
        raise _corrupt(name, f"the key stanza is {stanza_length} bytes, not {_STANZA_LENGTH[wrapping]}")
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise _corrupt(name, f"chunk size {chunk_size} is outside {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}")
    rest = _read_exact(reader, stanza_length + _MAC)
    if len(rest) < stanza_length + _MAC:
        raise _corrupt(name, "the header is truncated")
    stanza, mac = rest[:stanza_length], rest[stanza_length:]
    if wrapping is KeyWrapping.PASSPHRASE:
        problem = _check_scrypt(*stanza[16:19])
        if problem:
            raise _corrupt(name, problem)
    return _Header(prefix + stanza, wrapping, chunk_size, nonce_prefix, stanza), mac


def _unwrap(header: _Header, identity: PrivateKeySet | None, passphrase: bytes | None, name: str) -> bytes:
    if header.wrapping is KeyWrapping.RECIPIENT and identity is None:
        raise InvalidParameterError(
            f"{name} is encrypted for a recipient key, not with a passphrase.",
            remedy="Pass the recipient's private key (identity=, CLI: --identity).",
        )
    if header.wrapping is KeyWrapping.PASSPHRASE and passphrase is None:
        raise InvalidParameterError(
            f"{name} is encrypted with a passphrase, not for a recipient key.",
            remedy="Pass the passphrase (passphrase=, CLI: --passphrase-env VAR).",
        )
    stanza, hint = header.stanza, ""
    if identity is not None:
        x_private, k_private = _private_halves(identity)
        fpr, ephemeral, ciphertext = stanza[:32], stanza[32:64], stanza[64:-_WRAPPED]
        # The fingerprint from the header goes into the KDF (it is authenticated by the wrapped key's tag); both
        # shared secrets are always computed, so each half of the identity is needed on its own.
        try:
            ss_x25519 = x_private.exchange(x25519.X25519PublicKey.from_public_bytes(ephemeral))
        except ValueError as exc:  # a low-order point gives an all-zero secret
            raise _corrupt(name, "the ephemeral X25519 key is invalid") from exc
        wrap_key = _recipient_wrap_key(ss_x25519, k_private.decapsulate(ciphertext), ephemeral, ciphertext, fpr)
        mine = identity.public().fingerprint
        if fpr.hex() != mine:
            hint = f" It is encrypted for key {fpr.hex()[:16]}…, and the identity given is {mine[:16]}…."
        what = "the file key does not unwrap with this identity (wrong key, or a modified header)."
    elif passphrase is not None:
        wrap_key = _scrypt(passphrase, stanza[:16], *stanza[16:19])
        what = "the file key does not unwrap (wrong passphrase, or a modified header)."
    else:
        raise InvalidParameterError("Give an identity or a passphrase.")
    try:
        return AESGCM(wrap_key).decrypt(_ZERO_NONCE, header.wrapped_key, header.wrapped_key_aad)
    except InvalidTag:
        raise VerificationError(
            f"{name}: {what}{hint}", remedy="Check the key or passphrase; if it is right, the file was modified."
        ) from None


def encrypt_stream(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    recipient: PublicKeySet | None = None,
    passphrase: bytes | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    scrypt_log_n: int = DEFAULT_SCRYPT_LOG_N,
) -> EncryptionResult:
    """Encrypt everything ``reader`` yields into ``writer``, for ``recipient`` or under ``passphrase`` (exactly one).

    Memory stays at about two chunks whatever the size. ``scrypt_log_n`` is log2 of scrypt's cost N
    (15..20; 17 takes about half a second and 128 MiB).
    """
    _one_of(recipient, passphrase, "recipient")
    header, file_key = _new_header(recipient, passphrase, chunk_size, scrypt_log_n)
    header_mac = hmac.digest(_hkdf(file_key, b"header"), header.raw, hashlib.sha256)
    aead = AESGCM(_hkdf(file_key, b"payload"))
    writer.write(header.raw + header_mac)
    written = len(header.raw) + _MAC
    out = memoryview(bytearray(chunk_size + _TAG))
    prefix, plaintext_bytes = header.nonce_prefix, 0
    current = _read_exact(reader, chunk_size)
    for index in range(_MAX_CHUNKS):
        following = _read_exact(reader, chunk_size) if len(current) == chunk_size else b""
        last = not following
        nonce = prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        size = aead.encrypt_into(nonce, current, header_mac, out[: len(current) + _TAG])
        writer.write(out[:size])
        written += size
        plaintext_bytes += len(current)
        if last:
            break
        current = following
    else:
        raise InvalidParameterError(
            f"The input is larger than {_MAX_CHUNKS} chunks of {chunk_size} bytes.", remedy="Use a larger chunk_size."
        )
    return EncryptionResult(
        header.wrapping,
        chunk_size,
        index + 1,
        plaintext_bytes,
        written,
        recipient.fingerprint if recipient is not None else None,
    )


def decrypt_stream(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    identity: PrivateKeySet | None = None,
    passphrase: bytes | None = None,
    name: str = "<stream>",
) -> EncryptionResult:
    """Decrypt what :func:`encrypt_stream` wrote, with the recipient's ``identity`` or the ``passphrase``.

    Each chunk is written as soon as it authenticates, so when truncation or tampering is detected further on,
    earlier chunks are already in ``writer``; use :func:`decrypt_file` to get all or nothing. ``name`` labels
    error messages. Raises :class:`VerificationError` when anything fails to authenticate, and
    :class:`FileFormatError` when the input is not an encrypted file of a version this code reads.
    """
    _one_of(identity, passphrase, "identity")
    header, header_mac = _read_header(reader, name)
    file_key = _unwrap(header, identity, passphrase, name)
    if not hmac.compare_digest(hmac.digest(_hkdf(file_key, b"header"), header.raw, hashlib.sha256), header_mac):
        raise _corrupt(name, "the header does not authenticate")
    aead = AESGCM(_hkdf(file_key, b"payload"))
    chunk = header.chunk_size + _TAG
    out = memoryview(bytearray(header.chunk_size))
    prefix, plaintext_bytes, read = header.nonce_prefix, 0, len(header.raw) + _MAC
    current = _read_exact(reader, chunk)
    for index in range(_MAX_CHUNKS):
        following = _read_exact(reader, chunk) if len(current) == chunk else b""
        last = not following
        if len(current) < _TAG:
            raise _corrupt(name, "the encrypted data is truncated")
        nonce = prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        try:
            size = aead.decrypt_into(nonce, current, header_mac, out[: len(current) - _TAG])
        except InvalidTag:
            raise _corrupt(
                name, f"chunk {index} does not authenticate (data modified, reordered, truncated or appended)"
            ) from None
        writer.write(out[:size])
        plaintext_bytes += size
        read += len(current)
        if last:
            break
        current = following
    else:
        raise _corrupt(name, f"the encrypted data runs past {_MAX_CHUNKS} chunks")
    fingerprint = header.stanza[:32].hex() if header.wrapping is KeyWrapping.RECIPIENT else None
    return EncryptionResult(header.wrapping, header.chunk_size, index + 1, plaintext_bytes, read, fingerprint)


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` starts with the magic bytes of this format (nothing is verified)."""
    try:
        with path.open("rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_PUBLIC_MODE = 0o666 & ~_umask()  # ciphertext: what open() gives a new file; plaintext output stays 0600


def _through_temp(
    src: Path, dst: Path, *, overwrite: bool, mode: int, work: Callable[[BinaryIO, BinaryIO], EncryptionResult]
) -> EncryptionResult:
    """Run ``work(source, temp)`` and move the temp file to ``dst`` only if it returns; remove it otherwise."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst)):
        raise InvalidParameterError(f"The output {dst} is the input file.", remedy="Write to another path.")
    if dst.exists() and not overwrite:
        raise FileFormatError(
            f"{dst} already exists.", remedy="Choose another output, or pass overwrite=True (--force)."
        )
    try:
        source = src.open("rb")
    except FileNotFoundError as exc:
        raise FileFormatError(f"{src} does not exist.", remedy="Check the path.") from exc
    except IsADirectoryError as exc:
        raise FileFormatError(f"{src} is a directory.", remedy="Encrypt files one by one (or archive first).") from exc
    with source:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), mode)
                result = work(source, out)
                out.flush()
                os.fsync(out.fileno())
            if overwrite:
                os.replace(tmp, dst)
            else:
                _link_new(tmp, dst)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return result


def _link_new(tmp: str, dst: Path) -> None:
    """Move ``tmp`` to ``dst`` unless ``dst`` appeared meanwhile (hard link where the file system has them)."""
    try:
        os.link(tmp, dst)
    except FileExistsError as exc:
        raise FileFormatError(
            f"{dst} already exists.", remedy="Choose another output, or pass overwrite=True."
        ) from exc
    except OSError:  # no hard links here: check, then rename
        if dst.exists():
            raise FileFormatError(f"{dst} already exists.", remedy="Choose another output.") from None
        os.replace(tmp, dst)
    else:
        os.unlink(tmp)


def encrypt_file(
    src: Path,
    dst: Path,
    *,
    recipient: PublicKeySet | None = None,
    passphrase: bytes | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overwrite: bool = False,
    scrypt_log_n: int = DEFAULT_SCRYPT_LOG_N,
) -> EncryptionResult:
    """Encrypt ``src`` to ``dst`` for ``recipient`` (an x25519-mlkem768 public key) or under ``passphrase``.

    Exactly one of the two. ``dst`` appears complete or not at all; an existing ``dst`` is replaced only with
    ``overwrite=True``.
    """
    _one_of(recipient, passphrase, "recipient")
    result = _through_temp(
        src,
        dst,
        overwrite=overwrite,
        mode=_PUBLIC_MODE,
        work=lambda r, w: encrypt_stream(
            r, w, recipient=recipient, passphrase=passphrase, chunk_size=chunk_size, scrypt_log_n=scrypt_log_n
        ),
    )
    logger.info("encrypted %s -> %s (%s, %d chunks)", src, dst, result.wrapping.value, result.chunks)
    return result


def decrypt_file(
    src: Path,
    dst: Path,
    *,
    identity: PrivateKeySet | None = None,
    passphrase: bytes | None = None,
    overwrite: bool = False,
) -> EncryptionResult:
    """Decrypt ``src`` to ``dst`` (mode 0600) with the recipient's ``identity`` or the ``passphrase``.

    The plaintext goes to a temporary file beside ``dst`` that is renamed into place only after the last chunk
    authenticated: if anything was modified, truncated, reordered or the key is wrong, this raises
    :class:`VerificationError` and writes nothing. Not an encrypted file: :class:`FileFormatError`.
    """
    _one_of(identity, passphrase, "identity")
    result = _through_temp(
        src,
        dst,
        overwrite=overwrite,
        mode=0o600,
        work=lambda r, w: decrypt_stream(r, w, identity=identity, passphrase=passphrase, name=str(src)),
    )
    logger.info("decrypted %s -> %s (%s, %d chunks)", src, dst, result.wrapping.value, result.chunks)
    return result
