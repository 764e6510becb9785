"""Benchmark: modelshield's explainers against their anchors, on the same models, records and settings.

    .venv/bin/python benchmarks/explain/bench_explain.py [--tree-records 200] [--ig-records 200] [--steps 50]

(The environment: torch 2.13.0 CPU, shap 0.51.0, captum 0.9.0, modelshield installed editable.)

- TreeSHAP on zoo:phishing-gbm (HistGradientBoostingClassifier, 150 iterations): modelshield's
  ``TreeShap.explain`` against ``shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")``, both on
  the model's log-odds, for the first ``--tree-records`` test records. Construction (reading the trees) is timed
  apart from explaining; "max |diff|" compares the SHAP values and the expected values.
- Integrated gradients on zoo:digits-cnn: modelshield's ``IntegratedGradients`` (trapezoid rule, ``--steps``
  points, zero baseline, target = the predicted class, logits) against ``captum.attr.IntegratedGradients`` with
  ``method="riemann_trapezoid"`` and ``n_steps`` = ``--steps``, batches of 512 path points on each side. Captum's
  trapezoid weights sum to (n-1)/n instead of 1, so its values are compared with ours times (n-1)/n; the
  completeness error (|sum of attributions − (f(x) − f(0))|) is shown for both, unscaled, in the last column
  (for TreeSHAP that column is |sum of SHAP values + expected value − decision function|).

Times are medians of ``--repeat`` runs, per explained record, single process, CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from modelshield.explain import IntegratedGradients, TreeShap
from modelshield.models import SklearnClassifier, TorchClassifier
from modelshield.zoo import load_target


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_tree(records: int, repeat: int) -> list[tuple[str, ...]]:
    import shap

    target = load_target("zoo:phishing-gbm", device="cpu")
    clf = target.classifier
    assert isinstance(clf, SklearnClassifier)
    x = target.test.x[:records].astype(np.float32)
    build_ours, ours = timed(lambda: TreeShap(clf), repeat)
    build_shap, explainer = timed(
        lambda: shap.TreeExplainer(clf.estimator, feature_perturbation="tree_path_dependent"), repeat
    )
    t_ours, result = timed(lambda: ours.explain(x), repeat)
    t_shap, theirs = timed(lambda: explainer.shap_values(x), repeat)
    diff = np.abs(result.values[:, :, 0] - np.asarray(theirs, dtype=np.float64).reshape(len(x), -1)).max()
    diff_base = abs(float(result.expected_value[0]) - float(np.asarray(explainer.expected_value).reshape(-1)[0]))
    local = np.abs(result.model_output[:, 0] - clf.estimator.decision_function(x)).max()
    n_trees = sum(len(stage) for stage in clf.estimator._predictors)
    name = f"TreeSHAP phishing-gbm ({len(x)} rec, {x.shape[1]} feat, {n_trees} trees)"
    return [
        (name, "modelshield", f"{1e3 * t_ours / len(x):.3f}", f"{build_ours:.3f}", f"{max(diff, diff_base):.2e}",
         f"{local:.1e}"),
        (name, f"shap {shap.__version__}", f"{1e3 * t_shap / len(x):.3f}", f"{build_shap:.3f}", "-", "-"),
    ]  # fmt: skip


def bench_ig(records: int, steps: int, repeat: int) -> list[tuple[str, ...]]:
    import captum
    from captum.attr import IntegratedGradients as CaptumIG

    target = load_target("zoo:digits-cnn", device="cpu")
    clf = target.classifier
    assert isinstance(clf, TorchClassifier)
    x = np.ascontiguousarray(target.test.x[:records], dtype=np.float32)
    y = clf.predict(x)
    ours = IntegratedGradients(clf, steps=steps, batch_size=512)
    t_ours, result = timed(lambda: ours.explain(x, target=y), repeat)
    captum_ig = CaptumIG(clf.module)
    inputs = torch.from_numpy(x.copy()).requires_grad_(True)
    labels = torch.from_numpy(y)

    def run_captum() -> Any:
        return captum_ig.attribute(
            inputs, target=labels, n_steps=steps, method="riemann_trapezoid", internal_batch_size=512,
            return_convergence_delta=True,
        )  # fmt: skip

    t_captum, (theirs, delta) = timed(run_captum, repeat)
    theirs = theirs.detach().numpy().astype(np.float64)
    diff = np.abs(result.values * (steps - 1) / steps - theirs).max()
    name = f"IG digits-cnn ({len(x)} rec, {steps} steps)"
    return [
        (name, "modelshield", f"{1e3 * t_ours / len(x):.3f}", "-", f"{diff:.2e}",
         f"{np.abs(result.delta).max():.1e}"),
        (name, f"captum {captum.__version__}", f"{1e3 * t_captum / len(x):.3f}", "-", "-",
         f"{np.abs(delta.detach().numpy()).max():.1e}"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree-records", type=int, default=200)
    parser.add_argument("--ig-records", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = bench_tree(args.tree_records, args.repeat) + bench_ig(args.ig_records, args.steps, args.repeat)
    header = ("comparison", "tool", "ms/record", "setup s", "max |diff|", "max |local accuracy err|")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
