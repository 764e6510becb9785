"""Drift monitoring against Evidently: identical statistics, time per window, and detection delay.

    .venv/bin/python benchmarks/monitoring/bench_drift.py --evidently-python /tmp/evvenv/bin/python

Evidently lives in its own virtual environment (``python3 -m venv /tmp/evvenv && /tmp/evvenv/bin/pip install
evidently 'pandas<3'``: Evidently 0.7 does not import under pandas 3) and runs as a
subprocess here: the data go to it as an ``.npz`` (no pickles), its statistics
and timings come back as JSON. Both sides see the same reference (100,000 rows x 20 columns: 17 numeric of
several shapes, 3 categorical) and the same 1,000-row windows, and run the same tests: Kolmogorov-Smirnov
p-value for numeric columns, chi-squared p-value for categorical ones, and PSI for every column. Evidently is
timed twice: its per-column stattests alone (its fastest path, what its Report calls per column), and a legacy
``Report`` with ``DataDriftPreset`` (what users run; it also draws distributions). The benchmark fails when any
statistic differs by more than 1e-9.

Detection delay: a :class:`~modelshield.monitoring.drift.DriftMonitor` (window 1,000, a result every 100 rows)
watches benign rows, then rows with an injected shift; the delay is the number of shifted rows it saw before the
first result that flags a shifted column. False alarms are counted over the benign stream.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelshield.monitoring.drift import DriftMonitor, DriftReference

N_REF, WINDOW, N_NUM, N_CAT = 100_000, 1_000, 17, 3
CATS = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])
CAT_P = np.array([0.4, 0.25, 0.15, 0.12, 0.08])

_EVIDENTLY = r"""
import json, sys, time, statistics
import numpy as np, pandas as pd
from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
from evidently.legacy.core import ColumnType

data = np.load(sys.argv[1], allow_pickle=False)
repeats = int(sys.argv[2])
names = [str(n) for n in data["names"]]
n_num = int(data["n_num"])
def frame(num, cat):
    cols = {names[j]: num[:, j] for j in range(n_num)}
    cols.update({names[n_num + j]: cat[:, j] for j in range(cat.shape[1])})
    return pd.DataFrame(cols)
ref = frame(data["ref_num"], data["ref_cat"])
windows = [frame(data[f"win{i}_num"], data[f"win{i}_cat"]) for i in range(int(data["n_windows"]))]

def stattests(cur):
    out = []
    for j, name in enumerate(names):
        if j < n_num:
            p, _ = _ks_stat_test(ref[name], cur[name], ColumnType.Numerical, 0.05)
            psi, _ = _psi(ref[name], cur[name], ColumnType.Numerical, 0.1)
        else:
            p, _ = _chi_stat_test(ref[name], cur[name], ColumnType.Categorical, 0.05)
            psi, _ = _psi(ref[name], cur[name], ColumnType.Categorical, 0.1)
        out.append([float(p), float(psi)])
    return out

stats = [stattests(w) for w in windows]
times = []
for r in range(repeats):
    t = time.perf_counter(); stattests(windows[r % len(windows)]); times.append(time.perf_counter() - t)
