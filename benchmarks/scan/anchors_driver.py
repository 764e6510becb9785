"""Run one anchor scanner over files; print one JSON line per file. Runs in the anchors' own environment.

    python anchors_driver.py TOOL REPEAT FILE...          # TOOL: picklescan, modelscan, fickling, modelaudit
    python anchors_driver.py TOOL --version

Each file's verdict is the worst severity the tool reports, mapped onto modelshield's scale:

- ``high``: picklescan ``dangerous``; modelscan ``HIGH``/``CRITICAL``; fickling ``LIKELY_UNSAFE`` and worse
  (``LIKELY_OVERTLY_MALICIOUS``, ``OVERTLY_MALICIOUS``); modelaudit ``CRITICAL``.
- ``medium``: picklescan ``suspicious``; modelscan ``MEDIUM``; fickling ``SUSPICIOUS``; modelaudit ``WARNING``.
- ``low``: modelscan ``LOW``; fickling ``POSSIBLY_UNSAFE``; modelaudit ``INFO`` (not a security concern, it says).
- ``clean``: nothing reported; ``error: ...``: the tool crashed, or reported that it could not scan the file and
  found nothing.

Each file is scanned once untimed, then REPEAT times timed; the times are measured here so that interpreter
start-up and the tool's imports are not counted.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import zipfile
from importlib import metadata
from typing import Any

os.environ.setdefault("PROMPTFOO_DISABLE_TELEMETRY", "1")  # modelaudit: no telemetry from a benchmark
os.environ.setdefault("NO_COLOR", "1")

_RANK = {"clean": 0, "low": 1, "medium": 2, "high": 3}


def _worst(levels: list[str]) -> str:
    return max(levels, key=_RANK.__getitem__, default="clean")


def picklescan(path: str) -> str:
    from picklescan.scanner import SafetyLevel, scan_file_path

    result = scan_file_path(path)
    safety = {g.safety for g in result.globals}
    if SafetyLevel.Dangerous in safety or result.issues_count:
        return "high"
    if SafetyLevel.Suspicious in safety or getattr(result, "suspicious_count", 0):
        return "medium"
    return "error: scan_err" if result.scan_err else "clean"


_MODELSCAN = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high", "CRITICAL": "high"}


def modelscan(path: str) -> str:
    from modelscan.modelscan import ModelScan

    result = ModelScan().scan(path)
    levels = [_MODELSCAN.get(str(issue.get("severity", "")).upper(), "low") for issue in result.get("issues", [])]
    if levels:
        return _worst(levels)
    return "error: " + str(result["errors"][0])[:80] if result.get("errors") else "clean"


def _fickling_level(severity: Any) -> str:
    rank = severity.value[0] if isinstance(severity.value, tuple) else int(severity.value)
    return "high" if rank >= 3 else "medium" if rank == 2 else "low" if rank == 1 else "clean"


def fickling(path: str) -> str:
    import fickling as fk

    results = list(fk.scan_zip_archive(path).values()) if zipfile.is_zipfile(path) else [fk.scan_file(path)]
    return _worst([_fickling_level(r.severity) for r in results])


_MODELAUDIT = {"critical": "high", "warning": "medium", "info": "low", "debug": "clean"}


def modelaudit(path: str) -> str:
    from modelaudit.core import scan_model_directory_or_file

    result = scan_model_directory_or_file(path)
    levels = [_MODELAUDIT.get(str(getattr(i.severity, "value", i.severity)).lower(), "low") for i in result.issues]
    if levels:
        return _worst(levels)
    return "error: has_errors" if getattr(result, "has_errors", False) else "clean"


TOOLS = {"picklescan": picklescan, "modelscan": modelscan, "fickling": fickling, "modelaudit": modelaudit}
WARM_UP = {
    "picklescan": "picklescan.scanner",
    "modelscan": "modelscan.modelscan",
    "fickling": "fickling",
    "modelaudit": "modelaudit.core",
}


def main() -> None:
    name = sys.argv[1]
    if sys.argv[2] == "--version":
        print(metadata.version(name))
        return
    tool, repeat, paths = TOOLS[name], int(sys.argv[2]), sys.argv[3:]
    importlib.import_module(WARM_UP[name])  # imports are not part of the per-file time
    for path in paths:
        verdict, seconds = "", []
        for _ in range(repeat + 1):  # the first pass warms caches and lazy imports; it is not timed
            t0 = time.perf_counter()
            try:
                verdict = tool(path)
            except Exception as exc:  # an anchor crashing on a file is a result, not a failure of the benchmark
                verdict = f"error: {type(exc).__name__}"
            seconds.append(time.perf_counter() - t0)
        print(json.dumps({"path": path, "verdict": verdict, "seconds": seconds[1:]}), flush=True)


if __name__ == "__main__":
    main()
