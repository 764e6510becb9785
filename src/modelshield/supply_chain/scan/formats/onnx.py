"""ONNX models: external tensor data the loader would read from outside the model's folder, and custom domains.

    >>> import io
    >>> from modelshield.supply_chain.scan.formats.onnx import ONNX
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> [f.id for f in ONNX.scan(io.BytesIO(b"\\x08\\x07\\xff"), 3, "m.onnx", Scanner().context())]  # doctest: +SKIP
    ['onnx.corrupt']

The whole model is walked, as the onnx loader and onnxruntime follow it: the graph's initializers and sparse
initializers, every node attribute holding tensors (``TENSOR``, ``TENSORS``, ``SPARSE_TENSOR(S)``) or graphs
(``GRAPH``, ``GRAPHS``: the branches and bodies of ``If``, ``Loop`` and ``Scan``, to any depth), the model's local
functions (their nodes and default attributes) and its training information. Every external-data entry is checked
as ``onnx.external_data_helper`` and onnx's checker resolve it: the location must be a relative path that stays in
the model's folder (no absolute path, drive, stream name, ``..`` or NUL, nor onnxruntime's in-memory marker), and
``offset`` and ``length`` must be non-negative integers.

Operators outside the ONNX domains and onnxruntime's built-in contrib domains need custom operator libraries
(native code): medium. Needs the ``onnx`` package (``pip install 'modelshield[onnx]'``); without it the model is
reported as not inspected (low), never as clean.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["ONNX", "OnnxScanner", "location_problem"]

#: The ONNX standard domains and the domains of onnxruntime's built-in (contrib and internal) operators, as they
#: appear in models that onnxruntime optimised.
BUILTIN_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.microsoft.dml",
        "com.ms.internal.nhwc",
        "org.pytorch.aten",
    }
)
_EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})
_ORT_MEMORY = "*/_ORT_MEM_ADDR_/*"  # onnxruntime reads such data from a memory address, not a file
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSIGNED = re.compile(r"^[0-9]+$")
_MAX_DEPTH = 64  # graphs within graphs
_MAX_ISSUES = 50


def _text(value: str | bytes) -> str:
    """A protobuf string field; the parser hands back bytes when a crafted file holds invalid UTF-8."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def location_problem(location: str) -> str | None:
    """Why the onnx loader would read an external-data ``location`` from outside the model's folder (or None).

    >>> location_problem("weights/w.bin") is None, location_problem("a/../../etc/passwd")
    (True, 'it leaves the model folder')
    """
    if not location:
        return "it is empty"
    if "\0" in location:
        return "it holds a NUL byte"
    if location == _ORT_MEMORY:
        return "it is onnxruntime's marker for data at a memory address"
    path = location.replace("\\", "/")
    if path.startswith("/"):
        return "it is an absolute path"
    if _DRIVE.match(path) or ":" in path:
        return "it names a drive or a stream"
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        return "it leaves the model folder"
    return None


