"""Untrusted strings (file names, messages built from them) reach the terminal with their control characters
replaced: no colour, cursor or window-title sequences from a hostile name on any error or verification path."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.cli import main

HOSTILE = "m\x1b]0;PWNED\x07\x1b[31mred\x1b[2J.bin"


def _no_control(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, repr(text)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    path = tmp_path / HOSTILE
    path.write_bytes(b"weights")
    return path


def test_error_messages_are_sanitised(hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(hostile), "--signature", f"{hostile}.sig", "--public-key", f"{hostile}.pub"]) == 2
    out, err = capsys.readouterr()
    _no_control(out + err)
    assert "error:" in err and "red" in err  # the name is still shown, with its control characters replaced


def test_a_failed_verification_is_sanitised(hostile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    assert main(["keygen", "--out", str(keys)]) == 0
    assert main(["sign", str(hostile), "--key", str(keys / "modelshield.key")]) == 0
    hostile.write_bytes(b"changed")
    capsys.readouterr()
    assert (
        main(["verify", str(hostile), "--signature", f"{hostile}.sig", "--public-key", str(keys / "modelshield.pub")])
        == 1
    )
    out, err = capsys.readouterr()
    _no_control(out + err)
    assert "verification failed" in err


def test_scan_output_is_sanitised(hostile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostile.write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
    assert main(["scan", str(hostile)]) == 1
    out, err = capsys.readouterr()
    _no_control(out + err)
