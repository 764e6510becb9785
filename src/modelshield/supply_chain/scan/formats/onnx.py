"""ONNX models: external tensor data whose path leaves the model's folder, and operators from custom domains.

    >>> import io
    >>> from modelshield.supply_chain.scan.formats.onnx import ONNX
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> [f.id for f in ONNX.scan(io.BytesIO(b"\\x08\\x07\\xff"), 3, "m.onnx", Scanner().context())]  # doctest: +SKIP
    ['onnx.corrupt']

Needs the ``onnx`` package (``pip install 'modelshield[onnx]'``); without it the model is reported as not
inspected (low), never as clean.
"""

from __future__ import annotations

from typing import BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["ONNX", "OnnxScanner"]

_STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"})


def _text(value: str | bytes) -> str:
    """A protobuf string field; the parser hands back bytes when a crafted file holds invalid UTF-8."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class OnnxScanner:
    """ONNX ModelProto files."""

    name = "onnx"
    formats = frozenset({ModelFormat.ONNX})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for external data outside the model folder, custom operator domains, unparseable models."""
        try:
            import onnx
        except ImportError:
            return [
                scan_finding(
                    "onnx.not-inspected",
                    Severity.LOW,
                    "ONNX model not inspected",
                    "The onnx package is not installed: pip install 'modelshield[onnx]'.",
                    location,
                )
            ]
        stream.seek(0)
        try:
            model = onnx.load_model_from_string(stream.read(size))
        except Exception as exc:  # protobuf's DecodeError and friends
            return [
                scan_finding("onnx.corrupt", Severity.MEDIUM, "ONNX model cannot be parsed", str(exc)[:200], location)
            ]
        found: list[Finding] = []
        tensors = list(model.graph.initializer)
        for node in model.graph.node:
            tensors += [a.t for a in node.attribute if a.HasField("t")]
        for tensor in tensors:
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            path = next((_text(e.value) for e in tensor.external_data if _text(e.key) == "location"), "")
            parts = path.replace("\\", "/").split("/")
            if path.startswith(("/", "\\")) or ".." in parts or (len(path) > 1 and path[1] == ":"):
                found.append(
                    scan_finding(
                        "onnx.external-data-escape",
                        Severity.HIGH,
                        "ONNX external data points outside the model folder",
                        f"Tensor {_text(tensor.name)!r} reads its data from {path!r}: loading the model reads that "
                        "file.",
                        location,
                    )
                )
        domains = sorted({_text(n.domain) for n in model.graph.node} - _STANDARD_DOMAINS)
        if domains:
            found.append(
                scan_finding(
                    "onnx.custom-domain",
                    Severity.MEDIUM,
                    "ONNX model uses custom operator domains",
                    f"Domains {', '.join(domains)} need custom operator libraries, which are native code loaded at "
                    "run time.",
                    location,
                )
            )
        return found


ONNX = OnnxScanner()
