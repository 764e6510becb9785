"""The benign corpus from real libraries: every file loads clean under the oracle, and the scanner stays quiet on it."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from modelshield.findings import Severity
from modelshield.supply_chain.scan import scan_file
from modelshield.testing.benign_corpus import (
    LOADERS,
    UNLOADABLE_FAMILY,
    BenignEntry,
    benign_entries,
    write_benign_corpus,
)
from modelshield.testing.scan_corpus import write_corpus


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[BenignEntry]]:
    root = tmp_path_factory.mktemp("benign")
    return root, write_benign_corpus(root)


def test_corpus_is_large_and_new(benign: tuple[Path, list[BenignEntry]], tmp_path: Path) -> None:
    root, entries = benign
    assert entries == benign_entries()
    generated = [e for e in entries if not e.family.startswith("wheel-testdata")]
    assert len(generated) >= 40
    assert len({e.name for e in entries}) == len(entries)
    assert {e.loader for e in entries} <= LOADERS
    assert all((root / e.name).is_file() for e in entries)
    # None of the generated files repeats a file of the existing corpus, name or bytes.
    old = write_corpus(tmp_path)
    old_bytes = {(tmp_path / e.name).read_bytes() for e in old}
    assert not {e.name for e in generated} & {e.name for e in old}
    assert not [e.name for e in generated if (root / e.name).read_bytes() in old_bytes]
    families = Counter(e.family for e in entries)
    for family in ("torch-dtypes", "torchscript", "sklearn", "joblib-compression", "pandas", "numpy", "gguf"):
        assert families[family] > 0, family


def test_corpus_is_deterministic(benign: tuple[Path, list[BenignEntry]], tmp_path: Path) -> None:
    root, entries = benign
    again = write_benign_corpus(tmp_path)
    assert [e.name for e in again] == [e.name for e in entries]
    # Pickles and NumPy files carry no timestamps; zip-based and HDF5 formats may, so they are left out here.
    stable = [e.name for e in entries if e.name.endswith((".pkl", ".npy")) and not e.family.startswith("wheel")]
    assert stable
    assert [n for n in stable if (tmp_path / n).read_bytes() != (root / n).read_bytes()] == []


@pytest.mark.slow
def test_every_file_loads_clean_under_the_oracle(benign: tuple[Path, list[BenignEntry]]) -> None:
    if importlib.util.find_spec("modelshield.testing.oracle") is None:
        pytest.skip("modelshield.testing.oracle is not there yet: nothing to confirm the corpus against")
    from modelshield.testing.oracle import run_loaders

    root, entries = benign
    results = run_loaders([(root / e.name, e.loader) for e in entries])
    dangerous = [(e.name, r.events) for e, r in zip(entries, results, strict=True) if r.dangerous]
    # Python 2 pickles and joblib's array companions are refused by Python 3 loaders; the rest must load.
    failed = [
        (e.name, r.error)
        for e, r in zip(entries, results, strict=True)
        if not r.loaded and e.family != UNLOADABLE_FAMILY
    ]
    assert dangerous == []
    assert failed == []


@pytest.mark.parametrize("entry", benign_entries(), ids=lambda e: e.name)
def test_scanner_raises_nothing_at_medium_or_above(benign: tuple[Path, list[BenignEntry]], entry: BenignEntry) -> None:
    root, _ = benign
    result = scan_file(root / entry.name)
    alarms = [(f.id, f.severity.name, f.title) for f in result.findings if f.severity >= Severity.MEDIUM]
    assert alarms == []
