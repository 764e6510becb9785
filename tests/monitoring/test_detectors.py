"""The traffic detectors against the real attacks' query streams, benign held-out streams, and the guard contract.

Every detector is fitted on the digits training split; benign clients draw from the held-out test split. Attack
streams are recorded by wrapping the victim so that every batch an attack asks is logged, then replayed as one
client (or, for sybils, spread over keys) with the victim's real answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.attribute import infer_attribute
from modelshield.attacks.evasion.blackbox import hop_skip_jump, square_attack
from modelshield.attacks.extraction import extract_model, resample_images
from modelshield.attacks.membership.attacks import label_only_attack
from modelshield.data import DatasetSplit, load_bundled, load_digits, train_test_split
from modelshield.defenses.extraction_monitor import ExtractionMonitor
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models import Bounds, SklearnClassifier
from modelshield.monitoring.detectors import (
    EvasionProbingDetector,
    ExtractionDetector,
    ProbingDetector,
    SybilDetector,
)
from modelshield.monitoring.interface import Alert, Observation, Technique, TrafficDetector
from modelshield.testing.guard_checks import check_guard

FAST = {"min_steps": 30, "max_steps": 60, "epochs": 5}


@pytest.fixture(scope="module")
def digits() -> tuple[DatasetSplit, SklearnClassifier]:
    split = train_test_split(load_digits(), test_size=0.4, seed=0)
    model = LogisticRegression(max_iter=2000).fit(split.train.flat(), split.train.y)
    return split, SklearnClassifier(model, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))


@pytest.fixture(scope="module")
def detectors(digits: tuple[DatasetSplit, SklearnClassifier]) -> list[TrafficDetector]:
    split, victim = digits
    return [
        d.fit(victim, split.train.x, seed=0)
        for d in (ExtractionDetector(), EvasionProbingDetector(), ProbingDetector())
    ]


@contextmanager
def recording(victim: SklearnClassifier) -> Iterator[list[np.ndarray]]:
    """Log every batch the victim is asked (predict and predict_proba)."""
    log: list[np.ndarray] = []
    proba, predict = victim.predict_proba, victim.predict

    def logged(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def call(x: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
            log.append(np.asarray(x, np.float32).reshape(-1, *victim.input_shape).copy())
            return fn(x, *args, **kwargs)

        return call

    victim.predict_proba, victim.predict = logged(proba), logged(predict)  # type: ignore[method-assign]
    try:
        yield log
    finally:
        del victim.predict_proba, victim.predict


def replay(
    dets: list[TrafficDetector],
    victim: SklearnClassifier,
    x: np.ndarray,
    client: str,
    *,
    batch: int = 1,
    start: float = 0.0,
    gap: float = 1.0,
    keep: bool = False,
) -> list[tuple[int, Alert]]:
    """Send ``x`` as one client's requests; (queries so far, alert) for every alert; forget the client after
    (unless ``keep``)."""
    out = []
    p = victim.predict_proba(x)
    for i in range(0, len(x), batch):
        obs = Observation(time=start + i * gap, client=client, x=x[i : i + batch], probabilities=p[i : i + batch])
        out.extend((min(i + batch, len(x)), a) for d in dets for a in d.observe(obs))
    for d in dets:
        if not keep:
            d.forget(client)
    return out


def first(alerts: list[tuple[int, Alert]], technique: str) -> int | None:
    return min((n for n, a in alerts if a.technique == technique), default=None)


# -- the guard contract ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [
        lambda: ExtractionDetector(
            max_clients=16,
            memory=64,
            coverage_window=64,
            young_hours=1.0,
            monitor=ExtractionMonitor(
                max_clients=16,
                window=200,
                max_stored=300,
                proximity_memory=64,
                calibration_streams=10,
                calibration_length=100,
            ),
        ),
        lambda: EvasionProbingDetector(max_clients=16, memory=64),
        lambda: ProbingDetector(max_clients=16, memory=64),
        lambda: SybilDetector(max_clients=16, bins=32),
    ],
    ids=["extraction", "evasion", "probing", "sybil"],
)
def test_each_detector_keeps_the_guard_contract(
    digits: tuple[DatasetSplit, SklearnClassifier], factory: Callable[[], TrafficDetector]
) -> None:
    split, victim = digits
    check_guard(factory, victim, split.train.x[:400], split.train.y[:400])


def test_bad_parameters_and_inputs_are_refused(digits: tuple[DatasetSplit, SklearnClassifier]) -> None:
    split, victim = digits
    with pytest.raises(InvalidParameterError):
        EvasionProbingDetector(alpha=0.6, alt=0.5)
    with pytest.raises(InvalidParameterError):
        ProbingDetector(false_alarm_queries=1)
    with pytest.raises(InvalidParameterError):
        SybilDetector(rho=1.5)
    with pytest.raises(NotFittedError):
        ProbingDetector().observe(
            Observation(time=0.0, client="c", x=np.zeros((1, 1, 8, 8)), probabilities=np.full((1, 10), 0.1))
        )
    with pytest.raises(InvalidInputError):
        ProbingDetector().fit(victim, split.train.x[:10])
    det = EvasionProbingDetector().fit(victim, split.train.x)
    with pytest.raises(InvalidInputError):
        det.observe(Observation(time=0.0, client="c", x=np.zeros((1, 64)), probabilities=np.full((1, 10), 0.1)))


# -- benign traffic -------------------------------------------------------------------------------------------------


def test_benign_held_out_clients_raise_no_alert(
    digits: tuple[DatasetSplit, SklearnClassifier], detectors: list[TrafficDetector]
) -> None:
    """Twelve independent clients, 600 held-out queries each (with repeats, as real clients repeat), batches of 1
    to 7, a few seconds apart: 7,200 benign queries, no alert."""
    split, victim = digits
    rng = np.random.default_rng(11)
    for c in range(12):
        x = split.test.x[rng.choice(len(split.test), size=600, replace=True)]
        alerts = replay(
            detectors,
            victim,
            x,
            f"benign-{c}",
            batch=int(rng.integers(1, 8)),
            start=float(rng.uniform(0, 3600)),
            gap=float(rng.uniform(2, 30)),
        )
        assert alerts == [], [(n, a.detector) for n, a in alerts]


def test_benign_specialist_clients_raise_no_alert(
    digits: tuple[DatasetSplit, SklearnClassifier], detectors: list[TrafficDetector]
) -> None:
    """Clients that send mostly one class (70% of their queries, the rest from the other classes; held-out images,
    repeats included): their recent queries lie closer together than random reference points, which a pooled
    near-neighbour null reads as probing; the class-conditional nulls do not (the pooled version alerted here)."""
    split, victim = digits
    rng = np.random.default_rng(21)
    for favourite in (0, 3, 7):
        own = np.flatnonzero(split.test.y == favourite)
        other = np.flatnonzero(split.test.y != favourite)
        pick = np.where(rng.random(800) < 0.7, rng.choice(own, 800), rng.choice(other, 800))
        alerts = replay(detectors, victim, split.test.x[pick], f"specialist-{favourite}", batch=2, gap=20.0)
        assert alerts == [], [(n, a.detector, a.summary) for n, a in alerts]


def test_noisy_scanner_raises_no_high_alert(
    digits: tuple[DatasetSplit, SklearnClassifier],
) -> None:
    """A client whose every input carries another scanner's noise is partly off the owner's data (drift) but not, by
    that alone, a thief: no high extraction alert."""
    split, victim = digits
    det = ExtractionDetector(monitor=ExtractionMonitor(calibration_streams=20, calibration_length=300, proximity=False))
    det.fit(victim, split.train.x)
    rng = np.random.default_rng(22)
    x = split.test.x[rng.permutation(len(split.test))[:600]]  # no re-sends: a noisy re-send is a noisy copy
    noisy = np.clip(x + rng.normal(0.0, 0.05, size=x.shape), 0.0, 1.0).astype(np.float32)
    alerts = [a for _, a in replay([det], victim, noisy, "noisy-scanner", batch=2)]
    assert all(a.severity != "high" for a in alerts), [(a.detector, a.severity) for a in alerts]


def _rescan(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same image scanned again: every ink pixel moves within its grey level (±1/32); never an exact copy."""
    return np.where(x > 0, np.clip(x + rng.uniform(-1 / 32, 1 / 32, size=x.shape), 0.0, 1.0), 0.0).astype(np.float32)


