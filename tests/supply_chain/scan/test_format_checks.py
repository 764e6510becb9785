"""safetensors headers, Keras configs and GGUF chat templates, through the file scanner."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from modelshield.findings import Severity
from modelshield.supply_chain.scan import scan_file


def _safetensors(path: Path, header: dict[str, object], data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def test_real_safetensors_file_is_clean(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"a": np.ones((3, 4), np.float32), "b": np.zeros(5, np.int64)}, str(tmp_path / "m.safetensors"))
    assert scan_file(tmp_path / "m.safetensors").findings == ()


@pytest.mark.parametrize(
    ("header", "rule"),
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}}, "safetensors.offsets"),
        (
            {
                "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            "safetensors.overlap",
        ),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, "safetensors.shape"),
        ({"w": {"dtype": "F32", "shape": "x", "data_offsets": [0, 8]}}, "safetensors.tensor"),
    ],
)
def test_bad_safetensors_headers(tmp_path: Path, header: dict[str, object], rule: str) -> None:
    path = _safetensors(tmp_path / "m.safetensors", header, bytes(16))
    assert rule in {f.id for f in scan_file(path).findings}


def test_keras_lambda_and_foreign_module(tmp_path: Path) -> None:
    config = {
        "class_name": "Sequential",
        "config": {"layers": [
            {"class_name": "Lambda", "config": {"function": "4wEAAAAAAAAA"}},
            {"module": "evilpkg.layers", "class_name": "Backdoor", "config": {}},
            {"module": "keras.layers", "class_name": "Dense", "config": {}},
        ]},
    }  # fmt: skip
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(32))
    found = {f.id: f for f in scan_file(path).findings}
    assert found["keras.lambda-layer"].severity is Severity.HIGH
    assert "evilpkg.layers" in found["keras.module-reference"].description
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100) + json.dumps(config).encode() + bytes(100))
    assert "keras.lambda-layer" in {f.id for f in scan_file(h5).findings}


def _gguf(path: Path, template: str) -> Path:
    def string(s: str) -> bytes:
        data = s.encode()
        return struct.pack("<Q", len(data)) + data

    kv = [
        string("general.architecture") + struct.pack("<I", 8) + string("llama"),
        string("llama.context_length") + struct.pack("<I", 4) + struct.pack("<I", 4096),
        string("tokenizer.ggml.scores") + struct.pack("<I", 9) + struct.pack("<IQ", 6, 3) + struct.pack("<3f", 0, 1, 2),
        string("tokenizer.chat_template") + struct.pack("<I", 8) + string(template),
    ]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv))
    return path


def test_gguf_chat_templates(tmp_path: Path) -> None:
    benign = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    assert scan_file(_gguf(tmp_path / "ok.gguf", benign)).findings == ()
    evil = "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}"
    (finding,) = scan_file(_gguf(tmp_path / "evil.gguf", evil)).findings
    assert (finding.id, finding.severity) == ("gguf.template-injection", Severity.CRITICAL)


def test_unknown_top_level_format_is_reported_as_info(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(7, 200)))
    (finding,) = scan_file(path).findings
    assert (finding.id, finding.severity) == ("format.unknown", Severity.INFO)


def _onnx_model(path: Path, *, location: str | None = None, domain: str = "") -> Path:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])
    if location is not None:
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", location
    node = helper.make_node("MatMul", ["x", "w"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save_model(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_onnx_external_data_and_custom_domains(tmp_path: Path) -> None:
    assert scan_file(_onnx_model(tmp_path / "ok.onnx")).findings == ()
    assert scan_file(_onnx_model(tmp_path / "local.onnx", location="weights.bin")).findings == ()
    escaping = scan_file(_onnx_model(tmp_path / "escape.onnx", location="../../etc/passwd")).findings
    assert [f.id for f in escaping] == ["onnx.external-data-escape"]
    custom = scan_file(_onnx_model(tmp_path / "custom.onnx", domain="com.evil.ops")).findings
    assert [(f.id, f.severity) for f in custom] == [("onnx.custom-domain", Severity.MEDIUM)]


def _saved_model(ops: list[str]) -> bytes:
    def field(tag: int, payload: bytes) -> bytes:
        return bytes([tag, len(payload)]) + payload

    nodes = b"".join(field(0x0A, field(0x0A, f"n{i}".encode()) + field(0x12, op.encode())) for i, op in enumerate(ops))
    meta = field(0x0A, field(0x22, b"serve")) + field(0x12, nodes)  # meta_info_def (tags), graph_def (nodes)
    return b"\x08\x01" + field(0x12, meta)


def test_tensorflow_saved_model_ops(tmp_path: Path) -> None:
    benign = tmp_path / "saved_model.pb"
    benign.write_bytes(_saved_model(["Placeholder", "MatMul", "Softmax"]))
    result = scan_file(benign)
    assert (result.format, result.findings) == ("tensorflow-savedmodel", ())
    risky = tmp_path / "risky" / "saved_model.pb"
    risky.parent.mkdir()
    risky.write_bytes(_saved_model(["Placeholder", "EagerPyFunc", "ReadFile"]))
    assert sorted(f.title for f in scan_file(risky).findings) == [
        "SavedModel graph uses EagerPyFunc",
        "SavedModel graph uses ReadFile",
    ]
