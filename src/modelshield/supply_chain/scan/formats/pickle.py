"""Pickle streams: every callable a load would import or call, judged by the scan policy.

    >>> import io, pickle
    >>> from modelshield.supply_chain.scan.formats.pickle import PICKLE
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> data = pickle.dumps({"w": [1.0, 2.0]})
    >>> PICKLE.scan(io.BytesIO(data), len(data), "model.pkl", Scanner().context())
    []

The analysis itself is :mod:`modelshield.supply_chain.scan.pickle`'s; this module turns what it found into
findings, grouped by callable and verdict. :func:`pickle_findings` serves the other formats that hold pickles
(NumPy object arrays).
"""

from __future__ import annotations

from collections import defaultdict
from typing import BinaryIO

from modelshield.findings import Finding, JSONValue, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import REMEDY_DO_NOT_LOAD, ScanContext, scan_finding
from modelshield.supply_chain.scan.pickle import PickleAnalysis, analyse_pickle, analyse_pickle_buffer
from modelshield.supply_chain.scan.policy import MALFORMED, Classifier, Verdict

__all__ = ["PICKLE", "PickleScanner", "pickle_findings"]

_IN_MEMORY = 64 * 1024 * 1024
_SNIFF_WINDOW = 1024 * 1024  # pickles up to this size are read whole; larger ones (joblib arrays) are mapped


def _findings(analysis: PickleAnalysis, location: str, base: int) -> list[Finding]:
    found: list[Finding] = []
    grouped: dict[tuple[str, Verdict], list[int]] = defaultdict(list)
    invoked: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for ref in analysis.imports:
        if ref.invoked_by is None and (ref.classification.module, ref.classification.name) == ("builtins", "getattr"):
            continue  # every call of it was resolved to a name that is judged on its own
        grouped[(ref.qualname, ref.classification.verdict)].append(base + ref.offset)
        reasons[ref.qualname] = ref.classification.reason
        if ref.invoked_by:
            invoked.setdefault(ref.qualname, ref.invoked_by)
    for (qualname, verdict), offsets in grouped.items():
        how = invoked.get(qualname)
        evidence: dict[str, JSONValue] = {
            "callable": qualname,
            "offsets": list[JSONValue](offsets[:20]),
            "reason": reasons[qualname],
            "opcode": how,
        }
        if verdict is Verdict.DANGEROUS:
            found.append(
                scan_finding(
                    "pickle.dangerous-call" if how else "pickle.dangerous-import",
                    Severity.CRITICAL if how else Severity.HIGH,
                    f"Loading runs {qualname}" if how else f"Pickle imports {qualname}",
                    f"The pickle {'calls' if how else 'imports'} {qualname} ({reasons[qualname]})"
                    + (f" through {how}" if how else "")
                    + f" at byte {offsets[0]}.",
                    location,
                    evidence=evidence,
                )
            )
        elif verdict is Verdict.UNKNOWN:
            found.append(
                scan_finding(
                    "pickle.unreviewed-call" if how else "pickle.unreviewed-import",
                    Severity.HIGH,
                    f"Loading {'calls' if how else 'imports'} {qualname}, which nobody has reviewed",
                    f"{qualname} is {'called through ' + how if how else 'imported'} at byte {offsets[0]} and is not "
                    f"on the allowlist of callables that only rebuild data ({reasons[qualname]}). Importing runs the "
                    "module's code, and an unreviewed callable may do anything.",
                    location,
                    evidence=evidence,
                    remediation="Do not load the file until you know what this callable does. If it only rebuilds "
                    "data, add it to the 'allow' list of a scan policy file (modelshield scan --policy FILE).",
                )
            )
    for offset in analysis.dynamic_imports:
        found.append(
            scan_finding(
                "pickle.dynamic-import",
                Severity.CRITICAL,
                "Pickle imports a callable whose name it computes",
                f"STACK_GLOBAL at byte {base + offset} takes a module or name built at load time, not a constant: "
                "a static reader cannot know what it imports, and benign files never do this.",
                location,
                evidence={"offset": base + offset},
            )
        )
    for offset in analysis.builds_on_callables:
        found.append(
            scan_finding(
                "pickle.build-on-callable",
                Severity.HIGH,
                "Pickle sets attributes on an imported class or function",
                f"BUILD at byte {base + offset} applies state to a callable itself, not to an object it made: this "
                "rewrites code-bearing attributes at load time, and benign files never do it.",
                location,
                evidence={"offset": base + offset},
            )
        )
    for offset in analysis.calls_on_objects:
        found.append(
            scan_finding(
                "pickle.call-on-result",
                Severity.HIGH,
                "Pickle calls an object that another call returned",
                f"The call at byte {base + offset} takes as its callable an object built while loading, not an "
                "imported name: the way resolvers and getters are chained to reach code, and benign files never "
                "do it.",
                location,
                evidence={"offset": base + offset},
            )
        )
    for offset, text in analysis.file_arguments:
        found.append(
            scan_finding(
                "pickle.file-argument",
                Severity.HIGH,
                "Pickle hands a callable a file path to open",
                f"The call or state at byte {base + offset} passes {text!r}, which the library resolves by opening "
                "that path (a time-zone name read from an arbitrary file): loading reads files it has no business "
                "reading.",
                location,
                evidence={"offset": base + offset, "argument": text},
            )
        )
    for offset, name in analysis.side_files:
        plain = name is not None and name not in {"", ".", ".."} and not any(c in name for c in "/\\\0:")
        found.append(
            scan_finding(
                "joblib.side-file",
                Severity.LOW if plain else Severity.HIGH,
                f"joblib.load opens a side file: {name}" if plain else "joblib.load opens a file outside the model",
                (
                    f"The array wrapper at byte {base + offset} makes joblib.load open {name!r} next to this file "
                    "and load it with numpy.load(allow_pickle=True): that file runs code if it holds objects. "
                    "Scan it too (scan the folder)."
                )
                if plain
                else f"The array wrapper at byte {base + offset} names {name!r} as its data file: joblib.load opens "
                "whatever path that is, outside the model's folder or computed at load time, and unpickles it.",
                location,
                evidence={"offset": base + offset, "file": name},
                remediation="Scan the folder the model came in, side files included." if plain else REMEDY_DO_NOT_LOAD,
            )
        )
    if analysis.limit:
        found.append(
            scan_finding(
                "pickle.limit",
                Severity.HIGH,
                "Pickle too large to analyse completely",
                f"The analysis stopped: {analysis.limit}. What lies beyond was not examined.",
                location,
            )
        )
    if analysis.error:
        error_at = base + (analysis.error_offset or 0)
        more = analysis.bytes_after_error
        found.append(
            scan_finding(
                "pickle.parse-error",
                Severity.HIGH if more else Severity.MEDIUM,
                "Pickle stream is malformed" + (" and bytes follow the error" if more else ""),
                f"Parsing stopped at byte {error_at}: {analysis.error}. A loader runs what precedes it"
                + (
                    f"; {more:,} bytes follow, which the scanner did not read and a more lenient loader may."
                    if more
                    else "; the stream ends there."
                ),
                location,
                evidence={"offset": error_at, "error": analysis.error, "bytes_after": more},
            )
        )
    if analysis.trailing_names:
        found.append(
            scan_finding(
                "pickle.payload-after-error",
                Severity.HIGH,
                "Dangerous names follow a pickle parse error",
                f"The bytes after the parse error name {', '.join(analysis.trailing_names[:5])}.",
                location,
                evidence={"names": list[JSONValue](analysis.trailing_names[:20])},
            )
        )
    return found


