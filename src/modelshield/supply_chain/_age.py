"""The age v1 file format (c2sp.org/age), the parts modelshield needs: header, three stanza types, STREAM, Bech32.

    >>> from modelshield.supply_chain._age import bech32_decode, bech32_encode
    >>> bech32_decode(bech32_encode("age", bytes(32)))[0]
    'age'

Private to ``supply_chain``: :mod:`~modelshield.supply_chain.encryption` and :mod:`~modelshield.supply_chain.keys`
build on it. Every primitive comes from ``cryptography`` (the post-quantum hybrid stanza is its HPKE with the
MLKEM768-X25519 KEM); this module only encodes and parses, and checks what the specification says MUST be checked.
docs/encryption-format.md says which rules are enforced where; tests/supply_chain/test_age_testkit.py runs the
C2SP CCTV age test vectors through it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from modelshield.errors import FileFormatError, VerificationError

__all__ = [
    "CHUNK_SIZE",
    "FILE_KEY_SIZE",
    "HYBRID",
    "LEGACY_MAGIC",
    "NONCE_SIZE",
    "SCRYPT",
    "VERSION_LINE",
    "X25519",
    "Header",
    "Stanza",
    "bech32_decode",
    "bech32_encode",
    "decrypt_payload",
    "encode_header",
    "encrypt_payload",
    "open_with_passphrase",
    "read_header",
    "seal",
    "sniff",
    "unwrap_hybrid",
    "unwrap_scrypt",
    "unwrap_x25519",
    "wrap_hybrid",
    "wrap_scrypt",
    "wrap_x25519",
]

VERSION_LINE = b"age-encryption.org/v1\n"
_VERSION_PREFIX = b"age-encryption.org/"
_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
LEGACY_MAGIC = b"\x89MSENC\r\n"  # modelshield's own format before it adopted age

FILE_KEY_SIZE = 16
NONCE_SIZE = 16
CHUNK_SIZE = 64 * 1024
_TAG = 16
_SEALED_CHUNK = CHUNK_SIZE + _TAG
_ZERO_NONCE = bytes(12)
_COLUMNS = 64
_MAX_LINE = 16 * 1024  # the longest stanza line of a known type is about 1,600 columns
_MAX_HEADER = 1 << 20  # about 600 post-quantum recipients

X25519 = "X25519"
SCRYPT = "scrypt"
HYBRID = "mlkem768x25519"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_SCRYPT_SALT_LABEL = b"age-encryption.org/v1/scrypt"
_HYBRID_INFO = b"age-encryption.org/mlkem768x25519"
_HYBRID_ENC = 1088 + 32  # ML-KEM-768 ciphertext, then the X25519 ephemeral share
_HYBRID_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_WORK_FACTOR = re.compile(r"[1-9][0-9]*")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*")

_TAMPERED = "Do not use the file; obtain it again from a trusted source."


def _corrupt(name: str, what: str) -> VerificationError:
    return VerificationError(
        f"{name}: {what}; the file is corrupt or was tampered with.", remedy=_TAMPERED, subject=name
    )


# --- encodings ------------------------------------------------------------------------------------------------------


def b64encode(data: bytes) -> bytes:
    """Standard base64 without padding, as age writes it."""
    return base64.b64encode(data).rstrip(b"=")


def b64decode(text: bytes) -> bytes | None:
    """The bytes of canonical unpadded base64 ``text``, or None if it is not exactly that."""
    if not _BASE64.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:  # pragma: no cover - the pattern and length checks leave nothing for it
        return None
    return data if b64encode(data) == text else None  # non-zero trailing bits are not canonical


_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: Sequence[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                check ^= generator
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: bytes | Sequence[int], source: int, target: int, *, pad: bool) -> list[int] | None:
    accumulator, bits, out, mask = 0, 0, [], (1 << target) - 1
    for value in data:
        accumulator = (accumulator << source) | value
        bits += source
        while bits >= target:
            bits -= target
            out.append((accumulator >> bits) & mask)
    if pad and bits:
        out.append((accumulator << (target - bits)) & mask)
    elif not pad and (bits >= source or (accumulator << (target - bits)) & mask):
        return None
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    """Bech32 (BIP 173, checksum constant 1) without the 90-character limit, lowercase as age prints recipients."""
    hrp = hrp.lower()
    words = _regroup(data, 8, 5, pad=True) or []
    check = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    words += [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[w] for w in words)


def bech32_decode(text: str) -> tuple[str, bytes] | None:
    """``(hrp, data)`` with the HRP lowercased, or None when ``text`` is not valid Bech32 (mixed case included)."""
    if text != text.lower() and text != text.upper():
        return None
    text = text.lower()
    separator = text.rfind("1")
    if separator < 1 or len(text) - separator < 7 or any(not 33 <= ord(c) <= 126 for c in text):
        return None
    hrp, tail = text[:separator], text[separator + 1 :]
    if any(c not in _CHARSET for c in tail):
        return None
    words = [_CHARSET.index(c) for c in tail]
    if _polymod([*_hrp_expand(hrp), *words]) != 1:
        return None
    data = _regroup(words[:-6], 5, 8, pad=False)
    return None if data is None else (hrp, bytes(data))


# --- header ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: its arguments (the first names its type) and its body."""

    args: tuple[str, ...]
    body: bytes

    @property
    def type(self) -> str:
        return self.args[0]

    def encode(self) -> bytes:
        lines = [b"-> " + " ".join(self.args).encode("ascii")]
        body = b64encode(self.body)
        lines += [body[i : i + _COLUMNS] for i in range(0, len(body), _COLUMNS)]
        if len(body) % _COLUMNS == 0:
            lines.append(b"")  # the body always ends with a line shorter than 64 columns
        return b"\n".join(lines) + b"\n"


