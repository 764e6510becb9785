"""Behaviour analytics: benign simulated clients stay quiet, changed behaviour alerts, state survives a restart.

The traffic here comes from a simulator written for these tests (office hours with a lunch dip, smooth and
two-peaked days, time zones, weekends, fixed or geometric batch sizes, class preferences, Poisson arrivals), not
the one :meth:`BehaviourAnalytics.fit` calibrates on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.monitoring.behaviour import BehaviourAnalytics
from modelshield.monitoring.interface import Alert, Observation, Technique
from modelshield.target import Target
from modelshield.testing.guard_checks import check_guard
from modelshield.testing.targets import tiny_target

HOUR = 3600.0
DAY = 86_400.0
START = 3 * DAY  # attacks start after three benign days

Event = tuple[float, str, np.ndarray]


@pytest.fixture(scope="module")
def target() -> Target:
    return tiny_target("tabular", white_box=False)


def _fitted(target: Target, **kwargs: Any) -> BehaviourAnalytics:
    options: dict[str, Any] = {"clients": 24, "days": 5}
    options.update(kwargs)
    return BehaviourAnalytics(**options).fit(target.classifier, target.train.x, seed=0)


def _profile(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "kind": int(rng.integers(3)),
        "peak": float(np.exp(rng.uniform(np.log(3), np.log(40)))),
        "offset": float(rng.uniform(-6, 6)),
        "night": float(rng.uniform(0.0, 0.15)),
        "fixed": int(rng.integers(1, 17)) if rng.random() < 0.4 else 0,
        "geom": float(rng.uniform(1.5, 12)),
        "classes": rng.dirichlet(np.full(3, 0.7)),
        "weekend": float(rng.uniform(0.3, 1.0)) if rng.random() < 0.5 else 1.0,
    }


def _rate(p: dict[str, Any], t: float) -> float:
    h = (t / HOUR + p["offset"]) % 24
    if p["kind"] == 0:
        shape = (0.5 if 12 <= h < 13 else 1.0) if 9 <= h < 17 else 0.0
    elif p["kind"] == 1:
        shape = math.exp(-0.5 * (min(abs(h - 15), 24 - abs(h - 15)) / 3.0) ** 2)
    else:
        shape = max(math.exp(-0.5 * ((h - 10) / 1.5) ** 2), math.exp(-0.5 * ((h - 20) / 1.5) ** 2))
    week = p["weekend"] if int((t / HOUR + p["offset"]) // 24) % 7 >= 5 else 1.0
    return float(p["peak"] * week * (p["night"] + (1 - p["night"]) * shape))


def _requests(
    p: dict[str, Any],
    rng: np.random.Generator,
    data: tuple[np.ndarray, np.ndarray],
    t0: float,
    t1: float,
    rate: Callable[[float], float] | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Poisson arrivals (by thinning) in [t0, t1), each a batch drawn from the client's classes."""
    x, labels = data
    rate = rate or (lambda t: _rate(p, t))
    top = max(rate(t) for t in np.arange(t0, t1, 600.0)) + 1e-9
    by_class = [np.flatnonzero(labels == c) for c in range(3)]
    t = t0
    while True:
        t += float(rng.exponential(HOUR / top))
        if t >= t1:
            return
        if rng.random() < rate(t) / top:
            n = p["fixed"] or int(rng.geometric(1 / p["geom"]))
            cls = rng.choice(3, size=n, p=p["classes"])
            rows = [by_class[c][rng.integers(len(by_class[c]))] if len(by_class[c]) else 0 for c in cls]
            yield t, x[rows]


def _data(target: Target) -> tuple[np.ndarray, np.ndarray]:
    x = target.test.x
    return x, target.classifier.predict_proba(x).argmax(axis=1)


def _replay(detector: BehaviourAnalytics, target: Target, events: list[Event]) -> list[tuple[float, Alert]]:
    alerts = []
    for t, client, x in sorted(events, key=lambda e: (e[0], e[1])):
        obs = Observation(time=t, client=client, x=x, probabilities=target.classifier.predict_proba(x))
        alerts.extend((t, a) for a in detector.observe(obs))
    return alerts


