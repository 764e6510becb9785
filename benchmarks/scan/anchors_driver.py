"""Run one anchor scanner over files; print one JSON line per file. Runs in the anchors' own environment.

    python anchors_driver.py picklescan REPEAT FILE...

Verdicts: "flagged" (the tool reports an issue), "clean", or "error" (it crashed or refused). Each file is scanned
once untimed, then REPEAT times timed; the times are measured here so that interpreter start-up is not counted.
"""

from __future__ import annotations

import json
import sys
import time
import zipfile


def picklescan(path: str) -> str:
    from picklescan.scanner import scan_file_path

    result = scan_file_path(path)
    if result.scan_err and not result.issues_count:
        return "error"
    return "flagged" if result.issues_count or result.infected_files else "clean"


def modelscan(path: str) -> str:
    from modelscan.modelscan import ModelScan

    result = ModelScan().scan(path)
    if result["summary"]["total_issues"]:
        return "flagged"
    return "error" if result.get("errors") else "clean"


def fickling(path: str) -> str:
    import fickling as fk

    results = list(fk.scan_zip_archive(path).values()) if zipfile.is_zipfile(path) else [fk.scan_file(path)]
    if any(r.severity.name != "LIKELY_SAFE" for r in results):
        return "flagged"
    return "clean"


TOOLS = {"picklescan": picklescan, "modelscan": modelscan, "fickling": fickling}


WARM_UP = {"picklescan": "picklescan.scanner", "modelscan": "modelscan.modelscan", "fickling": "fickling"}


def main() -> None:
    import importlib

    tool, repeat, paths = TOOLS[sys.argv[1]], int(sys.argv[2]), sys.argv[3:]
    importlib.import_module(WARM_UP[sys.argv[1]])  # imports are not part of the per-file time
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
