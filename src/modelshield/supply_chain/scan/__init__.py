"""Model-file scanning: what loading a file would import or execute, found without loading it.

    >>> from modelshield.supply_chain.scan import scan_file
    >>> scan_file("model.pt").max_severity  # doctest: +SKIP

``scan_file``, ``scan_stream`` and ``scan_paths`` scan files, streams and directory trees; a :class:`Scanner` is
one run over many files. Formats are identified by content at every level and dispatched to the
:class:`FormatScanner` plug-ins of a :class:`ScannerRegistry` (one built-in module per format under
``formats/``; third parties add theirs through the ``modelshield.scanners`` entry points).
:mod:`modelshield.reporting.scan` renders a :class:`ScanReport` as text, JSON or SARIF.
"""

from __future__ import annotations

from modelshield.supply_chain.scan.interface import (
    FileScan,
    FormatScanner,
    ScanContext,
    ScanLimits,
    ScanOptions,
    ScanReport,
    scan_finding,
)
from modelshield.supply_chain.scan.paths import iter_files, scan_paths
from modelshield.supply_chain.scan.policy import DEFAULT_POLICY, Policy, VerdictCache
from modelshield.supply_chain.scan.registry import ScannerRegistry, default_registry
from modelshield.supply_chain.scan.scanner import Scanner, scan_file, scan_stream

__all__ = [
    "DEFAULT_POLICY",
    "FileScan",
    "FormatScanner",
    "Policy",
    "ScanContext",
    "ScanLimits",
    "ScanOptions",
    "ScanReport",
    "Scanner",
    "ScannerRegistry",
    "VerdictCache",
    "default_registry",
    "iter_files",
    "scan_file",
    "scan_finding",
    "scan_paths",
    "scan_stream",
]
