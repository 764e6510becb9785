"""Model-file scanning: what loading a file would import or execute, found without loading it.

    >>> from modelshield.supply_chain.scan import scan_file
    >>> scan_file("model.pt").max_severity  # doctest: +SKIP

Work in progress (issue 3): pickle analysis, archives, compression and NumPy object arrays are scanned; the
``modelshield scan`` command, the other formats' checks and the benchmark against the anchors are still to come.
"""

from __future__ import annotations

from modelshield.supply_chain.scan.interface import FileScan, ScanLimits, ScanOptions, ScanReport
from modelshield.supply_chain.scan.paths import iter_files, scan_paths
from modelshield.supply_chain.scan.scanner import scan_file, scan_stream

__all__ = [
    "FileScan",
    "ScanLimits",
    "ScanOptions",
    "ScanReport",
    "iter_files",
    "scan_file",
    "scan_paths",
    "scan_stream",
]