def test_a_client_re_sending_its_inputs_once_raises_no_alert(digits: tuple[DatasetSplit, SklearnClassifier]) -> None:
    """A client that sends every image twice (the second time rescanned, a few queries later: a retry, the same
    document scanned again) is not stepping from its own queries: one copy of an earlier query is skipped like an
    exact repeat. Three copies of each image (noisy copies of one record) are tested, and the proximity signal
    fires on them (before re-sends were skipped, proximity and PRADA both alerted on the twice-sent stream)."""
    split, victim = digits
    rng = np.random.default_rng(31)
    det = ExtractionDetector().fit(victim, split.train.x, seed=0)
    images = split.test.x[rng.permutation(len(split.test))[:300]]
    for copies, client in ((2, "re-sender"), (3, "copier")):
        sent = [
            np.concatenate([images[i : i + 3]] + [_rescan(images[i : i + 3], rng) for _ in range(copies - 1)])
            for i in range(0, len(images), 3)
        ]
        alerts = [a for _, a in replay([det], victim, np.concatenate(sent), client, batch=3, gap=10.0)]
        if copies == 2:
            assert alerts == [], [(a.detector, a.summary) for a in alerts]
        else:
            assert "extraction.proximity" in {a.detector for a in alerts}, [a.detector for a in alerts]


