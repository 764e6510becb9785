"""The example plug-in's format scanner, importing only what scanning needs (every scan loads it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["MARKER", "MarkerScanner"]

MARKER = b"EXAMPLE-PLUGIN-MARKER"


class MarkerScanner:
    """Reports pickles that carry a marker string; inert on everything else, since every scan runs it."""

    name = "example-plugin-marker"
    formats = frozenset({ModelFormat.PICKLE})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> Iterable[Finding]:
        stream.seek(0)
        data = stream.read(min(size, 1 << 20))  # the marker sits near the start; never read a large file whole
        if MARKER not in data:
            return []
        return [
            scan_finding(
                "example-plugin.marker",
                Severity.LOW,
                "The example plug-in's marker is in this pickle",
                "A third-party scanner found its marker string.",
                location,
                evidence={"offset": data.index(MARKER)},
            )
        ]