@dataclass(frozen=True)
class Header:
    """A parsed header: its stanzas, the bytes its MAC covers, and the MAC."""

    stanzas: tuple[Stanza, ...]
    mac_input: bytes  # from the version line up to and including "---"
    mac: bytes
    size: int  # bytes in the file, the final newline included

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.type for s in self.stanzas))

    def verify_mac(self, file_key: bytes, name: str) -> None:
        if not hmac.compare_digest(_header_mac(file_key, self.mac_input), self.mac):
            raise _corrupt(name, "the header MAC does not verify (the header was modified)")


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(ikm)


def _header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    return hmac.digest(hkdf(file_key, b"", b"header"), mac_input, hashlib.sha256)


def encode_header(stanzas: Sequence[Stanza], file_key: bytes) -> bytes:
    """The complete header, MAC and final newline included."""
    mac_input = VERSION_LINE + b"".join(s.encode() for s in stanzas) + b"---"
    return mac_input + b" " + b64encode(_header_mac(file_key, mac_input)) + b"\n"


def sniff(first: bytes, name: str) -> None:
    """Raise :class:`FileFormatError` unless ``first`` (the first line, or bytes) starts an age v1 file."""
    if first.startswith(VERSION_LINE):
        return
    if first.startswith(VERSION_LINE[:-1]):  # "v1", then no newline, a CR or more: a damaged version line
        raise _corrupt(name, "the version line is malformed or truncated")
    if first.startswith(_VERSION_PREFIX):
        version = first[len(_VERSION_PREFIX) :].split(b"\n")[0][:32].decode("ascii", "replace")
        raise FileFormatError(
            f"{name} is an age file of version {version!r}; modelshield reads version v1.",
            remedy="Decrypt it with a newer age tool.",
        )
    if first.startswith(_ARMOR):
        raise FileFormatError(
            f"{name} is an ASCII-armored age file, which modelshield does not read.",
            remedy="Decrypt it with `age -d`, or encrypt without -a/--armor.",
        )
    if first.startswith(LEGACY_MAGIC):
        raise FileFormatError(
            f"{name} is in modelshield's own encryption format of before version 0.2, no longer read.",
            remedy="Decrypt it with the modelshield release that wrote it, and encrypt it again.",
        )
    raise FileFormatError(
        f"{name} is not an age encrypted file (it does not start with 'age-encryption.org/v1').",
        remedy="Pass a file written by `modelshield encrypt`, `age` or `rage`.",
    )


