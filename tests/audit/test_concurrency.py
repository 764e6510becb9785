"""Audits in concurrent threads give the same reports as audits run one at a time.

The security gateway runs library code in threads, so no audit may change what another computes: no global random
generator seeded, no thread count set, no shared mutable cache. Each job here builds its target (training a torch
model) and audits it; the jobs run one after the other, then two at once, and the reports must be byte-identical
apart from their wall-clock fields.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modelshield.audit import AuditOptions, Auditor
from modelshield.findings import JSONValue
from modelshield.target import Target

torch = pytest.importorskip("torch")

#: The report fields that hold wall-clock readings (the report's start and duration, each check's duration).
TIMING_KEYS = frozenset({"started_at", "duration_s"})


def untimed(report_json: str) -> str:
    """``report_json`` without its :data:`TIMING_KEYS`, wherever they are, and otherwise as it was."""

    def strip(value: JSONValue) -> JSONValue:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(json.loads(report_json)), indent=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread, as the CLI runs (the models are small; two threads crawl on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


Job = Callable[[], str]


def _job(make_target: Callable[[], Target], options: AuditOptions) -> Job:
    def run() -> str:
        return Auditor(options).run(make_target()).to_json()

    return run


def _reseed_until(stop: threading.Event) -> None:
    """What other code in the same process may do: seed torch's global generator and draw from it, again and again."""
    k = 0
    while not stop.wait(0.002):
        torch.manual_seed(k)
        torch.rand(8)
        k += 1


def _sequential_and_concurrent(jobs: list[Job]) -> tuple[list[str], list[str]]:
    """The jobs' reports run one after the other, then all at once (beside a thread that keeps reseeding torch's
    global generator)."""
    sequential = [job() for job in jobs]
    start = threading.Barrier(len(jobs))

    def together(job: Job) -> str:
        start.wait()  # the jobs begin at the same moment
        return job()

    stop = threading.Event()
    noise = threading.Thread(target=_reseed_until, args=(stop,), daemon=True)
    noise.start()
    try:
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            concurrent = list(pool.map(together, jobs))
    finally:
        stop.set()
        noise.join()
    return sequential, concurrent


def _statuses(report_json: str) -> dict[str, str]:
    return {run["name"]: run["status"] for run in json.loads(report_json)["checks"]}


def test_untimed_drops_only_the_timing_fields() -> None:
    report = {
        "started_at": "2026-01-01T00:00:00+00:00",
        "duration_s": 1.5,
        "seed": 3,
        "checks": [{"name": "baseline", "duration_s": 0.2, "status": "passed"}],
        "findings": [{"metrics": {"accuracy": 0.9}}],
    }
    stripped = json.loads(untimed(json.dumps(report)))
    assert stripped == {
        "seed": 3,
        "checks": [{"name": "baseline", "status": "passed"}],
        "findings": [{"metrics": {"accuracy": 0.9}}],
    }
    changed = {**report, "findings": [{"metrics": {"accuracy": 0.8}}]}
    assert untimed(json.dumps(changed)) != untimed(json.dumps(report))


def test_two_concurrent_audits_of_tiny_targets_equal_sequential_ones() -> None:
    """The checks that train torch models and draw random numbers (baseline, evasion, membership with its reference
    models, extraction), on two tiny targets trained in the jobs themselves, with different seeds."""
    from modelshield.testing.targets import tiny_target

    checks = ("baseline", "evasion", "membership", "extraction")
    jobs = [
        _job(lambda: tiny_target("tabular", seed=0), AuditOptions(checks=checks, seed=0)),
        _job(lambda: tiny_target("image", seed=1), AuditOptions(checks=checks, seed=1)),
    ]
    sequential, concurrent = _sequential_and_concurrent(jobs)
    for report in sequential:
        statuses = _statuses(report)
        assert list(statuses) == list(checks)
        assert set(statuses.values()) <= {"passed", "findings"}, report  # all ran, so all were compared
    assert sequential[0] != sequential[1]
    for one_at_a_time, together in zip(sequential, concurrent, strict=True):
        assert untimed(together) == untimed(one_at_a_time)


@pytest.mark.slow
def test_two_concurrent_default_audits_of_a_zoo_target_equal_sequential_ones(zoo_cache: Path) -> None:
    """The full default audit (every default check, quick budget) of zoo:cancer-mlp-overfit, with two seeds."""
    from modelshield.zoo import load_target

    load_target("zoo:cancer-mlp-overfit", cache_dir=zoo_cache, device="cpu")  # trained once, before the jobs

    def target() -> Target:
        return load_target("zoo:cancer-mlp-overfit", cache_dir=zoo_cache, device="cpu")

    jobs = [_job(target, AuditOptions(seed=0)), _job(target, AuditOptions(seed=1))]
    sequential, concurrent = _sequential_and_concurrent(jobs)
    for report in sequential:
        assert "error" not in _statuses(report).values(), report
    for one_at_a_time, together in zip(sequential, concurrent, strict=True):
        assert untimed(together) == untimed(one_at_a_time)
