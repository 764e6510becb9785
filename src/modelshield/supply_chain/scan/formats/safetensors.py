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

import json
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["SAFETENSORS", "SafetensorsScanner"]

_MAX_HEADER = 100_000_000  # the Rust crate's MAX_HEADER_SIZE
# Bits per element of every dtype the safetensors crate defines.
_DTYPE_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "C64": 64, "I64": 64, "U64": 64, "F64": 64,
}  # fmt: skip
_TENSOR_KEYS = frozenset({"dtype", "shape", "data_offsets"})


def _pairs(duplicates: list[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A json ``object_pairs_hook`` that keeps the last value, as json.loads does, and records duplicate keys."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    return hook


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


class SafetensorsScanner:
    """safetensors headers, checked as the Rust crate's ``SafeTensors::deserialize`` checks them."""

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
        text = stream.read(n)
        duplicates: list[str] = []
        try:
            if not text.startswith(b"{"):
                raise ValueError("the header does not start with '{'")
            header = json.loads(text.decode("utf-8"), object_pairs_hook=_pairs(duplicates))
        except (ValueError, RecursionError) as exc:
            return [problem("safetensors.header", Severity.HIGH, "safetensors header is not valid JSON", str(exc))]
        if not isinstance(header, dict):
            return [problem("safetensors.header", Severity.HIGH, "safetensors header is not a JSON object", "")]
        found: list[Finding] = []
        if duplicates:
            found.append(
                problem(
                    "safetensors.duplicate-key",
                    Severity.MEDIUM,
                    "safetensors header repeats a key",
                    f"Keys {sorted(set(duplicates))[:10]!r} appear more than once: readers that keep the first "
                    "and readers that keep the last see different tensors.",
                )
            )
        metadata = header.get("__metadata__")
        if metadata is not None and (
            not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
        ):
            found.append(
                problem(
                    "safetensors.metadata",
                    Severity.MEDIUM,
                    "safetensors metadata is not a map of strings",
                    "__metadata__ must map strings to strings; the safetensors loader refuses this file.",
                )
            )
        found += _tensors(header, size - 8 - n, problem)
        return found


def _tensors(header: dict[str, Any], data_size: int, problem: Callable[..., Finding]) -> list[Finding]:
    found: list[Finding] = []
    spans: list[tuple[int, int, str]] = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        offsets = spec.get("data_offsets") if isinstance(spec, dict) else None
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if (
            not isinstance(spec, dict)
            or not set(spec) >= _TENSOR_KEYS
            or not isinstance(spec["dtype"], str)
            or spec["dtype"] not in _DTYPE_BITS
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_uint(o) for o in offsets)
            or not isinstance(shape, list)
            or not all(_is_uint(d) for d in shape)
        ):
            found.append(
                problem("safetensors.tensor", Severity.HIGH, "Malformed tensor entry", f"{name!r}: {spec!r}"[:500])
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
        bits = count * _DTYPE_BITS[spec["dtype"]]
        if bits % 8 or bits // 8 != end - start:
            found.append(
                problem(
                    "safetensors.shape",
                    Severity.MEDIUM,
                    "Tensor shape does not match its byte range",
                    f"{name!r}: shape {shape} of {spec['dtype']} needs {bits / 8:g} bytes, the header gives "
                    f"{end - start}.",
                )
            )
        spans.append((start, end, name))
    spans.sort()
    expected = 0
    for s, e, name in spans:
        if s < expected:
            found.append(
                problem(
                    "safetensors.overlap",
                    Severity.HIGH,
                    "Tensors share bytes",
                    f"{name!r} ({s}..{e}) starts before the previous tensor ends ({expected}): one write changes both.",
                )
            )
        elif s > expected:
            found.append(
                problem(
                    "safetensors.gap",
                    Severity.MEDIUM,
                    "Bytes between tensors belong to no tensor",
                    f"{name!r} starts at {s}, after a gap from {expected}; the safetensors loader refuses gaps.",
                )
            )
        expected = max(expected, e)
    if expected < data_size and not found:
        found.append(
            problem(
                "safetensors.trailing-data",
                Severity.MEDIUM,
                "Bytes follow the tensor data",
                f"{data_size - expected:,} bytes after the last tensor belong to none; the safetensors loader refuses "
                "such a file and benign writers never produce one.",
            )
        )
    return found


SAFETENSORS = SafetensorsScanner()
