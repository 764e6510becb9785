"""Shared fixtures: one zoo cache per test session, so reference targets train once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zoo cache directory shared by the whole session."""
    return tmp_path_factory.mktemp("zoo-cache")
