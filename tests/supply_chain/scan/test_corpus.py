"""The acceptance corpus: every malicious file reaches high, no benign file reaches medium."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.findings import Severity
from modelshield.supply_chain.scan import paths, scan_file, scan_paths
from modelshield.testing.scan_corpus import CorpusEntry, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CorpusEntry]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, write_corpus(root)


def test_corpus_size(corpus: tuple[Path, list[CorpusEntry]]) -> None:
    _, entries = corpus
    assert sum(e.malicious for e in entries) >= 40
    assert sum(not e.malicious for e in entries) >= 20


def test_every_malicious_file_is_caught(corpus: tuple[Path, list[CorpusEntry]]) -> None:
    root, entries = corpus
    missed = []
    for entry in entries:
        if entry.malicious:
            worst = scan_file(root / entry.name).max_severity
            if worst is None or worst < Severity.HIGH:
                missed.append((entry.name, worst))
    assert missed == []


def test_no_benign_file_raises_an_alarm(corpus: tuple[Path, list[CorpusEntry]]) -> None:
    root, entries = corpus
    alarms = []
    for entry in entries:
        if not entry.malicious:
            result = scan_file(root / entry.name)
            if result.max_severity is not None and result.max_severity >= Severity.MEDIUM:
                alarms.append((entry.name, [f.id for f in result.findings]))
    assert alarms == []


def test_parallel_scan_agrees_with_serial(
    corpus: tuple[Path, list[CorpusEntry]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "_PARALLEL_BYTES", 0)  # a small corpus: force the process pool
    root, _ = corpus
    parallel = scan_paths([root], workers=2)
    serial = scan_paths([root], workers=1)
    assert parallel.files
    assert [(f.path, f.max_severity) for f in parallel.files] == [(f.path, f.max_severity) for f in serial.files]


def test_corpus_leaves_torch_global_generator_alone(tmp_path: Path) -> None:
    import torch

    from modelshield.testing.scan_corpus import _benign_writers

    write = _benign_writers()["benign.torch-state-dict.pt"]
    state = torch.get_rng_state()
    write(tmp_path / "a.pt")
    write(tmp_path / "b.pt")
    assert torch.equal(torch.get_rng_state(), state)
    a, b = torch.load(tmp_path / "a.pt"), torch.load(tmp_path / "b.pt")
    assert all(torch.equal(a[k], b[k]) for k in a) and a["0.weight"].abs().sum() > 0
