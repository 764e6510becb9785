"""Encryption at rest: round trips, tamper and truncation detection, both halves of the hybrid, the CLI."""

from __future__ import annotations

import io
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from modelshield.cli.crypt import register
from modelshield.errors import FileFormatError, InvalidParameterError, VerificationError
from modelshield.supply_chain.encryption import (
    MAGIC,
    EncryptionResult,
    KeyWrapping,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
    is_encrypted,
)
from modelshield.supply_chain.keys import KeyAlgorithm, PrivateKeySet, generate_keypair, write_keypair

CHUNK = 64
TAG = 16
LOG_N = 15  # the smallest accepted scrypt cost, to keep the tests fast; the default is 17
PASSWORD = b"correct horse battery staple"
RECIPIENT_HEADER = 23 + 1200 + 32
PASSPHRASE_HEADER = 23 + 67 + 32


@pytest.fixture(scope="module")
def identity() -> PrivateKeySet:
    return generate_keypair(KeyAlgorithm.X25519_MLKEM768)


@pytest.fixture(scope="module")
def other() -> PrivateKeySet:
    return generate_keypair(KeyAlgorithm.X25519_MLKEM768)


def _encrypt(data: bytes, identity: PrivateKeySet | None, chunk_size: int = CHUNK) -> bytes:
    out = io.BytesIO()
    if identity is None:
        encrypt_stream(io.BytesIO(data), out, passphrase=PASSWORD, chunk_size=chunk_size, scrypt_log_n=LOG_N)
    else:
        encrypt_stream(io.BytesIO(data), out, recipient=identity.public(), chunk_size=chunk_size)
    return out.getvalue()


def _decrypt_file(tmp_path: Path, blob: bytes, identity: PrivateKeySet | None, **kwargs: object) -> bytes:
    """Decrypt ``blob`` through a file; on failure, check that no plaintext (nor a temp file) was left behind."""
    src, dst = tmp_path / "in.enc", tmp_path / "out.bin"
    src.write_bytes(blob)
    credential: dict[str, object] = {"passphrase": PASSWORD} if identity is None else {"identity": identity}
    try:
        decrypt_file(src, dst, **{**credential, **kwargs})  # type: ignore[arg-type]
    except BaseException:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.enc"]
        raise
    data = dst.read_bytes()
    dst.unlink()
    return data


def _flip(blob: bytes, offset: int, mask: int = 0x01) -> bytes:
    changed = bytearray(blob)
    changed[offset] ^= mask
    return bytes(changed)


# --- round trips --------------------------------------------------------------------------------------------------

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 7]