class _Walk:
    """One walk over a parsed model: external data, operator domains, and what could not be followed."""

    def __init__(self) -> None:
        self.external: list[str] = []
        self.domains: set[str] = set()
        self.local_functions: set[tuple[str, str]] = set()
        self.too_deep = False

    def tensor(self, tensor: Any, where: str) -> None:
        entries = [(_text(e.key), _text(e.value)) for e in tensor.external_data]
        if not entries or len(self.external) >= _MAX_ISSUES:
            return
        name = _text(tensor.name)
        locations = [v for k, v in entries if k == "location"]
        if not locations:
            self.external.append(f"tensor {name!r} in {where} has external data without a location")
        for value in locations:
            problem = location_problem(value)
            if problem:
                self.external.append(f"tensor {name!r} in {where} reads {value[:200]!r}: {problem}")
        for key, value in entries:
            if key in {"offset", "length"} and not _UNSIGNED.match(value):
                self.external.append(f"tensor {name!r} in {where} has {key} {value[:40]!r}, not a non-negative integer")

    def sparse(self, sparse: Any, where: str) -> None:
        self.tensor(sparse.values, where)
        self.tensor(sparse.indices, where)

    def graphs(self, model: Any) -> None:
        """Walk the model's graph, functions and training graphs, iteratively, bounding the nesting."""
        for function in model.functions:
            self.local_functions.add((_text(function.domain), _text(function.name)))
        stack: list[tuple[Any, str, int]] = [(model.graph, "graph", 0)]
        for function in model.functions:
            stack.append((function, f"function {_text(function.name)!r}", 0))
        for i, info in enumerate(model.training_info):
            stack += [(info.initialization, f"training_info[{i}]", 0), (info.algorithm, f"training_info[{i}]", 0)]
        while stack:
            holder, where, depth = stack.pop()
            if depth > _MAX_DEPTH:
                self.too_deep = True
                continue
            for tensor in getattr(holder, "initializer", ()):
                self.tensor(tensor, where)
            for sparse in getattr(holder, "sparse_initializer", ()):
                self.sparse(sparse, where)
            attributes = list(getattr(holder, "attribute_proto", ()))  # a function's default attributes
            for node in holder.node:
                self.domains.add(f"{_text(node.domain)}\0{_text(node.op_type)}")
                attributes += [(a, f"{where}, node {_text(node.name)!r}") for a in node.attribute]
            for item in attributes:
                attribute, at = item if isinstance(item, tuple) else (item, where)
                if attribute.HasField("t"):
                    self.tensor(attribute.t, at)
                for tensor in attribute.tensors:
                    self.tensor(tensor, at)
                if attribute.HasField("sparse_tensor"):
                    self.sparse(attribute.sparse_tensor, at)
                for sparse in attribute.sparse_tensors:
                    self.sparse(sparse, at)
                if attribute.HasField("g"):
                    stack.append((attribute.g, f"{at}, subgraph {_text(attribute.name)!r}", depth + 1))
                stack += [(g, f"{at}, subgraph {_text(attribute.name)!r}", depth + 1) for g in attribute.graphs]

    def custom_domains(self) -> list[str]:
        custom = set()
        for pair in self.domains:
            domain, _, op = pair.partition("\0")
            if domain not in BUILTIN_DOMAINS and (domain, op) not in self.local_functions:
                custom.add(domain)
        return sorted(custom)


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
        except Exception as exc:
            return [
                scan_finding("onnx.corrupt", Severity.MEDIUM, "ONNX model cannot be parsed", str(exc)[:200], location)
            ]
        walk = _Walk()
        try:
            walk.graphs(model)
        except (RecursionError, ValueError, TypeError, AttributeError) as exc:  # pragma: no cover - defensive
            return [
                scan_finding(
                    "onnx.unreadable",
                    Severity.HIGH,
                    "ONNX model cannot be walked",
                    f"The model could not be followed to the end ({str(exc)[:200]}).",
                    location,
                )
            ]
        found: list[Finding] = []
        if walk.external:
            found.append(
                scan_finding(
                    "onnx.external-data-escape",
                    Severity.HIGH,
                    "ONNX external data points outside the model folder",
                    f"{len(walk.external)} external-data reference(s) the loader cannot follow safely: "
                    f"{'; '.join(walk.external[:5])}. Loading the model reads those files.",
                    location,
                    evidence={"references": [*walk.external]},
                )
            )
        if walk.too_deep:
            found.append(
                scan_finding(
                    "onnx.too-deep",
                    Severity.HIGH,
                    "ONNX subgraphs nested too deep to check",
                    f"Subgraphs are nested more than {_MAX_DEPTH} levels deep; the deeper ones were not checked.",
                    location,
                )
            )
        domains = walk.custom_domains()
        if domains:
            found.append(
                scan_finding(
                    "onnx.custom-domain",
                    Severity.MEDIUM,
                    "ONNX model uses custom operator domains",
                    f"Domains {', '.join(domains[:10])} need custom operator libraries, which are native code loaded "
                    "at run time.",
                    location,
                    evidence={"domains": [*domains[:50]]},
                )
            )
        return found


ONNX = OnnxScanner()
