"""Zip archives and the formats built on them: PyTorch checkpoints, TorchScript, ``.pt2``, skops, ``.npz``.

    >>> import io, zipfile
    >>> from modelshield.supply_chain.scan.formats.zip import ZIP
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as zf:
    ...     zf.writestr("../evil.txt", "x")
    >>> [f.id for f in ZIP.scan(buffer, buffer.tell(), "a.zip", Scanner().context())]
    ['archive.path-traversal']

Every member is identified by content and scanned one level deeper (its name proves nothing). The archive itself
is checked for what makes readers disagree: encrypted members, local and central names that differ, CRC
failures (a member that fails its CRC is still scanned as a reader that skips the check would see it), and names
that escape the extraction folder.
"""

from __future__ import annotations

import ast
import io
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

from modelshield.findings import Finding, JSONValue, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.formats.pickle import pickle_findings
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding
from modelshield.supply_chain.scan.policy import TorchScriptClassifier

__all__ = ["CORRUPT", "ZIP", "MemberHandler", "ZipScanner", "zip_findings"]

#: What the standard library raises on archives that are damaged or built to confuse it.
CORRUPT: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)

#: A special reader for some members (Keras' ``config.json``): the findings for the member, or None to scan it
#: like any other member. It is given the open archive, the member and the member's location.
MemberHandler = Callable[[zipfile.ZipFile, zipfile.ZipInfo, str], list[Finding] | None]


def _members(
    found: list[Finding], zf: zipfile.ZipFile, fh: BinaryIO, location: str, context: ScanContext
) -> Iterator[zipfile.ZipInfo]:
    limit = context.limits.max_members
    infos = zf.infolist()
    if len(infos) > limit:
        found.append(
            scan_finding(
                "archive.limit",
                Severity.HIGH,
                "Archive has too many members to scan",
                f"{len(infos):,} members, more than the limit of {limit:,}.",
                location,
            )
        )
        infos = infos[:limit]
    seen: dict[str, str] = {}
    for info in infos:
        member = f"{location}!{info.filename}"
        if info.flag_bits & 0x1:
            found.append(
                scan_finding(
                    "archive.encrypted-member",
                    Severity.HIGH,
                    "Encrypted archive member cannot be inspected",
                    f"{info.filename} is encrypted; loaders that ignore the flag read it anyway.",
                    member,
                )
            )
            continue
        fh.seek(max(0, info.header_offset))
        local = fh.read(30)
        if len(local) == 30 and local[:4] == b"PK\x03\x04":
            name_len = struct.unpack("<H", local[26:28])[0]
            local_name = fh.read(name_len).decode("utf-8", "replace")
            if local_name != info.filename:
                found.append(
                    scan_finding(
                        "archive.name-mismatch",
                        Severity.HIGH,
                        "Archive member has two different names",
                        f"The central directory calls it {info.filename!r}, its local header {local_name!r}: "
                        "readers that trust different headers see different files.",
                        member,
                        evidence={"central": info.filename, "local": local_name},
                    )
                )
        if info.filename.startswith("/") or ".." in Path(info.filename).parts:
            found.append(
                scan_finding(
                    "archive.path-traversal",
                    Severity.HIGH,
                    "Archive member escapes the extraction directory",
                    f"{info.filename!r} points outside the folder it would be extracted to.",
                    member,
                )
            )
        if context.info.format in _TORCH_FORMATS:
            folded = info.filename.lower()
            if folded in seen:
                found.append(
                    scan_finding(
                        "archive.case-collision",
                        Severity.HIGH,
                        "Two archive members differ only in case",
                        f"{seen[folded]!r} and {info.filename!r}: PyTorch's reader ignores case, so which one it "
                        "loads is up to the order of its index, not the name.",
                        member,
                    )
                )
            seen.setdefault(folded, info.filename)
        if not info.filename.endswith("/"):  # ZipInfo.is_dir() fails on an empty name (a NUL byte cuts it short)
            yield info


def _raw_member(fh: BinaryIO, info: zipfile.ZipInfo, limit: int) -> bytes | None:
    """A member's bytes read past the zip module (no CRC check), for stored and deflated members."""
    if info.compress_size > limit:
        return None
    fh.seek(max(0, info.header_offset))
    local = fh.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        return None
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    fh.seek(info.header_offset + 30 + name_len + extra_len)
    data = fh.read(info.compress_size)
    if info.compress_type == zipfile.ZIP_STORED:
        return data
    if info.compress_type == zipfile.ZIP_DEFLATED:
        try:
            return zlib.decompressobj(-15).decompress(data, limit)
        except zlib.error:
            return None
    return None


