"""Encryption keys as age keys: the Bech32 strings, the key files `age` reads, and the files it writes."""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from modelshield.errors import FileFormatError, InvalidParameterError
from modelshield.supply_chain import _age
from modelshield.supply_chain import keys as keys_module
from modelshield.supply_chain.keys import (
    KeyAlgorithm,
    PrivateKeySet,
    generate_keypair,
    load_identities,
    load_private_key,
    load_public_key,
    load_recipients,
    parse_age_identity,
    parse_age_recipient,
    write_keypair,
)

# The example pair of the age specification (c2sp.org/age, "The MLKEM768-X25519 ... recipient type"): the recipient
# is derived from the identity, so this checks the seed expansion and the public key's encoding.
SPEC_PQ_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
# The SHA-256 of the 1,959-character age1pq1x34nzsvr0... of the specification:
SPEC_PQ_RECIPIENT_SHA256 = "a091dd7e0ee9d62b75173dcc98441a0424baa941e66a8776e570a4ae60ff61ea"
SPEC_X25519_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_X25519_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def test_the_specification_examples() -> None:
    classic = parse_age_identity(SPEC_X25519_IDENTITY)
    assert classic.algorithm is KeyAlgorithm.X25519
    assert classic.public().age_recipient() == SPEC_X25519_RECIPIENT
    assert classic.age_identity() == SPEC_X25519_IDENTITY
    hybrid = parse_age_identity(SPEC_PQ_IDENTITY)
    assert hybrid.algorithm is KeyAlgorithm.X25519_MLKEM768
    recipient = hybrid.public().age_recipient()
    assert recipient.startswith("age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95pa")
    assert len(recipient) == 1959
    assert hashlib.sha256(recipient.encode()).hexdigest() == SPEC_PQ_RECIPIENT_SHA256
    assert hybrid.age_identity() == SPEC_PQ_IDENTITY
    assert parse_age_recipient(recipient).fingerprint == hybrid.public().fingerprint


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.X25519, KeyAlgorithm.X25519_MLKEM768])
def test_strings_round_trip(algorithm: KeyAlgorithm) -> None:
    keys = generate_keypair(algorithm)
    identity, recipient = keys.age_identity(), keys.public().age_recipient()
    assert re.fullmatch(r"AGE-SECRET-KEY-(PQ-)?1[02-9AC-HJ-NP-Z]+", identity)
    assert recipient.startswith("age1pq1" if algorithm is KeyAlgorithm.X25519_MLKEM768 else "age1")
    again = parse_age_identity(identity)
    assert again.public().fingerprint == keys.public().fingerprint
    assert parse_age_recipient(recipient).fingerprint == keys.public().fingerprint
    assert "AGE-SECRET" not in repr(keys) and "AGE-SECRET" not in repr(again)


