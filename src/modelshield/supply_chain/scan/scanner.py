"""Scan model files for code that would run when they are loaded, without loading them.

    >>> from pathlib import Path
    >>> from modelshield.supply_chain.scan.scanner import Scanner, scan_file
    >>> result = scan_file(Path("model.pt"))  # doctest: +SKIP
    >>> [f.id for f in result.findings]  # doctest: +SKIP
    >>> run = Scanner()  # one run over many files: verdicts on pickle callables are worked out once
    >>> [run.scan_file(p).max_severity for p in Path("models").glob("*.pt")]  # doctest: +SKIP

The format is identified from content at every level: a file, a member of a zip or tar archive, or a decompressed
stream is sniffed and dispatched again, down to :attr:`ScanLimits.max_depth`, to every scanner of a
:class:`~modelshield.supply_chain.scan.registry.ScannerRegistry` that serves its format (built-ins first, then
the ``modelshield.scanners`` plug-ins), in registration order. The scanners live in
:mod:`modelshield.supply_chain.scan.formats`, one module per format.
"""

from __future__ import annotations

import functools
import io
import os
import time
from pathlib import Path
from typing import BinaryIO, NamedTuple, cast

from modelshield.errors import FileFormatError
from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import FormatInfo, ModelFormat, identify_stream
from modelshield.supply_chain.scan.formats.pickle import pickle_findings
from modelshield.supply_chain.scan.interface import (
    FileScan,
    ScanContext,
    ScanLimits,
    ScanOptions,
    scan_finding,
)
from modelshield.supply_chain.scan.policy import Classifier, VerdictCache
from modelshield.supply_chain.scan.registry import ScannerRegistry, default_registry

__all__ = ["Scanner", "scan_file", "scan_stream"]

# Formats whose scanners already read every pickle a loader would (and zip, which no pickle loader reads as one).
_READ_AS_PICKLE_ALREADY = frozenset(
    {
        ModelFormat.PICKLE,
        ModelFormat.PYTORCH_ZIP,
        ModelFormat.PYTORCH_EXPORT,
        ModelFormat.TORCHSCRIPT,
        ModelFormat.SKOPS,
        ModelFormat.NUMPY_NPZ,
        ModelFormat.KERAS,
        ModelFormat.ZIP,
        ModelFormat.TAR,  # the tar scanner reads the whole file as a pickle too, as torch.load falls back to
        ModelFormat.PYTORCH_LEGACY_TAR,
    }
)
_READ_WHOLE = 1024 * 1024  # files up to this size are read in one call
_NOT_IDENTIFIED = FormatInfo(ModelFormat.UNKNOWN, "not identified", can_execute_code=False)


@functools.cache
def _shared_registry() -> ScannerRegistry:
    """The built-in scanners and the installed plug-ins, loaded once per process (installed packages do not
    change while it runs), frozen since every run that is given no registry shares it."""
    return default_registry().freeze()


class _Level(NamedTuple):
    """The :class:`ScanContext` of one stream at one depth of a run (a named tuple: defining a dataclass costs
    start-up ten times as much)."""

    run: Scanner
    depth: int
    info: FormatInfo

    @property
    def options(self) -> ScanOptions:
        return self.run.options

    @property
    def limits(self) -> ScanLimits:
        return self.run.options.limits

    @property
    def classifier(self) -> Classifier:
        return self.run.verdicts

    def scan_member(self, stream: BinaryIO, size: int, location: str) -> list[Finding]:
        return self.run.dispatch(stream, size, location, self.depth + 1)


