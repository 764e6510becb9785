"""``modelshield data schema`` and ``data validate``: exit codes 0/1/2, output files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_output import one_error_line

from modelshield.cli import main


def _frame(n: int, seed: int) -> pd.DataFrame:
    """Bounded, discrete-enough columns: a fresh draw passes with a small range tolerance."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "score": rng.uniform(0.0, 1.0, n),
            "plan": rng.choice(["basic", "pro"], n),
            "diagnosis": rng.choice(["benign", "malignant"], n),
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A trusted CSV, its schema, a clean batch and a batch with two bad rows, in ``tmp_path``."""
    trusted = tmp_path / "trusted.csv"
    _frame(300, seed=0).to_csv(trusted, index=False)
    clean = tmp_path / "clean.csv"
    _frame(200, seed=1).to_csv(clean, index=False)
    bad_frame = _frame(50, seed=2).astype({"age": object})
    bad_frame.loc[3, "age"] = -999
    bad_frame.loc[7, "plan"] = "gold"
    bad = tmp_path / "bad.csv"
    bad_frame.to_csv(bad, index=False)
    schema = tmp_path / "trusted.schema.json"
    assert main(["data", "schema", str(trusted), "--label", "diagnosis", "--output", str(schema)]) == 0
    return {"trusted": trusted, "clean": clean, "bad": bad, "schema": schema}


def test_schema_writes_the_file_and_refuses_to_overwrite_it(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    schema = tmp_path / "again.json"
    args = ["data", "schema", str(files["trusted"]), "--label", "diagnosis", "--output", str(schema)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"Wrote {schema}: 4 columns (2 categorical, 1 float, 1 integer) from 300 trusted rows" in out
    document = json.loads(schema.read_text())
    assert document["format"] == "modelshield.table-schema"
    assert document["label"] == "diagnosis"
    assert [c["kind"] for c in document["columns"]] == ["integer", "float", "categorical", "categorical"]
    before = schema.read_bytes()
    assert main(args) == 2
    assert "already exists" in one_error_line(capsys)
    assert schema.read_bytes() == before
    assert main([*args, "--overwrite"]) == 0


def test_schema_default_output_is_named_after_the_table(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["data", "schema", str(files["trusted"])]) == 0
    assert (work / "trusted.schema.json").is_file()


def test_a_clean_batch_exits_0(files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capsys.readouterr()
    valid = tmp_path / "out" / "valid.csv"
    args = ["data", "validate", str(files["clean"]), "--schema", str(files["schema"]), "--valid-out", str(valid)]
    assert main([*args, "--range-tolerance", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "200 rows checked" in out
    assert "0 rejected, 200 valid" in out
    assert "passed" in out
    assert len(pd.read_csv(valid)) == 200


def test_a_bad_batch_exits_1_and_splits_the_rows(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    capsys.readouterr()
    valid, rejected = tmp_path / "valid.csv", tmp_path / "rejected.parquet"
    args = [
        "data",
        "validate",
        str(files["bad"]),
        "--schema",
        str(files["schema"]),
        "--valid-out",
        str(valid),
        "--rejected-out",
        str(rejected),
        "--range-tolerance",
        "0.05",
    ]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "out_of_range" in out
    assert "unknown_category" in out
    assert "row 3: -999" in out
    assert "FAILED" in out
    batch = pd.read_csv(files["bad"])
    kept, dropped = pd.read_csv(valid), pd.read_parquet(rejected)
    assert len(kept) == 48
    assert dropped["age"].tolist() == [-999, batch.loc[7, "age"]]
    assert dropped["plan"].tolist() == [batch.loc[3, "plan"], "gold"]
    assert list(kept.columns) == list(batch.columns)


def test_json_output_is_the_report(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    args = ["data", "validate", str(files["bad"]), "--schema", str(files["schema"]), "--format", "json"]
    assert main([*args, "--limit", "1", "--range-tolerance", "0.05"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert report["n_rows"] == 50
    assert report["n_rejected"] == 2
    assert report["batch"] == str(files["bad"])
    issues = {(i["column"], i["kind"]): i for i in report["issues"]}
    assert set(issues) == {("age", "out_of_range"), ("plan", "unknown_category")}
    assert issues["plan", "unknown_category"]["examples"] == [{"row": 7, "value": "'gold'"}]


def test_an_unlabelled_batch_needs_the_flag(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(files["clean"]).drop(columns="diagnosis").to_csv(unlabelled, index=False)
    capsys.readouterr()
    args = ["data", "validate", str(unlabelled), "--schema", str(files["schema"]), "--range-tolerance", "0.05"]
    assert main(args) == 1
    assert "missing_column" in capsys.readouterr().out
    assert main([*args, "--unlabelled"]) == 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-batch", "does not exist"),
        ("missing-schema", "does not exist"),
        ("malformed-schema", "not a valid table schema"),
        ("pickle-batch", "never unpickles"),
        ("binary-batch", "not a readable CSV"),
        ("output-over-input", "will not write an output over an input"),
        ("bad-alpha", "missing_alpha"),
        ("unwritable-second-output", "bad.csv"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str, message: str
) -> None:
    batch, schema = files["bad"], files["schema"]
    valid = tmp_path / "valid.csv"
    extra: list[str] = []
    if case == "missing-batch":
        batch = tmp_path / "absent.csv"
    elif case == "missing-schema":
        schema = tmp_path / "absent.json"
    elif case == "malformed-schema":
        schema = tmp_path / "schema.json"
        schema.write_text('{"format": "modelshield.table-schema", "format_version": 1, "columns": "x"}')
    elif case == "pickle-batch":
        batch = tmp_path / "batch.csv"
        batch.write_bytes(b"\x80\x04\x95" + b"\x00" * 20)
    elif case == "binary-batch":
        batch = tmp_path / "batch.csv"
        batch.write_bytes(bytes(range(1, 256)) * 4)
    elif case == "output-over-input":
        valid = batch
    elif case == "bad-alpha":
        extra = ["--missing-alpha", "0"]
    elif case == "unwritable-second-output":  # valid.csv is written first, then removed when this one fails
        extra = ["--rejected-out", str(files["bad"] / "rejected.csv")]
    before = valid.read_bytes() if valid.exists() else None
    capsys.readouterr()
    args = ["data", "validate", str(batch), "--schema", str(schema), "--valid-out", str(valid), *extra]
    assert main(args) == 2
    assert message in one_error_line(capsys)
    assert (valid.read_bytes() if valid.exists() else None) == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