@pytest.mark.slow
def test_a_long_benign_stream_raises_no_alert(
    digits: tuple[DatasetSplit, SklearnClassifier], detectors: list[TrafficDetector]
) -> None:
    """100 more clients, 1,000 held-out queries each (100,000 benign queries, the held-out records repeated, batches
    of 1 to 15): no alert from any detector (measured: none in 200,000)."""
    split, victim = digits
    rng = np.random.default_rng(12)
    for c in range(100):
        x = split.test.x[rng.choice(len(split.test), size=1000, replace=True)]
        alerts = replay(detectors, victim, x, f"long-{c}", batch=int(rng.integers(1, 16)), gap=60.0)
        assert alerts == [], [(n, a.detector) for n, a in alerts]


# -- evasion probing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["hop-skip-jump", "square"])
def test_blackbox_evasion_is_detected_within_200_queries(
    digits: tuple[DatasetSplit, SklearnClassifier], detectors: list[TrafficDetector], attack: str
) -> None:
    split, victim = digits
    x, y = split.test.x[3:4], split.test.y[3:4]
    with recording(victim) as log:
        if attack == "square":
            square_attack(victim, x, y, eps=0.15, max_queries=400, seed=1)
        else:
            hop_skip_jump(victim, x, y, max_queries=400, seed=1)
    queries = np.concatenate(log)
    alerts = replay(detectors, victim, queries, f"{attack}-client")
    at = first(alerts, Technique.EVASION)
    assert at is not None and at <= 200, [(n, a.detector) for n, a in alerts]
    alert = next(a for _, a in alerts if a.technique == Technique.EVASION)
    assert alert.evidence["near_duplicates"] > 0 and alert.score > alert.threshold
    ev = alert.evidence
    assert ev["flips"] >= 2 or ev["low_margin_p"] < 1e-3 or ev["margins_shrinking"]


# -- extraction -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "jacobian", "natural"])
def test_extraction_attacks_raise_an_extraction_alert(
    digits: tuple[DatasetSplit, SklearnClassifier], detectors: list[TrafficDetector], strategy: str
) -> None:
    split, victim = digits
    pool = {
        "random": None,
        "jacobian": split.test.x[:40],
        "natural": resample_images(load_bundled("mnist").x[:600, :, 4:24, 4:24], 8),  # KnockoffNets: other data
    }[strategy]
    result = extract_model(
        victim,
        split.test.x[:50],
        split.test.y[:50],
        strategy=strategy,  # type: ignore[arg-type]
        natural_x=pool,
        budgets=(200,),
        seed=2,
        keep_queries=True,
        **FAST,
    )
    assert result.query_x is not None
    alerts = replay(detectors, victim, result.query_x.astype(np.float32), f"thief-{strategy}", batch=8)
    at = first(alerts, Technique.EXTRACTION)
    assert at is not None and at <= 200
    signals = [a for _, a in alerts if a.technique == Technique.EXTRACTION]
    assert len({a.detector for a in signals}) == len(signals)  # one alert per signal, not one per request
    assert any(a.severity == "high" for a in signals), [(a.detector, a.severity) for a in signals]


