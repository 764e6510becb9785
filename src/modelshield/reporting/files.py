"""Write the three report files (JSON, HTML, SARIF) side by side, each atomically.

>>> from pathlib import Path
>>> from modelshield.reporting import write_reports
>>> paths = write_reports(report, Path("report"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from modelshield._internal.atomic import write_text_atomic
from modelshield.findings import Report
from modelshield.reporting.html import render_html
from modelshield.reporting.json import render_json
from modelshield.reporting.sarif import render_sarif

__all__ = ["write_reports"]


def write_reports(report: Report, out_dir: Path, *, source_root: str | Path | None = None) -> dict[str, Path]:
    """Write ``report.json``, ``report.html`` and ``report.sarif`` into ``out_dir`` (created if needed); the SARIF
    names the model file relative to ``source_root`` when it lies under it.

    Everything is rendered before anything is written, and each file replaces its predecessor atomically.
    """
    rendered = {
        "json": render_json(report),
        "html": render_html(report),
        "sarif": render_sarif(report, source_root=source_root),
    }
    paths = {}
    for kind, text in rendered.items():
        path = out_dir / f"report.{kind}"
        write_text_atomic(path, text)
        paths[kind] = path
    return paths
