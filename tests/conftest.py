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
