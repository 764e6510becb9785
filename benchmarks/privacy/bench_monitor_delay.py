"""Benchmark: how many queries the extraction monitor needs to flag each kind of thief, over many random seeds.

    .venv/bin/python benchmarks/privacy/bench_monitor_delay.py                 # 20 seeds: 8 min on 2 shared cores
    .venv/bin/python benchmarks/privacy/bench_monitor_delay.py --seeds 40 --json /tmp/delays.json

Victim: zoo:digits-cnn (8x8 digits, pixels in [0, 1]). For each seed the monitor is fitted (seed = the seed) on the
victim's training split, its reference. Every thief stream is produced by :mod:`modelshield.attacks.extraction`
itself (its ``query_x``, or the queries ``solve_linear_model`` sends) and replayed to the monitor as one client, in
batches of a size drawn per stream from 1, 4, 16 and 64:

- ``random``: uniform inputs in [0, 1].
- ``jacobian, owner seeds``: Papernot's Jacobian augmentation (λ = 0.1) seeded with natural images of the owner's
  kind (the test split): a seed phase of 50, 100 or 150 unmodified natural queries, then synthetic ones.
- ``jacobian, owner seeds, λ=0.15``: the same with a larger step, chosen (on three seeds, while building this
  benchmark) as the one that kept clear longest of both the proximity test (whose reach ends near λ = 0.12 here)
  and the k-NN test (which catches λ ≥ 0.2 within about 50 queries): an adaptive thief's best step.
- ``jacobian, MNIST seeds``: the same, seeded with other data (MNIST, centre 20x20 crop at 8x8).
- ``natural, MNIST (random)`` and ``natural, MNIST (balanced)``: KnockoffNets-style queries of other data, in a
  random order and with the class-balancing selection.
- ``natural, owner's data``: random test-split images (the stated limit: such a thief looks benign).
- ``equation-solving``: ``solve_linear_model`` with the test split as its reference (64 natural candidates, then
  a centre and one step per pixel, then random checks).

Seed images, orderings and batch sizes change with the seed. Benign clients draw ``--length`` distinct test-split
images in a random order, in the same batch sizes.

Delay, defined: the *onset* of a stream is its first attack-specific query, the first that is not an unmodified
record of the owner's data (train or test split); for other-data and random thieves that is query 1, for a
Jacobian thief with owner seeds the first synthetic query. The alarm index is the monitor's ``first_alarm_at``
(1-based query count), and the delay is ``alarm - onset + 1``: the attack-specific queries the monitor saw, the
alarming one included (6 means the alarm came on the sixth synthetic query). An alarm before the onset is counted
as *early* (a false alarm on natural queries); a stream without alarm is *not detected* within its length. Each
stream is replayed to the monitor as shipped and to the same monitor without the proximity signal (as it was
before that signal was added), so that the two can be compared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from modelshield.attacks.extraction import extract_model, resample_images, solve_linear_model
from modelshield.data import load_bundled
from modelshield.defenses.extraction_monitor import ExtractionMonitor
from modelshield.models.interface import Classifier
from modelshield.zoo import load_target

BATCH_SIZES = (1, 4, 16, 64)
JACOBIAN_SEEDS = (50, 100, 150)
# the surrogate schedule of bench_extraction.py (Jacobian steps and balanced selection read the surrogate)
TRAIN = {"epochs": 30, "min_steps": 300, "max_steps": 1500, "batch_size": 64, "lr": 2e-3}
# random and random-order natural streams do not depend on the surrogate: train it as little as possible
NO_TRAIN = {"epochs": 1, "min_steps": 1, "max_steps": 1}


class _Recorder(Classifier):
    """Answers like ``victim`` and keeps every query in order (for attacks that do not return their queries)."""

    def __init__(self, victim: Classifier) -> None:
        super().__init__(n_classes=victim.n_classes, input_shape=victim.input_shape, clip_values=victim.clip_values)
        self.victim = victim
        self.seen: list[NDArray[np.float32]] = []

    def _predict_proba(self, x: NDArray[np.float32]) -> NDArray[np.floating]:
        self.seen.append(np.array(x, np.float32))
        return self.victim.predict_proba(x)


@dataclass(frozen=True)
class Replay:
    """One stream replayed to one monitor."""

    thief: str
    seed: int
    batch: int
    length: int
    onset: int | None  # first attack-specific query (1-based); None when there is none
    alarm: int | None  # first_alarm_at
    signals: tuple[str, ...]  # the signals that had fired when the first alarm was seen

    @property
    def delay(self) -> int | None:
        if self.alarm is None or self.onset is None or self.alarm < self.onset:
            return None
        return self.alarm - self.onset + 1

    @property
    def early(self) -> bool:
        return self.alarm is not None and (self.onset is None or self.alarm < self.onset)


def onset_of(x: NDArray[np.float32], owner: set[bytes]) -> int | None:
    for i, row in enumerate(x):
        if row.astype(np.float32).tobytes() not in owner:
            return i + 1
    return None


def replay(
    monitor: ExtractionMonitor, victim: Classifier, x: NDArray[np.float32], batch: int
) -> tuple[int | None, tuple[str, ...]]:
    labels = victim.predict(x)
    for start in range(0, len(x), batch):
        decision = monitor.observe("client", x[start : start + batch], labels[start : start + batch])
        if decision.alarm:
            monitor.forget("client")
            return decision.first_alarm_at, decision.signals
    monitor.forget("client")
    return None, ()


def streams(victim: Classifier, owner_x: NDArray[np.float32], owner_y: NDArray[np.int64], mnist: NDArray[np.float32],
            seed: int, length: int) -> dict[str, NDArray[np.float32]]:  # fmt: skip
    """Every thief's first ``length`` queries at this seed."""
    rng = np.random.default_rng(seed)
    n_seed = JACOBIAN_SEEDS[seed % len(JACOBIAN_SEEDS)]

    def attack(**kw: object) -> NDArray[np.float32]:
        r = extract_model(victim, owner_x[:50], owner_y[:50], seed=seed, **kw)  # type: ignore[arg-type]
        assert r.query_x is not None
        return r.query_x[:length]

    mnist_perm = mnist[rng.permutation(len(mnist))]
    out = {
        "random": attack(strategy="random", budgets=(length,), **NO_TRAIN),
        "jacobian, owner seeds": attack(strategy="jacobian", natural_x=owner_x[rng.permutation(len(owner_x))],
                                        jacobian_seed=n_seed, budgets=(n_seed, length), **TRAIN),
        "jacobian, owner seeds, λ=0.15": attack(strategy="jacobian", natural_x=owner_x[rng.permutation(len(owner_x))],
                                                jacobian_seed=n_seed, jacobian_lambda=0.15, budgets=(n_seed, length),
                                                **TRAIN),
        "jacobian, MNIST seeds": attack(strategy="jacobian", natural_x=mnist_perm[:1000], jacobian_seed=n_seed,
                                        budgets=(n_seed, length), **TRAIN),
        "natural, MNIST (random)": attack(strategy="natural", natural_x=mnist_perm, budgets=(length,), **NO_TRAIN),
        "natural, MNIST (balanced)": attack(strategy="natural", natural_x=mnist_perm, selection="balanced",
                                            budgets=(length // 3, length), **TRAIN),
        "natural, owner's data": attack(strategy="natural", natural_x=owner_x, budgets=(length,), **NO_TRAIN),
    }  # fmt: skip
    recorder = _Recorder(victim)
    solve_linear_model(recorder, x_ref=owner_x, seed=seed)
    out["equation-solving"] = np.concatenate(recorder.seen)[:length]
    return out


def _percentile(values: list[float], q: float) -> str:
    if not values:
        return "–"
    v = float(np.percentile(np.asarray(values), q, method="inverted_cdf"))
    return "not detected" if np.isinf(v) else f"{v:.0f}"


def table(replays: list[Replay], benign: list[Replay]) -> str:
    """The per-thief delay distribution as a Markdown table, and the benign false alarms."""
    lines = [
        (
            "| stream | streams | onset (median) | delay median | p10 | p90 | max | not detected | early alarm | "
            "alarm at query (median) | signals at first alarm |"
        ),
        "| --- |" + " --- |" * 10,
    ]
    for thief in dict.fromkeys(r.thief for r in replays):
        rows = [r for r in replays if r.thief == thief]
        onsets = [r.onset for r in rows if r.onset is not None]
        # undetected streams count as infinitely late; early alarms are reported apart
        delays = [
            float(r.delay) if r.delay is not None else np.inf for r in rows if r.onset is not None and not r.early
        ]
        detected = [d for d in delays if np.isfinite(d)]
        alarms = [r.alarm for r in rows if r.alarm is not None]
        firsts: dict[str, int] = {}
        for r in rows:
            if r.alarm is not None:
                firsts["+".join(r.signals)] = firsts.get("+".join(r.signals), 0) + 1
        cells = [
            thief,
            str(len(rows)),
            f"{np.median(onsets):.0f}" if onsets else "none",
            _percentile(delays, 50),
            _percentile(delays, 10),
            _percentile(delays, 90),
            f"{max(detected):.0f}" if detected else "–",
            f"{sum(r.alarm is None for r in rows)}/{len(rows)}",
            f"{sum(r.early for r in rows)}/{len(rows)}",
            f"{np.median(alarms):.0f}" if alarms else "–",
            ", ".join(f"{k} {v}" for k, v in sorted(firsts.items(), key=lambda kv: -kv[1])) or "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    false = [r for r in benign if r.alarm is not None]
    lines.append(f"\nBenign clients: {len(false)} of {len(benign)} raised an alarm ({len(false) / len(benign):.1%}).")
    if false:
        lines.append("Benign alarms at queries: " + ", ".join(f"{r.alarm} ({'+'.join(r.signals)})" for r in false))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--length", type=int, default=300, help="queries per stream")
    parser.add_argument("--benign", type=int, default=20, help="benign clients per seed")
    parser.add_argument("--json", help="write every replay here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    target = load_target("zoo:digits-cnn")
    victim = target.classifier
    train, test = target.train, target.test
    assert train is not None
    assert test is not None
    owner_x, owner_y = test.x.astype(np.float32), test.y
    owner = {row.tobytes() for row in np.concatenate([train.x, test.x]).astype(np.float32)}
    mnist = resample_images(load_bundled("mnist").x[:, :, 4:24, 4:24], 8).astype(np.float32)
    print(f"zoo:digits-cnn; reference {len(train.x)} training images; benign pool {len(owner_x)} test images; "
          f"{args.seeds} seeds, streams of {args.length}, batches {BATCH_SIZES}; torch {torch.__version__}, 1 thread",
          flush=True)  # fmt: skip
    monitors: dict[str, Callable[[int], ExtractionMonitor]] = {
        "shipped": lambda s: ExtractionMonitor().fit(victim, train.x, seed=s),
        "without proximity": lambda s: ExtractionMonitor(proximity=False).fit(victim, train.x, seed=s),
    }
    results: dict[str, tuple[list[Replay], list[Replay]]] = {name: ([], []) for name in monitors}
    for seed in range(args.seeds):
        t_seed = time.perf_counter()
        rng = np.random.default_rng(10_000 + seed)
        thieves = streams(victim, owner_x, owner_y, mnist, seed, args.length)
        t_streams = time.perf_counter() - t_seed
        benign = [owner_x[rng.choice(len(owner_x), args.length, replace=False)] for _ in range(args.benign)]
        sizes = rng.choice(BATCH_SIZES, len(thieves) + len(benign)).tolist()
        for name, make in monitors.items():
            monitor = make(seed)
            for (thief, x), batch in zip(thieves.items(), sizes, strict=False):
                alarm, signals = replay(monitor, victim, x, batch)
                results[name][0].append(Replay(thief, seed, batch, len(x), onset_of(x, owner), alarm, signals))
            for x, batch in zip(benign, sizes[len(thieves) :], strict=True):
                alarm, signals = replay(monitor, victim, x, batch)
                results[name][1].append(Replay("benign", seed, batch, len(x), None, alarm, signals))
        print(f"seed {seed}: streams {t_streams:.0f}s, replays {time.perf_counter() - t_seed - t_streams:.0f}s; "
              f"{time.perf_counter() - t0:.0f}s in all", flush=True)  # fmt: skip
    for name, (replays, benign) in results.items():
        print(f"\nMonitor {name}: delay = queries from the first attack-specific query to the alarm, inclusive\n")
        print(table(replays, benign))
    print(f"\nwhole run {time.perf_counter() - t0:.0f}s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({name: [r.__dict__ | {"delay": r.delay, "early": r.early} for r in rs + bs]
                       for name, (rs, bs) in results.items()}, fh, indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
