"""Detection delay of the extraction monitor on a Jacobian-augmentation thief seeded with the owner's kind of data.

The thief's seed phase is natural images from the owner's distribution, which no signal can tell from a benign
client; the delay is counted from its first synthetic query. Without the proximity signal the monitor flags these
two streams after 120 and 60 synthetic queries (PRADA), with it after 6; benchmarks/privacy/bench_monitor_delay.py
measures the distribution over seeds and thieves.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.extraction import extract_model
from modelshield.data import DatasetSplit, load_digits, train_test_split
from modelshield.defenses.extraction_monitor import ExtractionMonitor
from modelshield.models import Bounds, SklearnClassifier

N_SEED = 60  # natural seed images before the first synthetic query
MAX_DELAY = 16  # synthetic queries, the alarming one included


@pytest.fixture(scope="module")
def setup() -> tuple[DatasetSplit, SklearnClassifier]:
    split = train_test_split(load_digits(), test_size=0.4, seed=0)
    model = LogisticRegression(max_iter=2000).fit(split.train.flat(), split.train.y)
    return split, SklearnClassifier(model, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))


def _alarm(monitor: ExtractionMonitor, victim: SklearnClassifier, x: np.ndarray, batch: int) -> int | None:
    labels = victim.predict(x)
    for start in range(0, len(x), batch):
        decision = monitor.observe("thief", x[start : start + batch], labels[start : start + batch])
    monitor.forget("thief")
    return decision.first_alarm_at


@pytest.mark.parametrize(("seed", "batch"), [(0, 16), (1, 5)])
def test_jacobian_thief_with_natural_seeds_is_flagged_soon_after_its_first_synthetic_query(
    setup: tuple[DatasetSplit, SklearnClassifier], seed: int, batch: int
) -> None:
    split, victim = setup
    pool = split.test.x[np.random.default_rng(seed).permutation(len(split.test.x))]
    jac = extract_model(victim, split.test.x[:50], split.test.y[:50], strategy="jacobian", natural_x=pool,
                        jacobian_seed=N_SEED, budgets=(N_SEED, 3 * N_SEED), seed=seed, min_steps=30, max_steps=60,
                        epochs=5)  # fmt: skip
    assert jac.query_x is not None and len(jac.query_x) == 3 * N_SEED
    owner = {row.tobytes() for row in split.test.x.astype(np.float32)}
    natural = [row.tobytes() in owner for row in jac.query_x.astype(np.float32)]
    assert all(natural[:N_SEED]) and not any(natural[N_SEED:])  # onset: query N_SEED + 1
    monitor = ExtractionMonitor(calibration_streams=30, calibration_length=200).fit(victim, split.train.x, seed=seed)
    alarm = _alarm(monitor, victim, jac.query_x, batch)
    assert alarm is not None, "the Jacobian thief was never flagged"
    delay = alarm - N_SEED
    assert 1 <= delay <= MAX_DELAY, f"alarm at query {alarm}: {delay} synthetic queries after the seed phase"
    # the bound is the proximity signal's doing: without it the same stream is flagged much later, or not at all
    without = ExtractionMonitor(proximity=False, calibration_streams=30, calibration_length=200)
    late = _alarm(without.fit(victim, split.train.x, seed=seed), victim, jac.query_x, batch)
    assert late is None or late - N_SEED > MAX_DELAY


def test_benign_clients_do_not_trip_the_proximity_signal(setup: tuple[DatasetSplit, SklearnClassifier]) -> None:
    split, victim = setup
    monitor = ExtractionMonitor(ood=False, calibration_streams=30, calibration_length=200).fit(victim, split.train.x)
    rng = np.random.default_rng(5)
    for i in range(20):
        x = split.test.x[rng.permutation(len(split.test.x))]  # every held-out record once, in a random order
        decision = monitor.observe(f"benign{i}", x, victim.predict(x))
        assert "proximity" not in decision.signals, decision
        assert decision.proximity_rate < 0.1
    repeats = np.concatenate([split.test.x[:40]] * 5)  # a client that asks again: exact repeats are not scored
    decision = monitor.observe("repeats", repeats, victim.predict(repeats))
    state = monitor._clients.peek("repeats")
    assert state is not None and state.near_tested == 40
    assert "proximity" not in decision.signals