def _benign(target: Target, clients: int, days: float, seed: int) -> list[Event]:
    rng = np.random.default_rng(seed)
    data = _data(target)
    events: list[Event] = []
    for c in range(clients):
        p = _profile(rng)
        events.extend((t, f"benign-{c}", x) for t, x in _requests(p, rng, data, 0.0, days * DAY))
    return events


def test_benign_clients_over_four_days_raise_no_alert(target: Target) -> None:
    detector = _fitted(target)
    events = _benign(target, clients=8, days=4, seed=101)
    assert len(events) > 2000
    alerts = _replay(detector, target, events)
    assert alerts == [], [a.to_dict() for _, a in alerts[:3]]
    assert detector.memory().clients == 8


def _office_client(seed: int) -> tuple[dict[str, Any], np.random.Generator]:
    rng = np.random.default_rng(seed)
    p = _profile(rng)
    p.update(kind=0, offset=0.0, weekend=1.0, night=0.02, peak=30.0, fixed=4)
    return p, rng


def _attack(target: Target, seed: int, attack: str) -> list[Event]:
    p, rng = _office_client(seed)
    data = _data(target)
    events = [(t, "c", x) for t, x in _requests(p, rng, data, 0.0, START)]
    end = START + DAY
    if attack == "volume10x":
        later = _requests(p, rng, data, START, end, rate=lambda t: 10 * _rate(p, t))
    elif attack == "slow2.5x":
        later = _requests(p, rng, data, START, end, rate=lambda t: 2.5 * _rate(p, t))
    elif attack == "night":
        later = _requests(p, rng, data, START, end, rate=lambda t: p["peak"] if 1 <= (t / HOUR) % 24 < 5 else 0.0)
    else:  # out of distribution: the same requests, with uniform noise for inputs
        later = (
            (t, rng.uniform(0, 1, size=x.shape).astype(np.float32)) for t, x in _requests(p, rng, data, START, end)
        )
    events.extend((t, "c", x) for t, x in later)
    return events


@pytest.mark.parametrize(
    ("attack", "component", "hours"),
    [
        ("volume10x", "volume", 10.5),  # office hours start at 9:00: within the first active hour
        ("slow2.5x", "cusum", 18.0),
        ("night", "volume", 2.0),
        ("ood", "content", 10.5),
    ],
)
def test_changed_behaviour_is_alerted(target: Target, attack: str, component: str, hours: float) -> None:
    detector = _fitted(target)
    alerts = _replay(detector, target, _attack(target, 7, attack))
    assert alerts, f"{attack}: no alert"
    first_time, first = alerts[0]
    assert first_time >= START, f"{attack}: alerted during the benign days: {first.to_dict()}"
    assert first_time - START <= hours * HOUR, f"{attack}: first alert after {(first_time - START) / HOUR:.1f} h"
    assert first.evidence["component"] == component
    assert first.detector == "behaviour" and first.score > first.threshold
    expected = Technique.EXTRACTION if component in ("volume", "cusum") else Technique.API_ACCESS
    assert first.technique == expected


def test_the_same_client_unchanged_raises_no_alert(target: Target) -> None:
    p, rng = _office_client(7)
    events = [(t, "c", x) for t, x in _requests(p, rng, _data(target), 0.0, START + DAY)]
    assert _replay(_fitted(target), target, events) == []


def test_state_survives_a_restart_as_json(target: Target) -> None:
    events = _attack(target, 11, "slow2.5x") + _benign(target, clients=3, days=4, seed=5)
    events.sort(key=lambda e: (e[0], e[1]))
    cut = next(i for i, e in enumerate(events) if e[0] >= START - 6 * HOUR)
    first = _fitted(target)
    _replay(first, target, events[:cut])
    saved = json.loads(json.dumps(first.state()))
    second = _fitted(target)
    second.restore(saved)
    assert second.state() == first.state()
    got = _replay(second, target, events[cut:])
    want = _replay(first, target, events[cut:])
    assert [a.to_dict() for _, a in got] == [a.to_dict() for _, a in want]
    assert want, "the continuation should alert, or the comparison proves little"
    assert second.state() == first.state()


