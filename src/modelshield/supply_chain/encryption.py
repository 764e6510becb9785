"""Encryption at rest for data sets and model files, in the age format: any size, constant memory.

    >>> from pathlib import Path
    >>> from modelshield.supply_chain.encryption import decrypt_file, encrypt_file
    >>> from modelshield.supply_chain.keys import KeyAlgorithm, generate_keypair
    >>> keys = generate_keypair(KeyAlgorithm.X25519_MLKEM768)
    >>> keys.public().age_recipient()[:7]
    'age1pq1'
    >>> encrypt_file(Path("model.safetensors"), Path("model.age"), recipients=[keys.public()])  # doctest: +SKIP
    >>> decrypt_file(Path("model.age"), Path("model.safetensors"), identities=[keys])  # doctest: +SKIP

Files are age v1 (c2sp.org/age), so `age`, `rage` and their libraries read what this writes and the other way
round. A fresh 16-byte file key is wrapped once per recipient:

- ``mlkem768x25519``: age's post-quantum hybrid recipient (``age1pq1...``, age 1.3 and later): HPKE with the
  MLKEM768-X25519 KEM, confidential unless both ML-KEM-768 and X25519 are broken. The default for
  `modelshield keygen`.
- ``X25519``: age's classical recipient (``age1...``), for the keys people already have.
- ``scrypt``: a passphrase, alone in the file (age forbids mixing it with recipients).

A file is encrypted for several recipients of one kind: post-quantum recipients are never mixed with X25519 ones,
which would leave the file open to whoever breaks X25519. The payload is age's STREAM: 64 KiB chunks of
ChaCha20-Poly1305 whose nonces carry the chunk index and a last-chunk flag, so modified, reordered, dropped,
duplicated or appended chunks and truncation anywhere fail to authenticate. :func:`decrypt_file` writes to a
temporary file beside the output and renames it into place only after the last chunk authenticated: a damaged
file yields no plaintext at all. docs/encryption-format.md has the byte layout and why the format is age.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from modelshield.errors import FileFormatError, InvalidParameterError, VerificationError
from modelshield.supply_chain import _age
from modelshield.supply_chain.keys import KeyAlgorithm, PrivateKeySet, PublicKeySet

__all__ = [
    "AGE_FORMAT",
    "DEFAULT_MAX_SCRYPT_WORK_FACTOR",
    "DEFAULT_SCRYPT_WORK_FACTOR",
    "MAX_SCRYPT_WORK_FACTOR",
    "MIN_SCRYPT_WORK_FACTOR",
    "EncryptedFileInfo",
    "EncryptionResult",
    "KeyWrapping",
    "decrypt_file",
    "decrypt_stream",
    "encrypt_file",
    "encrypt_stream",
    "inspect_encrypted",
    "is_encrypted",
]

logger = logging.getLogger(__name__)

AGE_FORMAT = "age-encryption.org/v1"
DEFAULT_SCRYPT_WORK_FACTOR = 18  # age's default: 256 MiB and about a second
MIN_SCRYPT_WORK_FACTOR = 15
MAX_SCRYPT_WORK_FACTOR = 22  # what the age reference implementation accepts: 4 GiB
DEFAULT_MAX_SCRYPT_WORK_FACTOR = 20  # what decryption accepts unless told otherwise: 1 GiB


class KeyWrapping(enum.StrEnum):
    """How a file key is wrapped: the age stanza type."""

    MLKEM768X25519 = _age.HYBRID
    X25519 = _age.X25519
    SCRYPT = _age.SCRYPT


_KIND_OF = {KeyAlgorithm.X25519: KeyWrapping.X25519, KeyAlgorithm.X25519_MLKEM768: KeyWrapping.MLKEM768X25519}


@dataclass(frozen=True)
class EncryptionResult:
    """What one encryption or decryption did. Holds no key material.

    ``recipients`` are the age recipient strings the file key was wrapped for (encryption), or the one whose
    identity unwrapped it (decryption); empty for a passphrase.
    """

    wrapping: KeyWrapping
    recipients: tuple[str, ...]
    chunks: int
    plaintext_bytes: int
    ciphertext_bytes: int


@dataclass(frozen=True)
class EncryptedFileInfo:
    """What the header of an encrypted file says, read without any key (nothing in it is authenticated yet)."""

    format: str
    stanza_types: tuple[str, ...]  # in header order, each once
    stanzas: int
    header_bytes: int

    @property
    def post_quantum(self) -> bool:
        """Whether every stanza is post-quantum hybrid, so that no stanza of the file yields to a quantum attack."""
        return self.stanza_types == (KeyWrapping.MLKEM768X25519.value,)


# --- encryption -----------------------------------------------------------------------------------------------------

Entropy = Callable[[int], bytes]
HybridWrap = Callable[[bytes, hpke.MLKEM768X25519PublicKey], _age.Stanza]


def _check_passphrase(passphrase: bytes | None) -> None:
    if passphrase is not None and not isinstance(passphrase, bytes):
        raise InvalidParameterError("The passphrase must be bytes.", remedy="Encode it, e.g. text.encode('utf-8').")
    if passphrase is not None and not passphrase:
        raise InvalidParameterError("The passphrase is empty.", remedy="Use a long, random passphrase.")


def _recipient_kind(recipient: object) -> KeyWrapping:
    if not isinstance(recipient, PublicKeySet):
        raise InvalidParameterError(
            f"A recipient is a {type(recipient).__name__}, not a PublicKeySet.",
            remedy="Pass recipients=[...] with keys from load_recipients() or parse_age_recipient().",
        )
    kind = _KIND_OF.get(recipient.algorithm)
    if kind is None:
        raise InvalidParameterError(
            f"A recipient is a {recipient.algorithm.value} signing key; encryption needs an x25519-mlkem768 or "
            "x25519 key.",
            remedy="Generate one with `modelshield keygen --algorithm x25519-mlkem768` (or use `age-keygen`).",
        )
    return kind


def _stanzas(
    file_key: bytes,
    recipients: Sequence[PublicKeySet],
    passphrase: bytes | None,
    work_factor: int,
    entropy: Entropy,
    wrap_hybrid: HybridWrap,
) -> tuple[KeyWrapping, list[_age.Stanza]]:
    if passphrase is not None:
        return KeyWrapping.SCRYPT, [_age.wrap_scrypt(file_key, passphrase, work_factor, entropy(16))]
    kinds = {_recipient_kind(r) for r in recipients}
    if len(kinds) > 1:
        raise InvalidParameterError(
            "The recipients mix post-quantum hybrid (x25519-mlkem768, age1pq1...) and X25519 (age1...) keys: anyone "
            "who breaks X25519 would read the file through the X25519 stanza. age refuses this too.",
            remedy="Encrypt for recipients of one kind; give every recipient a post-quantum key.",
        )
    (kind,) = kinds
    return kind, [_stanza(file_key, recipient, entropy, wrap_hybrid) for recipient in recipients]


def _stanza(file_key: bytes, recipient: PublicKeySet, entropy: Entropy, wrap_hybrid: HybridWrap) -> _age.Stanza:
    match recipient.keys:
        case (x25519.X25519PublicKey() as x, mlkem.MLKEM768PublicKey() as k):
            return wrap_hybrid(file_key, hpke.MLKEM768X25519PublicKey(k, x))
        case (x25519.X25519PublicKey() as x,):
            try:
                return _age.wrap_x25519(file_key, x, x25519.X25519PrivateKey.from_private_bytes(entropy(32)))
            except ValueError as exc:  # a low-order point: not a usable public key
                raise InvalidParameterError(
                    f"The X25519 recipient {recipient.age_recipient()} is not a valid public key."
                ) from exc
    raise InvalidParameterError(f"A {recipient.algorithm.value} key is not an age recipient.")  # pragma: no cover


def _check_plan(recipients: Sequence[PublicKeySet], passphrase: bytes | None, work_factor: int) -> None:
    _check_passphrase(passphrase)
    if isinstance(recipients, PublicKeySet | str | bytes):
        raise InvalidParameterError(
            "recipients must be a sequence of PublicKeySet.", remedy="Pass recipients=[key], not recipients=key."
        )
    if passphrase is not None and recipients:
        raise InvalidParameterError(
            "Give recipients or a passphrase, not both: age does not allow a passphrase beside recipients (whoever "
            "holds a recipient key could otherwise rewrite a file that passphrase holders trust).",
            remedy="Encrypt for recipient keys (--recipient), or with a passphrase (--passphrase-env) alone.",
        )
    if passphrase is None and not recipients:
        raise InvalidParameterError(
            "Give at least one recipient, or a passphrase.",
            remedy="Pass recipients=[...] or passphrase=.",
            cli_remedy="Pass --recipient (repeatable) or --passphrase-env.",
        )
    if isinstance(work_factor, bool) or not MIN_SCRYPT_WORK_FACTOR <= work_factor <= MAX_SCRYPT_WORK_FACTOR:
        raise InvalidParameterError(
            f"scrypt_work_factor is {work_factor!r}; it must be an int from {MIN_SCRYPT_WORK_FACTOR} to "
            f"{MAX_SCRYPT_WORK_FACTOR} (log2 of scrypt's N).",
            remedy=f"Keep the default, {DEFAULT_SCRYPT_WORK_FACTOR}.",
        )


def _encrypt(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    recipients: Sequence[PublicKeySet],
    passphrase: bytes | None,
    work_factor: int,
    entropy: Entropy = secrets.token_bytes,
    wrap_hybrid: HybridWrap = _age.wrap_hybrid,
) -> EncryptionResult:
    """:func:`encrypt_stream` with its randomness injectable: the known-answer tests pass fixed bytes here."""
    _check_plan(recipients, passphrase, work_factor)
    file_key = entropy(_age.FILE_KEY_SIZE)
    wrapping, stanzas = _stanzas(file_key, recipients, passphrase, work_factor, entropy, wrap_hybrid)
    header = _age.encode_header(stanzas, file_key)
    writer.write(header)
    stats = _age.encrypt_payload(reader, writer, file_key, entropy(_age.NONCE_SIZE))
    return EncryptionResult(
        wrapping,
        tuple(r.age_recipient() for r in recipients),
        stats.chunks,
        stats.plaintext_bytes,
        len(header) + stats.ciphertext_bytes,
    )


def encrypt_stream(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    recipients: Sequence[PublicKeySet] = (),
    passphrase: bytes | None = None,
    scrypt_work_factor: int = DEFAULT_SCRYPT_WORK_FACTOR,
) -> EncryptionResult:
    """Encrypt everything ``reader`` yields into ``writer`` as an age file, for ``recipients`` or a ``passphrase``.

    Recipients are x25519-mlkem768 keys (post-quantum) or x25519 keys, not both kinds. ``scrypt_work_factor`` is
    log2 of scrypt's N for a passphrase (15..22; 18, age's default, takes about a second and 256 MiB). Memory
    stays at two 64 KiB chunks whatever the size.
    """
    return _encrypt(reader, writer, recipients=recipients, passphrase=passphrase, work_factor=scrypt_work_factor)


# --- decryption -----------------------------------------------------------------------------------------------------


def _check_credentials(identities: Sequence[PrivateKeySet], passphrase: bytes | None, max_work_factor: int) -> None:
    _check_passphrase(passphrase)
    if isinstance(identities, PrivateKeySet | str | bytes):
        raise InvalidParameterError(
            "identities must be a sequence of PrivateKeySet.", remedy="Pass identities=[key], not identities=key."
        )
    if (passphrase is None) == (not identities):
        raise InvalidParameterError(
            "Give identities or a passphrase (exactly one of the two).",
            remedy="Pass identities=[...] or passphrase=.",
            cli_remedy="Pass --identity (repeatable) or --passphrase-env.",
        )
    for identity in identities:
        if not isinstance(identity, PrivateKeySet) or identity.algorithm not in _KIND_OF:
            what = identity.algorithm.value if isinstance(identity, PrivateKeySet) else type(identity).__name__
            raise InvalidParameterError(
                f"An identity is a {what} key; decryption needs an x25519-mlkem768 or x25519 private key.",
                remedy="Pass the private key (.key) of one of the file's recipients.",
            )
    if isinstance(max_work_factor, bool) or not 1 <= max_work_factor <= MAX_SCRYPT_WORK_FACTOR:
        raise InvalidParameterError(
            f"max_scrypt_work_factor is {max_work_factor!r}; it must be an int from 1 to {MAX_SCRYPT_WORK_FACTOR}."
        )


_KNOWN = frozenset(k.value for k in KeyWrapping)


def _describe(types: Sequence[str]) -> str:
    known = [t for t in types if t in _KNOWN]
    return ", ".join(known) if known else "unknown kinds of"


def _try_identity(stanza: _age.Stanza, identity: PrivateKeySet, name: str) -> bytes | None:
    """The file key if ``stanza`` is for ``identity``; None if not (another type, or another key)."""
    match stanza.type, identity.keys:
        case _age.X25519, (x25519.X25519PrivateKey() as x,):
            return _age.unwrap_x25519(stanza, x, name)
        case _age.HYBRID, (x25519.X25519PrivateKey() as x, mlkem.MLKEM768PrivateKey() as k):
            return _age.unwrap_hybrid(stanza, hpke.MLKEM768X25519PrivateKey(k, x), x, name)
    return None


def _unwrap(
    header: _age.Header,
    identities: Sequence[PrivateKeySet],
    passphrase: bytes | None,
    max_work_factor: int,
    name: str,
) -> tuple[bytes, KeyWrapping, tuple[str, ...]]:
    """The file key, how it was wrapped, and the recipient that unwrapped it."""
    types = header.types
    if _age.SCRYPT in types and len(header.stanzas) > 1:
        raise VerificationError(
            f"{name}: a passphrase (scrypt) stanza must be alone in the header; the file is corrupt or was "
            "tampered with.",
            remedy="Do not use the file; obtain it again from a trusted source.",
            subject=name,
        )
    if passphrase is not None:
        if _age.SCRYPT not in types and any(t in _KNOWN for t in types):
            raise InvalidParameterError(
                f"{name} is encrypted for {_describe(types)} recipient keys, not with a passphrase.",
                remedy="Pass a recipient's private key (identities=).",
                cli_remedy="Pass a recipient's private key with --identity.",
            )
        if types == (_age.SCRYPT,):
            file_key = _age.unwrap_scrypt(header.stanzas[0], passphrase, max_work_factor, name)
            if file_key is not None:
                return file_key, KeyWrapping.SCRYPT, ()
        raise VerificationError(
            f"{name}: the file key does not unwrap with this passphrase (wrong passphrase, or a modified header).",
            remedy="Check the passphrase; if it is right, the file was modified.",
            subject=name,
        )
    if types == (_age.SCRYPT,):
        raise InvalidParameterError(
            f"{name} is encrypted with a passphrase, not for recipient keys.",
            remedy="Pass the passphrase (passphrase=).",
            cli_remedy="Pass the passphrase in an environment variable named by --passphrase-env VAR.",
        )
    kinds = {_KIND_OF[i.algorithm].value for i in identities}
    if not kinds & set(types) and any(t in _KNOWN for t in types):
        raise InvalidParameterError(
            f"{name} is encrypted for {_describe(types)} recipients, and the identities given are "
            f"{', '.join(sorted(kinds))} keys.",
            remedy="Pass the private key of one of the file's recipients, of the same kind.",
        )
    for stanza in header.stanzas:
        for identity in identities:
            file_key = _try_identity(stanza, identity, name)
            if file_key is not None:
                return file_key, KeyWrapping(stanza.type), (identity.public().age_recipient(),)
    count = len(header.stanzas)
    raise VerificationError(
        f"{name}: none of the {count} recipient stanza{'s' if count > 1 else ''} ({_describe(types)}) unwraps with the "
        f"{len(identities)} identit{'ies' if len(identities) > 1 else 'y'} given (wrong key, or a modified header).",
        remedy="Check that you pass the private key of one of the file's recipients; if so, the file was modified.",
        subject=name,
    )


def decrypt_stream(
    reader: BinaryIO,
    writer: BinaryIO,
    *,
    identities: Sequence[PrivateKeySet] = (),
    passphrase: bytes | None = None,
    max_scrypt_work_factor: int = DEFAULT_MAX_SCRYPT_WORK_FACTOR,
    name: str = "<stream>",
) -> EncryptionResult:
    """Decrypt an age file from ``reader`` with any of ``identities``, or with the ``passphrase``.

    Each chunk is written as soon as it authenticates, so when truncation or tampering is detected further on,
    earlier chunks are already in ``writer``; use :func:`decrypt_file` to get all or nothing. ``name`` labels
    error messages. A passphrase file whose scrypt work factor exceeds ``max_scrypt_work_factor`` (20: 1 GiB of
    memory) is refused before scrypt runs. Raises :class:`VerificationError` when anything fails to authenticate
    or no identity matches, :class:`FileFormatError` when the input is not an age v1 file, and
    :class:`InvalidParameterError` when the credential is of the wrong kind for the file.
    """
    _check_credentials(identities, passphrase, max_scrypt_work_factor)
    header = _age.read_header(reader, name)
    file_key, wrapping, recipient = _unwrap(header, identities, passphrase, max_scrypt_work_factor, name)
    header.verify_mac(file_key, name)
    stats = _age.decrypt_payload(reader, writer, file_key, name)
    return EncryptionResult(
        wrapping, recipient, stats.chunks, stats.plaintext_bytes, header.size + stats.ciphertext_bytes
    )


# --- files ----------------------------------------------------------------------------------------------------------


def inspect_encrypted(path: Path) -> EncryptedFileInfo:
    """Read the header of ``path`` (no key needed, nothing authenticated): the format and its stanza types.

    The kind of file is told from its header alone, never from its name. Not an age v1 file:
    :class:`FileFormatError`; a malformed header: :class:`VerificationError`.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            header = _age.read_header(fh, str(path))
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise FileFormatError(f"{path} is not a readable file.", remedy="Check the path.") from exc
    return EncryptedFileInfo(AGE_FORMAT, header.types, len(header.stanzas), header.size)


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` starts like an age v1 file (nothing is verified)."""
    try:
        with Path(path).open("rb") as fh:
            return fh.read(len(_age.VERSION_LINE)) == _age.VERSION_LINE
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
    recipients: Sequence[PublicKeySet] = (),
    passphrase: bytes | None = None,
    overwrite: bool = False,
    scrypt_work_factor: int = DEFAULT_SCRYPT_WORK_FACTOR,
) -> EncryptionResult:
    """Encrypt ``src`` to the age file ``dst`` for ``recipients`` (one kind) or with ``passphrase``.

    ``dst`` appears complete or not at all; an existing ``dst`` is replaced only with ``overwrite=True``.
    """
    _check_plan(recipients, passphrase, scrypt_work_factor)
    result = _through_temp(
        src,
        dst,
        overwrite=overwrite,
        mode=_PUBLIC_MODE,
        work=lambda r, w: encrypt_stream(
            r, w, recipients=recipients, passphrase=passphrase, scrypt_work_factor=scrypt_work_factor
        ),
    )
    logger.info("encrypted %s -> %s (%s, chunks: %d)", src, dst, result.wrapping.value, result.chunks)
    return result


def decrypt_file(
    src: Path,
    dst: Path,
    *,
    identities: Sequence[PrivateKeySet] = (),
    passphrase: bytes | None = None,
    overwrite: bool = False,
    max_scrypt_work_factor: int = DEFAULT_MAX_SCRYPT_WORK_FACTOR,
) -> EncryptionResult:
    """Decrypt the age file ``src`` to ``dst`` (mode 0600) with any of ``identities``, or with ``passphrase``.

    The plaintext goes to a temporary file beside ``dst`` that is renamed into place only after the last chunk
    authenticated: if anything was modified, truncated, reordered or the key is wrong, this raises
    :class:`VerificationError` and writes nothing, and an existing ``dst`` is left as it was. Not an age file:
    :class:`FileFormatError`.
    """
    _check_credentials(identities, passphrase, max_scrypt_work_factor)
    result = _through_temp(
        src,
        dst,
        overwrite=overwrite,
        mode=0o600,
        work=lambda r, w: decrypt_stream(
            r,
            w,
            identities=identities,
            passphrase=passphrase,
            max_scrypt_work_factor=max_scrypt_work_factor,
            name=str(src),
        ),
    )
    logger.info("decrypted %s -> %s (%s, chunks: %d)", src, dst, result.wrapping.value, result.chunks)
    return result