def test_boundary_seeking_thief_is_caught_by_the_boundary_signal(
    digits: tuple[DatasetSplit, SklearnClassifier], detectors: list[TrafficDetector]
) -> None:
    """A thief with the owner's own kind of data (held-out digits) that queries midpoints of pairs of them, to learn
    where the boundary runs: half of its answers have margins below the reference's 5% quantile."""
    split, victim = digits
    det = detectors[0]
    rng = np.random.default_rng(0)
    a, b = rng.integers(len(split.test), size=(2, 300))
    mix = (0.5 * split.test.x[a] + 0.5 * split.test.x[b]).astype(np.float32)
    alerts = replay([det], victim, mix, "mixup-thief", batch=10)
    at = min((n for n, a in alerts if a.detector == "extraction.boundary"), default=None)
    assert at is not None and at <= 100


def test_a_new_key_drawing_answers_fast_is_alerted_on(digits: tuple[DatasetSplit, SklearnClassifier]) -> None:
    """Six clients established over a day at about 30 distinct queries an hour; then two new keys with natural data:
    one at a similar rate (nothing), one at 400 an hour (``new-key``, medium, within its first hour and a half)."""
    split, victim = digits
    quick = ExtractionMonitor(ood=False, proximity=False, delta=0.01)  # the volume signal alone
    det = ExtractionDetector(monitor=quick).fit(victim, split.train.x)
    x, rng = split.test.x, np.random.default_rng(8)
    p = victim.predict_proba(x)
    alerts = []

    walks: dict[str, list[int]] = {}

    def send(client: str, t: float, rows: int) -> None:
        """The client's next ``rows`` records of its own shuffle (no record again within its last 256)."""
        walk = walks.setdefault(client, [])
        while len(walk) < rows:
            walk.extend(rng.permutation(len(x)).tolist())
        i, walks[client] = np.asarray(walk[:rows], np.int64), walk[rows:]
        alerts.extend(det.observe(Observation(time=t, client=client, x=x[i], probabilities=p[i])))

    for t in np.arange(0.0, 26 * 3600.0, 120.0):  # 30 an hour each, one a request
        for c in range(6):
            send(f"old-{c}", float(t) + c, 1)
    assert alerts == [], [(a.client, a.detector) for a in alerts]
    start = 26 * 3600.0
    for k, t in enumerate(np.arange(start, start + 3 * 3600.0, 60.0)):
        send("new-slow", float(t), 1 if k % 2 else 0)
        send("new-fast", float(t) + 1, 7)
    hits = [a for a in alerts if a.detector == "extraction.new-key"]
    assert [a.client for a in hits] == ["new-fast"], [(a.client, a.detector) for a in alerts]
    assert hits[0].severity == "medium" and hits[0].time < start + 1.5 * 3600
    assert hits[0].evidence["typical_per_hour"] == pytest.approx(30.0, rel=0.1)
    # the first-seen times and counts survive a restart, as plain JSON: a restarted gateway still knows who is new
    saved = json.loads(json.dumps(det.state()))
    again = ExtractionDetector(monitor=quick).fit(victim, split.train.x)
    again.restore(saved)
    alerts.clear()
    det = again
    send("new-fast", start + 3 * 3600.0, 7)
    send("new-slow", start + 3 * 3600.0, 500)  # about 590 distinct in 3 hours: above 5 x 26 x 3
    assert [a.client for a in alerts if a.detector == "extraction.new-key"] == ["new-slow"]
    with pytest.raises(InvalidInputError):
        again.restore({"volume": {"x": {"first_seen": 0.0, "distinct": 1, "hours": "nonsense"}}})