def read_header(reader: BinaryIO, name: str) -> Header:
    """Parse the header strictly (the ABNF of c2sp.org/age), leaving ``reader`` at the first payload byte.

    Not age v1: :class:`FileFormatError`. Malformed, truncated or over 1 MiB: :class:`VerificationError`.
    """
    first = reader.readline(len(VERSION_LINE))
    if first != VERSION_LINE:
        sniff(first + reader.read(64), name)
    raw, stanzas = bytearray(first), []
    args: list[str] | None = None
    body: list[bytes] = []
    while True:
        line = reader.readline(_MAX_LINE)
        raw += line
        if len(raw) > _MAX_HEADER:
            raise _corrupt(name, f"the header is longer than {_MAX_HEADER} bytes")
        if not line.endswith(b"\n"):
            raise _corrupt(name, "the header is truncated" if len(line) < _MAX_LINE else "a header line is too long")
        text = line[:-1]
        if args is not None:  # inside a stanza body
            if len(text) > _COLUMNS or not _BASE64.fullmatch(text):
                raise _corrupt(name, "a stanza body line is not base64 of at most 64 columns")
            body.append(text)
            if len(text) < _COLUMNS:
                decoded = b64decode(b"".join(body))
                if decoded is None:
                    raise _corrupt(name, "a stanza body is not canonical base64")
                stanzas.append(Stanza(tuple(args), decoded))
                args, body = None, []
            continue
        if text.startswith(b"-> "):
            words = text[3:].split(b" ")
            if not all(words) or any(b < 0x21 or b > 0x7E for word in words for b in word):
                raise _corrupt(name, "a stanza has an empty argument or a character outside printable ASCII")
            args = [word.decode("ascii") for word in words]
            continue
        if text.startswith(b"---"):
            mac = b64decode(text[4:]) if text[3:4] == b" " else None
            if mac is None or len(mac) != 32:
                raise _corrupt(name, "the header MAC line is malformed")
            if not stanzas:
                raise _corrupt(name, "the header has no recipient stanza")
            mac_input = bytes(raw[: len(raw) - len(line) + 3])
            return Header(tuple(stanzas), mac_input, mac, len(raw))
        raise _corrupt(name, "a header line is neither a stanza nor the MAC")


# --- stanzas --------------------------------------------------------------------------------------------------------


def _check_file_key(stanza: Stanza, name: str) -> None:
    # A body of any other length could only come from a hostile sender probing for a partitioning oracle.
    if len(stanza.body) != FILE_KEY_SIZE + _TAG:
        raise _corrupt(name, f"the body of a {stanza.type} stanza is {len(stanza.body)} bytes, not 32")


def _argument(stanza: Stanza, index: int, size: int, name: str) -> bytes:
    value = b64decode(stanza.args[index].encode("ascii"))
    if value is None or len(value) != size:
        raise _corrupt(name, f"argument {index + 1} of a {stanza.type} stanza is not canonical base64 of {size} bytes")
    return value


def _arity(stanza: Stanza, count: int, name: str) -> None:
    if len(stanza.args) != count:
        raise _corrupt(name, f"a {stanza.type} stanza has {len(stanza.args) - 1} arguments, not {count - 1}")


def _seal_file_key(key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)


