"""Drift monitoring: statistics equal scipy's (and Evidently's definition of PSI), BH equals scipy's, the false
alarm rate on same-distribution data, detection of shifted columns, the streaming monitor, and the CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from scipy import stats

from modelshield.cli._console import guarded
from modelshield.cli.monitor import register
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.monitoring.drift import DriftMonitor, DriftReference, benjamini_hochberg

CATS = np.array(["a", "b", "c", "d"])


def _table(rng: np.random.Generator, n: int, shift: float = 0.0, swap: bool = False) -> dict[str, Any]:
    cat = rng.choice(CATS, n, p=[0.5, 0.3, 0.15, 0.05])
    if swap:
        cat = np.where(cat == "a", "b", np.where(cat == "b", "a", cat))
    return {
        "normal": rng.normal(0.0, 1.0, n) + shift,
        "skewed": rng.lognormal(0.0, 0.7, n),
        "uniform": rng.uniform(-2.0, 2.0, n),
        "small_int": rng.integers(0, 6, n).astype(np.float64),
        "colour": cat,
    }


# --- statistics against independent implementations ------------------------------------------------------------


@pytest.mark.parametrize(("n", "m"), [(20_000, 1_000), (12_000, 300), (400, 150), (3_000, 2_000)])
def test_ks_statistic_and_p_value_equal_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    ref = np.column_stack([rng.normal(size=n), rng.integers(0, 30, n), rng.exponential(size=n)])
    cur = np.column_stack([rng.normal(0.1, 1.0, m), rng.integers(0, 32, m), rng.exponential(1.1, size=m)])
    result = DriftReference().fit(ref).compare(cur)
    for j, column in enumerate(result.columns):
        expected = stats.ks_2samp(ref[:, j], cur[:, j])
        assert column.test == "ks"
        assert column.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert column.effect == column.statistic
        assert column.p_value == pytest.approx(expected.pvalue, abs=1e-12, rel=1e-12)


def test_ks_method_asymp_equals_scipy_asymp() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=(2_000, 2)), rng.normal(0.1, 1.0, size=(500, 2))
    result = DriftReference(ks_method="asymp").fit(ref).compare(cur)
    for j, column in enumerate(result.columns):
        expected = stats.ks_2samp(ref[:, j], cur[:, j], method="asymp")
        assert column.p_value == pytest.approx(expected.pvalue, abs=1e-12, rel=1e-12)
        assert column.p_value != pytest.approx(stats.ks_2samp(ref[:, j], cur[:, j]).pvalue, abs=1e-9, rel=1e-9)


def test_ks_finds_the_gap_between_window_points() -> None:
    """The largest CDF gap can lie just below a window point, among reference points (not at any window point)."""
    rng = np.random.default_rng(4)
    ref = rng.uniform(0.0, 1.0, 12_000)
    for cur in (np.array([0.5, 2.0]), rng.uniform(-0.5, 3.0, 3), rng.uniform(0.0, 1.5, 7)):
        got = DriftReference().fit(ref.reshape(-1, 1)).compare(cur.reshape(-1, 1)).columns[0]
        assert got.statistic == stats.ks_2samp(ref, cur).statistic


def test_ks_handles_ties_across_samples() -> None:
    """Values shared by both samples (the hard case for a searchsorted-only D)."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        ref = rng.integers(0, 5, 11_000).astype(float)
        cur = rng.integers(0, rng.integers(2, 7), rng.integers(5, 400)).astype(float)
        got = DriftReference().fit(ref.reshape(-1, 1)).compare(cur.reshape(-1, 1)).columns[0]
        expected = stats.ks_2samp(ref, cur)
        assert got.statistic == expected.statistic
        assert got.p_value == pytest.approx(expected.pvalue, abs=1e-12)


def test_chi_squared_equals_scipy_on_the_union_of_categories() -> None:
    rng = np.random.default_rng(5)
    ref = rng.choice(CATS, 5_000, p=[0.4, 0.3, 0.2, 0.1])
    for cur in (rng.choice(CATS, 700), rng.choice(CATS[:3], 300, p=[0.1, 0.1, 0.8])):
        got = DriftReference().fit({"c": ref}).compare({"c": cur}).columns[0]
        keys = np.union1d(ref, cur)
        f_exp = np.array([(ref == k).sum() for k in keys]) * (cur.size / ref.size)
        f_obs = np.array([(cur == k).sum() for k in keys])
        expected = stats.chisquare(f_obs, f_exp)
        assert got.test == "chisquare"
        assert got.statistic == pytest.approx(expected.statistic, rel=1e-12)
        assert got.p_value == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)
        tvd = 0.5 * np.abs(np.array([(ref == k).mean() - (cur == k).mean() for k in keys])).sum()
        assert got.effect == pytest.approx(tvd, abs=1e-12)