def test_balanced_coverage(digits: tuple[DatasetSplit, SklearnClassifier]) -> None:
    # coverage: breast cancer's reference mix is unbalanced (about 37/63); a thief balancing the classes stands out
    cancer = train_test_split(load_bundled("breast_cancer"), test_size=0.5, seed=0)
    lr = LogisticRegression(max_iter=5000).fit(cancer.train.flat(), cancer.train.y)
    model = SklearnClassifier(lr)
    cov = ExtractionDetector(monitor=ExtractionMonitor(ood=False, proximity=False, delta=0.01)).fit(
        model, cancer.train.x
    )
    assert cov.coverage_active_
    pred = model.predict(cancer.test.x)
    rng = np.random.default_rng(4)
    pools = [rng.permutation(np.flatnonzero(pred == c)) for c in (0, 1)]
    # three passes over 100 records of each class, alternating (repeats included): 600 queries
    balanced = cancer.test.x[np.tile(np.stack([pools[0][:100], pools[1][:100]], axis=1).reshape(-1), 3)]
    natural = cancer.test.x[rng.choice(len(cancer.test.x), size=600)]
    assert "extraction.coverage" in {a.detector for _, a in replay([cov], model, balanced, "balanced", batch=4)}
    assert replay([cov], model, natural, "benign", batch=4) == []


# -- membership and attribute probing -------------------------------------------------------------------------------


def test_label_only_membership_probing_is_detected(
    digits: tuple[DatasetSplit, SklearnClassifier], detectors: list[TrafficDetector]
) -> None:
    split, victim = digits
    records = np.concatenate([split.train.x[:8], split.test.x[:8]])
    labels = np.concatenate([split.train.y[:8], split.test.y[:8]])
    with recording(victim) as log:
        label_only_attack(victim, records, labels, np.arange(16) < 8, copies=16, seed=0)
    alerts = replay(detectors, victim, np.concatenate(log), "membership", batch=16)
    at = first(alerts, Technique.MEMBERSHIP)
    assert at is not None and at <= 16 + 64
    alert = next(a for _, a in alerts if a.technique == Technique.MEMBERSHIP)
    assert alert.detector == "probing.copies" and alert.evidence["hits"] >= 3


def test_attribute_inference_sweep_is_detected() -> None:
    """Fredrikson's model-based attribute inference completes each record with every candidate value of the
    sensitive feature: queries that differ from each other in exactly that feature."""
    cancer = train_test_split(load_bundled("breast_cancer"), test_size=0.5, seed=0)
    model = SklearnClassifier(LogisticRegression(max_iter=5000).fit(cancer.train.flat(), cancer.train.y))
    det = ProbingDetector().fit(model, cancer.train.x)
    assert det.sweep_active_ and det.sweep_rate_ < 0.01
    with recording(model) as log:  # type: ignore[arg-type]
        infer_attribute(model, feature=3, auxiliary=cancer.test, learner="logistic", bootstrap=100, seed=0)
    queries = np.concatenate(log)
    alerts = replay([det], model, queries, "attribute", batch=8)
    sweep = [(n, a) for n, a in alerts if a.technique == Technique.INVERSION]
    assert sweep and sweep[0][0] <= 16
    assert "3" in sweep[0][1].evidence["features_swept"]
    benign = cancer.test.x[np.random.default_rng(0).permutation(len(cancer.test.x))]
    assert replay([det], model, benign, "benign", batch=8) == []


# -- sybils and shared keys -----------------------------------------------------------------------------------------


def _poisson_times(rng: np.random.Generator, per_hour: float, hours: float) -> np.ndarray:
    """Request times of an independent client whose rate follows the working day (zero at night)."""
    times, t = [], 0.0
    peak = per_hour * 2.0
    while t < hours * 3600:
        t += rng.exponential(3600 / peak)
        day = (t / 3600) % 24
        if 8 <= day <= 18 and rng.random() < np.sin(np.pi * (day - 8) / 10) ** 2:
            times.append(t)
    return np.asarray(times)


