"""NumPy ``.npy`` arrays: an array of Python objects is a pickle after the header, and is scanned as one.

    >>> import io
    >>> import numpy as np
    >>> from modelshield.supply_chain.scan.formats.numpy import NUMPY
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> buffer = io.BytesIO()
    >>> np.save(buffer, np.arange(4.0))
    >>> NUMPY.scan(buffer, buffer.tell(), "a.npy", Scanner().context())
    []

The header is read exactly as ``numpy.load`` reads it (:func:`~modelshield.supply_chain.formats.read_npy_header`):
the dtype decides, so an object field inside a structured or subarray dtype counts like a plain ``'O'``. Arrays
of plain numbers are never read past their header. A header numpy refuses is reported (the load fails before any
unpickling); a header too large to parse here is high, and the data after it is scanned as a pickle anyway.
``.npz`` archives are zip files of ``.npy`` members (:mod:`~modelshield.supply_chain.scan.formats.zip`).
"""

from __future__ import annotations

from typing import BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat, NpyHeaderError, read_npy_header
from modelshield.supply_chain.scan.formats.pickle import pickle_findings
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["NUMPY", "NumpyScanner"]

_PROTOCOL_2_PLUS = 0x80  # PROTO: the first byte of every pickle numpy writes


class NumpyScanner:
    """``.npy`` files: the pickle payload of object arrays, and headers that numpy would not read."""

    name = "numpy"
    formats = frozenset({ModelFormat.NUMPY})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """The pickle findings of an object array; nothing for an array of numbers."""
        try:
            header = read_npy_header(stream, size)
        except NpyHeaderError as exc:
            return self._bad_header(exc, stream, size, location, context)
        if header.has_object:  # an object array: numpy.load unpickles what follows the header
            return pickle_findings(stream, size, location, context, header.data_offset)
        return []

    @staticmethod
    def _bad_header(
        exc: NpyHeaderError, stream: BinaryIO, size: int, location: str, context: ScanContext
    ) -> list[Finding]:
        offset = exc.data_offset
        payload = b""
        if offset is not None and offset < size:
            stream.seek(offset)
            payload = stream.read(1)
        if not exc.refused:  # numpy (with allow_pickle=True) reads it; this scanner cannot follow: fail closed
            found = [
                scan_finding(
                    "numpy.header-unparsed",
                    Severity.HIGH,
                    "NumPy header too large to check",
                    f"The .npy header cannot be parsed here ({exc}); numpy.load(allow_pickle=True) still reads it "
                    "and may unpickle the data that follows.",
                    location,
                )
            ]
        else:
            pickled = payload[:1] == bytes([_PROTOCOL_2_PLUS])
            found = [
                scan_finding(
                    "numpy.header",
                    Severity.HIGH if pickled else Severity.MEDIUM,
                    "NumPy header is malformed" + (" and a pickle follows it" if pickled else ""),
                    f"numpy refuses this .npy header: {exc}. "
                    + (
                        "The data after it is a pickle, which a more lenient reader would load."
                        if pickled
                        else "numpy.load fails before reading any data."
                    ),
                    location,
                    remediation="Do not load this file; obtain the array again from its source.",
                )
            ]
            if not pickled:
                return found
        if offset is not None and offset < size:
            found += pickle_findings(stream, size, location, context, offset)
        return found


NUMPY = NumpyScanner()
