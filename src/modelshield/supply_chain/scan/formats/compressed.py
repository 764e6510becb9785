"""Compressed streams (zlib, gzip, bzip2, LZMA, xz, lz4, as joblib writes and detects them): decompressed within
limits, then scanned by content.

    >>> import gzip, io, pickle
    >>> from modelshield.supply_chain.scan.formats.compressed import COMPRESSED
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> data = gzip.compress(pickle.dumps({"a": 1}))
    >>> COMPRESSED.scan(io.BytesIO(data), len(data), "model.joblib", Scanner().context())
    []

The compression is told by joblib's own prefixes
(:func:`~modelshield.supply_chain.formats.compression`). Concatenated streams (multi-member gzip, several bzip2,
xz or lz4 frames) are all decompressed, as ``gzip``, ``bz2``, ``lzma`` and ``lz4.frame`` read them: the first
stream alone, which joblib reads, is a prefix of what is scanned. A stream that cannot be decompressed to its end
is high: joblib unpickles while it decompresses, so what came out before the damage has already run; that part is
still scanned. Bytes after the last stream are reported.

The output is capped at :attr:`ScanLimits.max_decompressed` bytes and :attr:`ScanLimits.max_ratio` times the
input; going past either is a finding (a decompression bomb, or too large to check), and what was decompressed
up to the cap is still scanned. 7z archives are reported as not inspected.
"""

from __future__ import annotations

import bz2
import lzma
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol, cast

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat, compression
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["COMPRESSED", "CompressedScanner"]

_SPOOL = 64 * 1024 * 1024  # decompressed output is kept in memory up to this size, then in a temporary file
_CHUNK = 256 * 1024
_ZFILE_HEADER = 2 + len(f"{2**64:#x}")  # joblib < 0.10: "ZF" and a hex length padded to 19 characters


class _Decompressor(Protocol):
    """The part of the standard decompressor objects that the loop uses."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Zlib:
    """zlib's decompressobj behind the interface of bz2's and lzma's decompressors."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        return self._d.decompress(self._d.unconsumed_tail + data, max(max_length, 0))


def _lz4() -> _Decompressor:
    import lz4.frame  # type: ignore[import-untyped]

    return cast(_Decompressor, lz4.frame.LZ4FrameDecompressor())


# name: (a fresh decompressor, the prefix a following stream starts with; b"" when any bytes may start one)
_KINDS: dict[str, tuple[Callable[[], _Decompressor], bytes]] = {
    "zlib": (lambda: _Zlib(zlib.MAX_WBITS), b"\x78"),
    "joblib-zfile": (lambda: _Zlib(zlib.MAX_WBITS), b"\x78"),
    "gzip": (lambda: _Zlib(31), b"\x1f\x8b"),
    "bzip2": (lambda: cast(_Decompressor, bz2.BZ2Decompressor()), b"BZh"),
    "xz": (lambda: cast(_Decompressor, lzma.LZMADecompressor(lzma.FORMAT_XZ)), b"\xfd7zXZ\x00"),
    "lzma": (lambda: cast(_Decompressor, lzma.LZMADecompressor(lzma.FORMAT_ALONE)), b"\x5d\x00"),
    "lz4": (_lz4, b"\x04\x22\x4d\x18"),
}

# What the decompressors raise on damaged input (lz4 raises RuntimeError).
_DAMAGED: tuple[type[Exception], ...] = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError, RuntimeError)


@dataclass
class _Inflated:
    """How a decompression went: bytes out, streams read, and what stopped it."""

    written: int = 0
    streams: int = 0
    error: str | None = None
    truncated: bool = False
    over_cap: bool = False
    trailing: int = 0  # bytes after the last complete stream (not counting zero padding)


