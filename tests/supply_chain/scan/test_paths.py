"""Which files a scan of paths reads: every regular file, in path order, no symbolic link followed, nothing
skipped silently."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from modelshield.errors import FileFormatError
from modelshield.supply_chain.scan import iter_files


def _tree(root: Path) -> None:
    for name in ("b.pkl", "a-b.pkl", "a/z.pkl", "a/b/c.pkl", ".hidden/x.pt", "A.pkl", "sub/deeper/end.bin"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_every_regular_file_in_path_order(tmp_path: Path) -> None:
    _tree(tmp_path)
    found = list(iter_files([tmp_path]))
    expected = sorted(p for p in tmp_path.rglob("*") if p.is_file())  # pathlib's order: part by part
    assert found == expected
    assert [p.relative_to(tmp_path).as_posix() for p in found][:3] == [".hidden/x.pt", "A.pkl", "a/b/c.pkl"]


def test_symbolic_links_inside_are_not_followed_but_a_linked_root_is(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pkl").write_bytes(b"x")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "real.pkl").write_bytes(b"x")
    (tree / "to_file.pkl").symlink_to(outside / "secret.pkl")
    (tree / "to_dir").symlink_to(outside, target_is_directory=True)
    (tree / "dangling.pkl").symlink_to(tmp_path / "missing")
    assert list(iter_files([tree])) == [tree / "real.pkl"]
    assert list(iter_files([tree / "to_file.pkl"])) == [tree / "to_file.pkl"]  # named on purpose: scanned


def test_exclusions_match_the_relative_path_or_the_name(tmp_path: Path) -> None:
    _tree(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path], exclude=["a/*", "*.bin"])}
    assert names == {".hidden/x.pt", "A.pkl", "a-b.pkl", "b.pkl"}
    assert list(iter_files([tmp_path / "b.pkl"], exclude=["b.*"])) == []


def test_what_cannot_be_read_as_files_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        list(iter_files([tmp_path / "missing"]))
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.fspath(sock_path))
        with pytest.raises(FileFormatError, match="neither a regular file nor a directory"):
            list(iter_files([sock_path]))
        assert list(iter_files([tmp_path])) == []  # inside a directory, special files are not files to scan
