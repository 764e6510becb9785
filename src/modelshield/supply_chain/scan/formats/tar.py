"""Tar archives, legacy PyTorch checkpoints among them: every regular member is scanned by content.

    >>> import io, pickle, tarfile
    >>> from modelshield.supply_chain.scan.formats.tar import TAR
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> buffer, data = io.BytesIO(), pickle.dumps([1, 2])
    >>> with tarfile.open(fileobj=buffer, mode="w") as tf:
    ...     info = tarfile.TarInfo("pickle"); info.size = len(data); tf.addfile(info, io.BytesIO(data))
    >>> TAR.scan(buffer, buffer.tell(), "legacy.tar", Scanner().context())
    []

Members are never extracted to disk; links and devices are skipped.
"""

from __future__ import annotations

import tarfile
from typing import BinaryIO, cast

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.formats.zip import CORRUPT
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["TAR", "TarScanner"]

_CORRUPT_TAR: tuple[type[Exception], ...] = (tarfile.TarError, *CORRUPT)


class TarScanner:
    """Tar archives and legacy (pre-1.6) PyTorch checkpoints."""

    name = "tar"
    formats = frozenset({ModelFormat.TAR, ModelFormat.PYTORCH_LEGACY_TAR})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for every regular member, up to the member limit (reaching it is a finding)."""
        found: list[Finding] = []
        stream.seek(0)
        try:
            with tarfile.open(fileobj=stream) as tf:
                for count, info in enumerate(tf):
                    if count >= context.limits.max_members:
                        found.append(
                            scan_finding(
                                "archive.limit", Severity.HIGH, "Archive has too many members to scan", "", location
                            )
                        )
                        break
                    if not info.isfile():
                        continue
                    inner = tf.extractfile(info)
                    if inner is not None:
                        found += context.scan_member(cast(BinaryIO, inner), info.size, f"{location}!{info.name}")
        except _CORRUPT_TAR as exc:
            found.append(
                scan_finding("archive.corrupt", Severity.MEDIUM, "Tar archive cannot be read", str(exc), location)
            )
        return found


TAR = TarScanner()
