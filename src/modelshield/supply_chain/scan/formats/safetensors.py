"""safetensors files: the JSON header checked against the data it describes (no code, but malformed headers).

    >>> import io, json, struct
    >>> from modelshield.supply_chain.scan.formats.safetensors import SAFETENSORS
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    >>> data = struct.pack("<Q", len(header)) + header + bytes(8)
    >>> SAFETENSORS.scan(io.BytesIO(data), len(data), "m.safetensors", Scanner().context())
    []

Header bounds, offsets that overlap or leave the file, and shapes that do not match their byte ranges are
reported: readers disagree on such files, and overlapping tensors let one write change two weights.
"""

from __future__ import annotations

import itertools
import json
import struct
from typing import BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["SAFETENSORS", "SafetensorsScanner"]

_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


class SafetensorsScanner:
    """safetensors headers: bounds, offsets, overlaps and shapes."""

    name = "safetensors"
    formats = frozenset({ModelFormat.SAFETENSORS})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for a header that is oversized, malformed, or describes data the file does not hold."""

        def problem(rule: str, severity: Severity, title: str, description: str) -> Finding:
            return scan_finding(rule, severity, title, description, location)

        stream.seek(0)
        raw = stream.read(8)
        if len(raw) < 8:
            return [
                problem(
                    "safetensors.header",
                    Severity.HIGH,
                    "safetensors header is truncated",
                    f"The file holds {len(raw)} bytes, fewer than the 8 of the header length.",
                )
            ]
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER or n > size - 8:
            return [
                problem(
                    "safetensors.header",
                    Severity.HIGH,
                    "safetensors header is oversized",
                    f"The header claims {n:,} bytes in a file of {size:,}.",
                )
            ]
        try:
            header = json.loads(stream.read(n))
        except ValueError as exc:
            return [problem("safetensors.header", Severity.HIGH, "safetensors header is not valid JSON", str(exc))]
        if not isinstance(header, dict):
            return [problem("safetensors.header", Severity.HIGH, "safetensors header is not a JSON object", "")]
        found: list[Finding] = []
        data_size = size - 8 - n
        spans = []
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(spec, dict):
                found.append(
                    problem("safetensors.tensor", Severity.HIGH, "Malformed tensor entry", f"{name!r}: {spec!r}")
                )
                continue
            offsets, shape, dtype = spec.get("data_offsets"), spec.get("shape"), spec.get("dtype")
            if (
                not isinstance(offsets, list)
                or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)
                or not isinstance(shape, list)
                or not all(isinstance(d, int) and d >= 0 for d in shape)
            ):
                found.append(
                    problem("safetensors.tensor", Severity.HIGH, "Malformed tensor entry", f"{name!r}: {spec!r}")
                )
                continue
            start, end = offsets
            if not 0 <= start <= end <= data_size:
                found.append(
                    problem(
                        "safetensors.offsets",
                        Severity.HIGH,
                        "Tensor data lies outside the file",
                        f"{name!r} spans bytes {start}..{end} of a {data_size}-byte data section.",
                    )
                )
                continue
            count = 1
            for d in shape:
                count *= d
            itemsize = _DTYPE_SIZES.get(str(dtype))
            if itemsize is not None and count * itemsize != end - start:
                found.append(
                    problem(
                        "safetensors.shape",
                        Severity.MEDIUM,
                        "Tensor shape does not match its byte range",
                        f"{name!r}: shape {shape} of {dtype} needs {count * itemsize} bytes, the header gives "
                        f"{end - start}.",
                    )
                )
            spans.append((start, end, name))
        spans.sort()
        for (s1, e1, a), (s2, _e2, b) in itertools.pairwise(spans):
            if s2 < e1:
                found.append(
                    problem(
                        "safetensors.overlap",
                        Severity.HIGH,
                        "Tensors share bytes",
                        f"{a!r} ({s1}..{e1}) and {b!r} (from {s2}) overlap: one write changes both.",
                    )
                )
        return found


SAFETENSORS = SafetensorsScanner()
