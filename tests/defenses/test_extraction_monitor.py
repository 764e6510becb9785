"""The extraction monitor: false alarms measured on held-out benign streams, detection of the extraction attacks'
own query streams, bounded memory, thread safety, and the monitor as an output guard."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.extraction import extract_model, resample_images
from modelshield.data import DatasetSplit, load_bundled, load_digits, train_test_split
from modelshield.defenses.extraction_monitor import ExtractionMonitor, measure_monitor
from modelshield.defenses.interface import Action, GuardRequest, GuardStage
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models import Bounds, SklearnClassifier

FAST = {"min_steps": 30, "max_steps": 60, "epochs": 5}


@pytest.fixture(scope="module")
def setup() -> tuple[DatasetSplit, SklearnClassifier, ExtractionMonitor]:
    split = train_test_split(load_digits(), test_size=0.4, seed=0)
    model = LogisticRegression(max_iter=2000).fit(split.train.flat(), split.train.y)
    victim = SklearnClassifier(model, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))
    monitor = ExtractionMonitor(calibration_streams=30, calibration_length=200).fit(victim, split.train.x)
    return split, victim, monitor


def _benign(split: DatasetSplit, victim: SklearnClassifier, n: int, length: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        idx = rng.choice(len(split.test), size=length, replace=False)
        out.append((split.test.x[idx], victim.predict(split.test.x[idx])))
    return out


def test_false_alarms_are_measured_and_attacks_detected(
    setup: tuple[DatasetSplit, SklearnClassifier, ExtractionMonitor],
) -> None:
    split, victim, monitor = setup
    assert 0.5 < monitor.delta_ < 1.0
    mnist8 = resample_images(load_bundled("mnist").x[:600, :, 4:24, 4:24], 8)  # Knockoff: another data set
    attacks: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for strategy, pool in (("random", None), ("jacobian", mnist8[:40]), ("natural", mnist8)):
        result = extract_model(victim, split.test.x[:50], split.test.y[:50], strategy=strategy,  # type: ignore[arg-type]
                               natural_x=pool, budgets=(40, 150), seed=2, **FAST)  # fmt: skip
        assert result.query_x is not None
        attacks[strategy] = [(result.query_x, victim.predict(result.query_x))]
    benign = _benign(split, victim, n=40, length=150)  # held-out test records, never seen by fit
    measured = measure_monitor(monitor, benign, attacks)
    assert measured.benign.streams == 40
    assert measured.false_alarm_rate <= 0.05  # calibrated at 1% on the reference streams
    for name in ("random", "jacobian", "natural"):
        detection = measured.attack(name)
        assert detection.detection_rate == 1.0, name
        assert detection.median_queries_to_detection is not None
        assert detection.median_queries_to_detection <= 50
    assert measured.to_dict()["attacks"][0]["name"] == "random"
    assert monitor.n_clients == 0  # measure_monitor forgets its clients


def test_prada_alone_catches_jacobian_augmentation(
    setup: tuple[DatasetSplit, SklearnClassifier, ExtractionMonitor],
) -> None:
    split, victim, _ = setup
    prada = ExtractionMonitor(ood=False, proximity=False, calibration_streams=30, calibration_length=200).fit(
        victim, split.train.x
    )
    jac = extract_model(victim, split.test.x[:50], split.test.y[:50], strategy="jacobian",
                        natural_x=split.train.x[:20], budgets=(20, 200), seed=3, **FAST)  # fmt: skip
    assert jac.query_x is not None
    measured = measure_monitor(prada, _benign(split, victim, 30, 200),
                               {"jacobian": [(jac.query_x, victim.predict(jac.query_x))]})  # fmt: skip
    assert measured.attack("jacobian").detection_rate == 1.0
    assert measured.attack("jacobian").by_signal == {"prada": 1}
    assert measured.false_alarm_rate <= 0.1


def test_same_distribution_natural_queries_need_the_volume_cap(
    setup: tuple[DatasetSplit, SklearnClassifier, ExtractionMonitor],
) -> None:
    split, victim, monitor = setup
    stream = _benign(split, victim, 1, 300)[0]  # an attacker holding the owner's own kind of data
    decision = None
    for i in range(0, 300, 25):
        decision = monitor.observe("same", stream[0][i : i + 25], stream[1][i : i + 25])
    assert decision is not None and not decision.alarm  # stated limit: indistinguishable per query
    capped = ExtractionMonitor(max_queries=100, delta=0.9).fit(victim, split.train.x)
    for i in range(0, 300, 25):
        decision = capped.observe("same", stream[0][i : i + 25], stream[1][i : i + 25])
    assert decision is not None and decision.signals == ("volume",) and decision.first_alarm_at == 101
    monitor.forget("same")


def test_memory_is_bounded_and_observe_is_thread_safe(
    setup: tuple[DatasetSplit, SklearnClassifier, ExtractionMonitor],
) -> None:
    split, victim, _ = setup
    monitor = ExtractionMonitor(
        max_stored=50, window=100, proximity_memory=30, min_queries=20, delta=0.5, max_clients=3
    ).fit(victim, split.train.x)
    x, p = split.test.x, victim.predict(split.test.x)

    def feed(client: str) -> None:
        for i in range(0, 400, 20):
            monitor.observe(client, x[i : i + 20], p[i : i + 20])

    threads = [threading.Thread(target=feed, args=(c,)) for c in ("a", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = monitor._clients.peek("a")
    assert state is not None
    assert state.queries == 800  # two threads on one client: nothing lost
    assert len(state.order) <= 50 and sum(len(g) for g in state.groups.values()) == len(state.order)
    assert len(state.distances) <= 100 and len(state.recent) == 30
    for c in ("b", "c", "d"):
        monitor.observe(c, x[:2], p[:2])
    assert monitor.n_clients == 3 and "a" not in monitor._clients.clients()  # least recently seen dropped
    memory = monitor.memory()
    assert memory.clients == 3 and memory.max_clients == 3 and memory.max_entries == 3 * (50 + 100 + 30)
    assert 0 < memory.entries <= memory.max_entries


def test_bad_use_raises(setup: tuple[DatasetSplit, SklearnClassifier, ExtractionMonitor]) -> None:
    split, victim, monitor = setup
    assert monitor.n_clients == 0
    with pytest.raises(NotFittedError):
        ExtractionMonitor().observe("x", split.test.x[:2], np.zeros(2, np.int64))
    with pytest.raises(NotFittedError):
        ExtractionMonitor().inspect(GuardRequest("x", split.test.x[:2], probabilities=np.full((2, 10), 0.1)))
    with pytest.raises(InvalidParameterError):
        ExtractionMonitor(delta=1.5)
    with pytest.raises(InvalidParameterError):
        ExtractionMonitor(min_queries=2)
    with pytest.raises(InvalidParameterError):
        ExtractionMonitor(ood_alpha=0.5, ood_alt=0.1)
    with pytest.raises(InvalidInputError):
        monitor.observe("x", split.test.x[:2, :, :4], np.zeros(2, np.int64))
    with pytest.raises(InvalidInputError):
        monitor.observe("x", split.test.x[:2], np.zeros(3, np.int64))
    with pytest.raises(InvalidInputError, match=r"0\.\.9"):
        monitor.observe("x", split.test.x[:2], np.array([0, 10]))
    with pytest.raises(InvalidInputError):
        ExtractionMonitor().fit(victim, split.train.x[:5])
    with pytest.raises(InvalidInputError):
        ExtractionMonitor().fit(victim, split.train.x.reshape(len(split.train.x), -1))
    with pytest.raises(InvalidInputError, match="probabilities over 3 classes"):
        monitor.inspect(GuardRequest("x", split.test.x[:2], probabilities=np.full((2, 3), 1 / 3)))
    with pytest.raises(InvalidParameterError):
        ExtractionMonitor(on_alarm="allow")
    with pytest.raises(InvalidParameterError):
        measure_monitor(monitor, [], {})


def test_inspect_agrees_with_observe_and_latches(
    setup: tuple[DatasetSplit, SklearnClassifier, ExtractionMonitor],
) -> None:
    """As an output guard: rows from the first alarm on get on_alarm, scores above 1 exactly there (the client's
    peak alarm level), probabilities released unchanged; observe() on the same stream tells the same story."""
    split, victim, _ = setup
    guard = ExtractionMonitor(max_queries=30, delta=0.9, ood=False, on_alarm=Action.BLOCK).fit(victim, split.train.x)
    twin = ExtractionMonitor(max_queries=30, delta=0.9, ood=False).fit(victim, split.train.x)
    assert guard.stage is GuardStage.OUTPUT
    x = split.test.x[:50]
    proba = victim.predict_proba(x)
    batches = [(x[i : i + 10], proba[i : i + 10]) for i in range(0, 50, 10)]
    decisions = [guard.inspect(GuardRequest("c", xb, probabilities=pb)) for xb, pb in batches]
    verdicts = [twin.observe("c", xb, pb.argmax(axis=1)) for xb, pb in batches]
    actions = [a for d in decisions for a in d.actions]
    scores = np.concatenate([d.scores for d in decisions])
    assert actions == [Action.ALLOW] * 30 + [Action.BLOCK] * 20  # the 31st query crosses the cap; alarms latch
    assert np.all(scores[:30] <= 1.0) and np.all(scores[30:] > 1.0)
    assert np.all(np.diff(scores) >= 0)  # the peak level never falls
    assert scores[29] == pytest.approx(30 / 30) and scores[30] == pytest.approx(31 / 30)
    assert decisions[2].action is Action.ALLOW and decisions[3].action is Action.BLOCK
    assert any("Volume: 40 queries exceed the cap of 30" in r for r in decisions[3].reasons)
    assert decisions[0].reasons == () and decisions[0].threshold == 1.0
    assert [v.alarm for v in verdicts] == [False, False, False, True, True] and verdicts[-1].first_alarm_at == 31
    np.testing.assert_array_equal(decisions[1].probabilities, proba[10:20])
    assert guard.memory().clients == 1
    guard.forget("c")
    assert guard.memory().clients == 0