@pytest.mark.parametrize("size", SIZES)
def test_recipient_round_trip(identity: PrivateKeySet, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    blob = _encrypt(data, identity)
    chunks = max(1, -(-size // CHUNK))
    assert len(blob) == RECIPIENT_HEADER + size + TAG * chunks
    assert blob.startswith(MAGIC)
    assert _decrypt_file(tmp_path, blob, identity) == data


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7])
def test_passphrase_round_trip(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    blob = _encrypt(data, None)
    assert len(blob) == PASSPHRASE_HEADER + size + TAG * max(1, -(-size // CHUNK))
    assert _decrypt_file(tmp_path, blob, None) == data


def test_file_api_reports_and_defaults(identity: PrivateKeySet, tmp_path: Path) -> None:
    src, enc, dec = tmp_path / "model.bin", tmp_path / "sub" / "model.enc", tmp_path / "model.out"
    data = os.urandom((1 << 20) + 5)  # the default chunk size: two chunks
    src.write_bytes(data)
    result = encrypt_file(src, enc, recipient=identity.public())
    assert result == EncryptionResult(
        KeyWrapping.RECIPIENT, 1 << 20, 2, len(data), enc.stat().st_size, identity.public().fingerprint
    )
    assert is_encrypted(enc)
    assert not is_encrypted(src)
    back = decrypt_file(enc, dec, identity=identity)
    assert back == result
    assert dec.read_bytes() == data
    assert stat.S_IMODE(dec.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["model.bin", "model.enc", "model.out", "sub"]


def test_each_encryption_is_fresh(identity: PrivateKeySet) -> None:
    assert _encrypt(b"same", identity) != _encrypt(b"same", identity)


def test_stream_reader_with_short_reads(identity: PrivateKeySet) -> None:
    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            return super().read(min(size if size is not None and size >= 0 else 7, 7))

    data = os.urandom(4 * CHUNK + 3)
    out = io.BytesIO()
    encrypt_stream(Trickle(data), out, recipient=identity.public(), chunk_size=CHUNK)
    back = io.BytesIO()
    decrypt_stream(Trickle(out.getvalue()), back, identity=identity)
    assert back.getvalue() == data


# --- tampering, truncation, reordering ----------------------------------------------------------------------------

DATA = bytes(range(256)) * 2 + b"tail"  # 516 bytes: 8 full chunks of 64 and one of 4
CT_CHUNK = CHUNK + TAG


@pytest.fixture(scope="module")
def sealed(identity: PrivateKeySet) -> bytes:
    return _encrypt(DATA, identity)


def _chunks(blob: bytes, header: int) -> list[bytes]:
    body = blob[header:]
    return [body[i : i + CT_CHUNK] for i in range(0, len(body), CT_CHUNK)]


def test_every_header_byte_is_authenticated(identity: PrivateKeySet, sealed: bytes) -> None:
    for offset in range(RECIPIENT_HEADER):
        # The magic and version identify the format: a change there reads as another format or version.
        expected = FileFormatError if offset < 9 else VerificationError
        with pytest.raises(expected):
            decrypt_stream(io.BytesIO(_flip(sealed, offset)), io.BytesIO(), identity=identity)


@pytest.mark.parametrize("where", ["first", "last", "tag"])
def test_a_flipped_bit_in_any_chunk_fails_and_writes_nothing(
    identity: PrivateKeySet, sealed: bytes, tmp_path: Path, where: str
) -> None:
    chunks = _chunks(sealed, RECIPIENT_HEADER)
    assert len(chunks) == 9
    for i, chunk in enumerate(chunks):
        start = RECIPIENT_HEADER + i * CT_CHUNK
        offset = {"first": start, "last": start + len(chunk) - TAG - 1, "tag": start + len(chunk) - 1}[where]
        with pytest.raises(VerificationError, match=f"chunk {i} does not authenticate"):
            _decrypt_file(tmp_path, _flip(sealed, offset, 0x80), identity)


@pytest.mark.parametrize(
    "cut",
    [
        RECIPIENT_HEADER + 8 * CT_CHUNK,  # at a chunk boundary: the last chunk is gone
        RECIPIENT_HEADER + 4 * CT_CHUNK,  # at an earlier boundary
        RECIPIENT_HEADER + 2 * CT_CHUNK + 30,  # mid-chunk
        RECIPIENT_HEADER + 8 * CT_CHUNK + 3,  # into the last chunk's tag
        RECIPIENT_HEADER + 5,  # less than one tag after the header
        RECIPIENT_HEADER,  # the header alone
        RECIPIENT_HEADER - 1,  # into the header MAC
        100,  # into the stanza
        12,  # into the fixed fields
    ],
)
def test_truncation_fails_and_writes_nothing(identity: PrivateKeySet, sealed: bytes, tmp_path: Path, cut: int) -> None:
    with pytest.raises(VerificationError):
        _decrypt_file(tmp_path, sealed[:cut], identity)


def test_truncation_at_a_boundary_of_an_exact_multiple(identity: PrivateKeySet, tmp_path: Path) -> None:
    blob = _encrypt(os.urandom(4 * CHUNK), identity)
    assert len(blob) == RECIPIENT_HEADER + 4 * CT_CHUNK
    for chunks in (1, 2, 3):
        with pytest.raises(VerificationError):
            _decrypt_file(tmp_path, blob[: RECIPIENT_HEADER + chunks * CT_CHUNK], identity)


def _rebuild(blob: bytes, order: list[int]) -> bytes:
    chunks = _chunks(blob, RECIPIENT_HEADER)
    return blob[:RECIPIENT_HEADER] + b"".join(chunks[i] for i in order)


@pytest.mark.parametrize(
    "order",
    [
        [1, 0, 2, 3, 4, 5, 6, 7, 8],  # swapped
        [0, 1, 2, 3, 4, 5, 6, 8, 7],  # swapped with the last
        [0, 2, 3, 4, 5, 6, 7, 8],  # dropped
        [0, 1, 1, 2, 3, 4, 5, 6, 7, 8],  # duplicated
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 8],  # the last chunk twice
        [8],  # only the last chunk
    ],
)
def test_reordered_dropped_or_duplicated_chunks_fail(
    identity: PrivateKeySet, sealed: bytes, tmp_path: Path, order: list[int]
) -> None:
    with pytest.raises(VerificationError):
        _decrypt_file(tmp_path, _rebuild(sealed, order), identity)


def test_appended_bytes_and_spliced_files_fail(identity: PrivateKeySet, sealed: bytes, tmp_path: Path) -> None:
    with pytest.raises(VerificationError):
        _decrypt_file(tmp_path, sealed + b"\x00", identity)
    with pytest.raises(VerificationError):
        _decrypt_file(tmp_path, sealed + sealed[-CT_CHUNK:], identity)
    # The chunks of another encryption of the same plaintext under the same header do not fit.
    other = _encrypt(DATA, identity)
    with pytest.raises(VerificationError, match="chunk 0"):
        _decrypt_file(tmp_path, sealed[:RECIPIENT_HEADER] + other[RECIPIENT_HEADER:], identity)


def test_passphrase_header_and_chunks_are_authenticated(tmp_path: Path) -> None:
    blob = _encrypt(DATA[:100], None)
    # salt, log2 N, r, p, wrapped key, header MAC, nonce prefix, chunk size, first and last chunk
    offsets = [23, 38, 39, 40, 41, 42, 70, 89, 90, 121, 14, 20, 13, PASSPHRASE_HEADER, len(blob) - 1]
    for offset in offsets:
        with pytest.raises(VerificationError):
            _decrypt_file(tmp_path, _flip(blob, offset, 0x80), None)


# --- wrong keys ---------------------------------------------------------------------------------------------------


def test_wrong_recipient_fails(other: PrivateKeySet, sealed: bytes, tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match=r"does not unwrap with this identity.*encrypted for key"):
        _decrypt_file(tmp_path, sealed, other)


def test_wrong_passphrase_fails(tmp_path: Path) -> None:
    blob = _encrypt(b"secret", None)
    with pytest.raises(VerificationError, match="wrong passphrase") as info:
        _decrypt_file(tmp_path, blob, None, passphrase=b"hunter2")
    assert "hunter2" not in info.value.diagnostics()


def test_both_halves_of_the_hybrid_are_needed(identity: PrivateKeySet, other: PrivateKeySet, sealed: bytes) -> None:
    """Knowing one half of the recipient's private key (say, X25519 broken by a quantum computer) is not enough."""
    (x_right, k_right), (x_wrong, k_wrong) = identity.keys, other.keys
    for keys in [(x_right, k_wrong), (x_wrong, k_right)]:
        half = PrivateKeySet(keys)
        with pytest.raises(VerificationError, match="does not unwrap"):
            decrypt_stream(io.BytesIO(sealed), io.BytesIO(), identity=half)
    back = io.BytesIO()
    decrypt_stream(io.BytesIO(sealed), back, identity=PrivateKeySet((x_right, k_right)))
    assert back.getvalue() == DATA


def test_the_credential_must_match_the_wrapping(identity: PrivateKeySet, sealed: bytes, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="encrypted for a recipient key"):
        decrypt_stream(io.BytesIO(sealed), io.BytesIO(), passphrase=PASSWORD)
    blob = _encrypt(b"x", None)
    with pytest.raises(InvalidParameterError, match="encrypted with a passphrase"):
        decrypt_stream(io.BytesIO(blob), io.BytesIO(), identity=identity)


# --- not an encrypted file, hostile headers -----------------------------------------------------------------------


def test_not_an_encrypted_file(identity: PrivateKeySet, tmp_path: Path) -> None:
    for blob in [b"", b"\x89MS", b"PK\x03\x04 a zip file" * 10]:
        with pytest.raises(FileFormatError, match="not a modelshield encrypted file"):
            _decrypt_file(tmp_path, blob, identity)


def test_unknown_version(identity: PrivateKeySet, sealed: bytes, tmp_path: Path) -> None:
    blob = bytearray(sealed)
    blob[8] = 2
    with pytest.raises(FileFormatError, match="format version 2") as info:
        _decrypt_file(tmp_path, bytes(blob), identity)
    assert "Upgrade modelshield" in info.value.remedy


def _passphrase_header(log_n: int, r: int, p: int, chunk_size: int = CHUNK) -> bytes:
    prefix = struct.pack(">8sBBI7sH", MAGIC, 1, 2, chunk_size, bytes(7), 67)
    return prefix + bytes(16) + bytes((log_n, r, p)) + bytes(48 + 32) + bytes(TAG)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((30, 8, 1), "log2 N is 30"),  # 128 GiB: refused before scrypt runs
        ((14, 8, 1), "log2 N is 14"),
        ((20, 16, 1), "outside the accepted bounds"),  # 2 GiB
        ((17, 8, 200), "outside the accepted bounds"),
        ((17, 0, 1), "outside the accepted bounds"),
    ],
)
def test_hostile_scrypt_parameters_are_refused(fields: tuple[int, int, int], message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        decrypt_stream(io.BytesIO(_passphrase_header(*fields)), io.BytesIO(), passphrase=PASSWORD)


@pytest.mark.parametrize("chunk_size", [0, 63, (1 << 26) + 1, 0xFFFFFFFF])
def test_hostile_chunk_size_is_refused_before_allocating(chunk_size: int) -> None:
    blob = _passphrase_header(15, 8, 1, chunk_size)
    with pytest.raises(VerificationError, match=f"chunk size {chunk_size} is outside"):
        decrypt_stream(io.BytesIO(blob), io.BytesIO(), passphrase=PASSWORD)


@settings(max_examples=150, deadline=None)
@given(tail=st.binary(max_size=1400), cut=st.integers(min_value=10, max_value=1400))
def test_fuzzed_input_fails_closed(identity: PrivateKeySet, sealed: bytes, tail: bytes, cut: int) -> None:
    for blob in (MAGIC + b"\x01\x01" + tail, sealed[:cut] + tail):
        with pytest.raises((VerificationError, FileFormatError)):
            decrypt_stream(io.BytesIO(blob), io.BytesIO(), identity=identity)


# --- parameters and paths -----------------------------------------------------------------------------------------


def test_bad_parameters(identity: PrivateKeySet) -> None:
    src = io.BytesIO(b"data")
    public = identity.public()
    with pytest.raises(InvalidParameterError, match="exactly one"):
        encrypt_stream(src, io.BytesIO(), recipient=public, passphrase=PASSWORD)
    with pytest.raises(InvalidParameterError, match="exactly one"):
        encrypt_stream(src, io.BytesIO())
    with pytest.raises(InvalidParameterError, match="exactly one"):
        decrypt_stream(src, io.BytesIO(), identity=identity, passphrase=PASSWORD)
    with pytest.raises(InvalidParameterError, match="empty"):
        encrypt_stream(src, io.BytesIO(), passphrase=b"")
    with pytest.raises(InvalidParameterError, match="must be bytes"):
        encrypt_stream(src, io.BytesIO(), passphrase=str(PASSWORD))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="chunk_size"):
        encrypt_stream(src, io.BytesIO(), recipient=public, chunk_size=16)
    with pytest.raises(InvalidParameterError, match="scrypt_log_n"):
        encrypt_stream(src, io.BytesIO(), passphrase=PASSWORD, scrypt_log_n=10)
    signing = generate_keypair(KeyAlgorithm.ED25519)
    with pytest.raises(InvalidParameterError, match="needs an x25519-mlkem768 key"):
        encrypt_stream(src, io.BytesIO(), recipient=signing.public())
    with pytest.raises(InvalidParameterError, match="needs an x25519-mlkem768 key"):
        decrypt_stream(io.BytesIO(_encrypt(b"x", identity)), io.BytesIO(), identity=signing)


def test_existing_output_is_not_overwritten(identity: PrivateKeySet, tmp_path: Path) -> None:
    src, dst = tmp_path / "a.bin", tmp_path / "a.enc"
    src.write_bytes(b"new")
    dst.write_bytes(b"precious")
    with pytest.raises(FileFormatError, match="already exists"):
        encrypt_file(src, dst, recipient=identity.public())
    assert dst.read_bytes() == b"precious"
    encrypt_file(src, dst, recipient=identity.public(), overwrite=True)
    out = tmp_path / "a.out"
    out.write_bytes(b"precious")
    with pytest.raises(FileFormatError, match="already exists"):
        decrypt_file(dst, out, identity=identity)
    assert out.read_bytes() == b"precious"
    decrypt_file(dst, out, identity=identity, overwrite=True)
    assert out.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "a.enc", "a.out"]


def test_output_must_differ_from_input(identity: PrivateKeySet, tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x")
    with pytest.raises(InvalidParameterError, match="is the input"):
        encrypt_file(src, src, recipient=identity.public(), overwrite=True)
    link = tmp_path / "link.bin"
    link.symlink_to(src)
    with pytest.raises(InvalidParameterError, match="is the input"):
        encrypt_file(src, link, recipient=identity.public(), overwrite=True)
    assert src.read_bytes() == b"x"


def test_missing_or_directory_input(identity: PrivateKeySet, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        encrypt_file(tmp_path / "missing", tmp_path / "out", recipient=identity.public())
    with pytest.raises(FileFormatError, match="is a directory"):
        encrypt_file(tmp_path, tmp_path / "out", recipient=identity.public())
    assert list(tmp_path.iterdir()) == []


# --- CLI ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> Callable[..., Result]:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_cli_recipient_round_trip_and_tamper_exit_code(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_PASS", "key passphrase")
    private, public = write_keypair(
        generate_keypair(KeyAlgorithm.X25519_MLKEM768), tmp_path / "keys", passphrase=b"key passphrase"
    )
    src, enc, out = tmp_path / "w.bin", tmp_path / "w.enc", tmp_path / "w.out"
    src.write_bytes(os.urandom(1000))
    result = cli("encrypt", src, "--output", enc, "--recipient", public, "--chunk-size", 256)
    assert result.exit_code == 0, result.output
    assert "4 chunks" in result.output
    result = cli("decrypt", enc, "-o", out, "--identity", private, "--key-passphrase-env", "KEY_PASS")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == src.read_bytes()

    enc.write_bytes(_flip(enc.read_bytes(), enc.stat().st_size - 1))
    result = cli("decrypt", enc, "-o", tmp_path / "x.out", "--identity", private, "--key-passphrase-env", "KEY_PASS")
    assert result.exit_code == 1
    assert "does not authenticate" in result.output
    assert not (tmp_path / "x.out").exists()

    result = cli("encrypt", src, "--output", enc, "--recipient", public)
    assert isinstance(result.exception, FileFormatError)  # exists; the root app exits 2
    result = cli("decrypt", src, "-o", tmp_path / "y", "--identity", private, "--key-passphrase-env", "KEY_PASS")
    assert isinstance(result.exception, FileFormatError)  # not encrypted


def test_cli_passphrase_from_the_environment_only(
    cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, enc, out = tmp_path / "d.csv", tmp_path / "d.enc", tmp_path / "d.out"
    src.write_bytes(b"a,b\n1,2\n")
    monkeypatch.setenv("MS_PASS", "s3cret")
    assert cli("encrypt", src, "--output", enc, "--passphrase-env", "MS_PASS").exit_code == 0
    monkeypatch.setenv("MS_PASS", "hunter2")
    result = cli("decrypt", enc, "--output", out, "--passphrase-env", "MS_PASS")
    assert result.exit_code == 1
    assert "wrong passphrase" in result.output
    assert "hunter2" not in result.output
    monkeypatch.setenv("MS_PASS", "s3cret")
    result = cli("decrypt", enc, "--output", out, "--passphrase-env", "MS_PASS")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == src.read_bytes()

    assert isinstance(cli("encrypt", src, "--output", tmp_path / "z").exception, InvalidParameterError)
    result = cli("decrypt", enc, "--output", tmp_path / "z", "--passphrase-env", "UNSET_VARIABLE_FOR_TEST")
    assert isinstance(result.exception, InvalidParameterError)
    assert cli("encrypt", src, "--output", tmp_path / "z", "--passphrase", "s3cret").exit_code == 2  # no such option
