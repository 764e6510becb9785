"""Benchmark: modelshield's model-agnostic SamplingShap against shap's samplers, at matched model evaluations.

    .venv/bin/python benchmarks/explain/bench_sampling.py [--records 50] [--background 20] [--perms 4 12 32]
        [--repeat 3] [--seed 0] [--threads 1] [--no-kernel]

(The environment: shap 0.51.0, scikit-learn's HistGradientBoostingClassifier, modelshield installed editable.)

- Model: zoo:phishing-gbm (HistGradientBoostingClassifier, 9 features); every explainer explains class 1's
  probability through ``classifier.predict_proba``, against the same ``--background`` training rows (drawn with
  ``--seed``) for the first ``--records`` test records.
- Ground truth: the exact interventional Shapley values, by brute force over all 2^9 coalitions: the value of a
  coalition S for record x is ``mean_b f(x_S, b_rest)`` over the background rows b (the hybrid rows are deduplicated
  before the model sees them; the features take at most three values, so there are few distinct ones). The check
  line reports the efficiency error, max |sum of values − (f(x) − mean_b f(b))|, and, unless ``--no-kernel``,
  shap's KernelExplainer run once with all 2^9 − 2 coalitions (``nsamples=510``, which it then enumerates instead
  of sampling), which must reproduce the exact values if shap's definition is the same (interventional).
- Budgets: one level per ``--perms`` value, our permutations per record (even: antithetic pairs). Ours:
  ``SamplingShap(max_queries=cost(records, perms), max_permutations=perms)``; its spending is ``result.queries``
  (``B`` background rows once, ``f(x)`` once per record, ``(f−1)·B`` per permutation and record). shap's
  evaluations are counted by wrapping the model function in a counter of rows. ``shap.PermutationExplainer``:
  ``max_evals`` is per record and counts masked samples (each up to ``B`` model rows), one forward-and-backward
  pass over a permutation per ``2f+1`` of them; it only re-evaluates the background rows that a step changes
  (those where ``b_j ≠ x_j``), so its rows per pass depend on the data. Two pilot runs (one pass per record,
  then three) measure its rows per record as a fixed part plus a part per pass, and each level gives it the whole
  number of passes whose predicted rows come closest to our rows per record. ``shap.KernelExplainer``
  (``l1_reg=False``): ``nsamples`` coalitions per record, ``B`` rows each, set to our rows per record over ``B``.
  The table shows the rows each spent ("evals/record": all rows sent to the model, construction included, over
  the records) and the permutations (shap: two per pass) or coalition samples that bought.
- Error: mean and max |estimate − exact| over records × features. Times are medians of ``--repeat`` runs of the
  whole explanation (construction included), per record, single process, CPU; every run re-seeds its sampler, so
  repeats spend the same rows and give the same values. The model's OpenMP pool is limited to ``--threads``
  threads (default 1: on a small shared machine, OpenMP's spinning threads make the many small model calls of
  shap's samplers stall for up to seconds when the cores are busy).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from modelshield.explain.agnostic import SamplingShap
from modelshield.models import SklearnClassifier
from modelshield.zoo import load_target

CLASS = 1  # explain the probability of class 1 (phishing)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


class Counted:
    """``predict_proba(x)[:, CLASS]`` as a function of a 2-D array, counting the rows it is asked about."""

    def __init__(self, clf: SklearnClassifier) -> None:
        self.clf = clf
        self.rows = 0

    def __call__(self, x: NDArray[Any]) -> NDArray[np.float64]:
        self.rows += len(x)
        return np.asarray(self.clf.predict_proba(np.asarray(x, dtype=np.float32))[:, CLASS], dtype=np.float64)


def exact_shapley(
    f: Callable[[NDArray[Any]], NDArray[np.float64]], x: NDArray[np.float32], bg: NDArray[np.float32]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact interventional Shapley values ``(n, f)`` and coalition values ``(n, 2^f)`` (bit j of a coalition's
    index set = feature j from ``x``), by evaluating every coalition against every background row."""
    n, m = x.shape
    coalitions = np.arange(1 << m)
    bits = ((coalitions[:, None] >> np.arange(m)[None, :]) & 1).astype(bool)  # (2^m, m)
    hybrid = np.where(bits[None, :, None, :], x[:, None, None, :], bg[None, None, :, :])  # (n, 2^m, B, m)
    rows, inverse = np.unique(hybrid.reshape(-1, m), axis=0, return_inverse=True)
    value = f(rows)[inverse.reshape(-1)].reshape(n, 1 << m, len(bg)).mean(axis=2)  # (n, 2^m)
    size = bits.sum(axis=1)
    fact = np.array([float(np.prod(np.arange(1, k + 1))) for k in range(m + 1)])
    weight = fact[size] * fact[m - 1 - np.minimum(size, m - 1)] / fact[m]  # |S|!(m-|S|-1)!/m! for S without j
    phi = np.zeros((n, m))
    for j in range(m):
        without = coalitions[~bits[:, j]]
        phi[:, j] = (value[:, without | (1 << j)] - value[:, without]) @ weight[without]
    return phi, value


