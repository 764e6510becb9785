"""Compressed streams (gzip, zlib, xz, LZMA, bzip2, as joblib writes them): decompressed within limits, then
scanned by content.

    >>> import gzip, io, pickle
    >>> from modelshield.supply_chain.scan.formats.compressed import COMPRESSED
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> data = gzip.compress(pickle.dumps({"a": 1}))
    >>> COMPRESSED.scan(io.BytesIO(data), len(data), "model.joblib", Scanner().context())
    []

The output is capped at :attr:`ScanLimits.max_decompressed` bytes and :attr:`ScanLimits.max_ratio` times the
input; going past either is a finding (a decompression bomb, or too large to check), and what was decompressed
up to the cap is still scanned. 7z archives are reported as not inspected.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tempfile
import zlib
from typing import BinaryIO, cast

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.formats.zip import CORRUPT
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["COMPRESSED", "CompressedScanner"]

_CORRUPT_STREAM: tuple[type[Exception], ...] = (lzma.LZMAError, *CORRUPT)
_SPOOL = 64 * 1024 * 1024  # decompressed output is kept in memory up to this size, then in a temporary file


def _decompressor(head: bytes, fh: BinaryIO) -> io.BufferedIOBase | None:
    fh.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=fh)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(fh)
    if head.startswith(b"BZh"):
        return bz2.BZ2File(fh)
    if head[:1] == b"\x5d":
        return lzma.LZMAFile(fh, format=lzma.FORMAT_ALONE)
    return None


class CompressedScanner:
    """Compressed streams: the decompressed content, identified and scanned one level deeper."""

    name = "compressed"
    formats = frozenset({ModelFormat.COMPRESSED})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for the decompressed content, and for a stream that is damaged or expands past the limits."""
        limits = context.limits
        cap = int(min(limits.max_decompressed, max(size, 1) * limits.max_ratio))
        stream.seek(0)
        head = stream.read(8)
        if head.startswith(b"7z\xbc\xaf\x27\x1c"):
            return [
                scan_finding(
                    "archive.uninspected",
                    Severity.HIGH,
                    "7z archive: contents not inspected",
                    "modelshield does not unpack 7z; no model loader reads it directly, and a pickle inside cannot "
                    "be checked. Treat it as unverified.",
                    location,
                    remediation="Unpack it in a sandbox and scan the contents, or obtain the model in a standard "
                    "format.",
                )
            ]
        found: list[Finding] = []
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as out:
            written = 0
            try:
                decompressed = _decompressor(head, stream)
                if decompressed is not None:
                    with decompressed:
                        while chunk := decompressed.read(1 << 20):
                            written += len(chunk)
                            if written > cap:
                                break
                            out.write(chunk)
                else:  # zlib, as joblib writes it
                    stream.seek(0)
                    inflater = zlib.decompressobj()
                    while chunk := stream.read(1 << 20):
                        piece = inflater.decompress(chunk, cap - written + 1)
                        written += len(piece)
                        out.write(piece)
                        if written > cap:
                            break
            except _CORRUPT_STREAM as exc:
                found.append(
                    scan_finding(
                        "archive.corrupt", Severity.MEDIUM, "Compressed stream cannot be read", str(exc), location
                    )
                )
            if written > cap:
                found.append(
                    scan_finding(
                        "archive.decompression-limit",
                        Severity.HIGH,
                        "Compressed stream expands beyond the scan limit",
                        f"More than {cap:,} bytes from {size:,} compressed: a decompression bomb, or too large to "
                        "check.",
                        location,
                    )
                )
            found += context.scan_member(cast(BinaryIO, out), min(written, cap), f"{location}!decompressed")
        return found


COMPRESSED = CompressedScanner()
