"""Encryption at rest (age v1): round trips, several recipients, what may not be mixed, tampering and truncation,
wrong keys, hostile headers, and the all-or-nothing file API."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.errors import FileFormatError, InvalidParameterError, VerificationError
from modelshield.supply_chain import _age
from modelshield.supply_chain.encryption import (
    EncryptionResult,
    KeyWrapping,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
    inspect_encrypted,
    is_encrypted,
)
from modelshield.supply_chain.keys import KeyAlgorithm, PrivateKeySet, generate_keypair

CHUNK = _age.CHUNK_SIZE
SEALED = CHUNK + 16
WORK = 15  # the smallest scrypt work factor accepted for encryption, to keep the tests fast; the default is 18
PASSWORD = b"correct horse battery staple"
HYBRID, CLASSIC = KeyAlgorithm.X25519_MLKEM768, KeyAlgorithm.X25519


@pytest.fixture(scope="module")
def hybrid() -> PrivateKeySet:
    return generate_keypair(HYBRID)


@pytest.fixture(scope="module")
def classic() -> PrivateKeySet:
    return generate_keypair(CLASSIC)


def _encrypt(data: bytes, *keys: PrivateKeySet, passphrase: bytes | None = None) -> bytes:
    out = io.BytesIO()
    if passphrase is not None:
        encrypt_stream(io.BytesIO(data), out, passphrase=passphrase, scrypt_work_factor=WORK)
    else:
        encrypt_stream(io.BytesIO(data), out, recipients=[k.public() for k in keys])
    return out.getvalue()


def _decrypt(blob: bytes, *keys: PrivateKeySet, passphrase: bytes | None = None) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, identities=list(keys), passphrase=passphrase)
    return out.getvalue()


def _decrypt_file(tmp_path: Path, blob: bytes, *keys: PrivateKeySet, passphrase: bytes | None = None) -> bytes:
    """Decrypt ``blob`` through a file; on failure, check that no plaintext (nor a temp file) was left behind."""
    src, dst = tmp_path / "in.age", tmp_path / "out.bin"
    src.write_bytes(blob)
    try:
        decrypt_file(src, dst, identities=list(keys), passphrase=passphrase)
    except BaseException:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.age"]
        raise
    data = dst.read_bytes()
    dst.unlink()
    return data


def _flip(blob: bytes, offset: int, mask: int = 0x01) -> bytes:
    changed = bytearray(blob)
    changed[offset] ^= mask
    return bytes(changed)


def _header_size(blob: bytes) -> int:
    return _age.read_header(io.BytesIO(blob), "t").size


# --- round trips --------------------------------------------------------------------------------------------------

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7]


@pytest.mark.parametrize("algorithm", [HYBRID, CLASSIC])
@pytest.mark.parametrize("size", SIZES)
def test_recipient_round_trip(
    algorithm: KeyAlgorithm, size: int, hybrid: PrivateKeySet, classic: PrivateKeySet
) -> None:
    key = hybrid if algorithm is HYBRID else classic
    data = os.urandom(size)
    blob = _encrypt(data, key)
    chunks = max(1, -(-size // CHUNK))
    assert blob.startswith(b"age-encryption.org/v1\n")
    assert len(blob) == _header_size(blob) + 16 + size + 16 * chunks
    assert _decrypt(blob, key) == data


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1])
def test_passphrase_round_trip(size: int) -> None:
    data = os.urandom(size)
    blob = _encrypt(data, passphrase=PASSWORD)
    assert b"\n-> scrypt " in blob[:100]
    assert _decrypt(blob, passphrase=PASSWORD) == data


@pytest.mark.parametrize("algorithm", [HYBRID, CLASSIC])
def test_several_recipients_each_decrypt(algorithm: KeyAlgorithm) -> None:
    keys = [generate_keypair(algorithm) for _ in range(3)]
    blob = _encrypt(b"shared weights", *keys)
    info = _age.read_header(io.BytesIO(blob), "t")
    assert len(info.stanzas) == 3
    for key in keys:
        assert _decrypt(blob, key) == b"shared weights"
    assert _decrypt(blob, generate_keypair(algorithm), keys[2]) == b"shared weights"  # any identity that matches


def test_file_api_reports_and_defaults(hybrid: PrivateKeySet, tmp_path: Path) -> None:
    src, enc, dec = tmp_path / "model.bin", tmp_path / "sub" / "model.age", tmp_path / "model.out"
    data = os.urandom(CHUNK + 5)
    src.write_bytes(data)
    result = encrypt_file(src, enc, recipients=[hybrid.public()])
    assert result == EncryptionResult(
        KeyWrapping.MLKEM768X25519, (hybrid.public().age_recipient(),), 2, len(data), enc.stat().st_size
    )
    assert is_encrypted(enc)
    assert not is_encrypted(src)
    info = inspect_encrypted(enc)
    assert (info.format, info.stanza_types, info.stanzas, info.post_quantum) == (
        "age-encryption.org/v1",
        ("mlkem768x25519",),
        1,
        True,
    )
    back = decrypt_file(enc, dec, identities=[hybrid])
    assert back == result
    assert dec.read_bytes() == data
    assert stat.S_IMODE(dec.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["model.age", "model.bin", "model.out", "sub"]


def test_the_kind_of_file_is_read_from_its_header_not_its_name(
    hybrid: PrivateKeySet, classic: PrivateKeySet, tmp_path: Path
) -> None:
    for name, blob, types in [
        ("a.txt", _encrypt(b"x", hybrid), ("mlkem768x25519",)),
        ("b.enc", _encrypt(b"x", classic), ("X25519",)),
        ("c.age", _encrypt(b"x", passphrase=PASSWORD), ("scrypt",)),
    ]:
        (tmp_path / name).write_bytes(blob)
        info = inspect_encrypted(tmp_path / name)
        assert info.stanza_types == types
        assert info.post_quantum is (types == ("mlkem768x25519",))
    (tmp_path / "d.age").write_bytes(b"PK\x03\x04 not age")
    with pytest.raises(FileFormatError, match="not an age encrypted file"):
        inspect_encrypted(tmp_path / "d.age")


def test_each_encryption_is_fresh(classic: PrivateKeySet) -> None:
    assert _encrypt(b"same", classic) != _encrypt(b"same", classic)


def test_stream_reader_with_short_reads(hybrid: PrivateKeySet) -> None:
    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            return super().read(min(size if size is not None and size >= 0 else 7, 7))

    data = os.urandom(2 * CHUNK + 3)
    out = io.BytesIO()
    encrypt_stream(Trickle(data), out, recipients=[hybrid.public()])
    back = io.BytesIO()
    decrypt_stream(Trickle(out.getvalue()), back, identities=[hybrid])
    assert back.getvalue() == data


# --- what may not be combined -------------------------------------------------------------------------------------


def test_passphrase_and_recipients_are_not_mixed(classic: PrivateKeySet) -> None:
    with pytest.raises(InvalidParameterError, match="not both: age does not allow a passphrase beside recipients"):
        encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), recipients=[classic.public()], passphrase=PASSWORD)


def test_post_quantum_and_classical_recipients_are_not_mixed(hybrid: PrivateKeySet, classic: PrivateKeySet) -> None:
    out = io.BytesIO()
    with pytest.raises(InvalidParameterError, match="mix post-quantum hybrid"):
        encrypt_stream(io.BytesIO(b"x"), out, recipients=[hybrid.public(), classic.public()])
    assert out.getvalue() == b""


def test_bad_parameters(classic: PrivateKeySet) -> None:
    src = io.BytesIO(b"data")
    public = classic.public()
    with pytest.raises(InvalidParameterError, match="at least one recipient"):
        encrypt_stream(src, io.BytesIO())
    with pytest.raises(InvalidParameterError, match="sequence of PublicKeySet"):
        encrypt_stream(src, io.BytesIO(), recipients=public)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="exactly one"):
        decrypt_stream(src, io.BytesIO(), identities=[classic], passphrase=PASSWORD)
    with pytest.raises(InvalidParameterError, match="exactly one"):
        decrypt_stream(src, io.BytesIO())
    with pytest.raises(InvalidParameterError, match="empty"):
        encrypt_stream(src, io.BytesIO(), passphrase=b"")
    with pytest.raises(InvalidParameterError, match="must be bytes"):
        encrypt_stream(src, io.BytesIO(), passphrase=str(PASSWORD))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="scrypt_work_factor"):
        encrypt_stream(src, io.BytesIO(), passphrase=PASSWORD, scrypt_work_factor=10)
    with pytest.raises(InvalidParameterError, match="max_scrypt_work_factor"):
        decrypt_stream(src, io.BytesIO(), passphrase=PASSWORD, max_scrypt_work_factor=30)
    signing = generate_keypair(KeyAlgorithm.ED25519)
    with pytest.raises(InvalidParameterError, match="signing key; encryption needs"):
        encrypt_stream(src, io.BytesIO(), recipients=[signing.public()])
    with pytest.raises(InvalidParameterError, match="decryption needs an x25519-mlkem768 or x25519"):
        decrypt_stream(io.BytesIO(_encrypt(b"x", classic)), io.BytesIO(), identities=[signing])


# --- tampering, truncation, reordering ----------------------------------------------------------------------------

DATA = bytes(range(256)) * 1024 + b"tail"  # four full chunks and one of 4 bytes


@pytest.fixture(scope="module")
def sealed(hybrid: PrivateKeySet) -> bytes:
    return _encrypt(DATA, hybrid)


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    start = _header_size(blob) + 16
    body = blob[start:]
    return blob[:start], [body[i : i + SEALED] for i in range(0, len(body), SEALED)]


def test_every_header_byte_is_authenticated(hybrid: PrivateKeySet, sealed: bytes) -> None:
    header = _header_size(sealed)
    for offset in range(header):
        # The version line identifies the format: a change there reads as another format or version; a damaged
        # line end, as a damaged file.
        expected = FileFormatError if offset < len(_age.VERSION_LINE) - 1 else VerificationError
        with pytest.raises(expected):
            decrypt_stream(io.BytesIO(_flip(sealed, offset)), io.BytesIO(), identities=[hybrid])


@pytest.mark.parametrize("where", ["first", "last", "tag"])
def test_a_flipped_bit_in_any_chunk_fails_and_writes_nothing(
    hybrid: PrivateKeySet, sealed: bytes, tmp_path: Path, where: str
) -> None:
    head, chunks = _chunks(sealed)
    assert len(chunks) == 5
    start = len(head)
    for i, chunk in enumerate(chunks):
        offset = {"first": start, "last": start + len(chunk) - 17, "tag": start + len(chunk) - 1}[where]
        with pytest.raises(VerificationError, match=f"chunk {i} does not authenticate"):
            _decrypt_file(tmp_path, _flip(sealed, offset, 0x80), hybrid)
        start += len(chunk)


def test_the_payload_nonce_is_authenticated(hybrid: PrivateKeySet, sealed: bytes, tmp_path: Path) -> None:
    nonce = _header_size(sealed)
    for offset in (nonce, nonce + 15):
        with pytest.raises(VerificationError, match="chunk 0 does not authenticate"):
            _decrypt_file(tmp_path, _flip(sealed, offset), hybrid)


def test_truncation_fails_and_writes_nothing(hybrid: PrivateKeySet, sealed: bytes, tmp_path: Path) -> None:
    head = _header_size(sealed) + 16
    cuts = [
        head + 4 * SEALED,  # at a chunk boundary: the final chunk is gone
        head + 2 * SEALED,  # at an earlier boundary
        head + SEALED + 30,  # mid-chunk
        head + 4 * SEALED + 3,  # into the final chunk's tag
        head + 5,  # less than one tag after the nonce
        head,  # header and nonce alone
        head - 8,  # into the nonce
        head - 16,  # the header alone
        head - 20,  # into the MAC line
        100,  # into the stanza
        10,  # into the version line
    ]
    for cut in cuts:
        with pytest.raises((VerificationError, FileFormatError)):
            _decrypt_file(tmp_path, sealed[:cut], hybrid)


def test_truncation_at_a_boundary_of_an_exact_multiple(classic: PrivateKeySet, tmp_path: Path) -> None:
    blob = _encrypt(os.urandom(3 * CHUNK), classic)
    head, chunks = _chunks(blob)
    assert [len(c) for c in chunks] == [SEALED] * 3
    for count in (1, 2):
        with pytest.raises(VerificationError, match="without a final chunk"):
            _decrypt_file(tmp_path, head + b"".join(chunks[:count]), classic)


@pytest.mark.parametrize(
    "order",
    [
        [1, 0, 2, 3, 4],  # swapped
        [0, 1, 2, 4, 3],  # swapped with the final one
        [0, 2, 3, 4],  # dropped
        [0, 1, 1, 2, 3, 4],  # duplicated
        [0, 1, 2, 3, 4, 4],  # the final chunk twice
        [4],  # only the final chunk
    ],
)
def test_reordered_dropped_or_duplicated_chunks_fail(
    hybrid: PrivateKeySet, sealed: bytes, tmp_path: Path, order: list[int]
) -> None:
    head, chunks = _chunks(sealed)
    with pytest.raises(VerificationError):
        _decrypt_file(tmp_path, head + b"".join(chunks[i] for i in order), hybrid)


def test_appended_bytes_and_spliced_files_fail(hybrid: PrivateKeySet, sealed: bytes, tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="chunk 4 does not authenticate"):
        _decrypt_file(tmp_path, sealed + b"\x00", hybrid)
    full = _encrypt(bytes(CHUNK), hybrid)  # a full-size final chunk authenticates as final; what follows is refused
    with pytest.raises(VerificationError, match="data after the final chunk"):
        _decrypt_file(tmp_path, full + b"\x00", hybrid)
    # The payload of another encryption of the same plaintext does not fit this header (another file key).
    other = _encrypt(DATA, hybrid)
    head, _ = _chunks(sealed)
    other_head, other_chunks = _chunks(other)
    with pytest.raises(VerificationError, match="chunk 0"):
        _decrypt_file(tmp_path, head + b"".join(other_chunks), hybrid)
    # A stanza moved from another file breaks the header MAC.
    with pytest.raises(VerificationError):
        _decrypt_file(tmp_path, other_head[: _header_size(other)] + sealed[_header_size(sealed) :], hybrid)


def test_passphrase_header_and_chunks_are_authenticated(tmp_path: Path) -> None:
    blob = _encrypt(DATA[:100], passphrase=PASSWORD)
    header = _header_size(blob)
    for offset in [*range(len(_age.VERSION_LINE), header), header, header + 16, len(blob) - 1]:
        with pytest.raises(VerificationError):
            _decrypt_file(tmp_path, _flip(blob, offset, 0x80), passphrase=PASSWORD)


# --- wrong keys ---------------------------------------------------------------------------------------------------


def test_wrong_recipient_fails(sealed: bytes, tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match=r"none of the 1 recipient stanza \(mlkem768x25519\) unwraps"):
        _decrypt_file(tmp_path, sealed, generate_keypair(HYBRID))


def test_wrong_passphrase_fails(tmp_path: Path) -> None:
    blob = _encrypt(b"secret", passphrase=PASSWORD)
    with pytest.raises(VerificationError, match="wrong passphrase") as info:
        _decrypt_file(tmp_path, blob, passphrase=b"hunter2")
    assert "hunter2" not in info.value.diagnostics()


def test_both_halves_of_the_hybrid_are_needed(hybrid: PrivateKeySet, sealed: bytes) -> None:
    """Knowing one half of the recipient's private key (say, X25519 broken by a quantum computer) is not enough."""
    other = generate_keypair(HYBRID)
    (x_right, k_right), (x_wrong, k_wrong) = hybrid.keys, other.keys
    for keys in [(x_right, k_wrong), (x_wrong, k_right)]:
        with pytest.raises(VerificationError, match="unwraps with"):
            _decrypt(sealed, PrivateKeySet(keys))
    assert _decrypt(sealed, PrivateKeySet((x_right, k_right))) == DATA


