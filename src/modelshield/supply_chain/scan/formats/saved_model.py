"""TensorFlow SavedModel graphs: ops that run Python, touch files or load libraries when the graph runs.

    >>> import io
    >>> from modelshield.supply_chain.scan.formats.saved_model import SAVED_MODEL
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> graph = b"\\x08\\x01\\x12\\x0c\\x12\\x0a\\x12\\x08ReadFile"
    >>> [f.title for f in SAVED_MODEL.scan(io.BytesIO(graph), len(graph), "saved_model.pb", Scanner().context())]
    ['SavedModel graph uses ReadFile']

Ops are found as ``NodeDef.op`` fields (protobuf tag 0x12, a length, the name), read in chunks.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["SAVED_MODEL", "SavedModelScanner"]

_RISKY_OPS = {
    "PyFunc": (Severity.HIGH, "calls a Python function of the loading process"),
    "PyFuncStateless": (Severity.HIGH, "calls a Python function of the loading process"),
    "EagerPyFunc": (Severity.HIGH, "calls a Python function of the loading process"),
    "ReadFile": (Severity.HIGH, "reads a file from the serving host"),
    "WriteFile": (Severity.HIGH, "writes a file on the serving host"),
    "MatchingFiles": (Severity.MEDIUM, "lists files on the serving host"),
    "LoadLibrary": (Severity.HIGH, "loads native code"),
}
_PATTERN = re.compile(b"\\x12(" + b"|".join(re.escape(bytes([len(op)]) + op.encode()) for op in _RISKY_OPS) + b")")
_CHUNK = 16 * 1024 * 1024


class SavedModelScanner:
    """SavedModel protobufs (``saved_model.pb``)."""

    name = "saved-model"
    formats = frozenset({ModelFormat.TF_SAVEDMODEL})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """One finding per risky op the graph holds."""
        stream.seek(0)
        ops: set[str] = set()
        tail = b""
        while chunk := stream.read(_CHUNK):
            data = tail + chunk
            ops |= {m.group(1)[1:].decode() for m in _PATTERN.finditer(data)}
            tail = data[-64:]
        return [
            scan_finding(
                "tensorflow.risky-op",
                _RISKY_OPS[op][0],
                f"SavedModel graph uses {op}",
                f"The graph holds a {op} op, which {_RISKY_OPS[op][1]} when the model runs.",
                location,
            )
            for op in sorted(ops)
        ]


SAVED_MODEL = SavedModelScanner()
