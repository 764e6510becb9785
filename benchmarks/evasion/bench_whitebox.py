"""Benchmark: white-box evasion with modelshield, ART and torchattacks on the same model, data and settings.

    python3 -m venv /tmp/evbench && /tmp/evbench/bin/pip install torch==2.13.0 'torchvision<0.29'
    /tmp/evbench/bin/pip install -e '.[all]' adversarial-robustness-toolbox torchattacks
    /tmp/evbench/bin/python benchmarks/evasion/bench_whitebox.py [--n 1000]

Part 1 (strength): robust accuracy of zoo:digits-cnn on the first N test inputs under L∞ PGD (40 steps, step
2.5ε/40, one random start) and APGD-CE (100 steps) from each tool, and modelshield's worst case over FGSM, PGD,
APGD-CE and APGD-DLR against the best of ART's PGD, APGD-CE and APGD-DLR. Part 2 (speed): PGD-10 and PGD-40 at
ε = 0.1, samples per second, with the raw bound: the same number of forward + backward passes over the same
batches in a bare loop (no projection, no bookkeeping). modelshield stops each sample at its first success; the
"no early stop" column runs every step on every sample (``early_stop=False``), which is what ART, torchattacks
and the raw bound do.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from modelshield.attacks.evasion.evaluation import evaluate_robustness
from modelshield.attacks.evasion.whitebox import apgd, pgd
from modelshield.models import TorchClassifier
from modelshield.zoo import load_target


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="test inputs (digits has 450 test inputs per split; "
                        "the train split tops it up)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--part", choices=("strength", "speed", "all"), default="all")
    args = parser.parse_args()
    from art.estimators.classification import PyTorchClassifier

    target = load_target("zoo:digits-cnn")
    clf = target.classifier
    assert isinstance(clf, TorchClassifier)
    pool_x = np.concatenate([target.test.x, target.train.x]) if target.train is not None else target.test.x
    pool_y = np.concatenate([target.test.y, target.train.y]) if target.train is not None else target.test.y
    x, y = pool_x[: args.n], pool_y[: args.n]
    module = clf.module.eval()
    art = PyTorchClassifier(model=module, loss=torch.nn.CrossEntropyLoss(), input_shape=clf.input_shape,
                            nb_classes=clf.n_classes, clip_values=(0.0, 1.0), device_type="cpu")  # fmt: skip

    def acc(adv: np.ndarray) -> float:
        return float(np.mean(clf.predict(adv) == y))

    def ta_attack(attack: object) -> np.ndarray:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        out = [attack(xt[i : i + 512], yt[i : i + 512]).detach().numpy() for i in range(0, len(xt), 512)]  # type: ignore[operator]
        return np.concatenate(out)

    print(f"zoo:digits-cnn, {len(x)} inputs, clean accuracy {acc(x):.3f}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")  # fmt: skip
    if args.part in ("strength", "all"):
        strength(clf, module, art, x, y, acc, ta_attack)
    if args.part in ("speed", "all"):
        speed(clf, module, art, x, y, args.repeat, ta_attack)


def strength(clf, module, art, x, y, acc, ta_attack) -> None:  # type: ignore[no-untyped-def]
    import torchattacks
    from art.attacks.evasion import AutoProjectedGradientDescent, ProjectedGradientDescent

    print("| ε | PGD-40 modelshield | PGD-40 ART | PGD-40 torchattacks | APGD-CE modelshield | APGD-CE ART | "
          "APGD-CE torchattacks | worst case modelshield | best of ART |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for eps in (0.05, 0.1, 0.2):
        step = 2.5 * eps / 40
        ours_pgd = pgd(clf, x, y, eps=eps, steps=40, step_size=step, seed=0).robust_accuracy
        art_pgd = acc(ProjectedGradientDescent(art, eps=eps, eps_step=step, max_iter=40, num_random_init=1,
                                               batch_size=512, verbose=False).generate(x, y))  # fmt: skip
        ta_pgd = acc(ta_attack(torchattacks.PGD(module, eps=eps, alpha=step, steps=40, random_start=True)))
        ours_apgd = apgd(clf, x, y, eps=eps, steps=100, seed=0).robust_accuracy
        art_apgd = acc(AutoProjectedGradientDescent(art, eps=eps, eps_step=2 * eps, max_iter=100, nb_random_init=1,
                                                    batch_size=512, loss_type="cross_entropy",
                                                    verbose=False).generate(x, y))  # fmt: skip
        art_dlr = acc(AutoProjectedGradientDescent(art, eps=eps, eps_step=2 * eps, max_iter=100, nb_random_init=1,
                                                   batch_size=512, loss_type="difference_logits_ratio",
                                                   verbose=False).generate(x, y))  # fmt: skip
        ta_apgd = acc(ta_attack(torchattacks.APGD(module, eps=eps, steps=100, n_restarts=1, loss="ce", seed=0)))
        worst = evaluate_robustness(clf, x, y, eps=(eps,), steps=40, check_reliability=False).worst[0]
        best_art = min(art_pgd, art_apgd, art_dlr)
        print(f"| {eps:g} | {ours_pgd:.3f} | {art_pgd:.3f} | {ta_pgd:.3f} | {ours_apgd:.3f} | {art_apgd:.3f} | "
              f"{ta_apgd:.3f} | {worst:.3f} | {best_art:.3f} |")  # fmt: skip


def speed(clf, module, art, x, y, repeat, ta_attack) -> None:  # type: ignore[no-untyped-def]
    import torchattacks
    from art.attacks.evasion import ProjectedGradientDescent

    print("\n| attack | modelshield (samples/s) | modelshield, no early stop | ART | torchattacks | raw bound | "
          "modelshield no-stop / raw |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    eps = 0.1
    for steps in (10, 40):
        step = 2.5 * eps / steps
        ours = timed(lambda: pgd(clf, x, y, eps=eps, steps=steps, step_size=step), repeat)
        nostop = timed(lambda: pgd(clf, x, y, eps=eps, steps=steps, step_size=step, early_stop=False), repeat)
        art_pgd = ProjectedGradientDescent(art, eps=eps, eps_step=step, max_iter=steps, num_random_init=1,
                                           batch_size=512, verbose=False)  # fmt: skip
        art_t = timed(lambda: art_pgd.generate(x, y), repeat)
        ta_t = timed(lambda: ta_attack(torchattacks.PGD(module, eps=eps, alpha=step, steps=steps)), repeat)

        def raw() -> None:
            for i in range(0, len(x), 512):
                xb = torch.from_numpy(x[i : i + 512]).requires_grad_(True)
                yb = torch.from_numpy(y[i : i + 512])
                for _ in range(steps):
                    loss = torch.nn.functional.cross_entropy(module(xb), yb, reduction="sum")
                    torch.autograd.grad(loss, xb)

        raw_t = timed(raw, repeat)
        n = len(x)
        print(f"| PGD-{steps} | {n / ours:.0f} | {n / nostop:.0f} | {n / art_t:.0f} | {n / ta_t:.0f} | "
              f"{n / raw_t:.0f} | {raw_t / nostop:.2f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
