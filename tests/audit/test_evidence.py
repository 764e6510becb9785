"""Evidence packs: every piece present, the folder verifies with the signer's key and fails on any change; bad
destinations refused before any work; nothing left behind when writing fails."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from modelshield.audit import AuditOptions, Auditor
from modelshield.audit.evidence import SIGNATURE_NAME, check_pack_destination, write_evidence_pack
from modelshield.errors import FileFormatError, VerificationError
from modelshield.findings import Report
from modelshield.supply_chain.keys import PrivateKeySet, generate_keypair, load_public_key, write_keypair
from modelshield.supply_chain.signing import sign_model, verify_model
from modelshield.target import Target
from modelshield.zoo import load_target

pytest.importorskip("cyclonedx", reason="the bill of materials needs the bom extra")


@pytest.fixture
def signed(zoo_cache: Path, tmp_path: Path) -> tuple[Target, PrivateKeySet, Path]:
    """zoo:cancer-gbm's model file, copied and signed; the target knows the signer's public key."""
    loaded = load_target("zoo:cancer-gbm", cache_dir=zoo_cache)
    assert loaded.model_path is not None
    model = tmp_path / "model" / loaded.model_path.name
    model.parent.mkdir()
    shutil.copy(loaded.model_path, model)
    keys = generate_keypair("ed25519")
    _, public = write_keypair(keys, tmp_path / "keys")
    sign_model(model, keys, model.with_name(model.name + ".sig"))
    return dataclasses.replace(loaded, model_path=model, public_key_path=public), keys, public


def _audit(target: Target) -> Report:
    return Auditor(AuditOptions(checks=("supply", "signature", "baseline"))).run(target)


def test_a_pack_holds_every_piece_and_verifies_with_the_signers_key(
    signed: tuple[Target, PrivateKeySet, Path], tmp_path: Path
) -> None:
    target, keys, public = signed
    report = _audit(target)
    out = write_evidence_pack(report, target, tmp_path / "pack", key=keys)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "README.txt",
            "bom.cdx.json",
            "index.json",
            "report.html",
            "report.json",
            "report.sarif",
            "scan.json",
            "signature.json",
            SIGNATURE_NAME,
        ]
    )
    index = json.loads((out / "index.json").read_text())
    assert index["format"] == "modelshield-evidence-pack/1" and index["not_included"] == []
    assert set(index["files"]) == set(names) - {"index.json", SIGNATURE_NAME}
    assert json.loads((out / "signature.json").read_text())["verified"] is True
    assert json.loads((out / "report.json").read_text())["target"]["model_sha256"] == report.target.model_sha256
    bom = json.loads((out / "bom.cdx.json").read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["metadata"]["component"]["name"] == target.name
    verified = verify_model(out, out / SIGNATURE_NAME, load_public_key(public))
    assert set(verified.files) == set(names) - {SIGNATURE_NAME}
    assert not list(tmp_path.glob(".pack.*"))  # the work folder was moved, not copied


@pytest.mark.parametrize("tamper", ["change", "add", "remove"])
def test_any_change_to_a_pack_fails_verification(
    signed: tuple[Target, PrivateKeySet, Path], tmp_path: Path, tamper: str
) -> None:
    target, keys, public = signed
    out = write_evidence_pack(_audit(target), target, tmp_path / "pack", key=keys)
    if tamper == "change":
        text = (out / "report.json").read_text().replace('"critical": 0', '"critical": 1', 1)
        (out / "report.json").write_text(text)
    elif tamper == "add":
        (out / "note.txt").write_text("all clear")
    else:
        (out / "scan.json").unlink()
    with pytest.raises(VerificationError):
        verify_model(out, out / SIGNATURE_NAME, load_public_key(public))


def test_another_key_does_not_verify_a_pack(signed: tuple[Target, PrivateKeySet, Path], tmp_path: Path) -> None:
    target, keys, _ = signed
    out = write_evidence_pack(_audit(target), target, tmp_path / "pack", key=keys)
    _, other = write_keypair(generate_keypair("ed25519"), tmp_path / "other")
    with pytest.raises(VerificationError):
        verify_model(out, out / SIGNATURE_NAME, load_public_key(other))


def test_a_destination_in_use_is_refused_before_any_work(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "old.txt").write_text("keep me")
    with pytest.raises(FileFormatError, match="already exists and is not empty"):
        check_pack_destination(used)
    with pytest.raises(FileFormatError, match="does not exist"):
        check_pack_destination(tmp_path / "missing" / "pack")
    (tmp_path / "empty").mkdir()
    check_pack_destination(tmp_path / "empty")  # an empty folder is fine
    assert (used / "old.txt").read_text() == "keep me"


def test_a_failure_while_writing_leaves_nothing_behind(
    signed: tuple[Target, PrivateKeySet, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, keys, _ = signed
    report = _audit(target)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("modelshield.supply_chain.signing.sign_model", broken)
    with pytest.raises(OSError, match="disk full"):
        write_evidence_pack(report, target, tmp_path / "pack", key=keys)
    assert not (tmp_path / "pack").exists()
    assert not list(tmp_path.glob(".pack.*"))


def test_a_target_without_a_model_file_says_what_is_missing(
    signed: tuple[Target, PrivateKeySet, Path], tmp_path: Path
) -> None:
    target, keys, public = signed
    in_memory = dataclasses.replace(target, model_path=None, model_format="in-memory")
    report = Auditor(AuditOptions(checks=("baseline",))).run(in_memory)
    out = write_evidence_pack(report, in_memory, tmp_path / "pack", key=keys)
    index = json.loads((out / "index.json").read_text())
    assert not (out / "scan.json").exists() and not (out / "bom.cdx.json").exists()
    assert "no model file" in index["not_included"][0]
    verify_model(out, out / SIGNATURE_NAME, load_public_key(public))
