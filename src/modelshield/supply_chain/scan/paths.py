"""Scan many files: directories walked recursively, exclusions, files scanned in parallel across cores.

>>> from modelshield.supply_chain.scan.paths import scan_paths
>>> report = scan_paths(["models/"], exclude=["*.txt"])  # doctest: +SKIP
>>> report.max_severity  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from modelshield.errors import FileFormatError
from modelshield.supply_chain.scan.interface import FileScan, ScanOptions, ScanReport
from modelshield.supply_chain.scan.registry import ScannerRegistry
from modelshield.supply_chain.scan.scanner import Scanner

__all__ = ["iter_files", "scan_paths"]

_PARALLEL_FROM = 4  # fewer files than this are scanned in-process
_MAX_BATCH = 16  # files a worker scans in one run (one verdict cache), at most


def iter_files(paths: Iterable[str | Path], *, exclude: Sequence[str] = ()) -> Iterator[Path]:
    """Every regular file under ``paths`` (directories recursively, symbolic links not followed), in order."""
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise FileFormatError(f"{root} does not exist.", remedy="Check the path.")
        candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in candidates:
            if path.is_symlink() and path != root:
                continue
            relative = path.relative_to(root).as_posix() if path != root else path.name
            if any(fnmatch.fnmatch(relative, g) or fnmatch.fnmatch(path.name, g) for g in exclude):
                continue
            yield path


def _scan_batch(files: Sequence[Path], options: ScanOptions, registry: ScannerRegistry | None) -> list[FileScan]:
    """One run over ``files`` (in a worker process)."""
    run = Scanner(options, registry=registry)
    return [run.scan_file(f) for f in files]


def scan_paths(
    paths: Iterable[str | Path],
    *,
    exclude: Sequence[str] = (),
    options: ScanOptions | None = None,
    workers: int | None = None,
    registry: ScannerRegistry | None = None,
) -> ScanReport:
    """Scan every file under ``paths``; files are spread over ``workers`` processes (default: all cores).

    ``registry`` defaults to the built-in scanners and the installed plug-ins; a registry of your own is sent to
    the worker processes, so its scanners must pickle (module-level classes and instances do).
    """
    options = options or ScanOptions()
    files = list(iter_files(paths, exclude=exclude))
    t0 = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    if len(files) < _PARALLEL_FROM or workers == 1:
        scans = _scan_batch(files, options, registry)
    else:
        size = min(_MAX_BATCH, math.ceil(len(files) / (4 * workers)))
        batches = [files[i : i + size] for i in range(0, len(files), size)]
        with ProcessPoolExecutor(max_workers=min(workers, len(batches))) as pool:
            done = pool.map(_scan_batch, batches, itertools.repeat(options), itertools.repeat(registry))
            scans = [scan for batch in done for scan in batch]
    return ScanReport(files=tuple(scans), duration_s=time.perf_counter() - t0)
