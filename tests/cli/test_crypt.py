"""``modelshield encrypt`` / ``decrypt``: recipients by string or file (repeatable), identities, passphrases from the
environment only, and the exit codes (0 done, 1 failed authentication, 2 usage or input error) with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelshield.cli import main
from modelshield.supply_chain import keys as keys_module
from modelshield.supply_chain.keys import KeyAlgorithm, generate_keypair, write_keypair

DATA = os.urandom(70_000)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(DATA)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_several_recipients_by_file_and_by_string(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys_module, "_KEY_FILE_WORK_FACTOR", 15)
    alice, bob = generate_keypair(KeyAlgorithm.X25519_MLKEM768), generate_keypair(KeyAlgorithm.X25519_MLKEM768)
    alice_key, alice_pub = write_keypair(alice, tmp_path / "keys", name="alice", passphrase=b"key pass")
    bob_key, _ = write_keypair(bob, tmp_path / "keys", name="bob")
    enc = tmp_path / "model.age"
    code, out, _ = _run(
        capsys, "encrypt", model, "-o", enc, "--recipient", alice_pub, "-r", bob.public().age_recipient()
    )
    assert code == 0
    assert out.startswith(f"encrypted {model} ({len(DATA)} bytes) for 2 mlkem768x25519 recipient(s) age1pq1")
    assert len(out.splitlines()) == 1
    monkeypatch.setenv("KEY_PASS", "key pass")
    for identity, extra in [(alice_key, ["--key-passphrase-env", "KEY_PASS"]), (bob_key, [])]:
        out_file = tmp_path / f"{identity.stem}.out"
        code, out, _ = _run(capsys, "decrypt", enc, "-o", out_file, "--identity", identity, *extra)
        assert code == 0, out
        assert out_file.read_bytes() == DATA
        assert "mlkem768x25519" in out


def test_a_tampered_file_exits_1_with_one_line_and_writes_nothing(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_keypair(KeyAlgorithm.X25519)
    private, public = write_keypair(key, tmp_path / "keys")
    enc, out_file = tmp_path / "model.age", tmp_path / "model.out"
    assert _run(capsys, "encrypt", model, "-o", enc, "-r", public)[0] == 0
    blob = bytearray(enc.read_bytes())
    blob[-1] ^= 1
    enc.write_bytes(bytes(blob))
    code, out, err = _run(capsys, "decrypt", enc, "-o", out_file, "-i", private)
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "chunk 1 does not authenticate" in err and "Fix:" in err
    assert not out_file.exists()
    code, _, err = _run(
        capsys, "decrypt", enc, "-o", out_file, "-i", write_keypair(generate_keypair("x25519"), tmp_path, name="o")[0]
    )
    assert code == 1 and "unwraps with the 1 identity given" in err


def test_passphrase_from_the_environment_only(
    tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    enc, out_file = tmp_path / "d.age", tmp_path / "d.out"
    monkeypatch.setenv("MS_PASS", "s3cret")
    code, out, _ = _run(capsys, "encrypt", model, "-o", enc, "--passphrase-env", "MS_PASS")
    assert code == 0 and "a passphrase (scrypt)" in out
    monkeypatch.setenv("MS_PASS", "hunter2")
    code, out, err = _run(capsys, "decrypt", enc, "-o", out_file, "--passphrase-env", "MS_PASS")
    assert code == 1
    assert "wrong passphrase" in err and "hunter2" not in out + err
    code, _, err = _run(
        capsys, "decrypt", enc, "-o", out_file, "--passphrase-env", "MS_PASS", "--max-work-factor", "15"
    )
    assert code == 1 and "above the limit 2^15" in err  # age's default, 18, is refused before scrypt runs
    monkeypatch.setenv("MS_PASS", "s3cret")
    assert _run(capsys, "decrypt", enc, "-o", out_file, "--passphrase-env", "MS_PASS")[0] == 0
    assert out_file.read_bytes() == DATA


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encrypt", "{model}", "-o", "{tmp}/x"], "Give --recipient (repeatable) or --passphrase-env"),
        (["encrypt", "{model}", "-o", "{tmp}/x", "-r", "{hybrid}", "--passphrase-env", "MS_PASS"], "not both"),
        (["encrypt", "{model}", "-o", "{tmp}/x", "-r", "{hybrid}", "-r", "{classic}"], "mix post-quantum hybrid"),
        (["encrypt", "{model}", "-o", "{tmp}/x", "-r", "age1notarecipient"], "not an age recipient"),
        (["encrypt", "{model}", "-o", "{tmp}/x", "-r", "{tmp}/missing.pub"], "does not exist"),
        (["encrypt", "{model}", "-o", "{tmp}/x", "--passphrase-env", "UNSET_VARIABLE_FOR_TEST"], "is not set"),
        (["encrypt", "{model}", "-o", "{model}", "-r", "{classic}", "--force"], "is the input"),
        (["decrypt", "{model}", "-o", "{tmp}/x", "--passphrase-env", "MS_PASS"], "not an age encrypted file"),
        (["decrypt", "{model}", "-o", "{tmp}/x"], "exactly one of --identity"),
        (
            ["decrypt", "{model}", "-o", "{tmp}/x", "--passphrase-env", "MS_PASS", "--key-passphrase-env", "K"],
            "applies to --identity",
        ),
    ],
)
def test_usage_and_input_errors_exit_2_with_one_line(
    tmp_path: Path,
    model: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setenv("MS_PASS", "s3cret")
    values = {
        "model": model,
        "tmp": tmp_path,
        "hybrid": generate_keypair(KeyAlgorithm.X25519_MLKEM768).public().age_recipient(),
        "classic": generate_keypair(KeyAlgorithm.X25519).public().age_recipient(),
    }
    code, _, err = _run(capsys, *(a.format(**values) for a in args))
    assert code == 2
    assert message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_the_passphrase_is_never_an_option(tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "encrypt", model, "-o", tmp_path / "z", "--passphrase", "s3cret")[0] == 2


def test_an_existing_output_needs_force(tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipient = generate_keypair(KeyAlgorithm.X25519).public().age_recipient()
    enc = tmp_path / "m.age"
    enc.write_bytes(b"precious")
    code, _, err = _run(capsys, "encrypt", model, "-o", enc, "-r", recipient)
    assert code == 2 and "already exists" in err
    assert enc.read_bytes() == b"precious"
    assert _run(capsys, "encrypt", model, "-o", enc, "-r", recipient, "--force")[0] == 0
