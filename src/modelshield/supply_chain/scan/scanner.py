"""Scan model files for code that would run when they are loaded, without loading them.

    >>> from pathlib import Path
    >>> from modelshield.supply_chain.scan.scanner import scan_file
    >>> result = scan_file(Path("model.pt"))  # doctest: +SKIP
    >>> [f.id for f in result.findings]  # doctest: +SKIP

The format is identified from content at every level: a file, a member of a zip or tar archive, or a decompressed
stream is sniffed and dispatched again, down to :attr:`ScanLimits.max_depth`. Pickles (raw, inside PyTorch
archives, joblib files and NumPy object arrays) go through the static analyser; tensor payloads are never read.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import struct
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from modelshield.errors import FileFormatError
from modelshield.findings import Finding, OwaspMl, Severity
from modelshield.supply_chain.formats import FormatInfo, ModelFormat, identify_stream
from modelshield.supply_chain.scan.formats_checks import (
    Problem,
    gguf_problems,
    keras_config_problems,
    onnx_problems,
    safetensors_problems,
    saved_model_problems,
)
from modelshield.supply_chain.scan.interface import FileScan, ScanOptions
from modelshield.supply_chain.scan.pickle import PickleAnalysis, analyse_pickle, analyse_pickle_buffer
from modelshield.supply_chain.scan.policy import Verdict

__all__ = ["scan_file", "scan_stream"]

_ATLAS = ("AML.T0010.003", "AML.T0011.000")
_REMEDY_PICKLE = (
    "Do not load this file. Obtain the model from its publisher in a format that cannot run code (safetensors, "
    "ONNX, skops), or verify its signature; if you wrote it yourself, find out who changed it."
)
# What the standard library raises on archives that are damaged or built to confuse it.
_CORRUPT: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)

_CORRUPT_TAR: tuple[type[Exception], ...] = (tarfile.TarError, *_CORRUPT)
_CORRUPT_STREAM: tuple[type[Exception], ...] = (lzma.LZMAError, *_CORRUPT)

_ARCHIVES = {
    ModelFormat.PYTORCH_ZIP,
    ModelFormat.TORCHSCRIPT,
    ModelFormat.PYTORCH_EXPORT,
    ModelFormat.SKOPS,
    ModelFormat.NUMPY_NPZ,
    ModelFormat.KERAS,
    ModelFormat.ZIP,
}


@dataclass
class _Context:
    options: ScanOptions
    findings: list[Finding] = field(default_factory=list)

    def add(
        self,
        rule: str,
        severity: Severity,
        title: str,
        description: str,
        location: str,
        *,
        evidence: dict[str, object] | None = None,
        remediation: str = _REMEDY_PICKLE,
    ) -> None:
        self.findings.append(
            Finding(
                id=rule,
                check="supply",
                title=title,
                severity=severity,
                description=description,
                remediation=remediation,
                owasp=OwaspMl.ML06,
                atlas=_ATLAS,
                evidence=evidence or {},  # type: ignore[arg-type]
                location=location,
            )
        )


def _pickle_findings(ctx: _Context, analysis: PickleAnalysis, location: str, base: int) -> None:
    grouped: dict[tuple[str, Verdict], list[int]] = defaultdict(list)
    invoked: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for ref in analysis.imports:
        key = (ref.qualname, ref.classification.verdict)
        grouped[key].append(base + ref.offset)
        reasons[ref.qualname] = ref.classification.reason
        if ref.invoked_by:
            invoked.setdefault(ref.qualname, ref.invoked_by)
    for (qualname, verdict), offsets in grouped.items():
        evidence = {"callable": qualname, "offsets": offsets[:20], "reason": reasons[qualname]}
        how = invoked.get(qualname)
        if verdict is Verdict.DANGEROUS:
            ctx.add(
                "pickle.dangerous-call" if how else "pickle.dangerous-import",
                Severity.CRITICAL if how else Severity.HIGH,
                f"Loading runs {qualname}" if how else f"Pickle imports {qualname}",
                f"The pickle {'calls' if how else 'imports'} {qualname} ({reasons[qualname]})"
                + (f" through {how}" if how else "")
                + f" at byte {offsets[0]}.",
                location,
                evidence={**evidence, "opcode": how},
            )
        elif verdict is Verdict.UNKNOWN:
            ctx.add(
                "pickle.unknown-import",
                Severity.MEDIUM,
                f"Pickle imports {qualname}, which is not on the allow list",
                f"{qualname} ({reasons[qualname]}) is imported at byte {offsets[0]}"
                + (f" and called through {how}." if how else "."),
                location,
                evidence={**evidence, "opcode": how},
                remediation="Review what this callable does; allow it in a scan policy if it only rebuilds data.",
            )
    for offset in analysis.dynamic_imports:
        ctx.add(
            "pickle.dynamic-import",
            Severity.CRITICAL,
            "Pickle imports a callable whose name it computes",
            f"STACK_GLOBAL at byte {base + offset} takes a module or name built at load time, not a constant: "
            "a static reader cannot know what it imports, and benign files never do this.",
            location,
            evidence={"offset": base + offset},
        )
    for offset in analysis.builds_on_callables:
        ctx.add(
            "pickle.build-on-callable",
            Severity.HIGH,
            "Pickle sets attributes on an imported class or function",
            f"BUILD at byte {base + offset} applies state to a callable itself, not to an object it made: this "
            "rewrites code-bearing attributes at load time, and benign files never do it.",
            location,
            evidence={"offset": base + offset},
        )
    if analysis.limit:
        ctx.add(
            "pickle.limit",
            Severity.HIGH,
            "Pickle too large to analyse completely",
            f"The analysis stopped: {analysis.limit}. What lies beyond was not examined.",
            location,
        )
    if analysis.error:
        ctx.add(
            "pickle.parse-error",
            Severity.MEDIUM,
            "Pickle stream is malformed",
            f"Parsing stopped at byte {base + (analysis.error_offset or 0)}: {analysis.error}. A loader may still "
            "execute what precedes it, and a lenient one what follows.",
            location,
            evidence={"offset": base + (analysis.error_offset or 0), "error": analysis.error},
        )
    if analysis.trailing_names:
        ctx.add(
            "pickle.payload-after-error",
            Severity.HIGH,
            "Dangerous names follow a pickle parse error",
            f"The bytes after the parse error name {', '.join(analysis.trailing_names[:5])}.",
            location,
            evidence={"names": list(analysis.trailing_names[:20])},
        )


_DEFAULT_OPTIONS = ScanOptions()
_IN_MEMORY = 64 * 1024 * 1024  # pickles up to this size are read whole
_READ_WHOLE = 1024 * 1024  # files up to this size are read in one call


def _scan_pickle(ctx: _Context, fh: BinaryIO, size: int, location: str, start: int = 0) -> None:
    fh.seek(start)
    policy, limits = ctx.options.policy, ctx.options.limits.pickle
    if size - start <= _IN_MEMORY:  # archive members and small files; large ones (joblib arrays) are memory-mapped
        analysis = analyse_pickle_buffer(fh.read(size - start), policy=policy, limits=limits)
    else:
        analysis = analyse_pickle(fh, policy=policy, limits=limits, size=size - start)
    _pickle_findings(ctx, analysis, location, start)


def _scan_npy(ctx: _Context, fh: BinaryIO, size: int, location: str) -> None:
    fh.seek(0)
    head = fh.read(12)
    major = head[6] if len(head) > 6 else 0
    if major == 1:
        (header_len,) = struct.unpack("<H", head[8:10])
        start = 10 + header_len
    else:
        (header_len,) = struct.unpack("<I", head[8:12])
        start = 12 + header_len
    fh.seek(0)
    header = fh.read(start)
    if b"|O" in header:  # an object array: its payload is a pickle
        _scan_pickle(ctx, fh, size, location, start)


def _zip_members(ctx: _Context, zf: zipfile.ZipFile, fh: BinaryIO, location: str) -> Iterable[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > ctx.options.limits.max_members:
        ctx.add(
            "archive.limit",
            Severity.HIGH,
            "Archive has too many members to scan",
            f"{len(infos):,} members, more than the limit of {ctx.options.limits.max_members:,}.",
            location,
        )
        infos = infos[: ctx.options.limits.max_members]
    for info in infos:
        member = f"{location}!{info.filename}"
        if info.flag_bits & 0x1:
            ctx.add(
                "archive.encrypted-member",
                Severity.HIGH,
                "Encrypted archive member cannot be inspected",
                f"{info.filename} is encrypted; loaders that ignore the flag read it anyway.",
                member,
            )
            continue
        fh.seek(max(0, info.header_offset))
        local = fh.read(30)
        if len(local) == 30 and local[:4] == b"PK\x03\x04":
            name_len = struct.unpack("<H", local[26:28])[0]
            local_name = fh.read(name_len).decode("utf-8", "replace")
            if local_name != info.filename:
                ctx.add(
                    "archive.name-mismatch",
                    Severity.HIGH,
                    "Archive member has two different names",
                    f"The central directory calls it {info.filename!r}, its local header {local_name!r}: readers "
                    "that trust different headers see different files.",
                    member,
                    evidence={"central": info.filename, "local": local_name},
                )
        if info.filename.startswith("/") or ".." in Path(info.filename).parts:
            ctx.add(
                "archive.path-traversal",
                Severity.HIGH,
                "Archive member escapes the extraction directory",
                f"{info.filename!r} points outside the folder it would be extracted to.",
                member,
            )
        if not info.is_dir():
            yield info


def _report(ctx: _Context, problems: list[Problem], location: str) -> None:
    for rule, severity, title, description in problems:
        ctx.add(rule, severity, title, description, location)


_H5_CHUNK = 16 * 1024 * 1024


def _h5_config_text(fh: BinaryIO) -> str:
    """The JSON-looking parts of an HDF5 file (Keras keeps its model config there as a string attribute)."""
    fh.seek(0)
    found: list[str] = []
    tail = b""
    while chunk := fh.read(_H5_CHUNK):
        data = tail + chunk
        found += [m.decode("latin-1") for m in re.findall(rb'"(?:class_name|module)"\s*:\s*"[^"]{0,256}"', data)]
        tail = data[-512:]
    return "\n".join(dict.fromkeys(found))


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


def _scan_zip(ctx: _Context, fh: BinaryIO, location: str, depth: int, *, keras: bool = False) -> None:
    fh.seek(0)
    try:
        zf = zipfile.ZipFile(fh)
    except _CORRUPT as exc:
        ctx.add("archive.corrupt", Severity.MEDIUM, "Zip archive cannot be read", str(exc), location)
        return
    with zf:
        for info in list(_zip_members(ctx, zf, fh, location)):
            member = f"{location}!{info.filename}"
            try:
                if keras and info.filename == "config.json" and info.file_size < 64 * 1024 * 1024:
                    _report(ctx, keras_config_problems(zf.read(info).decode("utf-8", "replace")), member)
                    continue
                with zf.open(info) as inner:
                    _dispatch(ctx, cast(BinaryIO, inner), info.file_size, member, depth + 1)
            except zipfile.BadZipFile as exc:
                # Readers that skip the zip module's checks (PyTorch's among them) still load the bytes: report
                # what is wrong, then scan the member as such a reader would see it.
                if "CRC" in str(exc):
                    ctx.add(
                        "archive.bad-crc",
                        Severity.HIGH,
                        "Archive member fails its CRC check",
                        f"{info.filename} was changed after it was packed; loaders that skip the check read it.",
                        member,
                    )
                elif "differ" not in str(exc):  # name mismatches are reported by _zip_members already
                    ctx.add(
                        "archive.corrupt-member", Severity.MEDIUM, "Archive member cannot be read", str(exc), member
                    )
                raw = _raw_member(fh, info, ctx.options.limits.max_decompressed)
                if raw is not None:
                    _dispatch(ctx, cast(BinaryIO, io.BytesIO(raw)), len(raw), member, depth + 1)
            except _CORRUPT as exc:
                ctx.add(
                    "archive.corrupt-member",
                    Severity.MEDIUM,
                    "Archive member cannot be read",
                    f"{info.filename}: {exc}. A loader that skips the check may read it anyway.",
                    member,
                )


def _scan_tar(ctx: _Context, fh: BinaryIO, location: str, depth: int) -> None:
    fh.seek(0)
    try:
        with tarfile.open(fileobj=fh) as tf:
            for count, info in enumerate(tf):
                if count >= ctx.options.limits.max_members:
                    ctx.add("archive.limit", Severity.HIGH, "Archive has too many members to scan", "", location)
                    break
                if not info.isfile():
                    continue
                inner = tf.extractfile(info)
                if inner is not None:
                    _dispatch(ctx, cast(BinaryIO, inner), info.size, f"{location}!{info.name}", depth + 1)
    except _CORRUPT_TAR as exc:
        ctx.add("archive.corrupt", Severity.MEDIUM, "Tar archive cannot be read", str(exc), location)


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


def _scan_compressed(ctx: _Context, fh: BinaryIO, size: int, location: str, depth: int) -> None:
    limits = ctx.options.limits
    cap = int(min(limits.max_decompressed, max(size, 1) * limits.max_ratio))
    fh.seek(0)
    head = fh.read(8)
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        ctx.add(
            "archive.uninspected",
            Severity.HIGH,
            "7z archive: contents not inspected",
            "modelshield does not unpack 7z; no model loader reads it directly, and a pickle inside cannot be "
            "checked. Treat it as unverified.",
            location,
            remediation="Unpack it in a sandbox and scan the contents, or obtain the model in a standard format.",
        )
        return
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as out:
        written = 0
        try:
            stream = _decompressor(head, fh)
            if stream is not None:
                with stream:
                    while chunk := stream.read(1 << 20):
                        written += len(chunk)
                        if written > cap:
                            break
                        out.write(chunk)
            else:  # zlib, as joblib writes it
                fh.seek(0)
                inflater = zlib.decompressobj()
                while chunk := fh.read(1 << 20):
                    piece = inflater.decompress(chunk, cap - written + 1)
                    written += len(piece)
                    out.write(piece)
                    if written > cap:
                        break
        except _CORRUPT_STREAM as exc:
            ctx.add("archive.corrupt", Severity.MEDIUM, "Compressed stream cannot be read", str(exc), location)
        if written > cap:
            ctx.add(
                "archive.decompression-limit",
                Severity.HIGH,
                "Compressed stream expands beyond the scan limit",
                f"More than {cap:,} bytes from {size:,} compressed: a decompression bomb, or too large to check.",
                location,
            )
        _dispatch(ctx, cast(BinaryIO, out), min(written, cap), f"{location}!decompressed", depth + 1)


def _dispatch(
    ctx: _Context, fh: BinaryIO, size: int, location: str, depth: int, info: FormatInfo | None = None
) -> None:
    if depth > ctx.options.limits.max_depth:
        ctx.add(
            "archive.depth-limit",
            Severity.HIGH,
            "Archives nested too deep to scan",
            f"More than {ctx.options.limits.max_depth} levels of nesting.",
            location,
        )
        return
    info = info or identify_stream(fh, size)
    fmt = info.format
    if fmt is ModelFormat.PICKLE:
        _scan_pickle(ctx, fh, size, location)
    elif fmt is ModelFormat.NUMPY:
        _scan_npy(ctx, fh, size, location)
    elif fmt in _ARCHIVES:
        _scan_zip(ctx, fh, location, depth, keras=fmt is ModelFormat.KERAS)
    elif fmt in (ModelFormat.TAR, ModelFormat.PYTORCH_LEGACY_TAR):
        _scan_tar(ctx, fh, location, depth)
    elif fmt is ModelFormat.COMPRESSED:
        _scan_compressed(ctx, fh, size, location, depth)
    elif fmt is ModelFormat.SAFETENSORS:
        _report(ctx, safetensors_problems(fh, size), location)
    elif fmt is ModelFormat.GGUF:
        _report(ctx, gguf_problems(fh, size), location)
    elif fmt is ModelFormat.ONNX:
        _report(ctx, onnx_problems(fh, size), location)
    elif fmt is ModelFormat.TF_SAVEDMODEL:
        _report(ctx, saved_model_problems(fh, size), location)
    elif fmt is ModelFormat.HDF5:
        _report(ctx, keras_config_problems(_h5_config_text(fh)), location)
    elif fmt is ModelFormat.UNKNOWN and depth == 0:  # inside archives, raw tensor data is the norm
        ctx.add(
            "format.unknown",
            Severity.INFO,
            "Format not recognised",
            f"The content matches no model format modelshield knows ({info.detail}); it was not analysed.",
            location,
            remediation="If this is a model file, report its format so that it can be supported.",
        )


def scan_stream(fh: BinaryIO, size: int, *, location: str, options: ScanOptions | None = None) -> list[Finding]:
    """Findings for the seekable stream ``fh`` of ``size`` bytes, reported under ``location``."""
    ctx = _Context(options or _DEFAULT_OPTIONS)
    _dispatch(ctx, fh, size, location, 0)
    return ctx.findings


def scan_file(path: str | Path, options: ScanOptions | None = None) -> FileScan:
    """Scan one file. Raises :class:`FileFormatError` when it cannot be opened."""
    name = os.fspath(path)
    t0 = time.perf_counter()
    try:
        size = os.stat(name).st_size
        with open(name, "rb") as file:
            # Small files are read once, then parsed from memory; large ones are read only where needed.
            fh = cast(BinaryIO, io.BytesIO(file.read())) if size <= _READ_WHOLE else file
            info = identify_stream(fh, size)
            ctx = _Context(options or _DEFAULT_OPTIONS)
            _dispatch(ctx, fh, size, name, 0, info)
    except FileNotFoundError as exc:
        raise FileFormatError(f"{path} does not exist.", remedy="Check the path.") from exc
    except IsADirectoryError as exc:
        raise FileFormatError(
            f"{path} is a directory.", remedy="Scan its files (pass the directory to scan_path)."
        ) from exc
    except OSError as exc:
        raise FileFormatError(f"Cannot read {path}: {exc.strerror}.") from exc
    return FileScan(
        path=name,
        format=info.format.value,
        size=size,
        findings=tuple(ctx.findings),
        duration_s=time.perf_counter() - t0,
    )
