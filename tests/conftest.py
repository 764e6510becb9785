"""Shared fixtures: one zoo cache per test session, so reference targets train once."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_CACHE = pytest.StashKey[Path]()


_SHARED = "MODELSHIELD_TEST_SESSION_CACHE"  # set by the first process; pytest-xdist's workers inherit it


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op torch thread, as the CLI sets it (the library leaves the process-wide count alone); and a
    reference-target cache of the session's own, so that no test reads or writes the user's real cache.

    Under pytest-xdist the workers share the main process's cache, so each reference target trains once per run
    (the zoo writes an entry by an atomic rename, so two workers racing for one entry both read a whole one). The
    main process, which made the cache, removes it at the end."""
    from modelshield.cli._threads import configure_torch_threads

    configure_torch_threads(1)
    inherited = os.environ.get(_SHARED)
    if inherited and os.environ.get("PYTEST_XDIST_WORKER"):
        cache = Path(inherited)
    else:
        cache = Path(tempfile.mkdtemp(prefix="modelshield-test-cache-"))
        config.stash[_CACHE] = cache
        os.environ[_SHARED] = str(cache)
    os.environ["MODELSHIELD_CACHE_DIR"] = str(cache / "zoo")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    # Keras (the scanner's benign corpus writes real .keras files) runs on torch, the backend installed here.
    os.environ.setdefault("KERAS_BACKEND", "torch")


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = config.stash.get(_CACHE, None)
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def zoo_cache() -> Path:
    """A zoo cache directory shared by the whole session (and by pytest-xdist's workers)."""
    path = Path(os.environ[_SHARED]) / "zoo-cache"
    path.mkdir(exist_ok=True)
    return path


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
