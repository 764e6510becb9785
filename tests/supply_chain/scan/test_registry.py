"""The scanner registry: built-ins for every format, dispatch to every scanner of a format, and plug-ins that an
installed package declares in the ``modelshield.scanners`` entry points."""

from __future__ import annotations

import io
import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from modelshield.errors import RegistrationError
from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan import (
    ScanContext,
    Scanner,
    ScannerRegistry,
    default_registry,
    paths,
    scan_file,
    scan_finding,
    scan_paths,
    scan_stream,
)
from modelshield.supply_chain.scan.formats import builtin_scanners
from modelshield.testing.scan_corpus import call_v2, format_samples
from modelshield.testing.scanner_checks import check_scanner


class Tagger:
    """A scanner that reports one INFO finding naming itself, for every stream of its formats."""

    def __init__(self, name: str, *formats: ModelFormat) -> None:
        self.name = name
        self.formats = frozenset(formats)

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        return [scan_finding(f"test.{self.name}", Severity.INFO, self.name, f"depth {context.depth}", location)]


def test_every_format_but_unknown_has_exactly_one_builtin_scanner() -> None:
    registry = default_registry(entry_points=False)
    served = {fmt: [s.name for s in registry.for_format(fmt)] for fmt in ModelFormat}
    assert served.pop(ModelFormat.UNKNOWN) == []
    assert all(len(names) == 1 for names in served.values()), served
    assert registry.names() == tuple(s.name for s in builtin_scanners())


def test_all_scanners_of_a_format_run_in_registration_order(tmp_path: Path) -> None:
    registry = ScannerRegistry(
        [*builtin_scanners(), Tagger("first", ModelFormat.PICKLE), Tagger("second", ModelFormat.PICKLE)]
    )
    path = tmp_path / "evil.pkl"
    path.write_bytes(call_v2("os", "system"))
    assert [f.id for f in scan_file(path, registry=registry).findings] == [
        "pickle.dangerous-call",
        "test.first",
        "test.second",
    ]


