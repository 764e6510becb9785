"""Scan policies hold no state; each scan run remembers verdicts in a bounded, thread-safe cache of its own."""

from __future__ import annotations

import collections
import dataclasses
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modelshield.supply_chain.scan import DEFAULT_POLICY, Policy, Scanner, ScanOptions, VerdictCache, scan_file
from modelshield.supply_chain.scan.policy import Verdict


def test_a_policy_is_plain_immutable_data() -> None:
    assert [f.name for f in dataclasses.fields(Policy)] == ["extra_safe", "extra_dangerous"]
    before = dict(vars(DEFAULT_POLICY))
    for i in range(50):
        DEFAULT_POLICY.classify("collections", f"Thing{i}")
    assert vars(DEFAULT_POLICY) == before  # classifying left nothing behind


def test_a_verdict_cache_gives_the_policy_verdicts_and_stays_bounded() -> None:
    cache = VerdictCache(DEFAULT_POLICY, maxsize=8)
    names = [("collections", "OrderedDict"), ("os", "system"), ("foo", "Bar")] + [("pkg", f"F{i}") for i in range(40)]
    for module, name in names * 2:
        assert cache.classify(module, name) == DEFAULT_POLICY.classify(module, name)
        assert len(cache) <= 8
    assert len(cache) == 8
    first = cache.classify("pkg", "F39")
    assert cache.classify("pkg", "F39") is first  # remembered, not worked out again


@pytest.fixture
def chain_map(tmp_path: Path) -> Path:
    path = tmp_path / "chain.pkl"
    path.write_bytes(pickle.dumps(collections.ChainMap({"a": 1})))
    return path


def test_two_scans_in_threads_with_different_policies_do_not_share_verdicts(chain_map: Path) -> None:
    strict = ScanOptions()  # collections.ChainMap is not on the allowlist: high
    lenient = ScanOptions(policy=DEFAULT_POLICY.with_rules(safe=["collections.ChainMap"]))
    barrier = threading.Barrier(2)

    def scans(options: ScanOptions) -> set[tuple[str, ...]]:
        barrier.wait()
        seen = set()
        for _ in range(40):
            seen.add(tuple(f.id for f in scan_file(chain_map, options).findings))
        run = Scanner(options)  # one run, several files
        for _ in range(40):
            seen.add(tuple(f.id for f in run.scan_file(chain_map).findings))
        return seen

    with ThreadPoolExecutor(max_workers=2) as pool:
        strict_seen, lenient_seen = pool.map(scans, [strict, lenient])
    assert strict_seen == {("pickle.unreviewed-call",)}
    assert lenient_seen == {()}


def test_one_run_shared_by_threads_agrees_with_serial_scans(chain_map: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.")
    run = Scanner()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: run.scan_file(p).findings, [chain_map, evil] * 20))
    serial = [scan_file(chain_map).findings, scan_file(evil).findings] * 20
    assert results == serial
    assert run.verdicts.classify("collections", "ChainMap").verdict is Verdict.UNKNOWN
    assert run.verdicts.classify("os", "system").verdict is Verdict.DANGEROUS


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("pandas.core.frame", "DataFrame"),  # how pandas 2 and earlier name the classes pandas 3 calls pandas.DataFrame
        ("pandas.core.series", "Series"),
        ("pandas.core.indexes.base", "Index"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("sklearn.tree.tree", "DecisionTreeClassifier"),  # scikit-learn before 0.22
        ("sklearn.ensemble.forest", "RandomForestClassifier"),
    ],
)
def test_names_other_library_versions_wrote_are_allowed(module: str, name: str) -> None:
    assert DEFAULT_POLICY.classify(module, name).verdict is Verdict.SAFE


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("sklearn.callback._transport", "Listener"),  # multiprocessing's, imported into scikit-learn
        ("sklearn.datasets._base", "Path"),
        ("pandas.core.computation.expr", "Expr"),  # evaluates code in its constructor
        ("sklearn.datasets._base", "LogisticRegression"),  # an estimator's name in a package that fetches data
        ("torch.optim.lr_scheduler", "LambdaLR"),  # calls the function it is given
    ],
)
def test_names_defined_elsewhere_or_that_act_are_not_allowed(module: str, name: str) -> None:
    assert DEFAULT_POLICY.classify(module, name).verdict is not Verdict.SAFE