report_times = []
try:
    from evidently.legacy.report import Report
    from evidently.legacy.metric_preset import DataDriftPreset
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    mapping = ColumnMapping(numerical_features=names[:n_num], categorical_features=names[n_num:])
    for r in range(max(3, repeats // 5)):
        preset = DataDriftPreset(num_stattest="ks", cat_stattest="chisquare")
        t = time.perf_counter()
        rep = Report(metrics=[preset]); rep.run(reference_data=ref, current_data=windows[r % len(windows)],
                                                column_mapping=mapping)
        rep.as_dict()
        report_times.append(time.perf_counter() - t)
except Exception as exc:  # an API change in Evidently: report the stattests alone
    print(f"Evidently Report not timed: {exc!r}", file=sys.stderr)
import evidently
print(json.dumps({"stats": stats, "times": times, "report_times": report_times, "version": evidently.__version__}))
"""


def _reference_data(rng: np.random.Generator, n: int) -> tuple[NDArray[np.float64], NDArray[np.str_]]:
    cols = []
    for j in range(N_NUM):
        shape = j % 4
        if shape == 0:
            cols.append(rng.normal(j, 1.0 + j / 10, n))
        elif shape == 1:
            cols.append(rng.lognormal(0.0, 0.5, n))
        elif shape == 2:
            cols.append(rng.uniform(-1.0, 1.0, n))
        else:
            cols.append(rng.integers(0, 8, n).astype(np.float64))  # few distinct values: PSI per value
    num = np.column_stack(cols)
    cat = np.column_stack([rng.choice(CATS, n, p=CAT_P) for _ in range(N_CAT)])
    return num, cat


def _window(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[NDArray[np.float64], NDArray[np.str_]]:
    num, cat = _reference_data(rng, n)
    num[:, 0] += shift
    return num, cat


def _ours(reference: DriftReference, names: list[str], num: NDArray[np.float64], cat: NDArray[np.str_]) -> Any:
    window: dict[str, Any] = {names[j]: num[:, j] for j in range(N_NUM)}
    window.update({names[N_NUM + j]: cat[:, j] for j in range(N_CAT)})
    return reference.compare(window)


def speed(evidently_python: str, repeats: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    names = [f"num{j}" for j in range(N_NUM)] + [f"cat{j}" for j in range(N_CAT)]
    ref_num, ref_cat = _reference_data(rng, N_REF)
    windows = [_window(rng, WINDOW, shift=s) for s in (0.0, 0.0, 0.1, 0.3, 1.0)]
    ref_cols: dict[str, Any] = {names[j]: ref_num[:, j] for j in range(N_NUM)}
    ref_cols.update({names[N_NUM + j]: ref_cat[:, j] for j in range(N_CAT)})
    t0 = time.perf_counter()
    reference = DriftReference().fit(ref_cols)
    fit_s = time.perf_counter() - t0
    ours = [_ours(reference, names, *w) for w in windows]
    times = []
    for r in range(repeats):
        w = windows[r % len(windows)]
        t = time.perf_counter()
        _ours(reference, names, *w)
        times.append(time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "data.npz")
        arrays: dict[str, Any] = {
            "names": np.array(names),
            "n_num": np.array(N_NUM),
            "n_windows": np.array(len(windows)),
            "ref_num": ref_num,
            "ref_cat": ref_cat,
        }
        for i, (num, cat) in enumerate(windows):
            arrays[f"win{i}_num"], arrays[f"win{i}_cat"] = num, cat
        np.savez(path, **arrays)
        script = Path(tmp, "evidently_side.py")
        script.write_text(_EVIDENTLY)
        done = subprocess.run(  # the interpreter the user named, running our own script
            [evidently_python, str(script), str(path), str(repeats)], capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise SystemExit(f"Evidently side failed:\n{done.stderr}")
    if done.stderr.strip():
        print(done.stderr.strip(), file=sys.stderr)
    theirs = json.loads(done.stdout)
    p_diff = psi_diff = 0.0
    for result, stats in zip(ours, theirs["stats"], strict=True):
        for col, (p, psi) in zip(result.columns, stats, strict=True):
            p_diff = max(p_diff, abs(col.p_value - p))
            psi_diff = max(psi_diff, abs(col.psi - psi) if np.isfinite(psi) else float(col.psi != psi))
    ours_ms = statistics.median(times) * 1e3
    theirs_ms = statistics.median(theirs["times"]) * 1e3
    report_ms = statistics.median(theirs["report_times"]) * 1e3 if theirs["report_times"] else float("nan")
    lines = [
        (
            f"Reference {N_REF:,} x {N_NUM + N_CAT} ({N_NUM} numeric, {N_CAT} categorical), windows of {WINDOW:,} "
            f"rows, {len(windows)} windows (shift of num0: 0, 0, 0.1, 0.3, 1.0 sd), median of {repeats} runs; "
            f"Evidently {theirs['version']}, fit once {fit_s * 1e3:.0f} ms."
        ),
        "",
        "| per window | median ms | speedup of modelshield |",
        "|---|---:|---:|",
        f"| modelshield `DriftReference.compare` (KS, chi-squared, PSI, BH) | {ours_ms:.2f} | 1x |",
        f"| Evidently per-column stattests (ks / chisquare + psi) | {theirs_ms:.1f} | {theirs_ms / ours_ms:.0f}x |",
        f"| Evidently `Report(DataDriftPreset)` | {report_ms:.0f} | {report_ms / ours_ms:.0f}x |",
        "",
        (
            f"Max |difference| over {len(windows)} windows x {N_NUM + N_CAT} columns: p-values {p_diff:.1e}, "
            f"PSI {psi_diff:.1e}."
        ),
    ]
    if p_diff > 1e-9 or psi_diff > 1e-9:
        print("\n".join(lines))
        raise SystemExit("FAILED: statistics differ from Evidently's.")
    return lines


def _detect(monitor: DriftMonitor, rng: np.random.Generator, names: list[str], kind: str, size: float, k: int) -> int:
    """Rows of shifted traffic seen before the first result flagging a shifted column (-1: never, 20k rows)."""
    targets = {names[j] for j in range(0, 4 * k, 4)} if kind == "mean" else {names[N_NUM]}
    seen = 0
    while seen < 20_000:
        num, cat = _window(rng, 100)
        if kind == "mean":
            for j in range(0, 4 * k, 4):  # shift k normal columns (every 4th is normal) by size sd
                num[:, j] += size * (1.0 + j / 10)
        else:  # swap the two commonest categories of cat0
            col = cat[:, 0].copy()
            cat[col == CATS[0], 0], cat[col == CATS[1], 0] = CATS[1], CATS[0]
        rows: dict[str, Any] = {names[j]: num[:, j] for j in range(N_NUM)}
        rows.update({names[N_NUM + j]: cat[:, j] for j in range(N_CAT)})
        seen += 100
        result = monitor.update(rows)
        if result is not None and targets & set(result.drifted_columns):
            return seen
    return -1


def delay(seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    names = [f"num{j}" for j in range(N_NUM)] + [f"cat{j}" for j in range(N_CAT)]
    ref_num, ref_cat = _reference_data(rng, N_REF)
    ref_cols: dict[str, Any] = {names[j]: ref_num[:, j] for j in range(N_NUM)}
    ref_cols.update({names[N_NUM + j]: ref_cat[:, j] for j in range(N_CAT)})
    reference = DriftReference().fit(ref_cols)
    lines = [
        "| injected shift | columns shifted | rows until detection (median of 5 runs) | false alarms before |",
        "|---|---:|---:|---:|",
    ]
    cases = [("mean", 0.2, 1), ("mean", 0.2, 4), ("mean", 0.5, 1), ("mean", 0.5, 4), ("swap", 0.0, 1)]
    for kind, size, k in cases:
        delays, alarms, tests = [], 0, 0
        for _ in range(5):
            monitor = DriftMonitor(reference, window=WINDOW, step=100)
            for _ in range(50):  # 5,000 benign rows: 41 results
                num, cat = _window(rng, 100)
                rows: dict[str, Any] = {names[j]: num[:, j] for j in range(N_NUM)}
                rows.update({names[N_NUM + j]: cat[:, j] for j in range(N_CAT)})
                result = monitor.update(rows)
                if result is not None:
                    tests += 1
                    alarms += result.drifted
            delays.append(_detect(monitor, rng, names, kind, size, k))
        label = f"mean +{size} sd" if kind == "mean" else "swap of the two commonest categories"
        lines.append(f"| {label} | {k} | {statistics.median(delays):.0f} | {alarms} of {tests} windows |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidently-python", default="/tmp/evvenv/bin/python")  # noqa: S108 - a path, not a file made
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"`.venv/bin/python benchmarks/monitoring/bench_drift.py --evidently-python {args.evidently_python}`\n")
    print("\n".join(speed(args.evidently_python, args.repeats, args.seed)))
    print()
    print("\n".join(delay(args.seed + 1)))


if __name__ == "__main__":
    main()