_TORCH_FORMATS = frozenset({ModelFormat.PYTORCH_ZIP, ModelFormat.TORCHSCRIPT, ModelFormat.PYTORCH_EXPORT})
# TorchScript code calls operators by namespace; these ship with torch itself. Others need a native library.
_TORCHSCRIPT_NAMESPACES = frozenset({"aten", "prim", "quantized", "_quantized", "profiler", "_caffe2", "cuda"})
# Names of operators and functions that read or write files, or load libraries, when the code runs; torch.jit.load
# runs a class's __setstate__ while it loads. Any mention is judged, called or not, however it is spelled.
_TORCHSCRIPT_FILE_OPS = frozenset(
    {"from_file", "save", "load", "_load_for_mobile", "_save_for_mobile", "load_library", "_load_from_file"}
)
_MAX_CODE = 16 * 1024 * 1024
_SPOOL = 64 * 1024 * 1024  # members up to this size are decompressed into memory, larger ones into a temporary file


def _unpickled_by_loader(fmt: ModelFormat, name: str) -> bool:
    """Whether the loader of an archive of format ``fmt`` unpickles member ``name`` whatever its content: PyTorch
    reads ``data.pkl`` (TorchScript also ``constants.pkl`` and its ``.debug_pkl`` files) with no header check."""
    if fmt not in _TORCH_FORMATS:
        return False
    return name.lower().endswith((".pkl", ".debug_pkl"))  # PyTorch's reader finds records ignoring case


def _dotted(node: ast.AST) -> list[str]:
    """``torch.ops.aten.add`` as ``["torch", "ops", "aten", "add"]`` (the parts that are plain names)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


def _torchscript_code(text: str, location: str) -> list[Finding]:
    """Operators from custom libraries, and file access, in a TorchScript source member, judged on its syntax tree
    (TorchScript is Python syntax): parentheses, line continuations and aliases do not hide a name."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return [
            scan_finding(
                "torchscript.unparsed",
                Severity.HIGH,
                "TorchScript code cannot be parsed",
                f"The code does not parse as Python ({exc}); torch.jit.load compiles and runs it, and the scanner "
                "cannot judge what it does.",
                location,
            )
        ]
    custom: set[str] = set()
    files: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _TORCHSCRIPT_FILE_OPS:
            files.add(node.attr)
        elif isinstance(node, ast.Name) and node.id in _TORCHSCRIPT_FILE_OPS:
            files.add(node.id)
        if isinstance(node, ast.Attribute):
            parts = _dotted(node)
            for i, part in enumerate(parts[:-2]):
                if part in {"ops", "classes"} and parts[i + 1] not in _TORCHSCRIPT_NAMESPACES:
                    custom.add(f"{parts[i + 1]}.{parts[i + 2]}")
    found: list[Finding] = []
    if custom:
        found.append(
            scan_finding(
                "torchscript.custom-operator",
                Severity.MEDIUM,
                "TorchScript code calls operators from outside PyTorch",
                f"{', '.join(sorted(custom)[:10])}: these need a native library loaded into the process, whose code "
                "runs with the model's.",
                location,
                evidence={"operators": list[JSONValue](sorted(custom)[:50])},
                remediation="Find out which library provides these operators, and load the model only with it.",
            )
        )
    if files:
        found.append(
            scan_finding(
                "torchscript.file-access",
                Severity.HIGH,
                "TorchScript code reads or writes files",
                f"The code names {', '.join(sorted(files))}, which touch the file system of whoever loads or runs "
                "the model (a class's __setstate__ runs while torch.jit.load reads it).",
                location,
                evidence={"operators": list[JSONValue](sorted(files))},
            )
        )
    return found


def _member_findings(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, stream: BinaryIO, member: str, context: ScanContext
) -> list[Finding]:
    """A member as the archive's loader reads it: forced through the pickle analysis when the loader unpickles it,
    TorchScript code judged as code, tensor storages left alone, anything else identified by content.

    The member is decompressed here, into memory or a temporary file, before anything looks at it: a CRC failure or
    a damaged stream then surfaces in the zip scanner, which reads the bytes again as a lenient loader would,
    instead of inside the scanner of the member's format."""
    fmt = context.info.format
    if _raw_storage(fmt, info.filename):
        return []
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as spool:
        with zf.open(info) as inner:
            written = 0
            while chunk := inner.read(1 << 20):
                written += len(chunk)
                if written > context.limits.max_decompressed:
                    return [_too_large(info, member, context.limits.max_decompressed)]
                spool.write(chunk)
        spool.seek(0)
        handle = cast(BinaryIO, spool)
        if _unpickled_by_loader(fmt, info.filename):
            classifier = TorchScriptClassifier(context.classifier) if fmt is ModelFormat.TORCHSCRIPT else None
            return pickle_findings(handle, written, member, context, classifier=classifier)
        folded = info.filename.lower()
        if fmt is ModelFormat.TORCHSCRIPT and folded.endswith(".py") and "/code/" in f"/{folded}":
            return _torchscript_code(handle.read(_MAX_CODE).decode("utf-8", "replace"), member)
        return context.scan_member(handle, written, member)