def test_a_category_the_reference_never_saw_is_infinite_drift() -> None:
    ref = np.array(["x", "y"] * 500)
    cur = np.array(["x", "y", "z"] * 100)
    got = DriftReference().fit({"c": ref}).compare({"c": cur}).columns[0]
    assert got.statistic == np.inf
    assert got.p_value == 0.0
    assert got.drifted


def _evidently_psi(ref: np.ndarray, cur: np.ndarray, numeric: bool) -> float:
    """PSI as Evidently defines it, written from its definition with np.histogram (not our searchsorted)."""
    if numeric and len(np.unique(ref)) > 20:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        r = np.histogram(ref, edges)[0] / len(ref)
        c = np.histogram(cur, edges)[0] / len(cur)
    else:
        keys = sorted(set(ref.tolist()) | set(cur.tolist()))
        r = np.array([np.sum(ref == k) for k in keys]) / len(ref)
        c = np.array([np.sum(cur == k) for k in keys]) / len(cur)
    for shares in (r, c):
        smallest = shares[shares > 0].min()
        shares[shares == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return float(np.sum((r - c) * np.log(r / c)))


def test_psi_equals_an_independent_computation() -> None:
    rng = np.random.default_rng(7)
    reference = _table(rng, 30_000)
    fitted = DriftReference().fit(reference)
    for shift in (0.0, 0.3, 2.0):
        current = _table(rng, 800, shift=shift, swap=shift > 1)
        current["small_int"][:3] = 9.0  # a value the reference never had
        result = fitted.compare(current)
        for column in result.columns:
            numeric = column.name != "colour"
            expected = _evidently_psi(reference[column.name], current[column.name], numeric)
            assert column.psi == pytest.approx(expected, rel=1e-9, abs=1e-12), column.name
    assert result.column("normal").psi_level == "major"


def test_benjamini_hochberg_equals_scipy() -> None:
    rng = np.random.default_rng(11)
    for size in (1, 2, 7, 50):
        p = rng.uniform(size=size) ** 3
        p[: size // 3] = p[0]  # ties
        np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p), rtol=1e-12, atol=0)
    with pytest.raises(InvalidInputError):
        benjamini_hochberg([0.1, np.nan])


# --- decisions ----------------------------------------------------------------------------------------------------


def test_same_distribution_raises_drift_at_about_the_expected_rate() -> None:
    """BH at alpha=0.05 across columns: under no drift, a window flags any column at most ~5% of the time."""
    rng = np.random.default_rng(13)
    fitted = DriftReference(alpha=0.05, min_effect=0.0).fit(_table(rng, 20_000))
    windows = [fitted.compare(_table(rng, 500)) for _ in range(200)]
    any_drift = np.mean([w.drifted for w in windows])
    raw = np.array([c.p_value for w in windows for c in w.columns if c.name != "small_int"])
    assert any_drift <= 0.1
    assert 0.02 <= np.mean(raw < 0.05) <= 0.09  # uncorrected p-values are about uniform


def test_shifted_columns_are_found_and_only_they() -> None:
    rng = np.random.default_rng(17)
    fitted = DriftReference().fit(_table(rng, 50_000))
    result = fitted.compare(_table(rng, 1_000, shift=0.5, swap=True))
    assert set(result.drifted_columns) == {"normal", "colour"}
    assert result.by_q_value()[0].name in {"normal", "colour"}
    assert result.column("normal").q_value < 1e-6


def test_min_effect_keeps_tiny_significant_shifts_quiet() -> None:
    rng = np.random.default_rng(19)
    ref = rng.normal(size=(100_000, 1))
    cur = rng.normal(0.05, 1.0, size=(100_000, 1))
    loud = DriftReference(min_effect=0.0).fit(ref).compare(cur)
    quiet = DriftReference(min_effect=0.05).fit(ref).compare(cur)
    assert loud.columns[0].q_value < 0.05 and loud.drifted
    assert not quiet.drifted


def test_prediction_drift() -> None:
    rng = np.random.default_rng(23)
    x = rng.normal(size=(5_000, 2))
    fitted = DriftReference().fit(x, predictions=rng.integers(0, 3, 5_000))
    same = fitted.compare(x[:1000], predictions=rng.integers(0, 3, 1_000))
    skewed = fitted.compare(x[:1000], predictions=rng.choice(3, 1_000, p=[0.6, 0.2, 0.2]))
    assert same.prediction is not None and not same.prediction.drifted
    assert skewed.prediction is not None and skewed.prediction.drifted and skewed.drifted


