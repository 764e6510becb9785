"""Table validation: schema inference, the schema file, every issue kind, no false alarms on clean held-out data."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelshield.data import (
    ColumnKind,
    ColumnSchema,
    IssueKind,
    IssueLevel,
    TableSchema,
    infer_schema,
    read_frame,
    read_schema,
    validate,
    write_schema,
)
from modelshield.data.validation import N_QUANTILES, _ks_lower_bound
from modelshield.errors import FileFormatError, InputError, InvalidInputError, InvalidParameterError


@pytest.fixture
def make_frame() -> Callable[..., pd.DataFrame]:
    """A factory of mixed-kind frames drawn from one fixed distribution: any two draws are clean against each other.

    Every column has a bounded support that a few hundred rows cover, so a small range tolerance lets a fresh
    draw pass; ``dose`` misses about 10% of its values.
    """

    def make(n: int = 400, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        dose = rng.uniform(0.0, 5.0, n)
        dose[rng.random(n) < 0.1] = np.nan
        days = rng.integers(0, 366, n)
        return pd.DataFrame(
            {
                "age": rng.integers(18, 90, n),
                "score": rng.uniform(-1.0, 1.0, n),
                "smoker": rng.random(n) < 0.3,
                "plan": pd.Series(rng.choice(["basic", "pro", "team"], n), dtype="str"),
                "dose": dose,
                "seen": pd.Series(
                    (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d"), dtype="str"
                ),
                "outcome": rng.integers(0, 3, n),
            }
        )

    return make


def _kinds(report_issues: object) -> set[tuple[str, str]]:
    return {(i.column, i.kind.value) for i in report_issues}  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------------ inference


def test_inference_records_kinds_ranges_categories_and_missing_values() -> None:
    frame = pd.DataFrame(
        {
            "count": [3, 1, 4, 1, 5, 9],
            "ratio": [0.5, 0.25, 1.5, np.nan, 2.0, 0.75],
            "flag": [True, False, True, True, False, True],
            "color": pd.Series(["red", "blue", "red", "blue", "red", "blue"], dtype="category"),
            "visits": [2.0, np.nan, 7.0, 1.0, 1.0, 3.0],  # an integer column with a gap, read as floats
            "when": ["2024-01-05", "2024-03-01", "2023-12-31", "2024-02-29", None, "2024-01-01"],
            "label": [0, 1, 1, 0, 2, 1],
        }
    )
    schema = infer_schema(frame, label="label", source="toy")
    assert schema.n_rows == 6
    assert schema.label == "label"
    assert schema.source == "toy"
    got = {c.name: c for c in schema.columns}
    assert {name: c.kind for name, c in got.items()} == {
        "count": ColumnKind.INTEGER,
        "ratio": ColumnKind.FLOAT,
        "flag": ColumnKind.BOOLEAN,
        "color": ColumnKind.CATEGORICAL,
        "visits": ColumnKind.INTEGER,
        "when": ColumnKind.DATETIME,
        "label": ColumnKind.CATEGORICAL,
    }
    assert (got["count"].low, got["count"].high) == (1, 9)
    assert isinstance(got["count"].low, int)
    assert (got["ratio"].low, got["ratio"].high) == (0.25, 2.0)
    assert (got["visits"].low, got["visits"].high) == (1, 7)
    assert got["flag"].categories == ("False", "True")
    assert got["color"].categories == ("blue", "red")
    assert got["label"].categories == ("0", "1", "2")
    assert got["when"].low == "2023-12-31T00:00:00+00:00"
    assert got["when"].high == "2024-03-01T00:00:00+00:00"
    assert [(c.name, c.n_missing, c.nullable) for c in schema.columns if c.nullable] == [
        ("ratio", 1, True),
        ("visits", 1, True),
        ("when", 1, True),
    ]
    assert all(c.required for c in schema.columns)
    assert len(got["ratio"].quantiles) == N_QUANTILES
    assert got["ratio"].quantiles[0] == 0.25
    assert got["ratio"].quantiles[-1] == 2.0
    assert got["flag"].quantiles == ()


def test_integers_stay_numeric_unless_they_are_the_label() -> None:
    frame = pd.DataFrame({"grade": [1, 2, 3, 1, 2, 3], "y": [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]})
    assert infer_schema(frame).column("grade").kind is ColumnKind.INTEGER
    label = infer_schema(frame, label="y").column("y")
    assert label.kind is ColumnKind.CATEGORICAL
    assert label.categories == ("0", "1")  # 1.0 is the class "1", as the dataset loaders name it


def test_strings_whose_values_the_trusted_rows_have_not_all_shown_are_text() -> None:
    ids = [f"user-{i}" for i in range(30)]  # 30 distinct values, well under max_categories, every one seen once
    frame = pd.DataFrame({"user": ids, "tier": ["a", "b", "c"] * 10})
    schema = infer_schema(frame)
    assert schema.column("user").kind is ColumnKind.TEXT
    assert schema.column("tier").kind is ColumnKind.CATEGORICAL
    assert infer_schema(frame, max_categories=2).column("tier").kind is ColumnKind.TEXT
    report = validate(pd.DataFrame({"user": ["someone-new"], "tier": ["b"]}), schema)
    assert report.passed


def test_inference_refuses_unusable_input() -> None:
    with pytest.raises(InvalidInputError, match="no rows"):
        infer_schema(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    with pytest.raises(InvalidInputError, match="no label column 'target'"):
        infer_schema(pd.DataFrame({"a": [1, 2]}), label="target")
    with pytest.raises(InvalidInputError, match="duplicate column names"):
        infer_schema(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(InvalidParameterError, match="max_categories"):
        infer_schema(pd.DataFrame({"a": [1]}), max_categories=0)


# ---------------------------------------------------------------------------------------------------- schema file


def test_schema_round_trips_through_json(make_frame: Callable[..., pd.DataFrame], tmp_path: Path) -> None:
    schema = infer_schema(make_frame(), label="outcome", source="trusted.csv")
    again = TableSchema.from_json(schema.to_json())
    assert again == schema
    assert TableSchema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema
    data = schema.to_dict()
    assert (data["format"], data["format_version"]) == ("modelshield.table-schema", 1)
    assert data["columns"][4]["missing_fraction"] == schema.column("dose").n_missing / schema.n_rows

    path = tmp_path / "schema.json"
    write_schema(schema, path)
    assert read_schema(path) == schema
    with pytest.raises(InputError, match="already exists"):
        write_schema(schema, path)
    write_schema(schema, path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["schema.json"]  # no temporary file left behind


def _schema_dict() -> dict[str, object]:
    frame = pd.DataFrame({"x": [1.0, 2.5, np.nan], "c": ["a", "b", "a"]})
    return infer_schema(frame).to_dict()


def _edit(change: Callable[[dict[str, object]], object]) -> dict[str, object]:
    data = _schema_dict()
    change(data)
    return data


def _first_column(data: dict[str, object]) -> dict[str, object]:
    columns = data["columns"]
    assert isinstance(columns, list)
    column = columns[0]
    assert isinstance(column, dict)
    return column


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON list, not an object"),
        (json.dumps({"format": "modelshield.data-manifest", "format_version": 1}), "its 'format' is"),
        (json.dumps(_edit(lambda d: d.update(format_version=99))), "format version 99"),
        (json.dumps(_edit(lambda d: d.update(extra=1))), "unknown field"),
        (json.dumps(_edit(lambda d: d.pop("n_rows"))), "'n_rows' is missing"),
        (json.dumps(_edit(lambda d: d.update(n_rows="3"))), "'n_rows' must be int"),
        (json.dumps(_edit(lambda d: d.update(label="nope"))), "label column 'nope'"),
        (json.dumps(_edit(lambda d: _first_column(d).update(kind="complex"))), "kind 'complex'"),
        (json.dumps(_edit(lambda d: _first_column(d).update(low=9.0))), "above high"),
        (json.dumps(_edit(lambda d: _first_column(d).update(low="a"))), "finite numbers"),
        (json.dumps(_edit(lambda d: _first_column(d).update(quantiles=[1.0, 2.0]))), "quantiles"),
        (json.dumps(_edit(lambda d: _first_column(d).update(nullable=False))), "not nullable"),
        (json.dumps(_edit(lambda d: _first_column(d).update(colour="red"))), "unknown field"),
        (json.dumps(_edit(lambda d: d.update(columns=[1]))), "JSON int, not an object"),
    ],
)
def test_a_malformed_schema_is_refused_with_a_remedy(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "schema.json"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=message) as info:
        read_schema(path)
    assert str(path) in str(info.value)
    assert "modelshield data schema" in info.value.remedy or "release that wrote it" in info.value.remedy


def test_a_missing_schema_file_is_a_file_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        read_schema(tmp_path / "absent.json")


# ------------------------------------------------------------------------------------------------------ validation


def test_every_issue_kind_is_caught_with_rows_and_examples() -> None:
    trusted = pd.DataFrame(
        {
            "age": [20, 35, 50, 65, 80, 41],
            "income": [1.0, 2.0, 3.0, np.nan, 5.0, 2.5],
            "plan": ["basic", "pro", "basic", "pro", "basic", "pro"],
            "active": [True, False, True, True, False, True],
            "joined": ["2020-01-01", "2021-06-30", "2022-03-15", "2020-08-01", "2021-01-01", "2022-12-31"],
            "label": ["no", "yes", "no", "yes", "no", "yes"],
        }
    )
    schema = infer_schema(trusted, label="label")
    batch = pd.DataFrame(
        {
            "age": pd.Series(["30", "abc", "200", "", "42.5", "25"], dtype=object),  # text, range, gap, fraction
            "income": [1.5, np.inf, 9.0, 2.0, 3.0, 4.0],  # non-finite, out of range
            "plan": ["pro", "basic", "gold", "basic", "pro", "basic"],  # unknown category
            "active": [True, False, "maybe", True, False, True],  # not a boolean
            "joined": ["2021-01-01", "2019-01-01", "2021-05-05", "never", "2022-01-01", "2021-02-02"],
            "note": ["x"] * 6,  # not in the schema
        }
    ).replace("", np.nan)
    report = validate(batch, schema)
    assert not report.passed
    found = {(i.column, i.kind): i for i in report.issues}
    assert set(found) == {
        ("age", IssueKind.INVALID_VALUE),
        ("age", IssueKind.OUT_OF_RANGE),
        ("age", IssueKind.UNEXPECTED_MISSING),
        ("income", IssueKind.NON_FINITE),
        ("income", IssueKind.OUT_OF_RANGE),
        ("plan", IssueKind.UNKNOWN_CATEGORY),
        ("active", IssueKind.INVALID_VALUE),
        ("joined", IssueKind.INVALID_VALUE),
        ("joined", IssueKind.OUT_OF_RANGE),
        ("label", IssueKind.MISSING_COLUMN),
        ("note", IssueKind.EXTRA_COLUMN),
    }
    invalid_age = found["age", IssueKind.INVALID_VALUE]
    assert invalid_age.count == 2
    assert [(e.row, e.value) for e in invalid_age.examples] == [(1, "'abc'"), (4, "'42.5'")]
    assert [e.row for e in found["age", IssueKind.OUT_OF_RANGE].examples] == [2]
    assert [e.row for e in found["age", IssueKind.UNEXPECTED_MISSING].examples] == [3]
    assert [e.row for e in found["income", IssueKind.NON_FINITE].examples] == [1]
    assert [e.value for e in found["income", IssueKind.OUT_OF_RANGE].examples] == ["9.0"]
    assert [e.value for e in found["plan", IssueKind.UNKNOWN_CATEGORY].examples] == ["'gold'"]
    assert [e.row for e in found["joined", IssueKind.OUT_OF_RANGE].examples] == [1]
    assert found["label", IssueKind.MISSING_COLUMN].level is IssueLevel.COLUMN
    assert found["age", IssueKind.OUT_OF_RANGE].level is IssueLevel.ROW
    # the missing label column rejects every row: no row can be used without it
    assert report.rejected.all()
    assert report.valid_rows().empty

    unlabelled = validate(batch.drop(columns="note"), schema, require_label=False)
    assert unlabelled.rejected.tolist() == [False, True, True, True, True, False]
    assert unlabelled.valid_rows().index.tolist() == [0, 5]
    assert unlabelled.rejected_rows().index.tolist() == [1, 2, 3, 4]
    document = json.loads(json.dumps(unlabelled.to_dict(), allow_nan=False))
    assert document["passed"] is False
    assert document["n_rejected"] == 4
    assert {i["kind"] for i in document["issues"]} >= {"invalid_value", "out_of_range", "unknown_category"}


def test_an_extra_column_fails_the_batch_but_rejects_no_row() -> None:
    schema = infer_schema(pd.DataFrame({"a": [1, 2, 3]}))
    report = validate(pd.DataFrame({"a": [1, 2], "b": [0, 0]}), schema)
    assert [(i.column, i.kind) for i in report.issues] == [("b", IssueKind.EXTRA_COLUMN)]
    assert not report.passed
    assert report.n_rejected == 0
    assert len(report.valid_rows()) == 2


def test_a_column_of_the_wrong_type_rejects_every_row() -> None:
    schema = infer_schema(pd.DataFrame({"a": [1.5, 2.5, 3.5], "b": ["x", "y", "x"]}))
    report = validate(pd.DataFrame({"a": ["low", "high", None], "b": ["x", "x", "y"]}), schema)
    (issue,) = report.issues
    assert (issue.column, issue.kind, issue.count) == ("a", IssueKind.WRONG_TYPE, 3)
    assert [e.value for e in issue.examples] == ["'low'", "'high'"]
    assert report.rejected.all()


def test_numbers_in_a_categorical_column_match_their_text() -> None:
    schema = infer_schema(pd.DataFrame({"code": ["7", "12", "x", "7", "12", "x"], "y": [0, 1, 0, 1, 0, 1]}), label="y")
    batch = pd.DataFrame({"code": [7, 12, 12], "y": [1.0, 0.0, 2.0]})
    report = validate(batch, schema)
    assert [(i.column, i.kind, i.count) for i in report.issues] == [("y", IssueKind.UNKNOWN_CATEGORY, 1)]


def test_range_tolerance_widens_the_trusted_range() -> None:
    schema = infer_schema(pd.DataFrame({"x": [0.0, 10.0, 5.0]}))
    batch = pd.DataFrame({"x": [-0.5, 10.9, 12.5]})
    assert validate(batch, schema).n_rejected == 3
    assert validate(batch, schema, range_tolerance=0.1).rejected.tolist() == [False, False, True]
    with pytest.raises(InvalidParameterError, match="range_tolerance"):
        validate(batch, schema, range_tolerance=-0.1)
    with pytest.raises(InvalidParameterError, match="missing_alpha"):
        validate(batch, schema, missing_alpha=0.0)


def test_examples_are_short_and_printable() -> None:
    schema = infer_schema(pd.DataFrame({"c": ["a", "b", "a", "b"]}))
    hostile = "\x1b[31m" + "A" * 10_000 + "\u202e\n"
    report = validate(pd.DataFrame({"c": [hostile] * 100}), schema, max_examples=3)
    (issue,) = report.issues
    assert issue.count == 100
    assert len(issue.examples) == 3
    for example in issue.examples:
        assert len(example.value) <= 40
        assert example.value.isprintable()
        assert "\x1b" not in example.value


def test_a_clean_held_out_sample_passes(make_frame: Callable[..., pd.DataFrame]) -> None:
    """Same distribution, fresh rows: no missing-rate, type or category alarm, and with a small range tolerance
    (every column's support here is bounded and covered by the trusted rows) no rejection at all."""
    schema = infer_schema(make_frame(400, seed=1), label="outcome")
    assert schema.column("dose").nullable
    assert schema.column("seen").kind is ColumnKind.DATETIME
    batch = make_frame(400, seed=2)
    report = validate(batch, schema, range_tolerance=0.05)
    assert report.passed, [i.message for i in report.issues]
    assert report.n_rejected == 0
    assert report.warnings == ()
    strict = validate(batch, schema)  # the trusted extremes: continuous columns reject a few fresh rows
    assert {i.kind for i in strict.issues} <= {IssueKind.OUT_OF_RANGE}


def test_ranges_are_the_trusted_extremes_and_reject_what_chance_predicts() -> None:
    """Half of breast-cancer against the other half: only out-of-range rows, about 2/(n+1) of them per column."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    trusted, batch = frame.iloc[::2], frame.iloc[1::2]
    schema = infer_schema(trusted, label="target")
    report = validate(batch, schema)
    assert {i.kind for i in report.issues} == {IssueKind.OUT_OF_RANGE}
    assert report.warnings == ()
    expected = 30 * 2 * len(batch) / (len(trusted) + 1)  # 30 continuous columns, exchangeable rows
    flagged = sum(i.count for i in report.issues)
    assert 0 < flagged < 2 * expected
    assert "by chance alone, up to about 1.99 of 284 rows" in report.issues[0].message


def test_the_missing_rate_test_does_not_false_alarm_and_catches_a_real_rise() -> None:
    rng = np.random.default_rng(0)

    def column(n: int, rate: float) -> pd.DataFrame:
        values = rng.normal(size=n)
        values[rng.random(n) < rate] = np.nan
        return pd.DataFrame({"x": values})

    schema = infer_schema(column(500, 0.1))
    alarms = 0
    for _ in range(200):
        report = validate(column(500, 0.1), schema, range_tolerance=10.0)
        alarms += any(i.kind is IssueKind.MISSING_RATE for i in report.issues)
    assert alarms <= 2  # level 0.001 per test: 0.2 expected in 200
    risen = validate(column(500, 0.25), schema, range_tolerance=10.0)
    (issue,) = risen.issues
    assert issue.kind is IssueKind.MISSING_RATE
    assert issue.level is IssueLevel.COLUMN
    assert risen.n_rejected == 0  # each missing value is allowed; their rate is the problem
    assert "Fisher" in issue.message


def test_a_shifted_distribution_warns_without_rejecting() -> None:
    rng = np.random.default_rng(0)
    schema = infer_schema(pd.DataFrame({"x": rng.normal(size=2000)}))
    same = validate(pd.DataFrame({"x": rng.normal(size=2000)}), schema, range_tolerance=1.0)
    assert same.warnings == ()
    shifted = validate(pd.DataFrame({"x": rng.normal(0.5, 1.0, size=2000)}), schema, range_tolerance=1.0)
    (warning,) = shifted.warnings
    assert warning.column == "x"
    assert warning.statistic > 0.1
    assert warning.p_value < 1e-6
    assert shifted.passed


@pytest.mark.parametrize("kind", ["normal", "poisson", "three-values"])
def test_the_quantile_ks_statistic_never_exceeds_the_exact_one(kind: str) -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(1)
    for _ in range(40):
        n, m = int(rng.integers(3, 400)), int(rng.integers(1, 400))
        shift = float(rng.choice([0.0, 0.7]))
        if kind == "normal":
            x, y = rng.normal(size=n), rng.normal(shift, 1.0, m)
        elif kind == "poisson":
            x, y = rng.poisson(3.0, n).astype(float), rng.poisson(3.0 + shift, m).astype(float)
        else:
            x, y = rng.choice([0.0, 1.0, 5.0], n), rng.choice([0.0, 1.0, 5.0 + shift], m)
        quantiles = np.quantile(x, np.linspace(0, 1, N_QUANTILES), method="inverted_cdf")
        assert _ks_lower_bound(quantiles, y) <= ks_2samp(x, y).statistic + 1e-12
    same = rng.normal(size=1000)
    quantiles = np.quantile(same, np.linspace(0, 1, N_QUANTILES), method="inverted_cdf")
    assert _ks_lower_bound(quantiles, same) == 0.0


def test_column_schema_checks_itself() -> None:
    with pytest.raises(InvalidParameterError, match="not nullable"):
        ColumnSchema("a", ColumnKind.FLOAT, n_missing=2)
    with pytest.raises(InvalidParameterError, match="no categories"):
        ColumnSchema("a", ColumnKind.FLOAT, categories=("x",))
    with pytest.raises(InvalidParameterError, match="unique"):
        TableSchema(columns=(ColumnSchema("a", ColumnKind.TEXT), ColumnSchema("a", ColumnKind.TEXT)), n_rows=1)


# --------------------------------------------------------------------------------------------------------- reading


def test_read_frame_reads_csv_and_parquet_keeping_missing_values(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0, 5.0], "code": ["007", "x", None, "x", "007"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_parquet(tmp_path / "t.data")  # recognised by content, not by name
    schema = infer_schema(read_frame(tmp_path / "t.csv"))
    assert schema.column("code").categories == ("007", "x")
    only_numbers = pd.DataFrame({"a": [1.0], "code": ["007"]})
    only_numbers.to_csv(tmp_path / "batch.csv", index=False)
    assert read_frame(tmp_path / "batch.csv")["code"].tolist() == [7]  # pandas alone guesses a number
    assert read_frame(tmp_path / "batch.csv", schema=schema)["code"].tolist() == ["007"]  # the schema says text
    for name in ("t.parquet", "t.data"):
        read = read_frame(tmp_path / name)
        assert read["a"].isna().tolist() == [False, True, False, False, False]


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))


@pytest.mark.parametrize("name", ["batch.pkl", "batch.csv"])
def test_read_frame_never_unpickles(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    with pytest.raises(FileFormatError, match="pickle"):
        read_frame(path)
    assert not marker.exists()


def test_read_frame_refuses_other_formats_clearly(tmp_path: Path) -> None:
    np.savez(tmp_path / "arrays.npz", x=np.zeros(3))
    with pytest.raises(FileFormatError, match="NPZ"):
        read_frame(tmp_path / "arrays.npz")
    (tmp_path / "fake.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(FileFormatError, match="named like a Parquet file"):
        read_frame(tmp_path / "fake.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FileFormatError, match="not a readable CSV"):
        read_frame(tmp_path / "empty.csv")
    with pytest.raises(FileFormatError, match="does not exist"):
        read_frame(tmp_path / "absent.csv")


def test_a_header_only_batch_is_refused_not_passed(tmp_path: Path) -> None:
    """A batch with no rows would pass every check vacuously: refused instead (CLI: exit 2, one line)."""
    from modelshield.cli import main

    trusted = tmp_path / "trusted.csv"
    trusted.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n")
    empty = tmp_path / "batch.csv"
    empty.write_text("a,b,label\n")
    schema = tmp_path / "trusted.schema.json"
    assert main(["data", "schema", str(trusted), "--label", "label", "--output", str(schema)]) == 0
    assert main(["data", "validate", str(empty), "--schema", str(schema)]) == 2
