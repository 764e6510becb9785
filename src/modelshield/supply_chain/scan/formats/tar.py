"""Tar archives, legacy PyTorch checkpoints among them: read as ``tarfile`` reads them, every member scanned.

    >>> import io, pickle, tarfile
    >>> from modelshield.supply_chain.scan.formats.tar import TAR
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> buffer, data = io.BytesIO(), pickle.dumps([1, 2])
    >>> with tarfile.open(fileobj=buffer, mode="w") as tf:
    ...     info = tarfile.TarInfo("pickle"); info.size = len(data); tf.addfile(info, io.BytesIO(data))
    >>> TAR.scan(buffer, buffer.tell(), "legacy.tar", Scanner().context())
    []

Members are never extracted to disk. The members that ``torch.load`` reads from a legacy checkpoint (``pickle``,
``storages``, ``tensors``; the last of each name, after ``os.path.normpath``, as ``TarFile.getmember`` picks it)
are walked as torch walks them, pickle by pickle across the raw tensor data, whatever their content looks like;
where the walk cannot follow torch, the rest is scanned as a pickle and the member is reported high. Any other
member is identified by content. Names and link targets that leave the extraction folder, links that stand in
for a torch member, and device files are reported. ``torch.load`` falls back to unpickling the whole file when
``tarfile`` rejects it, so the file itself is also read as a pickle.
"""

from __future__ import annotations

import io
import os
import pickletools
import struct
import tarfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import BinaryIO, cast

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import LEGACY_TORCH_MEMBERS, ModelFormat, compression
from modelshield.supply_chain.scan.formats.pickle import pickle_findings
from modelshield.supply_chain.scan.formats.zip import CORRUPT
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["TAR", "TarScanner"]

_CORRUPT_TAR: tuple[type[Exception], ...] = (tarfile.TarError, OverflowError, UnicodeError, *CORRUPT)
_MAX_ARG = 64 * 1024 * 1024  # one opcode argument read while walking a legacy member's pickles
_MAX_OPS = 1_000_000  # opcodes per pickle in that walk
# Pickle findings that say the whole file, read as a pickle, imports something (torch.load's fallback).
_IMPORT_FINDINGS = frozenset(
    {
        "pickle.dangerous-call",
        "pickle.dangerous-import",
        "pickle.unknown-import",
        "pickle.dynamic-import",
        "pickle.build-on-callable",
    }
)
# Element sizes of the legacy storage classes (torch.<Name>Storage), by name.
_ELEMENT_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8, "QUInt8Storage": 1, "QInt8Storage": 1,
    "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
}  # fmt: skip


class _UnfollowableError(Exception):
    """The legacy walk cannot follow torch's reading from here."""


class _Capped:
    """A reader for ``pickletools.genops`` that refuses opcode arguments larger than ``_MAX_ARG``."""

    def __init__(self, fh: BinaryIO, end: int) -> None:
        self._fh, self._end = fh, end

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > _MAX_ARG:
            raise _UnfollowableError(f"an opcode argument of {n:,} bytes")
        return self._fh.read(max(0, min(n, self._end - self._fh.tell())))

    def readline(self) -> bytes:
        return self._fh.readline(max(0, min(_MAX_ARG, self._end - self._fh.tell())))

    def tell(self) -> int:
        return self._fh.tell()


def _pickle_at(fh: BinaryIO, start: int, end: int) -> tuple[int, list[object]]:
    """The end of the pickle at ``start`` and the constant arguments of its opcodes, by pickletools' grammar."""
    fh.seek(start)
    args: list[object] = []
    try:
        for count, (op, arg, _pos) in enumerate(pickletools.genops(cast(BinaryIO, _Capped(fh, end)))):
            if count > _MAX_OPS:
                raise _UnfollowableError("too many opcodes")
            if op.name == "STOP":
                return fh.tell(), args
            if op.name not in ("PROTO", "FRAME"):
                args.append(arg)
    except _UnfollowableError:
        raise
    except Exception as exc:  # pickletools raises ValueError and others on bytes it cannot decode
        raise _UnfollowableError(f"no pickle at byte {start}: {exc}") from None
    raise _UnfollowableError(f"the pickle at byte {start} has no STOP")