# --- the streaming monitor ---------------------------------------------------------------------------------------


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    x = rng.normal(size=(n, 3))
    x[:, 1] += shift
    return x


def test_monitor_tests_every_step_on_the_last_window() -> None:
    rng = np.random.default_rng(29)
    monitor = DriftMonitor(DriftReference().fit(_rows(rng, 20_000)), window=400, step=100)
    results = [monitor.update(_rows(rng, 100)) for _ in range(6)]
    assert [r is None for r in results] == [True, True, True, False, False, False]
    assert all(not r.drifted for r in results if r is not None)
    shifted = [monitor.update(_rows(rng, 100, shift=1.0)) for _ in range(4)]
    assert shifted[-1] is not None and shifted[-1].drifted_columns == ("x1",)
    for _ in range(4):  # the shifted rows leave the window
        last = monitor.update(_rows(rng, 100))
    assert last is not None and not last.drifted
    big = monitor.update(_rows(rng, 5_000, shift=1.0))  # one batch larger than the window
    assert big is not None and big.n_current == 400 and big.drifted_columns == ("x1",)
    assert monitor.latest is big
    assert 'modelshield_drift_column_drifted{column="x1"} 1.0' in monitor.prometheus()


def test_monitor_accuracy_from_feedback_over_a_sliding_window() -> None:
    monitor = DriftMonitor(DriftReference().fit(np.zeros((10, 1)) + np.arange(10)[:, None]), feedback_window=100)
    assert monitor.accuracy is None
    monitor.record_feedback([1] * 100, [1] * 100)
    assert monitor.accuracy == 1.0
    monitor.record_feedback([1] * 50, [0] * 50)  # half the window now wrong
    assert monitor.accuracy == 0.5
    monitor.record_feedback([0] * 300, [0] * 300)
    assert monitor.accuracy == 1.0