def test_members_are_dispatched_through_the_registry_one_level_deeper(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.pkl", pickle.dumps([1]))
    registry = ScannerRegistry([*builtin_scanners(), Tagger("tag", ModelFormat.PICKLE)])
    (finding,) = scan_file(path, registry=registry).findings
    assert (finding.location, finding.description) == (f"{path}!a.pkl", "depth 1")


def test_registry_refuses_duplicates_and_things_that_are_not_scanners() -> None:
    registry = ScannerRegistry(builtin_scanners())
    with pytest.raises(RegistrationError, match="already registered"):
        registry.register(Tagger("pickle", ModelFormat.PICKLE))
    with pytest.raises(RegistrationError, match="not a format scanner"):
        registry.register(Tagger("no-formats"))
    with pytest.raises(RegistrationError, match="not a format scanner"):
        registry.register(Tagger)  # a class, not a scanner


def test_the_registry_runs_share_by_default_is_frozen() -> None:
    shared = Scanner().registry
    assert shared.frozen and Scanner().registry is shared
    with pytest.raises(RegistrationError, match="frozen"):
        shared.register(Tagger("extra", ModelFormat.PICKLE))
    assert "extra" not in shared
    mine = default_registry(entry_points=False)
    mine.register(Tagger("extra", ModelFormat.PICKLE))
    assert Scanner(registry=mine).registry.for_format(ModelFormat.PICKLE)[-1].name == "extra"


def test_a_format_no_scanner_serves_is_reported_at_the_top_only(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(call_v2("os", "system"))
    (finding,) = scan_file(path, registry=ScannerRegistry()).findings
    assert (finding.id, finding.severity) == ("format.unscanned", Severity.INFO)
    only_zip = ScannerRegistry([s for s in builtin_scanners() if s.name == "zip"])
    inner = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(inner, "w") as zf:  # a plain zip: no loader is known to unpickle its member
        zf.writestr("payload.bin", call_v2("os", "system"))
    assert scan_stream(inner, inner.tell(), location="a.zip", registry=only_zip) == []


def test_a_registry_travels_to_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "_PARALLEL_BYTES", 0)  # small files: force the process pool
    registry = ScannerRegistry([*builtin_scanners(), Tagger("tag", ModelFormat.PICKLE)])
    assert pickle.loads(pickle.dumps(registry)).names() == registry.names()
    for i in range(4):
        (tmp_path / f"m{i}.pkl").write_bytes(pickle.dumps(i))
    report = scan_paths([tmp_path], registry=registry, workers=2)
    assert [f.id for f in report.findings] == ["test.tag"] * 4


_PLUGIN = textwrap.dedent(
    '''
    """An example third-party scanner: flags pickles that carry a marker string."""
    from modelshield.findings import Severity
    from modelshield.supply_chain.formats import ModelFormat
    from modelshield.supply_chain.scan import scan_finding

    MARKER = b"MODELSHIELD-EXAMPLE-MARKER"


    class MarkerScanner:
        name = "example-marker"
        formats = frozenset({ModelFormat.PICKLE})

        def scan(self, stream, size, location, context):
            stream.seek(0)
            if MARKER not in stream.read(size):
                return []
            return [scan_finding("example.marker", Severity.LOW, "Example marker", "The marker is there.", location)]
    '''
)


def _install(site: Path, name: str, module: str, entry_points: str) -> None:
    """Install a package as pip would: its module, and a dist-info with its metadata and entry points."""
    (site / f"{name}.py").write_text(module)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site-packages directory on sys.path, for packages installed by the test."""
    scan_stream(io.BytesIO(b"x"), 1, location="x")  # the process-wide default registry is built without them
    directory = tmp_path / "site-packages"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    for module in [m for m in sys.modules if m.startswith("ms_example_")]:
        del sys.modules[module]


def test_an_installed_package_adds_a_scanner(site: Path, tmp_path: Path) -> None:
    before = default_registry().names()  # the test venv may hold other plug-ins (tests/plugins/example_plugin)
    _install(
        site,
        "ms_example_scanner",
        _PLUGIN,
        "[modelshield.scanners]\nexample-marker = ms_example_scanner:MarkerScanner\n",
    )
    registry = default_registry()
    assert registry.names()[: len(builtin_scanners())] == tuple(s.name for s in builtin_scanners())
    assert set(registry.names()) == {*before, "example-marker"}
    assert default_registry(entry_points=False).names() == tuple(s.name for s in builtin_scanners())
    path = tmp_path / "marked.pkl"
    path.write_bytes(pickle.dumps({"note": "MODELSHIELD-EXAMPLE-MARKER"}) + call_v2("os", "system"))
    assert [f.id for f in Scanner(registry=registry).scan_file(path).findings] == [
        "pickle.dangerous-call",
        "example.marker",
    ]
    assert "example.marker" not in {
        f.id for f in scan_file(path, registry=default_registry(entry_points=False)).findings
    }
    check_scanner(registry.get("example-marker"), [path.read_bytes(), *format_samples()[ModelFormat.PICKLE]])


def test_a_broken_plugin_is_named_not_ignored(site: Path) -> None:
    _install(site, "ms_example_broken", "X = 1\n", "[modelshield.scanners]\nbroken = ms_example_broken:X\n")
    with pytest.raises(RegistrationError, match=r"'broken'.*not a scanner"):
        default_registry()
    _install(site, "ms_example_clash", _PLUGIN.replace('"example-marker"', '"pickle"'), "")
    (site / "ms_example_broken-1.0.dist-info" / "entry_points.txt").write_text(
        "[modelshield.scanners]\nclash = ms_example_clash:MarkerScanner\n"
    )
    with pytest.raises(RegistrationError, match="'pickle' is already registered"):
        default_registry()


def test_lazy_built_ins_are_the_scanners_they_stand_for() -> None:
    """A built-in imported on first use declares the name and formats its scanner has, and pickles to itself."""
    from modelshield.supply_chain.scan.formats import LazyScanner

    lazy = [s for s in builtin_scanners() if isinstance(s, LazyScanner)]
    assert lazy
    for scanner in lazy:
        real = scanner.load()
        assert (real.name, real.formats) == (scanner.name, scanner.formats)
        assert pickle.loads(pickle.dumps(scanner)).target == scanner.target