def _inflate(kind: str, stream: BinaryIO, start: int, out: BinaryIO, cap: int) -> _Inflated:
    """Decompress ``stream[start:]`` of ``kind`` into ``out``, every concatenated stream, at most ``cap`` + 1 bytes."""
    factory, follower = _KINDS[kind]
    result = _Inflated()
    stream.seek(start)
    pending = b""
    dec = factory()
    try:
        while True:
            if dec.needs_input:
                data = pending or stream.read(_CHUNK)
                pending = b""
                if not data:
                    result.truncated = True
                    return result
            else:
                data = b""
            piece = dec.decompress(data, cap - result.written + 1)
            out.write(piece)
            result.written += len(piece)
            if result.written > cap:
                result.over_cap = True
                return result
            if dec.eof:
                result.streams += 1
                pending = dec.unused_data or stream.read(_CHUNK)
                if not pending:
                    return result
                if not pending.startswith(follower):
                    rest = pending + stream.read()
                    result.trailing = len(rest.rstrip(b"\x00"))
                    return result
                dec = factory()
    except _DAMAGED as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def _zfile_start(stream: BinaryIO) -> int:
    """Where the zlib data of a joblib < 0.10 zfile begins (after "ZF", the hex length, maybe one space)."""
    stream.seek(_ZFILE_HEADER)
    return _ZFILE_HEADER + 1 if stream.read(1) == b" " else _ZFILE_HEADER


class CompressedScanner:
    """Compressed streams: the decompressed content, identified and scanned one level deeper."""

    name = "compressed"
    formats = frozenset({ModelFormat.COMPRESSED})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for the decompressed content, and for a stream that is damaged or expands past the limits."""
        limits = context.limits
        cap = int(min(limits.max_decompressed, max(size, 1) * limits.max_ratio))
        stream.seek(0)
        kind = compression(stream.read(8))
        if kind == "7z":
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
        if kind is None or kind not in _KINDS:
            return []  # identified as compressed by someone else's rules; nothing here reads it
        start = _zfile_start(stream) if kind == "joblib-zfile" else 0
        found: list[Finding] = []
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as out:
            result = _inflate(kind, stream, start, cast(BinaryIO, out), cap)
            found += _problems(kind, result, size, cap, location, nested=context.depth > 0)
            written = min(result.written, cap)
            out.truncate(written)
            out.seek(0)
            found += context.scan_member(cast(BinaryIO, out), written, f"{location}!decompressed")
        return found


def _problems(kind: str, result: _Inflated, size: int, cap: int, location: str, *, nested: bool) -> list[Finding]:
    found: list[Finding] = []
    if (result.error or result.truncated) and result.written == 0 and kind == "zlib":
        # Nothing decompresses: the first byte only looks like a header (joblib calls any file starting with "x"
        # zlib). The loader fails before reading anything, and the scanner's pickle reading of the raw bytes
        # covers a loader that does not decompress. Inside an archive, text that starts with "x" is common.
        return (
            []
            if nested
            else [
                scan_finding(
                    "archive.not-compressed",
                    Severity.INFO,
                    f"Starts like a {kind} stream but is not one",
                    f"{result.error or 'the input ends at once'}; no loader can decompress it.",
                    location,
                    remediation="Nothing to do unless this file should hold a model.",
                )
            ]
        )
    if result.error or result.truncated:
        what = result.error or "the input ends before the compressed stream does"
        found.append(
            scan_finding(
                "archive.corrupt",
                Severity.MEDIUM,
                f"{kind} stream cannot be decompressed to its end",
                f"Decompression stopped after {result.written:,} bytes: {what}. joblib unpickles while it "
                "decompresses, so what came before the damage runs on load; it was scanned, the rest cannot be.",
                location,
                evidence={"compression": kind, "decompressed": result.written, "error": what},
            )
        )
    if result.over_cap:
        found.append(
            scan_finding(
                "archive.decompression-limit",
                Severity.HIGH,
                "Compressed stream expands beyond the scan limit",
                f"More than {cap:,} bytes from {size:,} compressed: a decompression bomb, or too large to check.",
                location,
            )
        )
    if result.trailing:
        found.append(
            scan_finding(
                "archive.trailing-data",
                Severity.MEDIUM,
                "Bytes follow the compressed stream",
                f"{result.trailing:,} bytes after the last {kind} stream are not compressed data; loaders ignore or "
                "reject them, and benign files do not carry them.",
                location,
                remediation="Obtain the file again from its source; find out what the extra bytes are.",
            )
        )
    return found


COMPRESSED = CompressedScanner()