def _mutations(state: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    def copy() -> dict[str, Any]:
        result: dict[str, Any] = json.loads(json.dumps(state))
        return result

    s = copy()
    s["digest"] = "0" * 64
    yield "digest", s
    s = copy()
    s["clients"][0][1]["vol_var"] = -1.0
    yield "negative variance", s
    s = copy()
    s["clients"][0][1]["hour_mean"] = s["clients"][0][1]["hour_mean"][:-1]
    yield "short array", s
    s = copy()
    s["clients"][0][1]["cusum"] = "NaN"
    yield "string number", s
    s = copy()
    del s["clients"][0][1]["windows"]
    yield "missing field", s
    s = copy()
    s["population"]["windows"] = s["population"]["windows"][1:]
    yield "population buffer", s
    s = copy()
    s["clients"].append(list(s["clients"][0]))
    yield "duplicate client", s
    s = copy()
    s["version"] = 99
    yield "version", s


def test_malformed_state_is_refused_and_nothing_changes(target: Target) -> None:
    detector = _fitted(target)
    _replay(detector, target, _benign(target, clients=2, days=1, seed=3))
    state = detector.state()
    for what, bad in _mutations(state):
        with pytest.raises(InvalidInputError):
            detector.restore(bad)
        assert detector.state() == state, what
    with pytest.raises(InvalidInputError):
        _fitted(target, window_seconds=1800).restore(state)  # other settings


def test_memory_is_bounded_and_forget_drops_a_client(target: Target) -> None:
    detector = _fitted(target, max_clients=4)
    _replay(detector, target, _benign(target, clients=10, days=0.5, seed=9))
    memory = detector.memory()
    assert memory.clients == 4 and memory.within_caps
    assert memory.entries // memory.clients < 400  # a few hundred floats per client
    detector.forget(detector._states.clients()[0])
    assert detector.memory().clients == 3


def test_refusals_far_above_the_baseline_alert(target: Target) -> None:
    detector = _fitted(target)
    p, rng = _office_client(13)
    events = [(t, "c", x) for t, x in _requests(p, rng, _data(target), 0.0, START + 10 * HOUR)]
    _replay(detector, target, events)
    alerts: list[Alert] = []
    for i in range(60):  # 10:00-11:00 on day four: refused again and again
        alerts += detector.observe_rejection("c", START + 10 * HOUR + 60.0 * i, 429)
    x = target.test.x[:1]
    alerts += detector.observe(
        Observation(time=START + 11.5 * HOUR, client="c", x=x, probabilities=target.classifier.predict_proba(x))
    )
    assert [a.evidence["component"] for a in alerts] == ["rejections"]
    with pytest.raises(InvalidInputError):
        detector.observe_rejection("c", math.nan, 429)


def test_check_guard_passes(target: Target) -> None:
    def factory() -> BehaviourAnalytics:
        guard = BehaviourAnalytics(clients=4, days=3, max_clients=16)
        guard.clock = lambda: 1_000_000.0  # one window for the whole check
        return guard

    check_guard(factory, target.classifier, target.train.x, target.train.y, memory_clients=20)


@pytest.mark.parametrize(
    "kwargs",
    [{"window_seconds": 7000}, {"max_clients": 0}, {"warmup_windows": 0}, {"clients": 1}, {"margin": 0.5}],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError):
        BehaviourAnalytics(**kwargs)


# -- false alerts seen in the red-team replay, as classes of problem -----------------------------------------------


def _batch_client_events(target: Target, seed: int, days: float) -> list[Event]:
    """A batch client like the replay's: Poisson requests (about 56 an hour) on a strong diurnal cycle, batches of
    1 + Poisson(7) rows (at most 64)."""
    rng = np.random.default_rng(seed)
    x, _ = _data(target)
    events: list[Event] = []
    t = 0.0
    top = 56.0 * 1.8
    while True:
        t += float(rng.exponential(HOUR / top))
        if t >= days * DAY:
            return events
        rate = 56.0 * (1 + 0.78 * math.cos(2 * math.pi * ((t / HOUR) % 24 - 4.2) / 24))
        if rng.random() < rate / top:
            n = min(1 + int(rng.poisson(7.0)), 64)
            events.append((t, "batch", x[rng.integers(len(x), size=n)]))


@pytest.mark.parametrize("enforced", [False, True])
def test_a_client_back_from_a_suspension_raises_nothing(target: Target, enforced: bool) -> None:
    # the response suspends for a day; the client keeps asking (refused) and is answered again afterwards: what it
    # asked for did not change, so neither the suspension nor the return is a change of behaviour
    detector = _fitted(target)
    suspended = [(0.4 * HOUR, 24.4 * HOUR), (24.8 * HOUR, 48.8 * HOUR), (50.1 * HOUR, 74.1 * HOUR)]  # as replayed
    alerts: list[Alert] = []
    for t, client, x in _batch_client_events(target, 5, days=4.5):
        if any(a <= t < b for a, b in suspended):
            extra = {"enforced": True} if enforced else {}  # the gateway reports refusals without it today
            alerts += detector.observe_rejection(client, t, 403, **extra)
        else:
            obs = Observation(time=t, client=client, x=x, probabilities=target.classifier.predict_proba(x))
            alerts += detector.observe(obs)
    # unenforced refusals are the client's own: a day of them may alert on refusals, never on volume or population
    allowed = set() if enforced else {"rejections"}
    assert {a.evidence["component"] for a in alerts} <= allowed, [a.to_dict() for a in alerts[:3]]


def test_a_population_unlike_the_simulation_raises_nothing(target: Target) -> None:
    # every client sends noisy inputs (another scanner): unlike the simulated clients, but like each other
    rng = np.random.default_rng(1)
    events = [
        (t, c, (x + rng.normal(0, 0.8, size=x.shape)).astype(np.float32)) for t, c, x in _benign(target, 8, 2, 33)
    ]
    alerts = _replay(_fitted(target), target, events)
    assert alerts == [], [a.to_dict() for _, a in alerts[:3]]


def test_a_new_client_unlike_every_other_gets_a_low_alert_after_persisting(target: Target) -> None:
    events = _benign(target, clients=8, days=1.5, seed=21)
    rng = np.random.default_rng(0)
    dim = target.train.x.shape[1]
    odd = np.sort(rng.uniform(6 * HOUR, 1.5 * DAY, size=2000))
    events += [(float(t), "odd", rng.uniform(-3, 3, size=(40, dim)).astype(np.float32)) for t in odd]
    alerts = _replay(_fitted(target), target, events)
    assert alerts, "a client unlike every other, hour after hour, should be noticed"
    assert [a.client for _, a in alerts] == ["odd"]  # once: an unfamiliar newcomer is one finding, not one an hour
    first = alerts[0][1]
    assert first.evidence["component"] == "population" and first.severity.value == "low"
    assert first.evidence["population_streak"] >= 3


def test_a_fleet_that_starts_together_is_not_judged_against_itself(target: Target) -> None:
    # the same odd client as above, but there from the first hour with everyone else: no client was there before it,
    # so "unlike what clients in general do" has no clients to go by (its own baseline judges it after warm-up)
    events = _benign(target, clients=8, days=1.5, seed=21)
    rng = np.random.default_rng(0)
    dim = target.train.x.shape[1]
    odd = np.sort(rng.uniform(0.0, 1.5 * DAY, size=2000))
    events += [(float(t), "odd", rng.uniform(-3, 3, size=(40, dim)).astype(np.float32)) for t in odd]
    alerts = _replay(_fitted(target), target, events)
    assert alerts == [], [a.to_dict() for _, a in alerts[:3]]


def test_enforced_refusals_are_volume_not_refusals(target: Target) -> None:
    p, rng = _office_client(13)
    events = [(t, "c", x) for t, x in _requests(p, rng, _data(target), 0.0, START + 10 * HOUR)]
    detector = _fitted(target)
    _replay(detector, target, events)
    alerts: list[Alert] = []
    for i in range(30):  # suspended 10:00-11:00 on day four, asking at its usual rate (30 an hour)
        alerts += detector.observe_rejection("c", START + 10 * HOUR + 120.0 * i, 403, enforced=True)
    x = target.test.x[:1]
    alerts += detector.observe(
        Observation(time=START + 11.5 * HOUR, client="c", x=x, probabilities=target.classifier.predict_proba(x))
    )
    assert alerts == [], [a.to_dict() for a in alerts]
    assert detector.state()["clients"][0][1]["reject_mean"] < 0.05  # type: ignore[index]
