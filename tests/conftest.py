"""Shared fixtures: one zoo cache per test session, so reference targets train once."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op torch thread, as the CLI sets it: the library leaves the process-wide count alone."""
    from modelshield.cli._threads import configure_torch_threads

    configure_torch_threads(1)


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zoo cache directory shared by the whole session."""
    return tmp_path_factory.mktemp("zoo-cache")


@pytest.fixture
def global_setters(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records, instead of running, every call that would seed torch's global generator or set its thread count
    (process-wide state that library code must leave alone)."""
    torch = pytest.importorskip("torch")
    calls: list[str] = []
    for module, name in [
        (torch, "manual_seed"),
        (torch.random, "manual_seed"),
        (torch, "seed"),
        (torch, "set_num_threads"),
    ]:
        monkeypatch.setattr(module, name, lambda *_a, _n=name, **_k: calls.append(_n))
    return calls
