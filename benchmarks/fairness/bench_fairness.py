"""The fairness check's figures against fairlearn's, on the same predictions: equal values, and the time to compute
them with bootstrap resamples (200 by default: fairlearn resamples rows, and takes minutes for more).

    .venv/bin/python benchmarks/fairness/bench_fairness.py [--sizes 10000,100000] [--resamples 200]

Data: a synthetic binary task with four groups whose selection rates differ by construction (seeded). For each size,
both compute per-group selection rate, TPR, FPR and accuracy, the demographic-parity and equalized-odds differences
and ratios, point values and then a 95% bootstrap interval from ``--resamples`` resamples: modelshield with
:func:`~modelshield.audit.checks.fairness.group_rates` and
:func:`~modelshield.audit.checks.fairness.bootstrap_rates` (multinomial draws of each group's confusion counts),
fairlearn with ``MetricFrame(..., n_boot=..., ci_quantiles=...)`` and its ``demographic_parity_*`` /
``equalized_odds_*`` functions (rows resampled). Intervals are compared for width only: the two bootstraps draw
differently. fairlearn is the anchor (``pip install fairlearn``; in the dev extra).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, size=n)
    y = (rng.random(n) < 0.4).astype(np.int64)
    # the model's positive rate rises with the group, and its errors differ by group
    score = 0.6 * y + 0.1 * group + rng.normal(0.0, 0.35, size=n)
    pred = (score > 0.45).astype(np.int64)
    return y, pred, group


def ours(y: np.ndarray, pred: np.ndarray, group: np.ndarray, resamples: int, seed: int) -> tuple[dict, float, float]:
    from modelshield.audit.checks.fairness import bootstrap_rates, confusion_by_group, rates_from_confusion

    t = time.perf_counter()
    confusion = confusion_by_group(y, pred, group, 4, 2)
    point = rates_from_confusion(confusion)
    t_point = time.perf_counter() - t
    boot = bootstrap_rates(confusion, resamples, np.random.default_rng(seed))
    lo, hi = np.nanquantile(boot.demographic_parity_difference, [0.025, 0.975])
    t_all = time.perf_counter() - t
    figures = {
        "selection_rate": point.selection_rate[:, 0],
        "tpr": point.true_positive_rate[:, 0],
        "fpr": point.false_positive_rate[:, 0],
        "accuracy": point.accuracy,
        "dp_difference": float(point.demographic_parity_difference),
        "dp_ratio": float(point.demographic_parity_ratio),
        "eo_difference": float(point.equalized_odds_difference),
        "eo_ratio": float(point.equalized_odds_ratio),
        "dp_difference_ci_width": float(hi - lo),
    }
    return figures, t_point, t_all


def anchor(y: np.ndarray, pred: np.ndarray, group: np.ndarray, resamples: int, seed: int) -> tuple[dict, float, float]:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    metrics = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "accuracy": accuracy_score,
    }
    t = time.perf_counter()
    frame = MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=group)
    figures = {name: frame.by_group[name].to_numpy() for name in metrics}
    figures["dp_difference"] = demographic_parity_difference(y, pred, sensitive_features=group)
    figures["dp_ratio"] = demographic_parity_ratio(y, pred, sensitive_features=group)
    figures["eo_difference"] = equalized_odds_difference(y, pred, sensitive_features=group)
    figures["eo_ratio"] = equalized_odds_ratio(y, pred, sensitive_features=group)
    t_point = time.perf_counter() - t
    booted = MetricFrame(
        metrics={"selection_rate": selection_rate},
        y_true=y,
        y_pred=pred,
        sensitive_features=group,
        n_boot=resamples,
        ci_quantiles=[0.025, 0.975],
        random_state=seed,
    )
    lo, hi = booted.difference_ci()  # the lower and the upper quantile, per metric
    figures["dp_difference_ci_width"] = float(hi["selection_rate"] - lo["selection_rate"])
    t_all = time.perf_counter() - t
    return figures, t_point, t_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warm = data(1000, args.seed)  # imports and first calls are not what is measured
    ours(*warm, 10, args.seed)
    anchor(*warm, 10, args.seed)
    print("| records | max abs difference of the figures | CI width ours / fairlearn | point: ours / fairlearn (ms) "
          f"| with {args.resamples} resamples: ours / fairlearn (s) | speed-up |")  # fmt: skip
    print("| ---: | ---: | --- | --- | --- | ---: |")
    for n in (int(s) for s in args.sizes.split(",")):
        y, pred, group = data(n, args.seed)
        a, ta_point, ta_all = ours(y, pred, group, args.resamples, args.seed)
        b, tb_point, tb_all = anchor(y, pred, group, args.resamples, args.seed)
        diff = max(
            float(np.max(np.abs(np.asarray(a[k], dtype=float) - np.asarray(b[k], dtype=float))))
            for k in ("selection_rate", "tpr", "fpr", "accuracy", "dp_difference", "dp_ratio", "eo_difference",
                      "eo_ratio")
        )  # fmt: skip
        print(
            f"| {n:,} | {diff:.1e} | {a['dp_difference_ci_width']:.4f} / {b['dp_difference_ci_width']:.4f} "
            f"| {1000 * ta_point:.1f} / {1000 * tb_point:.1f} | {ta_all:.3f} / {tb_all:.1f} | {tb_all / ta_all:.0f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
