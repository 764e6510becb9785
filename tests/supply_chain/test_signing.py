"""Key pairs, signatures over model files and directories, tamper detection, and interop with OpenSSF model-signing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from modelshield.cli.app import main
from modelshield.errors import FileFormatError, InvalidParameterError, VerificationError
from modelshield.supply_chain.keys import (
    KeyAlgorithm,
    PrivateKeySet,
    generate_keypair,
    load_private_key,
    load_public_key,
    write_keypair,
)
from modelshield.supply_chain.signing import VerifiedModel, hash_model, sign_model, verify_model

SIGNING = [KeyAlgorithm.ED25519, KeyAlgorithm.ECDSA_P256, KeyAlgorithm.HYBRID]


@pytest.fixture(scope="module")
def keys() -> dict[KeyAlgorithm, PrivateKeySet]:
    return {a: generate_keypair(a) for a in SIGNING}


def _model(root: Path) -> Path:
    model = root / "model"
    (model / "weights").mkdir(parents=True)
    (model / "config.json").write_text('{"layers": 3}')
    (model / "weights" / "w0.bin").write_bytes(os.urandom(3000))
    (model / "weights" / "w1.bin").write_bytes(os.urandom(10))
    (model / "empty.txt").write_bytes(b"")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref")
    return model


@pytest.mark.parametrize("algorithm", SIGNING)
@pytest.mark.parametrize("shard_size", [None, 1024])
def test_round_trip_and_every_kind_of_tamper_is_named(
    tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet], algorithm: KeyAlgorithm, shard_size: int | None
) -> None:
    model, signature = _model(tmp_path), tmp_path / "model.sig"
    key = keys[algorithm]
    sign_model(model, key, signature, shard_size=shard_size)
    verified = verify_model(model, signature, key.public())
    assert isinstance(verified, VerifiedModel)
    assert (verified.algorithm, verified.key_fingerprint) == (algorithm, key.public().fingerprint)
    signed = {"config.json", "weights/w0.bin", "weights/w1.bin"} | (set() if shard_size else {"empty.txt"})
    assert verified.files == tuple(sorted(signed))  # an empty file has no shard, as the OMS tool shards
    assert algorithm.value in verified.summary()
    (model / ".git" / "HEAD").write_text("ignored by default, as the OMS tool does")
    verify_model(model, signature, key.public())

    data = bytearray((model / "weights" / "w0.bin").read_bytes())
    data[1500] ^= 1
    (model / "weights" / "w0.bin").write_bytes(bytes(data))
    (model / "weights" / "w1.bin").rename(model / "weights" / "w1-renamed.bin")
    (model / "extra.py").write_text("import os")
    (model / "config.json").unlink()
    with pytest.raises(VerificationError) as err:
        verify_model(model, signature, key.public())
    assert err.value.subject == str(model)
    assert err.value.changed == ("weights/w0.bin",)
    assert err.value.added == ("extra.py", "weights/w1-renamed.bin")
    assert err.value.removed == ("config.json", "weights/w1.bin")
    assert "changed: weights/w0.bin; added: extra.py, weights/w1-renamed.bin; removed: config.json" in str(err.value)


@pytest.mark.parametrize("algorithm", SIGNING)
def test_a_wrong_key_fails(tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet], algorithm: KeyAlgorithm) -> None:
    model, signature = _model(tmp_path), tmp_path / "model.sig"
    sign_model(model, keys[algorithm], signature)
    with pytest.raises(VerificationError, match="does not hold") as err:
        verify_model(model, signature, generate_keypair(algorithm).public())
    assert (err.value.changed, err.value.added, err.value.removed) == ((), (), ())


def test_a_single_file_and_a_signature_inside_the_model(
    tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet]
) -> None:
    model = _model(tmp_path)
    key = keys[KeyAlgorithm.ECDSA_P256]
    sign_model(model / "config.json", key, tmp_path / "config.sig")
    assert verify_model(model / "config.json", tmp_path / "config.sig", key.public()).files == ("config.json",)
    (model / "config.json").write_text("{}")
    with pytest.raises(VerificationError) as err:  # a single file's resource is named "." in the bundle
        verify_model(model / "config.json", tmp_path / "config.sig", key.public())
    assert err.value.changed == ("config.json",)
    inside = model / "model.sig"
    sign_model(model, key, inside)
    assert "model.sig" not in verify_model(model, inside, key.public()).files  # the signature does not sign itself


def test_both_halves_of_a_hybrid_signature_are_required(
    tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet]
) -> None:
    model, signature = _model(tmp_path), tmp_path / "model.sig"
    key = keys[KeyAlgorithm.HYBRID]
    sign_model(model, key, signature)
    bundle = json.loads(signature.read_text())
    classical_only = dict(
        bundle, dsseEnvelope=dict(bundle["dsseEnvelope"], signatures=bundle["dsseEnvelope"]["signatures"][:1])
    )
    signature.write_text(json.dumps(classical_only))
    with pytest.raises(VerificationError, match="post-quantum"):
        verify_model(model, signature, key.public())
    # A right ECDSA half with another ML-DSA key fails too.
    other = generate_keypair(KeyAlgorithm.HYBRID)
    mixed = PrivateKeySet((key.keys[0], other.keys[1]))
    sign_model(model, mixed, signature)
    with pytest.raises(VerificationError, match="ML-DSA-65"):
        verify_model(model, signature, key.public())


def test_a_tampered_payload_or_subject_fails(tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet]) -> None:
    import base64

    model, signature = _model(tmp_path), tmp_path / "model.sig"
    key = keys[KeyAlgorithm.ED25519]
    sign_model(model, key, signature)
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"] = statement["predicate"]["resources"][1:]
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))
    with pytest.raises(VerificationError, match="does not hold"):
        verify_model(model, signature, key.public())


def test_unusable_input_is_a_file_format_error_not_a_failed_verification(
    tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet]
) -> None:
    model, signature = _model(tmp_path), tmp_path / "model.sig"
    key = keys[KeyAlgorithm.ED25519]
    sign_model(model, key, signature)
    with pytest.raises(FileFormatError, match="does not exist"):
        verify_model(tmp_path / "missing", signature, key.public())
    with pytest.raises(FileFormatError, match="does not exist"):
        verify_model(model, tmp_path / "missing.sig", key.public())
    (tmp_path / "not.sig").write_text("{}")
    with pytest.raises(FileFormatError, match="not a model signature bundle"):
        verify_model(model, tmp_path / "not.sig", key.public())
    (model / "link.bin").symlink_to(model / "config.json")  # the model exists but can no longer match: a failure
    with pytest.raises(VerificationError, match="symbolic link"):
        verify_model(model, signature, key.public())


def test_symbolic_links_are_refused(tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet]) -> None:
    model = _model(tmp_path)
    (model / "link.bin").symlink_to(tmp_path / "outside")
    with pytest.raises(FileFormatError, match="symbolic link"):
        sign_model(model, keys[KeyAlgorithm.ED25519], tmp_path / "m.sig")


def test_hashing_matches_hashlib_and_shards_split_files(tmp_path: Path) -> None:
    import hashlib

    model = _model(tmp_path)
    whole = hash_model(model)
    assert whole.digests["weights/w0.bin"] == hashlib.sha256((model / "weights/w0.bin").read_bytes()).hexdigest()
    assert ".git/HEAD" not in whole.digests and "empty.txt" in whole.digests
    shards = hash_model(model, shard_size=1024)
    data = (model / "weights/w0.bin").read_bytes()
    assert shards.digests["weights/w0.bin:2048:3000"] == hashlib.sha256(data[2048:]).hexdigest()
    with pytest.raises(InvalidParameterError):
        hash_model(model, shard_size=0)


@pytest.mark.parametrize("algorithm", [a for a in KeyAlgorithm if a.signs])  # encryption keys: test_keys_age.py
def test_key_files_round_trip_encrypted_with_mode_0600(tmp_path: Path, algorithm: KeyAlgorithm) -> None:
    keys = generate_keypair(algorithm)
    private, public = write_keypair(keys, tmp_path, passphrase=b"correct horse")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert load_private_key(private, b"correct horse").public().fingerprint == keys.public().fingerprint
    assert load_public_key(public).algorithm is algorithm
    assert "PRIVATE" not in repr(keys) and keys.public().fingerprint[:16] in repr(keys)
    with pytest.raises(FileFormatError, match="passphrase"):
        load_private_key(private)
    with pytest.raises(FileFormatError, match="wrong passphrase"):
        load_private_key(private, b"wrong")
    with pytest.raises(FileFormatError, match="already exists"):
        write_keypair(keys, tmp_path)
    with pytest.raises(FileFormatError, match="public key"):
        load_private_key(public)


def test_cli_keygen_sign_verify_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_PASSPHRASE", "s3cret")
    model = _model(tmp_path)
    keys = tmp_path / "keys"
    assert main(["keygen", "--out", str(keys), "--algorithm", "hybrid", "--passphrase-env", "TEST_PASSPHRASE"]) == 0
    key, pub, sig = keys / "modelshield.key", keys / "modelshield.pub", tmp_path / "model.sig"
    assert (
        main(["sign", str(model), "--key", str(key), "--passphrase-env", "TEST_PASSPHRASE", "--output", str(sig)]) == 0
    )
    verify = ["verify", str(model), "--signature", str(sig), "--public-key", str(pub)]
    assert main(verify) == 0
    (model / "config.json").write_text("{}")
    capsys.readouterr()
    assert main(verify) == 1
    out, err = capsys.readouterr()
    assert out == "" and "changed: config.json" in err and len(err.strip().splitlines()) == 1
    assert main(["sign", str(model), "--key", str(key), "--output", str(sig)]) == 2  # no passphrase
    assert main(["verify", str(tmp_path / "missing"), "--signature", str(sig), "--public-key", str(pub)]) == 2
    assert main(["keygen", "--out", str(keys), "--algorithm", "rsa"]) == 2


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.ECDSA_P256, KeyAlgorithm.HYBRID])
def test_the_openssf_model_signing_tool_verifies_our_signatures(
    tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet], algorithm: KeyAlgorithm
) -> None:
    pytest.importorskip("model_signing", reason="the interop test needs the model-signing package (dev extra)")
    model, signature = _model(tmp_path), tmp_path / "model.sig"
    _, public = write_keypair(keys[algorithm], tmp_path / "keys")
    sign_model(model, keys[algorithm], signature)
    command = [sys.executable, "-m", "model_signing", "verify", "key", str(model), "--signature", str(signature),
               "--public_key", str(public)]  # fmt: skip
    ok = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (model / "weights" / "w1.bin").write_bytes(b"tampered")
    bad = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert bad.returncode != 0


def test_the_openssf_library_verifies_sharded_signatures(
    tmp_path: Path, keys: dict[KeyAlgorithm, PrivateKeySet]
) -> None:
    verifying = pytest.importorskip("model_signing.verifying")
    model, signature = _model(tmp_path), tmp_path / "model.sig"
    _, public = write_keypair(keys[KeyAlgorithm.ECDSA_P256], tmp_path / "keys")
    sign_model(model, keys[KeyAlgorithm.ECDSA_P256], signature, shard_size=1024)
    verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, signature)