def test_benign_independent_clients_form_no_sybil_group(digits: tuple[DatasetSplit, SklearnClassifier]) -> None:
    """Twelve independent clients over two simulated working days, 20 to 300 queries an hour at peak, some
    sharing a working-day rhythm: no group is reported."""
    split, victim = digits
    rng = np.random.default_rng(3)
    events = []
    for c in range(12):
        for t in _poisson_times(rng, float(rng.uniform(20, 300)), 48):
            events.append((float(t), f"benign-{c}", int(rng.integers(len(split.test)))))
    events.sort()
    det = SybilDetector().fit(victim, split.train.x)
    p = victim.predict_proba(split.test.x)
    alerts = [
        a
        for t, c, i in events
        for a in det.observe(
            Observation(
                time=t,
                client=c,
                x=split.test.x[i : i + 1],
                probabilities=p[i : i + 1],
                key_id=c,
                source=f"10.0.{hash(c) % 200}.{int(rng.integers(3))}",
            )
        )
    ]
    assert len(events) > 3000 and alerts == []


@pytest.mark.parametrize(
    ("steady", "turn"), [(False, 1.0), (True, 1.0), (True, 15.0)], ids=["bursts", "steady-new-keys", "slow-turns"]
)
def test_one_actor_over_twenty_keys_is_reported_as_a_group(
    digits: tuple[DatasetSplit, SklearnClassifier], steady: bool, turn: float
) -> None:
    """A natural-data thief splits one stream round-robin over 20 keys among 8 benign clients: in bursts (10
    minutes on, 10 off) or steadily from keys that appeared together, each key's turn coming every 20 seconds or,
    slower than the detector's bins, every 5 minutes (``turn`` seconds between requests: no two keys in one
    minute)."""
    split, victim = digits
    rng = np.random.default_rng(5)
    events = []
    for c in range(8):
        for t in _poisson_times(rng, 60.0, 36):
            events.append((float(t), f"benign-{c}"))
    start = 33 * 3600.0 + 7 * 60  # keys created mid-morning on the second day, after the detector has run for a day
    t, q = start, 0
    while t < start + 2 * 3600:
        if steady or int((t - start) // 600) % 2 == 0:
            events.append((t, f"sybil-{q % 20}"))
            q += 1
        t += rng.exponential(turn)
    events.sort()
    det = SybilDetector().fit(victim, split.train.x)
    p = victim.predict_proba(split.test.x)
    alerts = []
    for t, c in events:
        i = int(rng.integers(len(split.test)))
        alerts += det.observe(Observation(time=t, client=c, x=split.test.x[i : i + 1], probabilities=p[i : i + 1]))
    groups = [a for a in alerts if a.detector == "sybil"]
    assert groups, "the sybil group was not reported"
    # keys join the group as each has been active long enough: one group name throughout, so one incident
    assert {a.client for a in groups} == {groups[0].client} and groups[0].client.startswith("group:")
    assert groups[0].technique == Technique.VALID_ACCOUNTS
    members = set(groups[-1].clients)
    assert len(members & {f"sybil-{k}" for k in range(20)}) >= 15 and not any(m.startswith("benign") for m in members)


def test_one_key_from_thirty_sources(digits: tuple[DatasetSplit, SklearnClassifier]) -> None:
    split, victim = digits
    det = SybilDetector().fit(victim, split.train.x)
    p = victim.predict_proba(split.test.x[:1])
    alerts = []
    for i in range(300):
        alerts += det.observe(
            Observation(
                time=i * 10.0,
                client="acme",
                x=split.test.x[:1],
                probabilities=p,
                key_id="key-1",
                source=f"203.0.113.{i % 30}",
            )
        )
        alerts += det.observe(
            Observation(
                time=i * 10.0,
                client="other",
                x=split.test.x[:1],
                probabilities=p,
                key_id="key-2",
                source=f"198.51.100.{i % 3}",
            )
        )
    shared = [a for a in alerts if a.detector == "key-sharing"]
    assert len(shared) == 1 and shared[0].evidence["key_id"] == "key-1" and shared[0].score > shared[0].threshold
