"""The light entry-point reader returns what importlib.metadata returns: on this environment and on built ones."""

from __future__ import annotations

import importlib
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from modelshield._internal import entry_points as reader
from modelshield._internal.entry_points import EntryPoint, entry_points


def _standard(group: str) -> list[tuple[str, str, str]]:
    importlib.invalidate_caches()  # importlib.metadata caches directory listings by mtime
    return [(e.name, e.value, e.group) for e in metadata.entry_points(group=group)]


def _ours(group: str) -> list[tuple[str, str, str]]:
    return [(e.name, e.value, e.group) for e in entry_points(group)]


def _dist(root: Path, directory: str, text: str | None) -> None:
    info = root / directory
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {directory.partition('-')[0]}\nVersion: 1\n")
    if text is not None:
        (info / "entry_points.txt").write_text(text)


def test_every_group_of_this_environment_matches_importlib_metadata() -> None:
    groups = {e.group for dist in metadata.distributions() for e in dist.entry_points}
    assert "console_scripts" in groups and "modelshield.scanners" in groups
    for group in sorted(groups):
        assert _ours(group) == _standard(group), group
    assert list(reader._read_all())  # read directly, not through the fallback


def test_a_built_environment_matches_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(
        first,
        "Foo_Bar-1.0.dist-info",
        "# a comment\nstray = before.any:section\n\n[ms.test]\n  one = pkg.mod:obj.attr [extra]\n"
        "two=pkg.mod\nthree = a = b\n[other]\nfour = x:y\n",
    )
    _dist(first, "plain.egg-info", "[ms.test]\nfive = eggs:thing\n")
    _dist(first, "no_entry_points-2.0.dist-info", None)
    _dist(second, "foo.bar-2.0.dist-info", "[ms.test]\nshadowed = later:one\n")  # the same name: first wins
    _dist(second, "baz-0.1.dist-info", "[ms.test]\nsix = baz\n")
    (second / "lone.egg-info").write_text("Metadata-Version: 1.0\n")  # an egg-info file, not a directory
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second)])
    for group in ("ms.test", "other", "absent"):
        assert _ours(group) == _standard(group), group
    assert ("shadowed", "later:one", "ms.test") not in _ours("ms.test")
    assert list(reader._read_all())


def test_what_it_does_not_read_goes_to_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zf.writestr("zipped-1.0.dist-info/entry_points.txt", "[ms.test]\nzipped = z:thing\n")
    upper = tmp_path / "upper"
    _dist(upper, "Shouty-1.0.DIST-INFO", "[ms.test]\nshouty = s:thing\n")
    for path in ([str(archive)], [str(upper)]):
        monkeypatch.setattr(sys, "path", path)
        with pytest.raises(reader._UnsupportedLayoutError):
            list(reader._read_all())
        assert _ours("ms.test") == _standard("ms.test") != []


def test_a_malformed_line_fails_as_importlib_metadata_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _dist(tmp_path, "bad-1.0.dist-info", "[ms.test]\nno equals sign here\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    with pytest.raises((TypeError, ValueError)) as standard:
        _standard("ms.test")
    with pytest.raises(type(standard.value)):
        _ours("ms.test")


def test_loading_names_a_module_or_an_attribute_path() -> None:
    assert EntryPoint("p", "os.path", "g").load() is sys.modules["os.path"]
    assert EntryPoint("p", "os.path:join", "g").load() is sys.modules["os.path"].join
    assert EntryPoint("p", "importlib.machinery : PathFinder.find_spec [x]", "g").load() == (
        importlib.machinery.PathFinder.find_spec
    )
    with pytest.raises(ValueError, match="malformed"):
        EntryPoint("p", "not a value!", "g").load()