def pickle_findings(
    stream: BinaryIO,
    size: int,
    location: str,
    context: ScanContext,
    start: int = 0,
    *,
    classifier: Classifier | None = None,
    sniff: bool = False,
) -> list[Finding]:
    """The findings for the pickle(s) in ``stream[start:size]``; offsets are reported from the stream's start.

    ``classifier`` replaces the run's verdicts (TorchScript archives judge their pickles by their own loader's
    rules). With ``sniff``, the bytes are content that no format claimed: they are reported only when a pickle
    loader reading them would import or call something, since random bytes often parse as a few opcodes.
    """
    stream.seek(start)
    policy, limits = classifier or context.classifier, context.limits.pickle
    if sniff and size - start > _SNIFF_WINDOW:
        # Most content that is not a pickle stops parsing within a few bytes: read a window first, and the whole
        # stream only when the walk runs to the window's end.
        window = analyse_pickle_buffer(stream.read(_SNIFF_WINDOW), policy=policy, limits=limits)
        if window.error is not None and window.bytes_after_error > 0:
            return _sniffed(window, location, start)
        stream.seek(start)
    if size - start <= _IN_MEMORY:  # archive members and small files
        analysis = analyse_pickle_buffer(stream.read(size - start), policy=policy, limits=limits)
    else:
        analysis = analyse_pickle(stream, policy=policy, limits=limits, size=size - start)
    return _sniffed(analysis, location, start) if sniff else _findings(analysis, location, start)


def _sniffed(analysis: PickleAnalysis, location: str, base: int) -> list[Finding]:
    """The findings for content no format claimed: only when reading it as a pickle would import or call."""
    if not (
        analysis.dynamic_imports
        or analysis.calls_on_objects
        or analysis.builds_on_callables
        or any(ref.classification.reason != MALFORMED for ref in analysis.imports)
    ):
        return []  # text that happens to start like a GLOBAL names no importable module: nothing would run
    return _findings(analysis, location, base)


class PickleScanner:
    """Raw pickle streams (``.pkl``, legacy ``torch.save``, uncompressed joblib)."""

    name = "pickle"
    formats = frozenset({ModelFormat.PICKLE})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for every dangerous or unknown callable, computed import, parse error and limit reached."""
        return pickle_findings(stream, size, location, context)


PICKLE = PickleScanner()