def _count(args: list[object]) -> int:
    """The integer that a pickle of a single integer holds (torch's counts of storages and tensors)."""
    ints = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
    if len(args) != 1 or len(ints) != 1 or ints[0] < 0:
        raise _UnfollowableError(f"a count that is not a plain integer ({args[:4]!r})")
    return ints[0]


def _element_size(args: list[object]) -> int:
    """The element size of the storage type named in a ``(key, location, storage_type)`` pickle."""
    names = [a.split()[-1] for a in args if isinstance(a, str) and a.split() and a.split()[-1] in _ELEMENT_SIZES]
    if not names:
        raise _UnfollowableError("a storage of a type torch's legacy format does not define")
    return _ELEMENT_SIZES[names[-1]]


def _legacy_spans(member: str, fh: BinaryIO, size: int) -> Iterator[tuple[int, int]]:
    """The pickles of a legacy ``storages`` or ``tensors`` member, in the order torch reads them."""
    start = 0
    end, args = _pickle_at(fh, start, size)
    yield start, end
    for _ in range(_count(args)):
        start = end
        end, args = _pickle_at(fh, start, size)
        yield start, end
        fh.seek(end)
        if member == "storages":  # int64 element count, then the raw elements
            raw = fh.read(8)
            if len(raw) != 8:
                raise _UnfollowableError("storage data is truncated")
            (count,) = struct.unpack("<q", raw)
            end += 8 + count * _element_size(args)
        else:  # int32 ndim, 4 bytes of padding, sizes, strides, storage offset
            raw = fh.read(4)
            if len(raw) != 4:
                raise _UnfollowableError("tensor metadata is truncated")
            (ndim,) = struct.unpack("<i", raw)
            if ndim < 0:
                raise _UnfollowableError(f"a tensor of {ndim} dimensions")
            end += 8 + 16 * ndim + 8
        if not 0 <= end <= size:
            raise _UnfollowableError("tensor data runs past the end of the member")
    if member == "storages":  # the storage views
        start = end
        end, _args = _pickle_at(fh, start, size)
        yield start, end


