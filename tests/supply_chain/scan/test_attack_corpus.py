"""The attack corpus (modelshield.testing.attack_corpus): every file is confirmed malicious by the oracle, and the
scanner must rate every one at high or above.

The scanner half is expected to fail for many entries until the allowlist-first policy and loader-equivalent
parsers of issue 14 land; each entry is its own test so that the failures are listed one by one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.findings import Severity
from modelshield.supply_chain.scan import scan_file
from modelshield.testing.attack_corpus import AttackEntry, write_attack_corpus
from modelshield.testing.oracle import run_loaders


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, AttackEntry]]:
    root = tmp_path_factory.mktemp("attacks")
    return root, {e.name: e for e in write_attack_corpus(root)}


def _entries() -> list[AttackEntry]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return write_attack_corpus(Path(tmp))


ENTRIES = _entries()


def test_corpus_is_large_and_spread() -> None:
    assert len(ENTRIES) >= 60
    assert len({e.name for e in ENTRIES}) == len(ENTRIES)
    assert {e.klass for e in ENTRIES} >= {1, 2, 3}
    assert len([e for e in ENTRIES if e.name.startswith("r2.")]) >= 20  # the second attacker round
    assert len([e for e in ENTRIES if e.name.startswith("r3.")]) >= 15  # the third


@pytest.mark.slow  # the sandbox imports torch, scikit-learn and pandas once: about 30 s
def test_pickle_entries_confirmed_by_oracle(corpus: tuple[Path, dict[str, AttackEntry]]) -> None:
    """A subset: the first raw-pickle entries, confirmed dangerous by a real pickle.load."""
    root, entries = corpus
    picks = [e for e in entries.values() if e.loader == "pickle"][:12]
    results = run_loaders([(root / e.name, e.loader) for e in picks], timeout=30)
    missed = [(r.path, r.error) for r in results if not r.dangerous]
    assert not missed


@pytest.mark.slow
def test_every_entry_confirmed_by_oracle(corpus: tuple[Path, dict[str, AttackEntry]]) -> None:
    root, entries = corpus
    results = run_loaders([(root / e.name, e.loader) for e in entries.values()], timeout=60)
    missed = [(Path(r.path).name, r.loader, r.error) for r in results if not r.dangerous]
    assert not missed


@pytest.mark.parametrize("name", [e.name for e in ENTRIES])
def test_scanner_rates_entry_high(name: str, corpus: tuple[Path, dict[str, AttackEntry]]) -> None:
    root, _ = corpus
    result = scan_file(root / name)
    worst = result.max_severity
    assert worst is not None and worst >= Severity.HIGH, [(f.id, f.severity.value) for f in result.findings]