def test_pyrage_agrees_on_x25519_strings() -> None:
    pyrage = pytest.importorskip("pyrage", reason="pyrage (rage's Python binding) is not installed")
    generated = pyrage.x25519.Identity.generate()
    ours = parse_age_identity(str(generated))
    assert ours.age_identity() == str(generated)
    assert ours.public().age_recipient() == str(generated.to_public())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age1qqqq", "not an age recipient"),
        (SPEC_X25519_RECIPIENT.upper(), "not an age recipient"),  # recipients are lowercase
        (SPEC_X25519_RECIPIENT[:-1] + "q", "not an age recipient"),  # checksum
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsK", "not an age recipient"),
        ("age1yubikey1qwerty", "not an age recipient"),
    ],
)
def test_bad_recipients(text: str, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        parse_age_recipient(text)


def test_plugin_and_tag_recipients_are_named() -> None:
    tag = _age.bech32_encode("age1tag", bytes(33))
    with pytest.raises(InvalidParameterError, match="plug-in or tag recipient"):
        parse_age_recipient(tag)


def test_bad_identities() -> None:
    with pytest.raises(InvalidParameterError, match="not an age identity"):
        parse_age_identity(SPEC_X25519_IDENTITY.lower())
    with pytest.raises(InvalidParameterError, match="plug-in identity"):
        parse_age_identity("AGE-PLUGIN-YUBIKEY-1QQQQQQ")
    with pytest.raises(InvalidParameterError, match="not an age identity"):
        parse_age_identity(SPEC_X25519_IDENTITY[:-2])


def test_signing_keys_have_no_age_form() -> None:
    signing = generate_keypair(KeyAlgorithm.ED25519)
    with pytest.raises(InvalidParameterError, match="not an age recipient"):
        signing.public().age_recipient()
    with pytest.raises(InvalidParameterError, match="not an age identity"):
        signing.age_identity()


def test_a_pem_era_hybrid_key_has_a_recipient_but_no_identity_string() -> None:
    old = PrivateKeySet((x25519.X25519PrivateKey.generate(), mlkem.MLKEM768PrivateKey.generate()))
    assert old.public().age_recipient().startswith("age1pq1")
    with pytest.raises(InvalidParameterError, match="no AGE-SECRET-KEY-PQ-1 form"):
        old.age_identity()


# --- files ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.X25519, KeyAlgorithm.X25519_MLKEM768])
def test_key_files_are_age_files(tmp_path: Path, algorithm: KeyAlgorithm) -> None:
    keys = generate_keypair(algorithm)
    private, public = write_keypair(keys, tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    lines = private.read_text().splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1] == f"# public key: {keys.public().age_recipient()}"
    assert lines[2] == keys.age_identity()
    assert public.read_text() == keys.public().age_recipient() + "\n"
    assert load_private_key(private).age_identity() == keys.age_identity()
    assert load_public_key(public).fingerprint == keys.public().fingerprint
    with pytest.raises(FileFormatError, match="public key"):
        load_private_key(public)
    with pytest.raises(FileFormatError, match="identity \\(private key\\) file"):
        load_public_key(private)
    with pytest.raises(FileFormatError, match="already exists"):
        write_keypair(keys, tmp_path)


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.X25519, KeyAlgorithm.X25519_MLKEM768])
def test_passphrase_protected_identity_files(
    tmp_path: Path, algorithm: KeyAlgorithm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys_module, "_KEY_FILE_WORK_FACTOR", 15)  # age's 18 takes a second per load
    keys = generate_keypair(algorithm)
    private, _ = write_keypair(keys, tmp_path, passphrase=b"correct horse")
    blob = private.read_bytes()
    assert blob.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert b"AGE-SECRET-KEY" not in blob
    assert load_private_key(private, b"correct horse").age_identity() == keys.age_identity()
    with pytest.raises(FileFormatError, match="needs a passphrase"):
        load_private_key(private)
    with pytest.raises(FileFormatError, match="wrong passphrase"):
        load_private_key(private, b"wrong")
    plain, _ = write_keypair(keys, tmp_path, name="plain")
    with pytest.raises(FileFormatError, match="not encrypted"):
        load_identities(plain, b"correct horse")


def test_age_keygen_style_files_with_several_keys(tmp_path: Path) -> None:
    a, b = generate_keypair(KeyAlgorithm.X25519), generate_keypair(KeyAlgorithm.X25519_MLKEM768)
    identities = tmp_path / "keys.txt"
    identities.write_text(f"# created: now\n# public key: x\n{a.age_identity()}\n\n  {b.age_identity()}  \n")
    loaded = load_identities(identities)
    assert [k.algorithm for k in loaded] == [KeyAlgorithm.X25519, KeyAlgorithm.X25519_MLKEM768]
    with pytest.raises(FileFormatError, match="holds 2 keys, not one"):
        load_private_key(identities)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# team\n{a.public().age_recipient()}\n{b.public().age_recipient()}\n")
    assert len(load_recipients(recipients)) == 2
    with pytest.raises(FileFormatError, match="holds 2 keys, not one"):
        load_public_key(recipients)


def test_pem_keys_still_load_for_encryption(tmp_path: Path) -> None:
    """Encryption keys that modelshield wrote as PEM before it adopted age."""
    old = PrivateKeySet((x25519.X25519PrivateKey.generate(), mlkem.MLKEM768PrivateKey.generate()))
    (tmp_path / "old.key").write_bytes(old.pem(b"pw"))
    (tmp_path / "old.pub").write_bytes(old.public().pem())
    assert load_identities(tmp_path / "old.key", b"pw")[0].public().fingerprint == old.public().fingerprint
    assert load_recipients(tmp_path / "old.pub")[0].fingerprint == old.public().fingerprint


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no key"),
        (b"# only a comment\n", "holds no key"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "SSH key"),
        (b"\xff\xfe binary", "neither a PEM key nor an age key file"),
        (b"AGE-PLUGIN-YUBIKEY-1QQQQQQ\n", "plug-in identity"),
    ],
)
def test_unusable_identity_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=message):
        load_identities(path)


def test_an_ssh_recipient_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r"
    path.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsK user@host\n")
    with pytest.raises(FileFormatError, match="not an age recipient"):
        load_recipients(path)