def _legacy_member(member: str, fh: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
    """Findings for a member that torch.load unpickles, read as torch reads it."""
    if member == "pickle":
        return pickle_findings(fh, size, location, context)
    found: list[Finding] = []
    last = 0
    try:
        for start, end in _legacy_spans(member, fh, size):
            found += pickle_findings(fh, end, location, context, start)
            last = end
    except _UnfollowableError as exc:
        found.append(
            scan_finding(
                "tar.legacy-unfollowed",
                Severity.HIGH,
                f"Legacy PyTorch {member!r} member cannot be read as torch reads it",
                f"At byte {last}: {exc}. torch.load unpickles this member; the rest of it was scanned as a pickle.",
                location,
            )
        )
        if last < size:
            found += pickle_findings(fh, size, location, context, last)
    return found


def _escapes(name: str) -> bool:
    return name.startswith(("/", "\\")) or ".." in PurePosixPath(name.replace("\\", "/")).parts


class TarScanner:
    """Tar archives and legacy (pre-1.6) PyTorch checkpoints."""

    name = "tar"
    formats = frozenset({ModelFormat.TAR, ModelFormat.PYTORCH_LEGACY_TAR})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for the archive's names and links and for every regular member (up to the member limit)."""
        found = self._as_whole_file(stream, size, location, context)
        stream.seek(0)
        try:
            tf = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115 - closed by the with below
        except _CORRUPT_TAR as exc:
            found.append(
                scan_finding("archive.corrupt", Severity.MEDIUM, "Tar archive cannot be read", str(exc), location)
            )
            return found
        with tf:
            infos, error = self._infos(tf, context)
            if error:
                found.append(
                    scan_finding(
                        "archive.corrupt",
                        Severity.HIGH if len(infos) >= context.limits.max_members else Severity.MEDIUM,
                        "Tar archive cannot be read to its end",
                        error,
                        location,
                    )
                )
            legacy = {os.path.normpath(i.name): i for i in infos if os.path.normpath(i.name) in LEGACY_TORCH_MEMBERS}
            for info in infos:
                found += self._member(tf, info, legacy, location, context)
        return found

    @staticmethod
    def _infos(tf: tarfile.TarFile, context: ScanContext) -> tuple[list[tarfile.TarInfo], str | None]:
        infos: list[tarfile.TarInfo] = []
        try:
            for info in tf:
                if len(infos) >= context.limits.max_members:
                    return infos, f"more than {context.limits.max_members:,} members; the rest were not scanned"
                infos.append(info)
        except _CORRUPT_TAR as exc:
            return infos, f"{type(exc).__name__}: {exc}"
        return infos, None

    @staticmethod
    def _as_whole_file(stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """The file read as a pickle (torch.load's fallback) and, when it starts like one, as joblib's compression."""
        found = [f for f in pickle_findings(stream, size, location, context) if f.id in _IMPORT_FINDINGS]
        stream.seek(0)
        head = stream.read(8)
        kind = compression(head)
        zlib_header = len(head) >= 2 and (head[0] * 256 + head[1]) % 31 == 0  # a zlib header, not just an "x"
        if kind and (kind != "zlib" or zlib_header):
            from modelshield.supply_chain.scan.formats.compressed import COMPRESSED

            found += COMPRESSED.scan(stream, size, location, context)
        return found

    def _member(
        self,
        tf: tarfile.TarFile,
        info: tarfile.TarInfo,
        legacy: dict[str, tarfile.TarInfo],
        location: str,
        context: ScanContext,
    ) -> list[Finding]:
        member = f"{location}!{info.name}"
        found: list[Finding] = []
        if _escapes(info.name):
            found.append(
                scan_finding(
                    "archive.path-traversal",
                    Severity.HIGH,
                    "Archive member escapes the extraction directory",
                    f"{info.name!r} points outside the folder it would be extracted to.",
                    member,
                )
            )
        torch_name = os.path.normpath(info.name)
        read_by_torch = legacy.get(torch_name) is info
        if info.issym() or info.islnk():
            if _escapes(info.linkname) or read_by_torch:
                found.append(
                    scan_finding(
                        "archive.link",
                        Severity.HIGH,
                        "Archive link points outside the archive" if not read_by_torch else "torch member is a link",
                        f"{info.name!r} links to {info.linkname!r}"
                        + ("; torch.load would extract and unpickle the file it points to." if read_by_torch else "."),
                        member,
                    )
                )
            return found
        if info.ischr() or info.isblk() or info.isfifo():
            found.append(
                scan_finding(
                    "archive.special-member",
                    Severity.MEDIUM,
                    "Archive holds a device or pipe",
                    f"{info.name!r} is a device or FIFO; model archives hold regular files only.",
                    member,
                )
            )
            return found
        if not info.isfile():
            return found
        found += self._content(tf, info, torch_name if read_by_torch else None, member, context)
        return found

    @staticmethod
    def _content(
        tf: tarfile.TarFile, info: tarfile.TarInfo, torch_name: str | None, member: str, context: ScanContext
    ) -> list[Finding]:
        try:
            inner = cast(BinaryIO | None, tf.extractfile(info))
            if inner is None:
                return []
            if torch_name is not None:
                return _legacy_member(torch_name, inner, info.size, member, context)
            return context.scan_member(inner, info.size, member)
        except _CORRUPT_TAR as exc:
            severity = Severity.HIGH if torch_name else Severity.MEDIUM
            found = [
                scan_finding(
                    "archive.corrupt-member",
                    severity,
                    "Archive member cannot be read to its end",
                    f"{info.name}: {exc}. What could be read was scanned; a loader reads it up to the damage.",
                    member,
                )
            ]
        # What the archive holds of the member, read past tarfile (which refuses a short member whole).
        stream = cast(BinaryIO, tf.fileobj)
        stream.seek(info.offset_data)
        data = stream.read(max(0, min(info.size, context.limits.max_decompressed)))
        if data:
            buffer = cast(BinaryIO, io.BytesIO(data))
            if torch_name is not None:
                found += pickle_findings(buffer, len(data), member, context)
            else:
                found += context.scan_member(buffer, len(data), member)
        return found


TAR = TarScanner()