class Scanner:
    """One scan run: the options, the registry of format scanners, and the verdicts on pickle callables so far.

    ``registry`` defaults to the built-in scanners and the installed plug-ins (loaded once per process, in a frozen
    registry that every such run shares). The verdicts live in a
    :class:`~modelshield.supply_chain.scan.policy.VerdictCache` of this run's own (bounded, thread-safe): a run
    can scan many files, from several threads, and two runs never share verdicts.
    """

    def __init__(self, options: ScanOptions | None = None, *, registry: ScannerRegistry | None = None) -> None:
        self.options = options or ScanOptions()
        self.registry = registry if registry is not None else _shared_registry()
        self.verdicts = VerdictCache(self.options.policy)

    def context(self, info: FormatInfo | None = None, *, depth: int = 0) -> ScanContext:
        """The context a scanner gets for a stream identified as ``info`` at ``depth`` (to call one directly)."""
        return _Level(self, depth, info or _NOT_IDENTIFIED)

    def dispatch(
        self, stream: BinaryIO, size: int, location: str, depth: int, info: FormatInfo | None = None
    ) -> list[Finding]:
        """Identify ``stream`` (unless ``info`` says what it is) and run every scanner of its format on it."""
        limits = self.options.limits
        if depth > limits.max_depth:
            return [
                scan_finding(
                    "archive.depth-limit",
                    Severity.HIGH,
                    "Archives nested too deep to scan",
                    f"More than {limits.max_depth} levels of nesting.",
                    location,
                )
            ]
        try:
            info = info or identify_stream(stream, size)
        except Exception as exc:  # identification must never end a scan
            return [_internal_error("identification", exc, location)]
        scanners = self.registry.for_format(info.format)
        context = _Level(self, depth, info)
        if not scanners:
            if info.format is ModelFormat.UNKNOWN:
                # pickle.load and torch.load need no header: content nothing else claims is read as a pickle would
                # be, and reported when such a read would import or call something.
                found = _sniff(stream, size, location, context)
                if found:
                    return found
            return _unscanned(info, location) if depth == 0 else []  # inside archives, raw tensor data is the norm
        found = []
        for scanner in scanners:
            try:
                found += scanner.scan(stream, size, location, context)
            except FileFormatError as exc:
                if depth == 0:
                    raise
                found.append(_internal_error(scanner.name, exc, location))
            except Exception as exc:  # a scanner that fails must not end the scan, or hide the file
                found.append(_internal_error(scanner.name, exc, location))
        if info.format not in _READ_AS_PICKLE_ALREADY:
            # torch.load, joblib.load and pickle.load read any file that is not a zip (or, for torch, a tar) as a
            # pickle, whatever its first bytes claim: a GGUF or safetensors header can be a valid pickle prefix.
            found += _sniff(stream, size, location, context)
        return found

    def scan_stream(self, stream: BinaryIO, size: int, *, location: str) -> list[Finding]:
        """Findings for the seekable ``stream`` of ``size`` bytes, reported under ``location``."""
        return self.dispatch(stream, size, location, 0)

    def scan_file(self, path: str | Path) -> FileScan:
        """Scan one file. Raises :class:`FileFormatError` when it cannot be opened or read."""
        name = os.fspath(path)
        t0 = time.perf_counter()
        try:
            size = os.stat(name).st_size
            with open(name, "rb") as file:
                # Small files are read once, then parsed from memory; large ones are read only where needed.
                fh = cast(BinaryIO, io.BytesIO(file.read())) if size <= _READ_WHOLE else file
                info = identify_stream(fh, size)
                findings = self.dispatch(fh, size, name, 0, info)
        except FileNotFoundError as exc:
            raise FileFormatError(f"{path} does not exist.", remedy="Check the path.") from exc
        except IsADirectoryError as exc:
            raise FileFormatError(
                f"{path} is a directory.", remedy="Scan its files (pass the directory to scan_paths)."
            ) from exc
        except OSError as exc:
            raise FileFormatError(f"Cannot read {path}: {exc.strerror}.") from exc
        return FileScan(
            path=name,
            format=info.format.value,
            size=size,
            findings=tuple(findings),
            duration_s=time.perf_counter() - t0,
        )


def _sniff(stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
    """The stream read as ``pickle.load`` would read it, reported when that read would import or call."""
    try:
        return pickle_findings(stream, size, location, context, sniff=True)
    except Exception as exc:  # a scanner that fails must not end the scan
        return [_internal_error("pickle", exc, location)]


def _internal_error(scanner: str, exc: BaseException | None, location: str) -> Finding:
    """A scanner raised: the content was not fully examined, which fails closed."""
    what = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    return scan_finding(
        "scan.internal-error",
        Severity.HIGH,
        "Part of the file could not be examined",
        f"The {scanner} scanner stopped on this content ({what[:300]}). What it did not read is unverified, and a "
        "loader may still read it.",
        location,
        evidence={"scanner": scanner, "error": what[:1000]},
        remediation="Treat the file as unverified: do not load it. Report the file so the scanner can read it.",
    )


def _unscanned(info: FormatInfo, location: str) -> list[Finding]:
    remedy = "If this is a model file, report its format so that it can be supported."
    if info.format is ModelFormat.UNKNOWN:
        return [
            scan_finding(
                "format.unknown",
                Severity.INFO,
                "Format not recognised",
                f"The content matches no model format modelshield knows ({info.detail}); it was not analysed.",
                location,
                remediation=remedy,
            )
        ]
    return [
        scan_finding(
            "format.unscanned",
            Severity.INFO,
            f"No scanner examines {info.format.value} files",
            f"No registered scanner serves this content ({info.detail}); it was not analysed.",
            location,
            remediation="Register a scanner for this format, or scan with the default registry.",
        )
    ]


def scan_stream(
    fh: BinaryIO,
    size: int,
    *,
    location: str,
    options: ScanOptions | None = None,
    registry: ScannerRegistry | None = None,
) -> list[Finding]:
    """Findings for the seekable stream ``fh`` of ``size`` bytes, reported under ``location`` (a run of its own)."""
    return Scanner(options, registry=registry).scan_stream(fh, size, location=location)


def scan_file(
    path: str | Path, options: ScanOptions | None = None, registry: ScannerRegistry | None = None
) -> FileScan:
    """Scan one file (a run of its own). Raises :class:`FileFormatError` when it cannot be opened or read."""
    return Scanner(options, registry=registry).scan_file(path)