def errors(est: NDArray[np.float64], exact: NDArray[np.float64]) -> tuple[str, str]:
    diff = np.abs(np.asarray(est, dtype=np.float64).reshape(exact.shape) - exact)
    return f"{diff.mean():.2e}", f"{diff.max():.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--background", type=int, default=20)
    parser.add_argument("--perms", type=int, nargs="+", default=[4, 12, 32], help="our permutations per record")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="OpenMP/BLAS threads for the model")
    parser.add_argument("--no-kernel", action="store_true", help="skip shap.KernelExplainer")
    args = parser.parse_args()
    if any(p < 2 or p % 2 for p in args.perms):
        parser.error("--perms values must be even and at least 2 (antithetic pairs)")

    import shap

    with threadpool_limits(args.threads):
        rows, checks = run(shap, args)
    header = ("budget", "tool", "evals/record", "perms or samples", "mean |err|", "max |err|", "ms/record")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"command: .venv/bin/python {shlex.join(sys.argv)}")
    for line in checks:
        print(line)
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def run(shap: Any, args: argparse.Namespace) -> tuple[list[tuple[str, ...]], list[str]]:
    target = load_target("zoo:phishing-gbm", device="cpu")
    clf = target.classifier
    assert isinstance(clf, SklearnClassifier)
    assert target.train is not None
    rng = np.random.default_rng(args.seed)
    bg = target.train.x[rng.choice(len(target.train.x), args.background, replace=False)].astype(np.float32)
    x = target.test.x[: args.records].astype(np.float32)
    n, m, b = len(x), x.shape[1], len(bg)
    f = Counted(clf)

    t0 = time.perf_counter()
    exact, value = exact_shapley(f, x, bg)
    t_exact = time.perf_counter() - t0
    distinct = f.rows
    efficiency = np.abs(exact.sum(axis=1) - (value[:, -1] - value[:, 0])).max()
    fx = f(x)
    base = f(bg).mean()
    efficiency_f = np.abs(exact.sum(axis=1) - (fx - base)).max()
    checks = [
        (
            f"exact: 2^{m} coalitions x {b} background rows x {n} records = {n * (1 << m) * b} hybrid rows, "
            f"{distinct} distinct evaluated, {t_exact:.1f} s; efficiency max |sum phi - (f(x) - mean_b f(b))| = "
            f"{max(efficiency, efficiency_f):.1e}"
        )
    ]
    if not args.no_kernel:
        np.random.seed(args.seed)
        full = shap.KernelExplainer(f, bg).shap_values(x, nsamples=(1 << m) - 2, l1_reg=False, silent=True)
        mean_err, max_err = errors(full, exact)
        checks.append(
            f"shap KernelExplainer, all {(1 << m) - 2} coalitions enumerated: mean |diff| vs exact {mean_err}, "
            f"max {max_err}"
        )

    # shap's permutation explainer: model rows per record = fixed + per_pass * passes, measured with 1 and 3 passes
    pilot = []
    for passes in (1, 3):
        f.rows = 0
        shap.PermutationExplainer(f, bg, seed=args.seed)(x, max_evals=passes * (2 * m + 1), silent=True)
        pilot.append(f.rows / n)
    per_pass = (pilot[1] - pilot[0]) / 2
    fixed = pilot[0] - per_pass
    checks.append(
        f"shap PermutationExplainer pilot: {pilot[0]:.1f} model rows per record with 1 pass, {pilot[1]:.1f} with 3: "
        f"{fixed:.1f} + {per_pass:.1f} per pass (a pass costs at most (2f+1)B = {(2 * m + 1) * b})"
    )

    out: list[tuple[str, ...]] = []
    for perms in args.perms:
        budget = SamplingShap(clf, background=bg, max_queries=1).cost(n, perms)
        ours = SamplingShap(clf, background=bg, max_queries=budget, max_permutations=perms, seed=args.seed)
        per_record = budget / n
        level = f"{per_record:.0f} rows/rec"

        t_ours, result = timed(lambda: ours.explain(x), args.repeat)
        out.append(
            (level, "modelshield SamplingShap", f"{result.queries / n:.1f}", f"{result.permutations} perms",
             *errors(result.values[:, :, CLASS], exact), f"{1e3 * t_ours / n:.2f}")
        )  # fmt: skip

        passes = max(1, round((per_record - fixed) / per_pass))

        def permutation(passes: int = passes) -> Any:
            f.rows = 0
            explainer = shap.PermutationExplainer(f, bg, seed=args.seed)  # seeds numpy's global generator
            return explainer(x, max_evals=passes * (2 * m + 1), silent=True)

        t_perm, theirs = timed(permutation, args.repeat)
        out.append(
            (level, f"shap {shap.__version__} Permutation", f"{f.rows / n:.1f}", f"{2 * passes} perms",
             *errors(theirs.values, exact), f"{1e3 * t_perm / n:.2f}")
        )  # fmt: skip

        if not args.no_kernel:
            nsamples = max(m + 1, round(per_record / b))

            def kernel(nsamples: int = nsamples) -> Any:
                f.rows = 0
                np.random.seed(args.seed)
                return shap.KernelExplainer(f, bg).shap_values(x, nsamples=nsamples, l1_reg=False, silent=True)

            t_kernel, kvalues = timed(kernel, args.repeat)
            out.append(
                (level, f"shap {shap.__version__} Kernel", f"{f.rows / n:.1f}", f"{nsamples} samples",
                 *errors(kvalues, exact), f"{1e3 * t_kernel / n:.2f}")
            )  # fmt: skip
    return out, checks


if __name__ == "__main__":
    main()
