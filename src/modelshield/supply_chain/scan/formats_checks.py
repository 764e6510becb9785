"""Checks for the formats that carry no pickle: safetensors headers, Keras configs, GGUF chat templates.

    >>> from modelshield.supply_chain.scan.formats_checks import safetensors_problems
    >>> import io, json, struct
    >>> header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    >>> safetensors_problems(io.BytesIO(struct.pack("<Q", len(header)) + header + bytes(8)), 8 + len(header) + 8)
    []

Each function returns a list of (rule, severity, title, description) tuples; the scanner turns them into findings.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
from typing import Any, BinaryIO

from modelshield.findings import Severity

__all__ = [
    "Problem",
    "gguf_problems",
    "keras_config_problems",
    "onnx_problems",
    "safetensors_problems",
    "saved_model_problems",
]

Problem = tuple[str, Severity, str, str]

_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def safetensors_problems(fh: BinaryIO, size: int) -> list[Problem]:
    """Header bounds, offsets that overlap or leave the file, shapes that do not match their byte ranges."""
    fh.seek(0)
    raw = fh.read(8)
    (n,) = struct.unpack("<Q", raw)
    if n > _MAX_HEADER or n > size - 8:
        return [("safetensors.header", Severity.HIGH, "safetensors header is oversized",
                 f"The header claims {n:,} bytes in a file of {size:,}.")]  # fmt: skip
    try:
        header = json.loads(fh.read(n))
    except ValueError as exc:
        return [("safetensors.header", Severity.HIGH, "safetensors header is not valid JSON", str(exc))]
    if not isinstance(header, dict):
        return [("safetensors.header", Severity.HIGH, "safetensors header is not a JSON object", "")]
    problems: list[Problem] = []
    data_size = size - 8 - n
    spans = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(spec, dict):
            problems.append(("safetensors.tensor", Severity.HIGH, "Malformed tensor entry", f"{name!r}: {spec!r}"))
            continue
        offsets, shape, dtype = spec.get("data_offsets"), spec.get("shape"), spec.get("dtype")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not isinstance(shape, list)
            or not all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            problems.append(("safetensors.tensor", Severity.HIGH, "Malformed tensor entry", f"{name!r}: {spec!r}"))
            continue
        start, end = offsets
        if not 0 <= start <= end <= data_size:
            problems.append(
                ("safetensors.offsets", Severity.HIGH, "Tensor data lies outside the file",
                 f"{name!r} spans bytes {start}..{end} of a {data_size}-byte data section.")
            )  # fmt: skip
            continue
        count = 1
        for d in shape:
            count *= d
        itemsize = _DTYPE_SIZES.get(str(dtype))
        if itemsize is not None and count * itemsize != end - start:
            problems.append(
                ("safetensors.shape", Severity.MEDIUM, "Tensor shape does not match its byte range",
                 f"{name!r}: shape {shape} of {dtype} needs {count * itemsize} bytes, the header gives {end - start}.")
            )  # fmt: skip
        spans.append((start, end, name))
    spans.sort()
    for (s1, e1, a), (s2, _e2, b) in itertools.pairwise(spans):
        if s2 < e1:
            problems.append(
                ("safetensors.overlap", Severity.HIGH, "Tensors share bytes",
                 f"{a!r} ({s1}..{e1}) and {b!r} (from {s2}) overlap: one write changes both.")
            )  # fmt: skip
    return problems


_KERAS_CODE = re.compile(r'"class_name"\s*:\s*"(Lambda|TFOpLambda|SlicingOpLambda)"')
_KERAS_MODULE = re.compile(r'"module"\s*:\s*"([^"]+)"')
_KERAS_SAFE_MODULES = re.compile(r"^(keras|tensorflow|tf_keras|keras_core|keras_nlp|keras_cv|keras_hub)(\.|$)")


def keras_config_problems(config_text: str) -> list[Problem]:
    """Lambda layers (serialised Python bytecode) and references to modules outside Keras in a model config."""
    problems: list[Problem] = []
    lambdas = _KERAS_CODE.findall(config_text)
    if lambdas:
        problems.append(
            ("keras.lambda-layer", Severity.HIGH, "Keras model holds Lambda layers",
             f"{len(lambdas)} Lambda layer(s): their Python code runs when the model is loaded or called.")
        )  # fmt: skip
    foreign = sorted({m for m in _KERAS_MODULE.findall(config_text) if not _KERAS_SAFE_MODULES.match(m)})
    if foreign:
        problems.append(
            ("keras.module-reference", Severity.HIGH, "Keras config imports modules outside Keras",
             f"Modules named in the config: {', '.join(foreign[:10])}; loading imports them.")
        )  # fmt: skip
    return problems


_JINJA_RISK = re.compile(
    r"__(class|globals|subclasses|builtins|import|init|mro|base|bases|getattribute|code|func)__"
    r"|\b(os|subprocess|popen|eval|exec|import_module|cycler|joiner|lipsum|request|config|self)\b\s*[.\[(]"
)


def gguf_problems(fh: BinaryIO, size: int) -> list[Problem]:
    """GGUF header sanity, and chat templates that reach Python internals (Jinja template injection)."""
    try:
        metadata = _gguf_metadata(fh, size)
    except (ValueError, struct.error) as exc:
        return [("gguf.header", Severity.MEDIUM, "GGUF header cannot be read", str(exc))]
    problems: list[Problem] = []
    for key, value in metadata.items():
        if "chat_template" in key and isinstance(value, str):
            hits = sorted({m.group(0) for m in _JINJA_RISK.finditer(value)})
            if hits:
                problems.append(
                    ("gguf.template-injection", Severity.CRITICAL, "GGUF chat template reaches Python internals",
                     f"{key} uses {', '.join(hits[:6])}: rendering it can run code in an unsandboxed Jinja.")
                )  # fmt: skip
    return problems


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_MAX_KV = 100_000
_MAX_STRING = 64 * 1024 * 1024


def _gguf_string(fh: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", fh.read(8))
    if n > _MAX_STRING:
        raise ValueError(f"string of {n:,} bytes")
    return fh.read(n).decode("utf-8", "replace")


def _gguf_value(fh: BinaryIO, kind: int, depth: int = 0) -> Any:
    if kind in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[kind]
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]
    if kind == 8:
        return _gguf_string(fh)
    if kind == 9 and depth < 2:
        (item_kind,) = struct.unpack("<I", fh.read(4))
        (count,) = struct.unpack("<Q", fh.read(8))
        if count > 50_000_000:
            raise ValueError(f"array of {count:,} items")
        if item_kind in _GGUF_SCALARS:  # numeric arrays: skip, they are vocabulary scores and the like
            fh.seek(count * struct.calcsize(_GGUF_SCALARS[item_kind]), 1)
            return None
        for _ in range(count):  # string arrays (vocabularies): read past them
            _gguf_value(fh, item_kind, depth + 1)
        return None
    raise ValueError(f"unknown value type {kind}")


def _gguf_metadata(fh: BinaryIO, size: int) -> dict[str, Any]:
    fh.seek(0)
    magic, version = struct.unpack("<4sI", fh.read(8))
    if magic != b"GGUF" or version not in (1, 2, 3):
        raise ValueError(f"magic {magic!r}, version {version}")
    _tensors, kv_count = struct.unpack("<QQ", fh.read(16))
    if kv_count > _MAX_KV:
        raise ValueError(f"{kv_count:,} metadata entries")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = _gguf_string(fh)
        (kind,) = struct.unpack("<I", fh.read(4))
        metadata[key] = _gguf_value(fh, kind)
        if fh.tell() > size:
            raise ValueError("metadata runs past the end of the file")
    return metadata


_STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"})


def onnx_problems(fh: BinaryIO, size: int) -> list[Problem]:
    """External tensor data whose path leaves the model's folder, and operators from non-standard domains."""
    try:
        import onnx
    except ImportError:
        return [("onnx.not-inspected", Severity.LOW, "ONNX model not inspected",
                 "The onnx package is not installed: pip install 'modelshield[onnx]'.")]  # fmt: skip
    fh.seek(0)
    try:
        model = onnx.load_model_from_string(fh.read(size))
    except Exception as exc:  # protobuf's DecodeError and friends
        return [("onnx.corrupt", Severity.MEDIUM, "ONNX model cannot be parsed", str(exc)[:200])]
    problems: list[Problem] = []
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    for tensor in tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        parts = location.replace("\\", "/").split("/")
        if location.startswith(("/", "\\")) or ".." in parts or (len(location) > 1 and location[1] == ":"):
            problems.append(
                ("onnx.external-data-escape", Severity.HIGH, "ONNX external data points outside the model folder",
                 f"Tensor {tensor.name!r} reads its data from {location!r}: loading the model reads that file.")
            )  # fmt: skip
    domains = sorted({n.domain for n in model.graph.node if n.domain not in _STANDARD_DOMAINS})
    if domains:
        problems.append(
            ("onnx.custom-domain", Severity.MEDIUM, "ONNX model uses custom operator domains",
             f"Domains {', '.join(domains)} need custom operator libraries, which are native code loaded at run time.")
        )  # fmt: skip
    return problems


# Ops that run Python functions or touch files, as NodeDef.op fields (tag 0x12, length, name) in a GraphDef.
_TF_RISKY_OPS = {
    "PyFunc": (Severity.HIGH, "calls a Python function of the loading process"),
    "PyFuncStateless": (Severity.HIGH, "calls a Python function of the loading process"),
    "EagerPyFunc": (Severity.HIGH, "calls a Python function of the loading process"),
    "ReadFile": (Severity.HIGH, "reads a file from the serving host"),
    "WriteFile": (Severity.HIGH, "writes a file on the serving host"),
    "MatchingFiles": (Severity.MEDIUM, "lists files on the serving host"),
    "LoadLibrary": (Severity.HIGH, "loads native code"),
}
_TF_PATTERN = re.compile(
    b"\\x12(" + b"|".join(re.escape(bytes([len(op)]) + op.encode()) for op in _TF_RISKY_OPS) + b")"
)


def saved_model_problems(fh: BinaryIO, size: int) -> list[Problem]:
    """Graph ops in a SavedModel that run Python, touch files or load libraries when the graph runs."""
    fh.seek(0)
    found: set[str] = set()
    tail = b""
    while chunk := fh.read(16 * 1024 * 1024):
        data = tail + chunk
        found |= {m.group(1)[1:].decode() for m in _TF_PATTERN.finditer(data)}
        tail = data[-64:]
    return [
        ("tensorflow.risky-op", _TF_RISKY_OPS[op][0], f"SavedModel graph uses {op}",
         f"The graph holds a {op} op, which {_TF_RISKY_OPS[op][1]} when the model runs.")
        for op in sorted(found)
    ]  # fmt: skip