def _too_large(info: zipfile.ZipInfo, member: str, limit: int) -> Finding:
    return scan_finding(
        "archive.decompression-limit",
        Severity.HIGH,
        "Archive member expands beyond the scan limit",
        f"{info.filename} decompresses to more than {limit:,} bytes: a decompression bomb, or too large to check.",
        member,
    )


def _raw_storage(fmt: ModelFormat, name: str) -> bool:
    """Whether ``name`` is a tensor storage that PyTorch reads as raw bytes (``archive/data/0``): its content is
    never interpreted, so sniffing it would only find patterns in numbers."""
    parts = name.lower().split("/")
    return fmt in {ModelFormat.PYTORCH_ZIP, ModelFormat.TORCHSCRIPT} and len(parts) == 3 and parts[1] == "data"


def zip_findings(
    stream: BinaryIO, location: str, context: ScanContext, *, handler: MemberHandler | None = None
) -> list[Finding]:
    """The findings for a zip archive and, one level deeper, for each of its members."""
    found: list[Finding] = []
    stream.seek(0)
    try:
        zf = zipfile.ZipFile(stream)
    except CORRUPT as exc:
        return [
            scan_finding(
                "archive.corrupt",
                Severity.HIGH,
                "Zip archive cannot be read",
                f"{exc}. Its members were not examined, and a reader more lenient than Python's zipfile may still "
                "load them.",
                location,
            )
        ]
    with zf:
        for info in list(_members(found, zf, stream, location, context)):
            member = f"{location}!{info.filename}"
            unpickled = _unpickled_by_loader(context.info.format, info.filename)
            try:
                special = handler(zf, info, member) if handler is not None else None
                if special is not None:
                    found += special
                    continue
                found += _member_findings(zf, info, stream, member, context)
            except zipfile.BadZipFile as exc:
                # Readers that skip the zip module's checks (PyTorch's among them) still load the bytes: report
                # what is wrong, then scan the member as such a reader would see it.
                if "CRC" in str(exc):
                    found.append(
                        scan_finding(
                            "archive.bad-crc",
                            Severity.HIGH,
                            "Archive member fails its CRC check",
                            f"{info.filename} was changed after it was packed; loaders that skip the check read it.",
                            member,
                        )
                    )
                elif "differ" not in str(exc):  # name mismatches are reported by _members already
                    found.append(_unreadable(info, member, str(exc), unpickled=unpickled))
                raw = _raw_member(stream, info, context.limits.max_decompressed)
                if raw is not None:
                    if unpickled:
                        found += pickle_findings(cast(BinaryIO, io.BytesIO(raw)), len(raw), member, context)
                    else:
                        found += context.scan_member(cast(BinaryIO, io.BytesIO(raw)), len(raw), member)
            except CORRUPT as exc:
                found.append(_unreadable(info, member, str(exc), unpickled=unpickled))
    return found


def _unreadable(info: zipfile.ZipInfo, member: str, error: str, *, unpickled: bool) -> Finding:
    """A member the zip module cannot read; high when the archive's loader would unpickle it anyway."""
    return scan_finding(
        "archive.corrupt-member",
        Severity.HIGH if unpickled else Severity.MEDIUM,
        "Archive member cannot be read" + (" but its loader unpickles it" if unpickled else ""),
        f"{info.filename}: {error}. A loader that skips the check may read it anyway"
        + (", and this is the member the model's loader unpickles." if unpickled else "."),
        member,
    )


class ZipScanner:
    """Zip archives of any kind but Keras (:mod:`~modelshield.supply_chain.scan.formats.keras`)."""

    name = "zip"
    formats = frozenset(
        {
            ModelFormat.PYTORCH_ZIP,
            ModelFormat.TORCHSCRIPT,
            ModelFormat.PYTORCH_EXPORT,
            ModelFormat.SKOPS,
            ModelFormat.NUMPY_NPZ,
            ModelFormat.ZIP,
        }
    )

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for the archive's structure and for every member, scanned by content."""
        return zip_findings(stream, location, context)


ZIP = ZipScanner()
