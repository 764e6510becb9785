"""Benchmark: the sanitiser on random trigger draws of four image families and a tabular one, over several seeds.

    .venv/bin/python benchmarks/poisoning/bench_families.py [--seeds 5] [--fractions 0.03 0.05]
        [--datasets digits cancer] [--families blended central distributed corner]

Setting: the training split of zoo:digits-cnn (1,347 images 8x8, pixels in [0, 1]) and of zoo:cancer-mlp (426
breast-cancer records, 30 features) is poisoned by a dirty-label backdoor whose trigger is drawn afresh for every
seed and family with :func:`~modelshield.attacks.poisoning.triggers.random_trigger` (random shape, position,
values, strength; a random target class; source records drawn from all other classes), at each poison fraction.
One more copy per seed is left clean, to count false alarms. A model is trained on each set with the zoo target's
recipe, and :func:`~modelshield.defenses.sanitize.sanitize` runs with its defaults (that model, and the recipe as
``trainer``). Reported: recall (poisoned records flagged), the share of clean records flagged, and the attack's
success on the test split (triggered test inputs of other classes classified as the target), mean ± sd over seeds;
and each detector's own recall. mnist (zoo:mnist-cnn) can be added with ``--datasets mnist``; at about 20 s per
model and more for Neural Cleanse on 28x28 images it does not fit the default run's budget.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

import modelshield
from modelshield.attacks.poisoning import Backdoor, poison
from modelshield.attacks.poisoning.triggers import random_trigger
from modelshield.defenses.sanitize import DETECTORS, detection_quality, sanitize
from modelshield.models import TorchClassifier
from modelshield.models.retrain import TorchTrainer
from modelshield.zoo import load_target

TARGETS = {"digits": "digits-cnn", "mnist": "mnist-cnn", "cancer": "cancer-mlp"}
IMAGE_FAMILIES = ("blended", "central", "distributed", "corner")


@dataclass(frozen=True)
class Run:
    recall: float
    clean_flagged: float
    success: float
    per_detector: dict[str, float]
    seconds: float


def fmt(values: list[float], digits: int = 3) -> str:
    arr = np.asarray([v for v in values if not np.isnan(v)], np.float64)
    if len(arr) == 0:
        return "–"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}" if len(arr) > 1 else f"{arr[0]:.{digits}f}"


def one(dataset: str, family: str | None, fraction: float, seed: int) -> Run:
    target = load_target(f"zoo:{TARGETS[dataset]}", device="cpu")
    train, test = target.train, target.test
    trainer = target.trainer
    assert isinstance(trainer, TorchTrainer)
    rng = np.random.default_rng([seed, IMAGE_FAMILIES.index(family) if family in IMAGE_FAMILIES else 9,
                                 round(fraction * 1000)])  # fmt: skip
    attack = None
    if family is None:
        data, truth = train, np.zeros(len(train), bool)
    else:
        trigger = random_trigger(family, train.x, rng)  # type: ignore[arg-type]
        attack = Backdoor(trigger, target=int(rng.integers(train.n_classes)))
        p = poison(train, attack, fraction, seed=seed)
        data, truth = p.dataset, p.poisoned
    t0 = time.perf_counter()
    module = trainer.fit_modules(data.x, data.y, np.ones((1, len(data)), bool), n_classes=data.n_classes,
                                 seed=seed)[0]  # fmt: skip
    model = TorchClassifier(module, n_classes=data.n_classes, input_shape=data.schema.input_shape, device="cpu",
                            clip_values=target.classifier.clip_values)  # fmt: skip
    success = float("nan")
    if attack is not None:
        inputs = attack.success_inputs(test)
        success = float(inputs.successes(model.predict(inputs.x)).mean())
    result = sanitize(data, classifier=model, trainer=trainer, seed=seed)
    seconds = time.perf_counter() - t0
    q = detection_quality(result.removed, truth)
    per = {d.method: detection_quality(d, truth).recall for d in result.detections}
    label = family or "clean"
    print(f"  {dataset} {label} {fraction:.0%} seed {seed}: "
          f"{attack.describe() if attack else 'no poison'}; success {success:.2f}; recall {q.recall:.3f}, "
          f"clean flagged {q.clean_flagged:.4f}; " + ", ".join(f"{m} {r:.2f}" for m, r in per.items())
          + f" ({seconds:.0f} s)", flush=True)  # fmt: skip
    return Run(q.recall, q.clean_flagged, success, per, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.03, 0.05])
    parser.add_argument("--datasets", nargs="+", choices=tuple(TARGETS), default=["digits", "cancer"])
    parser.add_argument("--families", nargs="+", choices=IMAGE_FAMILIES, default=list(IMAGE_FAMILIES))
    args = parser.parse_args()
    import sklearn

    torch.set_num_threads(1)  # a script, not the library: small models run best on one thread
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"modelshield {modelshield.__version__}, torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
          f"numpy {np.__version__}, Python {sys.version.split()[0]}, 1 torch thread, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n", flush=True)  # fmt: skip
    runs: dict[tuple[str, str, float], list[Run]] = defaultdict(list)
    t_all = time.perf_counter()
    for dataset in args.datasets:
        families: list[str | None] = ["feature"] if dataset == "cancer" else list(args.families)
        for seed in range(args.seeds):
            runs[(dataset, "clean", 0.0)].append(one(dataset, None, 0.0, seed))
            for family in families:
                for fraction in args.fractions:
                    runs[(dataset, str(family), fraction)].append(one(dataset, family, fraction, seed))
    total = time.perf_counter() - t_all
    print(f"\n{args.seeds} seeds, mean ± sd over seeds; whole run {total / 60:.1f} min\n")
    detectors = [m for m in DETECTORS if any(m in r.per_detector for rs in runs.values() for r in rs)]
    print("| data | trigger family | poison | recall | clean records flagged | attack success | "
          + " | ".join(f"{d} recall" for d in detectors) + " |")  # fmt: skip
    print("| --- " * (6 + len(detectors)) + "|")
    for (dataset, family, fraction), rs in runs.items():
        cells = [fmt([r.per_detector.get(d, float("nan")) for r in rs], 2) for d in detectors]
        print(f"| {dataset} | {family} | {fraction:.0%} | {fmt([r.recall for r in rs])} | "
              f"{fmt([r.clean_flagged for r in rs])} | {fmt([r.success for r in rs], 2)} | "
              + " | ".join(cells) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