def test_monitor_is_thread_safe() -> None:
    rng = np.random.default_rng(31)
    monitor = DriftMonitor(DriftReference().fit(_rows(rng, 20_000)), window=500, step=50)
    batches = [_rows(np.random.default_rng(i), 10) for i in range(400)]
    results: list[object] = []
    errors: list[BaseException] = []

    def work(part: list[np.ndarray]) -> None:
        try:
            for b in part:
                r = monitor.update(b)
                if r is not None:
                    results.append(r)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(batches[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == (4000 - 500) // 50 + 1  # one result per 50 rows once the window is full
    assert all(r.n_current == 500 for r in results)  # type: ignore[attr-defined]


def test_prometheus_escapes_label_values() -> None:
    rng = np.random.default_rng(37)
    result = (
        DriftReference().fit({'we"ird\\name\n': rng.normal(size=500)}).compare({'we"ird\\name\n': rng.normal(size=50)})
    )
    text = result.prometheus()
    assert '{column="we\\"ird\\\\name\\n"}' in text
    assert "# TYPE modelshield_drift_column_p_value gauge" in text
    assert all(line.startswith(("#", "modelshield_drift_")) for line in text.splitlines())


def test_bad_input_and_parameters_are_refused() -> None:
    rng = np.random.default_rng(41)
    fitted = DriftReference().fit(rng.normal(size=(100, 2)))
    with pytest.raises(InvalidInputError, match="missing or infinite"):
        fitted.compare(np.array([[0.0, np.nan]]))
    with pytest.raises(InvalidInputError, match="3 columns"):
        fitted.compare(np.zeros((5, 3)))
    with pytest.raises(InvalidInputError, match="lacks column"):
        fitted.compare({"x0": np.zeros(5)})
    with pytest.raises(InvalidParameterError):
        DriftReference(alpha=1.5)
    with pytest.raises(InvalidParameterError):
        DriftMonitor(fitted, window=0)
    with pytest.raises(NotFittedError):
        DriftReference().compare(np.zeros((3, 2)))


def test_result_round_trips_through_json() -> None:
    rng = np.random.default_rng(43)
    result = DriftReference().fit(_table(rng, 2_000)).compare(_table(rng, 200, swap=True))
    data = json.loads(json.dumps(result.to_dict()))
    assert [c["name"] for c in data["columns"]] == list(_table(rng, 1))
    assert data["drifted"] == result.drifted


# --- the CLI -----------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., int]:
    """``modelshield monitor ...`` through Typer and the CLI's error handling (app.py does not list it yet)."""

    def run(*args: str) -> int:
        app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        app.callback()(lambda: None)
        register(app)

        def command() -> int:
            try:
                app(args=["monitor", *args], prog_name="modelshield")
            except SystemExit as exc:
                return exc.code if isinstance(exc.code, int) else 2
            return 2

        return guarded(command)

    return run


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(47)
    ref = pd.DataFrame(_table(rng, 10_000)).assign(label=rng.integers(0, 2, 10_000))
    same = ref.iloc[::20]  # a sample of the reference itself: no drift, whatever the seed
    shifted = pd.DataFrame(_table(rng, 500, shift=1.0)).assign(label=rng.integers(0, 2, 500))
    hostile = '<script>alert("x")</script>'
    paths = {"ref": tmp_path / "train.csv", "same": tmp_path / "same.csv", "shifted": tmp_path / "batch.csv"}
    ref.rename(columns={"uniform": hostile}).to_csv(paths["ref"], index=False)
    same.rename(columns={"uniform": hostile}).to_csv(paths["same"], index=False)
    shifted.rename(columns={"uniform": hostile}).to_csv(paths["shifted"], index=False)
    return paths


def test_cli_happy_path_html_and_text(
    cli: Callable[..., int], tables: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "drift.html"
    args = ["drift", "--reference", str(tables["ref"]), "--label-column", "label"]
    code = cli(*args, "--current", str(tables["shifted"]), "--out", str(out))
    text = capsys.readouterr().out
    assert code == 1
    assert "Drifted columns: " in text and "DRIFT" in text
    table = text.split("\n\n")[1].splitlines()
    assert table[0].startswith("column") and table[1].startswith("normal ") and table[1].endswith("DRIFT")
    page = out.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count('<figure class="chart">') == 5
    assert cli(*args, "--current", str(tables["same"]), "--format", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["drifted"] is False and document["prediction"]["name"] == "prediction"
    assert [c["name"] for c in document["columns"]][:2] == ["normal", "skewed"]  # the reference's order
    assert document["n_current"] == 500


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing_file", "does not exist"),
        ("missing_column", "lacks column"),
        ("text_in_numeric", "is numeric in"),
        ("bad_label", "no label column"),
        ("nan", "missing values"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line_before_writing(
    cli: Callable[..., int],
    tables: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: str,
    message: str,
) -> None:
    batch = pd.read_csv(tables["same"])
    label = "label"
    current = tmp_path / "bad.csv"
    if change == "missing_column":
        batch = batch.drop(columns=["skewed"])
    elif change == "text_in_numeric":
        batch["normal"] = "high"
    elif change == "bad_label":
        label = "nope"
    elif change == "nan":
        batch.loc[3, "normal"] = np.nan
    if change != "missing_file":
        batch.to_csv(current, index=False)
    out = tmp_path / "drift.html"
    code = cli(
        "drift",
        "--reference",
        str(tables["ref"]),
        "--current",
        str(current),
        "--label-column",
        label,
        "--out",
        str(out),
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert message in err
    assert not out.exists()


def test_cli_refuses_to_overwrite_before_reading(
    cli: Callable[..., int], tables: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "drift.html"
    out.write_text("keep")
    code = cli(
        "drift", "--reference", str(tmp_path / "absent.csv"), "--current", str(tables["same"]), "--out", str(out)
    )
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "keep"


def test_histogram_shows_the_shift_against_the_reference() -> None:
    """The console's reference-against-current plot: shares per bin that sum to one and move with the shift."""
    rng = np.random.default_rng(3)
    reference = DriftReference().fit(
        {
            "amount": rng.normal(size=5000),
            "country": rng.choice(["fr", "de", "it", "es"], size=5000, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    monitor = DriftMonitor(reference, window=1000)
    assert monitor.histogram("amount") is None  # nothing seen yet
    monitor.update({"amount": rng.normal(1.0, 1.0, size=1000), "country": np.array(["fr"] * 990 + ["xx"] * 10)})
    amount = monitor.histogram("amount", bins=10)
    assert amount is not None and len(amount.labels) == 10 and amount.n_current == 1000
    assert sum(amount.reference) == pytest.approx(1.0) and sum(amount.current) == pytest.approx(1.0)
    centres = np.array([float(v) for v in amount.labels])
    assert float(np.dot(centres, amount.current)) > float(np.dot(centres, amount.reference)) + 0.5  # moved right
    country = monitor.histogram("country", bins=3)
    assert country is not None and country.labels == ("fr", "de", "other")  # the reference's two most frequent
    assert country.current == pytest.approx((0.99, 0.0, 0.01)) and sum(country.reference) == pytest.approx(1.0)
    assert monitor.histogram("nope") is None
    flags = DriftMonitor(DriftReference().fit({"https": rng.choice([-1.0, 1.0], size=2000)}), window=100)
    flags.update({"https": np.ones(100)})
    shown = flags.histogram("https")
    assert shown is not None and shown.labels == ("-1", "1") and shown.current == (0.0, 1.0)  # one bar per value
