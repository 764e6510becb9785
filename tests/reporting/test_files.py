"""write_reports: three files side by side, each replaced atomically; nothing half-written on failure."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import modelshield.reporting
from modelshield.findings import Report
from modelshield.reporting import OutputFormat, render_html, render_json, render_sarif, write_reports


def test_writes_the_three_reports(report: Report, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report"
    paths = write_reports(report, out)
    assert paths == {"json": out / "report.json", "html": out / "report.html", "sarif": out / "report.sarif"}
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.sarif"]
    assert paths["json"].read_text(encoding="utf-8") == render_json(report)
    assert paths["html"].read_text(encoding="utf-8") == render_html(report)
    assert paths["sarif"].read_text(encoding="utf-8") == render_sarif(report)
    assert paths["json"].stat().st_mode & 0o777 != 0o600  # readable like any file written with open()


def test_rewrites_in_place(report: Report, report_factory: Callable[..., Report], tmp_path: Path) -> None:
    write_reports(report, tmp_path)
    write_reports(report_factory(seed=11), tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["seed"] == 11
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.sarif"]


def test_a_failing_renderer_writes_nothing(report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: Report, **options: object) -> str:
        raise RuntimeError("renderer failed")

    monkeypatch.setattr("modelshield.reporting.files.render_sarif", broken)
    with pytest.raises(RuntimeError, match="renderer failed"):
        write_reports(report, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_failing_write_leaves_the_old_file_and_no_temporary_one(
    report: Report, report_factory: Callable[..., Report], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_reports(report, tmp_path)
    before = (tmp_path / "report.json").read_bytes()

    def no_space(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OSError, match="No space"):
        write_reports(report_factory(seed=11), tmp_path)
    assert (tmp_path / "report.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.sarif"]


def test_public_surface() -> None:
    for name in (
        "render_json",
        "render_sarif",
        "render_html",
        "render_terminal",
        "write_reports",
        "REPORT_SCHEMA_PATH",
        "OutputFormat",
    ):
        assert name in modelshield.reporting.__all__
        assert getattr(modelshield.reporting, name).__doc__ or name == "REPORT_SCHEMA_PATH"
    assert [f.value for f in OutputFormat] == ["text", "json", "sarif", "html"]
    assert OutputFormat.SARIF.suffix == ".sarif"
    assert isinstance(OutputFormat.JSON, str)