def _open_file_key(key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


def wrap_x25519(file_key: bytes, recipient: x25519.X25519PublicKey, ephemeral: x25519.X25519PrivateKey) -> Stanza:
    share = ephemeral.public_key().public_bytes_raw()
    secret = ephemeral.exchange(recipient)  # ValueError for a low-order recipient key
    key = hkdf(secret, share + recipient.public_bytes_raw(), _X25519_INFO)
    return Stanza((X25519, b64encode(share).decode("ascii")), _seal_file_key(key, file_key))


def unwrap_x25519(stanza: Stanza, identity: x25519.X25519PrivateKey, name: str) -> bytes | None:
    """The file key, or None when the stanza is not for ``identity``; a malformed X25519 stanza raises."""
    _arity(stanza, 2, name)
    share = _argument(stanza, 1, 32, name)
    _check_file_key(stanza, name)
    try:
        secret = identity.exchange(x25519.X25519PublicKey.from_public_bytes(share))
    except ValueError:
        raise _corrupt(name, "the share of an X25519 stanza is a low-order point") from None
    recipient = identity.public_key().public_bytes_raw()
    return _open_file_key(hkdf(secret, share + recipient, _X25519_INFO), stanza.body)


def _scrypt_key(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=_SCRYPT_SALT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    return kdf.derive(passphrase)


def wrap_scrypt(file_key: bytes, passphrase: bytes, work_factor: int, salt: bytes) -> Stanza:
    body = _seal_file_key(_scrypt_key(passphrase, salt, work_factor), file_key)
    return Stanza((SCRYPT, b64encode(salt).decode("ascii"), str(work_factor)), body)


def unwrap_scrypt(stanza: Stanza, passphrase: bytes, max_work_factor: int, name: str) -> bytes | None:
    """The file key, or None for a wrong passphrase. A work factor above ``max_work_factor`` is refused first."""
    _arity(stanza, 3, name)
    salt = _argument(stanza, 1, 16, name)
    if not _WORK_FACTOR.fullmatch(stanza.args[2]) or len(stanza.args[2]) > 2:
        raise _corrupt(name, f"the scrypt work factor {stanza.args[2][:8]!r} is not a decimal number")
    work_factor = int(stanza.args[2])
    _check_file_key(stanza, name)
    if work_factor > max_work_factor:
        raise VerificationError(
            f"{name}: the passphrase stanza asks for scrypt work factor 2^{work_factor} "
            f"({128 * 8 << work_factor >> 20} MiB of memory), above the limit 2^{max_work_factor}.",
            remedy="If you trust where the file comes from, raise the limit (--max-work-factor); otherwise do not.",
            subject=name,
        )
    return _open_file_key(_scrypt_key(passphrase, salt, work_factor), stanza.body)


def wrap_hybrid(file_key: bytes, recipient: hpke.MLKEM768X25519PublicKey) -> Stanza:
    sealed = _HYBRID_SUITE.encrypt(file_key, recipient, info=_HYBRID_INFO)  # enc || ciphertext and tag
    enc, body = sealed[:_HYBRID_ENC], sealed[_HYBRID_ENC:]
    return Stanza((HYBRID, b64encode(enc).decode("ascii")), body)


def unwrap_hybrid(
    stanza: Stanza, identity: hpke.MLKEM768X25519PrivateKey, x25519_half: x25519.X25519PrivateKey, name: str
) -> bytes | None:
    """The file key, or None when the stanza is not for ``identity``; a malformed hybrid stanza raises.

    ``x25519_half`` is the X25519 half of ``identity``: the share in ``enc`` is checked against it for a low-order
    point (an all-zero shared secret), which the specification rejects as malformed rather than as no match.
    """
    _arity(stanza, 2, name)
    enc = _argument(stanza, 1, _HYBRID_ENC, name)
    _check_file_key(stanza, name)
    try:
        x25519_half.exchange(x25519.X25519PublicKey.from_public_bytes(enc[-32:]))
    except ValueError:
        raise _corrupt(name, "the X25519 share of an mlkem768x25519 stanza is a low-order point") from None
    try:
        return _HYBRID_SUITE.decrypt(enc + stanza.body, identity, info=_HYBRID_INFO)
    except InvalidTag:
        return None


# --- payload --------------------------------------------------------------------------------------------------------


def read_exact(reader: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end of the stream (tolerates the short reads of pipes)."""
    data = reader.read(size)
    if len(data) == size or not data:
        return data
    parts, got = [data], len(data)
    while got < size:
        more = reader.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _chunk_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


@dataclass(frozen=True)
class PayloadStats:
    chunks: int
    plaintext_bytes: int
    ciphertext_bytes: int  # the nonce included


def encrypt_payload(reader: BinaryIO, writer: BinaryIO, file_key: bytes, nonce: bytes) -> PayloadStats:
    """Write the payload nonce and the STREAM chunks of everything ``reader`` yields (two chunks in memory)."""
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    writer.write(nonce)
    out = memoryview(bytearray(_SEALED_CHUNK))
    index, plaintext_bytes, written = 0, 0, len(nonce)
    current = read_exact(reader, CHUNK_SIZE)
    while True:
        following = read_exact(reader, CHUNK_SIZE) if len(current) == CHUNK_SIZE else b""
        last = not following
        size = aead.encrypt_into(_chunk_nonce(index, last), current, None, out[: len(current) + _TAG])
        writer.write(out[:size])
        written += size
        plaintext_bytes += len(current)
        if last:
            return PayloadStats(index + 1, plaintext_bytes, written)
        current, index = following, index + 1


def decrypt_payload(reader: BinaryIO, writer: BinaryIO, file_key: bytes, name: str) -> PayloadStats:
    """Decrypt the payload chunk by chunk, writing each one as soon as it authenticates.

    As in the reference implementation, a full-size chunk is opened as a middle chunk and, failing that, as the
    final one, so no read-ahead is needed. Raises :class:`VerificationError` for a missing nonce, a chunk that does
    not authenticate (modified, reordered, dropped, duplicated), a stream that ends without a final chunk
    (truncated), anything after the final chunk, or an empty final chunk after others.
    """
    nonce = read_exact(reader, NONCE_SIZE)
    if len(nonce) < NONCE_SIZE:
        raise _corrupt(name, "the payload nonce is missing or truncated")
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    out = memoryview(bytearray(CHUNK_SIZE))
    index, plaintext_bytes, read = 0, 0, NONCE_SIZE
    while True:
        chunk = read_exact(reader, _SEALED_CHUNK)
        if len(chunk) < _TAG:
            raise _corrupt(name, "the encrypted data is truncated (it ends without a final chunk)")
        target = out[: len(chunk) - _TAG]
        size, last = None, len(chunk) < _SEALED_CHUNK
        for final in (False, True) if not last else (True,):
            try:
                size = aead.decrypt_into(_chunk_nonce(index, final), chunk, None, target)
            except InvalidTag:
                continue
            last = final
            break
        if size is None:
            raise _corrupt(
                name, f"chunk {index} does not authenticate (data modified, reordered, truncated or appended)"
            )
        read += len(chunk)
        if last and size == 0 and index > 0:
            raise _corrupt(name, "the final chunk is empty")
        writer.write(out[:size])  # the final chunk too, before the check below, as the reference implementation
        plaintext_bytes += size
        if last and reader.read(1):
            raise _corrupt(name, "there is data after the final chunk")
        if last:
            return PayloadStats(index + 1, plaintext_bytes, read)
        index += 1


# --- small whole-buffer helpers (identity files) --------------------------------------------------------------------


def seal(data: bytes, stanzas: Sequence[Stanza], file_key: bytes, nonce: bytes) -> bytes:
    """A complete age file of ``data`` (in memory: for key files, never for models)."""
    out = io.BytesIO()
    out.write(encode_header(stanzas, file_key))
    encrypt_payload(io.BytesIO(data), out, file_key, nonce)
    return out.getvalue()


def open_with_passphrase(blob: bytes, passphrase: bytes, max_work_factor: int, name: str) -> bytes | None:
    """The plaintext of a passphrase-encrypted age file held in memory, or None for a wrong passphrase."""
    reader = io.BytesIO(blob)
    header = read_header(reader, name)
    if header.types != (SCRYPT,) or len(header.stanzas) != 1:
        raise FileFormatError(f"{name} is an age file, but not encrypted with a passphrase.")
    file_key = unwrap_scrypt(header.stanzas[0], passphrase, max_work_factor, name)
    if file_key is None:
        return None
    header.verify_mac(file_key, name)
    out = io.BytesIO()
    decrypt_payload(reader, out, file_key, name)
    return out.getvalue()