def test_pem_era_hybrid_keys_still_work() -> None:
    """Keys written before modelshield adopted age: two independent halves, no seed. They wrap and unwrap alike."""
    old = PrivateKeySet((x25519.X25519PrivateKey.generate(), mlkem.MLKEM768PrivateKey.generate()))
    assert old.algorithm is HYBRID and old.seed is None
    assert _decrypt(_encrypt(b"legacy", old), old) == b"legacy"


def test_the_credential_must_match_the_wrapping(
    hybrid: PrivateKeySet, classic: PrivateKeySet, sealed: bytes, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameterError, match="encrypted for mlkem768x25519 recipient keys, not with a pass"):
        _decrypt(sealed, passphrase=PASSWORD)
    with pytest.raises(InvalidParameterError, match="encrypted with a passphrase"):
        _decrypt(_encrypt(b"x", passphrase=PASSWORD), hybrid)
    with pytest.raises(InvalidParameterError, match="identities given are X25519 keys"):
        _decrypt_file(tmp_path, sealed, classic)


# --- not an age file, hostile headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "not an age encrypted file"),
        (b"PK\x03\x04 a zip file" * 10, "not an age encrypted file"),
        (b"age-encryption.org/v2\n-> X25519 abc\n", "version 'v2'"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n", "ASCII-armored"),
        (b"\x89MSENC\r\n\x01\x01" + bytes(100), "own encryption format of before"),
    ],
)
def test_not_an_age_file(hybrid: PrivateKeySet, tmp_path: Path, blob: bytes, message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        _decrypt_file(tmp_path, blob, hybrid)


def _scrypt_file(work_factor: str) -> bytes:
    stanza = _age.Stanza(("scrypt", _age.b64encode(bytes(16)).decode(), work_factor), bytes(32))
    return _age.encode_header([stanza], bytes(16)) + bytes(32)


@pytest.mark.parametrize(("work_factor", "message"), [("21", "2\\^21 \\(2048 MiB"), ("40", "2\\^40")])
def test_hostile_scrypt_work_factor_is_refused_before_scrypt_runs(work_factor: str, message: str) -> None:
    with pytest.raises(VerificationError, match=message) as info:
        _decrypt(_scrypt_file(work_factor), passphrase=PASSWORD)
    assert "--max-work-factor" in info.value.remedy


def test_the_work_factor_limit_can_be_raised() -> None:
    blob = _encrypt(b"slow", passphrase=PASSWORD)
    with pytest.raises(VerificationError, match="above the limit 2\\^14"):
        decrypt_stream(io.BytesIO(blob), io.BytesIO(), passphrase=PASSWORD, max_scrypt_work_factor=14)


def test_an_oversized_header_is_refused_without_reading_on(hybrid: PrivateKeySet) -> None:
    line = b"-> grease " + b"a" * 100 + b"\n" + b"A" * 63 + b"\n"
    blob = _age.VERSION_LINE + line * ((1 << 20) // len(line) + 1)
    with pytest.raises(VerificationError, match="header is longer than"):
        _decrypt(blob, hybrid)
    with pytest.raises(VerificationError, match="header line is too long"):
        _decrypt(_age.VERSION_LINE + b"-> " + b"a" * 20000 + b"\n", hybrid)


@settings(max_examples=150, deadline=None)
@given(tail=st.binary(max_size=2000), cut=st.integers(min_value=10, max_value=2000))
def test_fuzzed_input_fails_closed(hybrid: PrivateKeySet, sealed: bytes, tail: bytes, cut: int) -> None:
    for blob in (_age.VERSION_LINE + tail, sealed[:cut] + tail):
        with pytest.raises((VerificationError, FileFormatError)):
            _decrypt(blob, hybrid)


# --- paths --------------------------------------------------------------------------------------------------------


def test_existing_output_is_not_overwritten(classic: PrivateKeySet, tmp_path: Path) -> None:
    src, dst = tmp_path / "a.bin", tmp_path / "a.age"
    src.write_bytes(b"new")
    dst.write_bytes(b"precious")
    with pytest.raises(FileFormatError, match="already exists"):
        encrypt_file(src, dst, recipients=[classic.public()])
    assert dst.read_bytes() == b"precious"
    encrypt_file(src, dst, recipients=[classic.public()], overwrite=True)
    out = tmp_path / "a.out"
    out.write_bytes(b"precious")
    with pytest.raises(FileFormatError, match="already exists"):
        decrypt_file(dst, out, identities=[classic])
    assert out.read_bytes() == b"precious"
    decrypt_file(dst, out, identities=[classic], overwrite=True)
    assert out.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.age", "a.bin", "a.out"]


def test_a_failed_overwrite_leaves_the_old_output(classic: PrivateKeySet, tmp_path: Path) -> None:
    src, out = tmp_path / "a.age", tmp_path / "a.out"
    src.write_bytes(_flip(_encrypt(os.urandom(3 * CHUNK), classic), -1))
    out.write_bytes(b"precious")
    with pytest.raises(VerificationError, match="chunk 2"):
        decrypt_file(src, out, identities=[classic], overwrite=True)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.age", "a.out"]


def test_output_must_differ_from_input(classic: PrivateKeySet, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    with pytest.raises(InvalidParameterError, match="is the input"):
        encrypt_file(src, src, recipients=[classic.public()], overwrite=True)
    link = tmp_path / "link.bin"
    link.symlink_to(src)
    with pytest.raises(InvalidParameterError, match="is the input"):
        encrypt_file(src, link, recipients=[classic.public()], overwrite=True)
    assert src.read_bytes() == b"x"


def test_missing_or_directory_input(classic: PrivateKeySet, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        encrypt_file(tmp_path / "missing", tmp_path / "out", recipients=[classic.public()])
    with pytest.raises(FileFormatError, match="is a directory"):
        encrypt_file(tmp_path, tmp_path / "out", recipients=[classic.public()])
    with pytest.raises(FileFormatError, match="not a readable file"):
        inspect_encrypted(tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []
