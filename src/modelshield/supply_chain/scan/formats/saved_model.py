"""TensorFlow SavedModel graphs: ops that run Python, touch files or fetch data, judged by where they can run.

    >>> import io
    >>> from modelshield.supply_chain.scan.formats.saved_model import SAVED_MODEL
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> node = b"\\x0a\\x01n" + b"\\x12\\x08ReadFile"  # NodeDef{name: "n", op: "ReadFile"}
    >>> graph = b"\\x0a" + bytes([len(node)]) + node  # GraphDef{node}
    >>> data = b"\\x08\\x01\\x12" + bytes([len(graph) + 2]) + b"\\x12" + bytes([len(graph)]) + graph
    >>> [f.title for f in SAVED_MODEL.scan(io.BytesIO(data), len(data), "saved_model.pb", Scanner().context())]
    ['SavedModel graph uses ReadFile']

The protobuf is parsed field by field with a small bounded wire-format reader (TensorFlow is not needed):
``SavedModel{2: MetaGraphDef{2: GraphDef, 3: SaverDef, 5: signature_def}}``, ``GraphDef{1: NodeDef, 2:
FunctionDefLibrary{1: FunctionDef{1: OpDef, 3: NodeDef}}}``, ``NodeDef{1: name, 2: op, 3: input, 5: attr}``. Every op
of every node, in the graph and in every function, is collected, with the functions each node calls (through
``f``-like attributes, or an op named after a library function).

Ops that run Python, read or write files, or map files into memory are high wherever they are. The checkpoint
saver's own ops (``SaveV2``, ``RestoreV2``, ``MergeV2Checkpoints`` and the like) are accepted only when nothing
but the saver (``SaverDef.save_tensor_name`` and ``restore_op_name``, and the functions they call) can reach them;
reachable from a signature, another node or a function the saver does not own, they are high too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["SAVED_MODEL", "SavedModelScanner"]

_PYTHON = "calls a Python function of the loading process"
_READS = "reads files on the serving host"
_WRITES = "writes files on the serving host"
#: Ops that are high wherever they are.
_RISKY_OPS: dict[str, str] = {
    "PyFunc": _PYTHON,
    "PyFuncStateless": _PYTHON,
    "EagerPyFunc": _PYTHON,
    "ReadFile": _READS,
    "WriteFile": _WRITES,
    "MatchingFiles": "lists files on the serving host",
    "ImmutableConst": "maps a file of the serving host into memory",
    "LoadLibrary": "loads native code",
    "TextLineReader": _READS,
    "TextLineReaderV2": _READS,
    "TFRecordReader": _READS,
    "TFRecordReaderV2": _READS,
    "WholeFileReader": _READS,
    "WholeFileReaderV2": _READS,
    "FixedLengthRecordReader": _READS,
    "FixedLengthRecordReaderV2": _READS,
    "IdentityReader": _READS,
    "IdentityReaderV2": _READS,
    "LMDBReader": _READS,
    "TFRecordDataset": _READS,
    "TFRecordDatasetV2": _READS,
    "TextLineDataset": _READS,
    "FixedLengthRecordDataset": _READS,
    "FixedLengthRecordDatasetV2": _READS,
    "LMDBDataset": _READS,
    "ExperimentalLMDBDataset": _READS,
    "CSVDataset": _READS,
    "CSVDatasetV2": _READS,
    "ExperimentalCSVDataset": _READS,
    "SqlDataset": "queries a database on the serving host",
    "ExperimentalSqlDataset": "queries a database on the serving host",
    "LoadDataset": _READS,
    "ExperimentalLoadDataset": _READS,
    "SaveDataset": _WRITES,
    "SaveDatasetV2": _WRITES,
    "SnapshotDataset": _WRITES,
    "SnapshotDatasetV2": _WRITES,
    "ExperimentalDatasetToTFRecord": _WRITES,
    "DatasetToTFRecord": _WRITES,
    "CreateSummaryFileWriter": _WRITES,
    "CreateSummaryDbWriter": _WRITES,
    "WriteAudioSummary": _WRITES,
    "WriteGraphSummary": _WRITES,
    "WriteHistogramSummary": _WRITES,
    "WriteImageSummary": _WRITES,
    "WriteRawProtoSummary": _WRITES,
    "WriteScalarSummary": _WRITES,
    "WriteSummary": _WRITES,
    "ImportEvent": _WRITES,
    "RemoteCall": "runs a function on another machine",
}
#: The checkpoint saver's ops: accepted only when nothing but the saver reaches them.
_SAVER_OPS: dict[str, str] = {
    "Save": _WRITES,
    "SaveV2": _WRITES,
    "SaveSlices": _WRITES,
    "MergeV2Checkpoints": "moves and deletes files on the serving host",
    "Restore": _READS,
    "RestoreV2": _READS,
    "RestoreSlice": _READS,
}
#: Read a vocabulary file: normal with assets, so medium.
_ASSET_OPS = {"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"}
#: Ops with "File" in their name that only compute strings.
_NAME_OPS = {"ShardedFilename", "ShardedFilespec"}
_PRINT_STREAMS = {b"stderr", b"stdout", b"log(info)", b"log(warning)", b"log(error)", b""}
_MAX_DEPTH = 32  # attribute values within attribute values
_MAX_ITEMS = 5_000_000  # fields read per file


class _MalformedError(ValueError):
    """The bytes are not the protobuf they claim to be."""


class _Wire:
    """A bounded protobuf wire-format reader over one buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.items = 0

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise _MalformedError("truncated or overlong varint")
            byte = self.data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
        """(field number, wire type, value) for each field in ``data[start:end]``; a length-delimited value is the
        (start, end) of its bytes."""
        pos = start
        while pos < end:
            self.items += 1
            if self.items > _MAX_ITEMS:
                raise _MalformedError(f"more than {_MAX_ITEMS:,} fields")
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _MalformedError("field number 0")
            if wire == 0:
                value, pos = self.varint(pos, end)
                yield number, wire, value
            elif wire in {1, 5}:
                pos += 8 if wire == 1 else 4
                if pos > end:
                    raise _MalformedError("truncated fixed-width field")
                yield number, wire, 0
            elif wire == 2:
                length, pos = self.varint(pos, end)
                if pos + length > end:
                    raise _MalformedError("length-delimited field runs past its message")
                yield number, wire, (pos, pos + length)
                pos += length
            else:
                raise _MalformedError(f"wire type {wire}")

    def messages(self, span: tuple[int, int], number: int) -> Iterator[tuple[int, int]]:
        for n, wire, value in self.fields(*span):
            if n == number and wire == 2 and isinstance(value, tuple):
                yield value

    def strings(self, span: tuple[int, int], number: int) -> list[bytes]:
        return [self.data[a:b] for a, b in self.messages(span, number)]

    def string(self, span: tuple[int, int], number: int) -> bytes:
        found = self.strings(span, number)
        return found[-1] if found else b""  # protobuf: the last occurrence of a scalar wins


@dataclass
class _Node:
    name: str
    op: str
    inputs: list[str]
    calls: set[str] = field(default_factory=set)  # functions named in attributes
    attrs: dict[str, list[bytes]] = field(default_factory=dict)  # string values of attributes


@dataclass
class _Function:
    name: str
    nodes: list[_Node]


@dataclass
class _MetaGraph:
    nodes: list[_Node] = field(default_factory=list)
    functions: dict[str, _Function] = field(default_factory=dict)
    saver_roots: set[str] = field(default_factory=set)
    signature_roots: set[str] = field(default_factory=set)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _node_name(tensor: str) -> str:
    """``^name`` and ``name:0`` and ``name:out:0`` are all the node ``name``."""
    return tensor.lstrip("^").split(":", 1)[0]


def _attr_value(wire: _Wire, span: tuple[int, int], node: _Node, key: str, depth: int) -> None:
    """Collect the functions and strings of an AttrValue (recursively through lists and function attributes)."""
    if depth > _MAX_DEPTH:
        raise _MalformedError("attribute values nested too deep")
    for number, wire_type, value in wire.fields(*span):
        if wire_type != 2 or not isinstance(value, tuple):
            continue
        if number == 2:  # s
            node.attrs.setdefault(key, []).append(wire.data[value[0] : value[1]])
        elif number == 1:  # list: s = 2, func = 9
            node.attrs.setdefault(key, []).extend(wire.strings(value, 2))
            for func in wire.messages(value, 9):
                _name_attr_list(wire, func, node, depth + 1)
        elif number == 10:  # func
            _name_attr_list(wire, value, node, depth + 1)


def _name_attr_list(wire: _Wire, span: tuple[int, int], node: _Node, depth: int) -> None:
    node.calls.add(_text(wire.string(span, 1)))
    for entry in wire.messages(span, 2):  # map<string, AttrValue>
        key = _text(wire.string(entry, 1))
        for value in wire.messages(entry, 2):
            _attr_value(wire, value, node, key, depth + 1)


def _node(wire: _Wire, span: tuple[int, int]) -> _Node:
    node = _Node(_text(wire.string(span, 1)), _text(wire.string(span, 2)), [_text(s) for s in wire.strings(span, 3)])
    for entry in wire.messages(span, 5):
        key = _text(wire.string(entry, 1))
        for value in wire.messages(entry, 2):
            _attr_value(wire, value, node, key, 0)
    return node


def _meta_graph(wire: _Wire, span: tuple[int, int]) -> _MetaGraph:
    meta = _MetaGraph()
    for graph in wire.messages(span, 2):
        meta.nodes += [_node(wire, n) for n in wire.messages(graph, 1)]
        for library in wire.messages(graph, 2):
            for function in wire.messages(library, 1):
                names = [wire.string(sig, 1) for sig in wire.messages(function, 1)]
                name = _text(names[-1]) if names else ""
                nodes = [_node(wire, n) for n in wire.messages(function, 3)]
                if name in meta.functions:  # two definitions: keep both bodies, judged together
                    nodes += meta.functions[name].nodes
                meta.functions[name] = _Function(name, nodes)
    for saver in wire.messages(span, 3):
        for number in (2, 3):  # save_tensor_name, restore_op_name
            tensor = _text(wire.string(saver, number))
            if tensor:
                meta.saver_roots.add(_node_name(tensor))
    for entry in wire.messages(span, 5):  # map<string, SignatureDef>
        for signature in wire.messages(entry, 2):
            for number in (1, 2):  # inputs, outputs: map<string, TensorInfo>
                for item in wire.messages(signature, number):
                    for info in wire.messages(item, 2):
                        tensor = _text(wire.string(info, 1))
                        if tensor:
                            meta.signature_roots.add(_node_name(tensor))
    return meta


def _parse(data: bytes) -> list[_MetaGraph]:
    wire = _Wire(data)
    return [_meta_graph(wire, span) for span in wire.messages((0, len(data)), 2)]


def _closure(meta: _MetaGraph, roots: set[str], functions: set[str]) -> tuple[set[str], set[str]]:
    """The graph nodes reachable (through inputs) from ``roots``, and the functions they (and ``functions``) call,
    transitively."""
    by_name = {n.name: n for n in meta.nodes}
    nodes: set[str] = set()
    stack = [r for r in roots if r in by_name]
    while stack:
        name = stack.pop()
        if name in nodes:
            continue
        nodes.add(name)
        stack += [i for i in map(_node_name, by_name[name].inputs) if i in by_name and i not in nodes]
    called: set[str] = set()
    pending = set(functions)
    for name in nodes:
        pending |= _calls(by_name[name], meta)
    while pending:
        fn = pending.pop()
        if fn in called or fn not in meta.functions:
            continue
        called.add(fn)
        for node in meta.functions[fn].nodes:
            pending |= _calls(node, meta) - called
    return nodes, called


