"""NumPy ``.npy`` arrays: an array of Python objects is a pickle after the header, and is scanned as one.

    >>> import io
    >>> import numpy as np
    >>> from modelshield.supply_chain.scan.formats.numpy import NUMPY
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> buffer = io.BytesIO()
    >>> np.save(buffer, np.arange(4.0))
    >>> NUMPY.scan(buffer, buffer.tell(), "a.npy", Scanner().context())
    []

Arrays of plain numbers are never read past their header. ``.npz`` archives are zip files of ``.npy`` members
(:mod:`~modelshield.supply_chain.scan.formats.zip`).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from modelshield.findings import Finding
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.formats.pickle import pickle_findings
from modelshield.supply_chain.scan.interface import ScanContext

__all__ = ["NUMPY", "NumpyScanner"]


class NumpyScanner:
    """``.npy`` files: the pickle payload of object arrays."""

    name = "numpy"
    formats = frozenset({ModelFormat.NUMPY})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """The pickle findings of an object array; nothing for an array of numbers (or a header too short)."""
        stream.seek(0)
        head = stream.read(12)
        if len(head) > 6 and head[6] == 1 and len(head) >= 10:  # version 1: a 2-byte header length
            (header_len,) = struct.unpack("<H", head[8:10])
            start = 10 + header_len
        elif len(head) >= 12:  # versions 2 and 3: a 4-byte header length
            (header_len,) = struct.unpack("<I", head[8:12])
            start = 12 + header_len
        else:  # shorter than any header: nothing a loader would unpickle
            return []
        stream.seek(0)
        header = stream.read(start)
        if b"|O" in header:  # an object array: its payload is a pickle
            return pickle_findings(stream, size, location, context, start)
        return []


NUMPY = NumpyScanner()
