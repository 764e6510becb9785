"""``audit --evidence-pack``: a signed folder that ``modelshield verify`` accepts, and refusals before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_output import one_error_line

from modelshield.cli import main

pytest.importorskip("cyclonedx", reason="the evidence pack's bill of materials needs the bom extra")


@pytest.fixture(autouse=True)
def _cache(zoo_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(zoo_cache))


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    from modelshield.supply_chain.keys import generate_keypair, write_keypair

    return write_keypair(generate_keypair("ecdsa-p256"), tmp_path / "keys")


def test_the_pack_verifies_with_modelshield_verify_and_fails_once_changed(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    pack = tmp_path / "evidence"
    code = main(
        ["audit", "--target", "zoo:cancer-gbm", "--checks", "baseline", "--evidence-pack", str(pack),
         "--sign-key", str(private), "--quiet"]
    )  # fmt: skip
    assert code in (0, 1)  # findings decide the exit code, as without a pack
    index = json.loads((pack / "index.json").read_text())
    assert index["target"]["name"] == "zoo:cancer-gbm" and "scan.json" in index["files"]
    capsys.readouterr()
    verify = ["verify", str(pack), "--signature", str(pack / "evidence.sig"), "--public-key", str(public)]
    assert main(verify) == 0
    (pack / "report.html").write_text("<p>nothing to see</p>")
    assert main(verify) == 1
    assert "report.html" in capsys.readouterr().err


def test_pack_mistakes_are_one_line_and_exit_2_before_any_audit_work(
    tmp_path: Path, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import modelshield.zoo

    def no_work(*_a: object, **_k: object) -> None:
        raise AssertionError("the audit started before the evidence pack's options were checked")

    monkeypatch.setattr(modelshield.zoo, "load_target", no_work)
    private, _ = keys
    base = ["audit", "--target", "zoo:cancer-gbm"]
    assert main([*base, "--evidence-pack", str(tmp_path / "p")]) == 2
    assert "needs --sign-key" in one_error_line(capsys)
    assert main([*base, "--sign-key", str(private)]) == 2
    assert "--evidence-pack" in one_error_line(capsys)
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("keep")
    assert main([*base, "--evidence-pack", str(used), "--sign-key", str(private)]) == 2
    assert "already exists and is not empty" in one_error_line(capsys)
    assert main([*base, "--evidence-pack", str(tmp_path / "q"), "--sign-key", str(tmp_path / "none.key")]) == 2
    one_error_line(capsys)
    assert (used / "keep.txt").read_text() == "keep" and not (tmp_path / "q").exists()