def _calls(node: _Node, meta: _MetaGraph) -> set[str]:
    calls = {c for c in node.calls if c in meta.functions}
    if node.op in meta.functions:
        calls.add(node.op)
    return calls


def _why(node: _Node) -> tuple[Severity, str] | None:
    """What a node does that matters, regardless of where it is; None when it is ordinary."""
    if node.op in _RISKY_OPS:
        return Severity.HIGH, _RISKY_OPS[node.op]
    if node.op in _ASSET_OPS:
        return Severity.MEDIUM, "reads a vocabulary file named by the graph (normal when it is a bundled asset)"
    if node.op == "PrintV2" and any(s.strip() not in _PRINT_STREAMS for s in node.attrs.get("output_stream", [])):
        streams = ", ".join(repr(_text(s)) for s in node.attrs["output_stream"][:3])
        return Severity.HIGH, f"prints to {streams}, a file on the serving host"
    if node.op.startswith("Debug") and any(node.attrs.get("debug_urls", [])):
        return Severity.HIGH, "dumps tensors to the URLs or files its debug_urls name"
    if node.op in {"DecodeProtoV2", "EncodeProto"} and any(
        s not in {b"", b"local://"} for s in node.attrs.get("descriptor_source", [])
    ):
        return Severity.HIGH, "reads protobuf descriptors from a file on the serving host"
    if "File" in node.op and node.op not in _NAME_OPS:
        return Severity.HIGH, "works on files of the serving host"
    return None


def _judge(meta: _MetaGraph) -> list[tuple[Severity, str, str]]:
    """(severity, op, why) for each risky op occurrence of one meta graph."""
    saver_nodes, saver_functions = _closure(meta, meta.saver_roots, set())
    other_roots = {n.name for n in meta.nodes} - saver_nodes
    other_nodes, other_functions = _closure(meta, other_roots, set(meta.functions) - saver_functions)
    out: list[tuple[Severity, str, str]] = []
    for node in meta.nodes:
        saver_only = node.name in saver_nodes and node.name not in other_nodes
        out += _node_findings(node, saver_only, "the graph")
    for fn in meta.functions.values():
        saver_only = fn.name in saver_functions and fn.name not in other_functions
        for node in fn.nodes:
            out += _node_findings(node, saver_only, f"function {fn.name!r}")
    return out


def _node_findings(node: _Node, saver_only: bool, where: str) -> list[tuple[Severity, str, str]]:
    if node.op in _SAVER_OPS:
        if saver_only:
            return []
        return [(Severity.HIGH, node.op, f"{_SAVER_OPS[node.op]}, and is reachable from outside the saver ({where})")]
    why = _why(node)
    return [(why[0], node.op, f"{why[1]} ({where})")] if why else []


class SavedModelScanner:
    """SavedModel protobufs (``saved_model.pb``)."""

    name = "saved-model"
    formats = frozenset({ModelFormat.TF_SAVEDMODEL})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """One finding per risky op the graph holds, and one for a protobuf that cannot be parsed."""
        stream.seek(0)
        data = stream.read(size)
        try:
            metas = _parse(data)
        except _MalformedError as exc:
            return [
                scan_finding(
                    "tensorflow.corrupt",
                    Severity.HIGH,
                    "SavedModel graph cannot be parsed",
                    f"The protobuf is malformed ({exc}); the scanner cannot tell which ops it holds.",
                    location,
                )
            ]
        by_op: dict[str, tuple[Severity, list[str]]] = {}
        for meta in metas:
            for severity, op, why in _judge(meta):
                worst, reasons = by_op.get(op, (severity, []))
                by_op[op] = (max(worst, severity), [*reasons, why])
        return [
            scan_finding(
                "tensorflow.risky-op",
                severity,
                f"SavedModel graph uses {op}",
                f"The graph holds {len(reasons)} {op} op(s); it {reasons[0]} when the model runs.",
                location,
                evidence={"occurrences": [*list(dict.fromkeys(reasons))[:20]]},
            )
            for op, (severity, reasons) in sorted(by_op.items())
        ]


SAVED_MODEL = SavedModelScanner()
