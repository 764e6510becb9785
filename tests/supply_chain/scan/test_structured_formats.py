"""Keras, ONNX, GGUF and SavedModel files parsed with their real grammars: real files clean, patched ones flagged,
and a bounded mutation fuzz over each format's scanner (nothing may raise but FileFormatError)."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

from modelshield.errors import FileFormatError
from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat, identify_stream
from modelshield.supply_chain.scan.formats.gguf import GGUF, template_findings
from modelshield.supply_chain.scan.formats.keras import KERAS
from modelshield.supply_chain.scan.formats.onnx import ONNX
from modelshield.supply_chain.scan.formats.saved_model import SAVED_MODEL
from modelshield.supply_chain.scan.interface import FormatScanner
from modelshield.supply_chain.scan.scanner import Scanner


def _scan(scanner: FormatScanner, data: bytes, location: str = "m") -> list[Finding]:
    stream = cast(BinaryIO, io.BytesIO(data))
    info = identify_stream(stream, len(data))
    return list(scanner.scan(stream, len(data), location, Scanner().context(info)))


def _worst(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)


# --- Keras -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A small functional model saved by Keras itself, as ``.keras`` and legacy ``.h5``."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("keras")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="relu")(inputs))
    model.compile(optimizer="adam", loss="mse")
    with warnings.catch_warnings():  # Keras' own deprecation warnings (numpy 2, legacy HDF5)
        warnings.simplefilter("ignore")
        model.save(folder / "m.keras")
        model.save(folder / "m.h5")
    return {"keras": (folder / "m.keras").read_bytes(), "h5": (folder / "m.h5").read_bytes()}


def _patch_keras(archive: bytes, patch: Callable[[str], str]) -> bytes:
    """The archive with its config.json text rewritten by ``patch`` (other members kept)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                data = patch(data.decode()).encode()
            dst.writestr(info, data)
    return out.getvalue()


def _add_layer(layer: dict[str, Any]) -> Callable[[str], str]:
    def patch(text: str) -> str:
        config = json.loads(text)
        config["config"]["layers"].append(layer)
        return json.dumps(config)

    return patch


def test_real_keras_files_are_clean(keras_files: dict[str, bytes]) -> None:
    assert _scan(KERAS, keras_files["keras"], "m.keras") == []
    assert _scan(KERAS, keras_files["h5"], "m.h5") == []


@pytest.mark.parametrize(
    ("patch", "rule"),
    [
        (lambda t: t.replace('"class_name": "Dense"', '"class_name": "\\u004cambda"'), "keras.lambda-layer"),
        (_add_layer({"class_name": "__lambda__", "config": {"value": "4wEAAAAA"}}), "keras.lambda-layer"),
        (_add_layer({"module": "keras.layers", "class_name": "TFOpLambda", "config": {}}), "keras.lambda-layer"),
        (lambda t: t.replace('"module": "keras.layers"', '"module": "o\\u0073"', 1), "keras.module-reference"),
        (_add_layer({"module": "builtins", "class_name": "eval", "config": {}}), "keras.module-reference"),
        (_add_layer({"module": "pkg.layers", "class_name": "X", "config": {}}), "keras.module-reference"),
        (_add_layer({"module": None, "class_name": "X", "registered_name": "evil>X", "config": {}}),
         "keras.custom-object"),
        (_add_layer({"module": "keras.layers", "class_name": "StringLookup",
                     "config": {"vocabulary": "/etc/passwd"}}), "keras.file-reference"),
        (_add_layer({"module": "keras.layers", "class_name": "TextVectorization",
                     "config": {"vocabulary": None, "idf_weights": "gs://bucket/idf"}}), "keras.file-reference"),
        (_add_layer({"module": "keras.layers", "class_name": "Dense",
                     "config": {"kernel_initializer": {"class_name": "X", "config": {"origin": "http://x/y"}}}}),
         "keras.file-reference"),
        (_add_layer({"module": "keras.src.utils", "class_name": "function", "config": "get_file"}),
         "keras.non-modeling-function"),
    ],
)  # fmt: skip
def test_patched_keras_configs_are_flagged(
    keras_files: dict[str, bytes], patch: Callable[[str], str], rule: str
) -> None:
    found = _scan(KERAS, _patch_keras(keras_files["keras"], patch), "m.keras")
    assert rule in {f.id for f in found}
    assert _worst(found) is Severity.HIGH


def test_keras_archive_without_a_weights_member_and_a_bad_config(keras_files: dict[str, bytes]) -> None:
    bad = _patch_keras(keras_files["keras"], lambda t: t[:-5])
    assert [f.id for f in _scan(KERAS, bad, "m.keras")] == ["keras.config-corrupt"]


def _h5_with_config(source: bytes, config: dict[str, Any], tmp_path: Path) -> bytes:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "patched.h5"
    path.write_bytes(source)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = json.dumps(config).replace("Lambda", "\\u004cambda")
    return path.read_bytes()


def test_h5_model_config_is_read_like_keras(keras_files: dict[str, bytes], tmp_path: Path) -> None:
    config = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {}}]}}
    patched = _h5_with_config(keras_files["h5"], config, tmp_path)
    assert "keras.lambda-layer" in {f.id for f in _scan(KERAS, patched, "m.h5")}
    assert _scan(KERAS, keras_files["h5"], "m.h5") == []


def test_h5_that_names_a_config_but_hides_it_is_reported() -> None:
    data = b"\x89HDF\r\n\x1a\n" + bytes(64) + b"model_config" + bytes(64) + b"\x00{not json"
    assert [(f.id, f.severity) for f in _scan(KERAS, data)] == [("keras.config-missing", Severity.MEDIUM)]
    compressed_heap = b"\x89HDF\r\n\x1a\n" + bytes(64) + b"FRHP\x00\x08\x00\x12\x00" + bytes(64)
    assert [(f.id, f.severity) for f in _scan(KERAS, compressed_heap)] == [("keras.config-unreadable", Severity.HIGH)]


# --- ONNX ------------------------------------------------------------------------------------------------------


def _external(tensor: Any, **entries: str) -> Any:
    from onnx import TensorProto

    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _onnx_model(*, where: str = "", location: str = "w.bin", domain: str = "", **extra: str) -> bytes:
    """A model with an If whose branch holds a tensor, a local function with a tensor-list attribute, and an
    external-data reference at ``where`` (one of: branch, function, tensors, sparse, top; empty: none)."""
    from onnx import TensorProto, helper

    def tensor(name: str) -> Any:
        t = helper.make_tensor(name, TensorProto.FLOAT, [1], [1.0])
        return _external(t, location=location, **extra) if name == where else t

    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    branch = helper.make_graph([helper.make_node("Identity", ["c"], ["y"])], "b", [], [out], [tensor("branch")])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "o", [], [out])
    if_node = helper.make_node("If", ["cond"], ["r"], then_branch=branch, else_branch=other)
    listed = helper.make_attribute("values", [tensor("tensors"), tensor("t2")])
    fn_node = helper.make_node("Constant", [], ["k"], value=tensor("function"))
    function = helper.make_function("local.fns", "F", ["a"], ["k"], [fn_node], [helper.make_opsetid("", 17)])
    call = helper.make_node("F", ["x"], ["z"], domain="local.fns")
    listed_node = helper.make_node("Custom", [], ["q"], domain=domain or "com.microsoft")
    listed_node.attribute.append(listed)
    sparse = helper.make_sparse_tensor(tensor("sparse"), helper.make_tensor("i", TensorProto.INT64, [1], [0]), [4])
    graph = helper.make_graph(
        [if_node, call, listed_node, helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]), helper.make_tensor_value_info("cond", 9, [])],
        [out],
        [tensor("top")],
        sparse_initializer=[sparse],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("local.fns", 1), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, functions=[function])
    return cast(bytes, model.SerializeToString())


def test_real_onnx_model_with_subgraphs_functions_and_contrib_domains_is_clean() -> None:
    pytest.importorskip("onnx")
    assert _scan(ONNX, _onnx_model()) == []
    assert _scan(ONNX, _onnx_model(where="top", location="weights/w.bin", offset="0", length="4")) == []


@pytest.mark.parametrize("where", ["top", "branch", "function", "tensors", "sparse"])
@pytest.mark.parametrize(
    "location", ["../../etc/passwd", "/etc/passwd", "C:\\Windows\\x", "..\\..\\x", "a/../../x", "w\0.bin",
                 "*/_ORT_MEM_ADDR_/*", "w.bin:stream", ""],
)  # fmt: skip
def test_onnx_external_data_escapes_are_found_everywhere(where: str, location: str) -> None:
    pytest.importorskip("onnx")
    found = _scan(ONNX, _onnx_model(where=where, location=location))
    assert [(f.id, f.severity) for f in found] == [("onnx.external-data-escape", Severity.HIGH)]


@pytest.mark.parametrize("extra", [{"offset": "x"}, {"length": "-1"}, {"offset": "1e3"}])
def test_onnx_external_data_offsets_must_be_integers(extra: dict[str, str]) -> None:
    pytest.importorskip("onnx")
    found = _scan(ONNX, _onnx_model(where="tensors", **extra))
    assert [f.id for f in found] == ["onnx.external-data-escape"]


def test_onnx_custom_domain_is_medium_but_builtin_and_local_domains_are_not() -> None:
    pytest.importorskip("onnx")
    found = _scan(ONNX, _onnx_model(domain="com.evil.ops"))
    assert [(f.id, f.severity) for f in found] == [("onnx.custom-domain", Severity.MEDIUM)]
    assert "com.evil.ops" in found[0].description and "local.fns" not in found[0].description


def test_onnx_model_optimised_by_onnxruntime_is_clean(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.5] * 16)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["h"]),
        helper.make_node("Div", ["m", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["a"]),
        helper.make_node("Mul", ["h", "a"], ["y"]),
    ]
    consts = [
        helper.make_tensor(n, TensorProto.FLOAT, [], [v])
        for n, v in [("half", 0.5), ("sqrt2", 1.4142135), ("one", 1.0)]
    ]
    graph = helper.make_graph(
        nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [weight, *consts],
    )  # fmt: skip
    source = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    optimised = (tmp_path / "opt.onnx").read_bytes()
    domains = {n.domain for n in onnx.load_model_from_string(optimised).graph.node}
    assert domains - {""}, "onnxruntime should have fused the graph into contrib ops"
    assert _scan(ONNX, optimised) == []


def test_onnx_strings_of_the_wrong_type_and_deep_nesting_do_not_crash() -> None:
    pytest.importorskip("onnx")
    raw = _onnx_model(where="branch", location="../XXXX").replace(b"XXXX", b"\xff\xfe\xfd\xfc")
    assert [f.id for f in _scan(ONNX, raw)] == ["onnx.external-data-escape"]
    graph = b""
    for _ in range(300):  # GraphProto{node: NodeProto{attribute: AttributeProto{g: graph}}}
        attribute = b"\x0a\x01g" + b"\x32" + _varint(len(graph)) + graph
        node = b"\x2a" + _varint(len(attribute)) + attribute
        graph = b"\x0a" + _varint(len(node)) + node
    found = _scan(ONNX, b"\x08\x07\x3a" + _varint(len(graph)) + graph)
    assert _worst(found) in {Severity.MEDIUM, Severity.HIGH}


# --- GGUF ------------------------------------------------------------------------------------------------------

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
TOOLS = """{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not message.content.startswith('<tool_response>') %}
        {%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == "assistant" and message.tool_calls %}
        {%- if loop.index0 > ns.last_query_index %}{{- '<think>' }}{%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function %}{%- set tool_call = tool_call.function %}{%- endif %}
            {{- '<tool_call>{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
        {%- endfor %}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}{{- '<|im_start|>user' }}{%- endif %}
        {%- for name, spec in tools[0].function.parameters.properties|items %}{{ name }}={{ spec['type'] }}{% endfor %}
    {%- endif %}
    {%- if message.role == 'assistant' %}{% generation %}{{ message.content }}{% endgeneration %}{% endif %}
{%- endfor %}
{{- messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(', ') }}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{{ strftime_now('%d %b %Y') }}{%- endif %}"""

MALICIOUS = {
    "dunder chain": "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "escaped dunder": "{{ ''['\\x5f\\x5fclass\\x5f\\x5f'] }}",
    "attr of a concatenation": "{{ ''|attr('_'*2 ~ 'class' ~ '_'*2) }}",
    "computed key": "{% set k = '_' ~ '_cla' ~ 'ss_' ~ '_' %}{{ ''[k] }}",
    "loop over made names": "{% for k in ['_'*2 ~ 'class' ~ '_'*2] %}{{ ''[k] }}{% endfor %}",
    "map attr": "{{ [1]|map('attr', '_'*2 + 'class' + '_'*2)|list }}",
    "namespace key": "{% set ns = namespace(a=1) %}{% set ns.k = '_'*2 %}{{ x[ns.k ~ 'class'] }}",
    "format string": "{{ '{0.__class__}'.format(1) }}",
    "cycler": "{{ cycler.__init__ }}",
    "lipsum globals": "{{ lipsum.globals['os'].popen('id').read() }}",
    "include": "{% include '/etc/passwd' %}",
    "unknown filter": "{{ x|system }}",
    "call of a computed value": "{{ (x.get)('a')() }}",
    "private attribute": "{{ x._TemplateReference__context }}",
}


def _gguf(tmp_path: Path, template: str | list[dict[str, str]]) -> bytes:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(4096)
    writer.add_token_list(["<s>", "</s>", "a", "b"])
    writer.add_token_scores([0.0, 0.0, -1.0, -2.0])
    writer.add_chat_template(template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.mark.parametrize("template", [CHATML, LLAMA3, MISTRAL, TOOLS])
def test_real_shaped_chat_templates_are_clean(tmp_path: Path, template: str) -> None:
    assert _scan(GGUF, _gguf(tmp_path, template)) == []


def test_named_chat_template_variants_are_all_checked(tmp_path: Path) -> None:
    data = _gguf(
        tmp_path, [{"name": "default", "template": CHATML}, {"name": "tool_use", "template": MALICIOUS["cycler"]}]
    )
    (finding,) = _scan(GGUF, data)
    assert (finding.id, finding.severity) == ("gguf.template-injection", Severity.CRITICAL)
    assert "tokenizer.chat_template.tool_use" in finding.description


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_chat_templates_are_high_or_worse(tmp_path: Path, name: str) -> None:
    found = _scan(GGUF, _gguf(tmp_path, MALICIOUS[name]))
    assert _worst(found) is not None and _worst(found) >= Severity.HIGH  # type: ignore[operator]


def test_dunders_are_critical_and_unparseable_templates_medium() -> None:
    assert [f.severity for f in template_findings(MALICIOUS["escaped dunder"], "k", "m")] == [Severity.CRITICAL]
    assert [(f.id, f.severity) for f in template_findings("{% for %}", "k", "m")] == [
        ("gguf.template-invalid", Severity.MEDIUM)
    ]


def test_gguf_metadata_that_lies_about_its_lengths_is_a_finding() -> None:
    for data in (
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**62),
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 8, 2**60),
        b"GGUF" + struct.pack("<IQQ", 3, 0, 2**40),
    ):
        assert [f.id for f in _scan(GGUF, data)] == ["gguf.header"]


# --- SavedModel ------------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _entry(key: str, value: bytes) -> bytes:
    return _field(1, key) + _field(2, value)


def _node(
    name: str, op: str, inputs: tuple[str, ...] = (), *, f: str = "", strings: dict[str, str] | None = None
) -> bytes:
    attrs = _field(5, _entry("f", _field(10, _field(1, f)))) if f else b""
    for key, value in (strings or {}).items():
        attrs += _field(5, _entry(key, _field(2, value)))
    return _field(1, name) + _field(2, op) + b"".join(_field(3, i) for i in inputs) + attrs


def _function(name: str, *nodes: bytes) -> bytes:
    return _field(1, _field(1, name)) + b"".join(_field(3, n) for n in nodes)


def _saved_model(
    nodes: list[bytes], functions: list[bytes], *, saver: bool = True, signature: str = "serving:0"
) -> bytes:
    graph = b"".join(_field(1, n) for n in nodes) + _field(2, b"".join(_field(1, f) for f in functions))
    meta = _field(1, _field(4, "serve")) + _field(2, graph)
    if saver:
        meta += _field(3, _field(1, "saver_filename:0") + _field(2, "save:0") + _field(3, "restore"))
    tensor_info = _field(1, signature)
    meta += _field(5, _entry("serving_default", _field(2, _entry("output_0", tensor_info))))
    return b"\x08\x01" + _field(2, meta)


SAVE_FN = _function(
    "__inference__traced_save_42",
    _node("sharded", "ShardedFilename", ("prefix",)),
    _node("SaveV2", "SaveV2", ("sharded", "names", "slices", "w")),
    _node("merge", "MergeV2Checkpoints", ("sharded",)),
)
RESTORE_FN = _function("__inference__traced_restore_43", _node("RestoreV2", "RestoreV2", ("prefix",)))
SERVE_FN = _function("__inference_serve_7", _node("mm", "MatMul", ("x", "w")), _node("p", "PrintV2", ("mm",),
                     strings={"output_stream": "stderr"}))  # fmt: skip
TF2_NODES = [
    _node("saver_filename", "Placeholder"),
    _node("w", "VarHandleOp"),
    _node("x", "Placeholder"),
    _node("serving", "StatefulPartitionedCall", ("x", "w"), f="__inference_serve_7"),
    _node("save", "StatefulPartitionedCall", ("saver_filename", "w"), f="__inference__traced_save_42"),
    _node("restore", "StatefulPartitionedCall", ("saver_filename", "w"), f="__inference__traced_restore_43"),
]


def test_tf2_saved_model_with_its_checkpoint_saver_is_clean() -> None:
    data = _saved_model(TF2_NODES, [SAVE_FN, RESTORE_FN, SERVE_FN])
    assert identify_stream(io.BytesIO(data), len(data)).format is ModelFormat.TF_SAVEDMODEL
    assert _scan(SAVED_MODEL, data) == []


@pytest.mark.parametrize(
    ("nodes", "functions", "op"),
    [
        # the serving signature calls the saver's function
        ([*TF2_NODES[:3], _node("serving", "StatefulPartitionedCall", ("x",), f="__inference__traced_save_42"),
          *TF2_NODES[4:]], [SAVE_FN, RESTORE_FN, SERVE_FN], "SaveV2"),
        # SaveV2 in the serving function
        (TF2_NODES, [SAVE_FN, RESTORE_FN, _function("__inference_serve_7", _node("s", "SaveV2", ("x",)))], "SaveV2"),
        # a node outside the saver consumes the saver's output
        ([*TF2_NODES, _node("later", "Identity", ("save",))], [SAVE_FN, RESTORE_FN, SERVE_FN], "MergeV2Checkpoints"),
        # a graph node called like a function (op named after a library function)
        ([*TF2_NODES, _node("direct", "__inference__traced_restore_43")], [SAVE_FN, RESTORE_FN, SERVE_FN],
         "RestoreV2"),
        (TF2_NODES, [SAVE_FN, RESTORE_FN, _function("__inference_serve_7", _node("p", "PrintV2", ("x",),
         strings={"output_stream": "file:///tmp/owned"}))], "PrintV2"),
        ([*TF2_NODES, _node("r", "ReadFile", ("x",))], [SAVE_FN, RESTORE_FN, SERVE_FN], "ReadFile"),
        (TF2_NODES, [SAVE_FN, RESTORE_FN, SERVE_FN, _function("unused", _node("py", "EagerPyFunc"))], "EagerPyFunc"),
        (TF2_NODES, [SAVE_FN, RESTORE_FN, SERVE_FN, _function("m", _node("c", "ImmutableConst"))], "ImmutableConst"),
        (TF2_NODES, [SAVE_FN, RESTORE_FN, SERVE_FN, _function("d", _node("d", "TFRecordDatasetV2"))],
         "TFRecordDatasetV2"),
        (TF2_NODES, [SAVE_FN, RESTORE_FN, SERVE_FN, _function("d", _node("d", "SomeFileOp"))], "SomeFileOp"),
    ],
)  # fmt: skip
def test_saved_model_risky_ops_are_high(nodes: list[bytes], functions: list[bytes], op: str) -> None:
    found = {f.title: f for f in _scan(SAVED_MODEL, _saved_model(nodes, functions))}
    assert found[f"SavedModel graph uses {op}"].severity is Severity.HIGH


def test_saved_model_without_a_saver_def_flags_saver_ops_and_bad_protobufs() -> None:
    found = _scan(SAVED_MODEL, _saved_model(TF2_NODES, [SAVE_FN, RESTORE_FN, SERVE_FN], saver=False))
    assert {f.title for f in found} == {
        f"SavedModel graph uses {op}" for op in ("SaveV2", "MergeV2Checkpoints", "RestoreV2")
    }
    data = _saved_model(TF2_NODES, [SAVE_FN])
    assert [f.id for f in _scan(SAVED_MODEL, data[:-3])] == ["tensorflow.corrupt"]


# --- Mutation fuzz ---------------------------------------------------------------------------------------------


def _mutants(seed: bytes, count: int, rng: random.Random) -> list[bytes]:
    out = []
    for _ in range(count):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            kind = rng.randrange(4)
            at = rng.randrange(max(1, len(data)))
            if kind == 0 and data:
                data[at] = rng.randrange(256)
            elif kind == 1:
                del data[at : at + rng.randint(1, 16)]
            elif kind == 2:
                data[at:at] = rng.randbytes(rng.randint(1, 16))
            else:
                data = data[:at]
        out.append(bytes(data))
    return out


def _fuzz_seeds(tmp_path: Path, keras_files: dict[str, bytes]) -> dict[str, tuple[FormatScanner, list[bytes]]]:
    pytest.importorskip("onnx")
    tools = _gguf(tmp_path, [{"name": "default", "template": TOOLS}, {"name": "tool_use", "template": MISTRAL}])
    return {
        "keras": (KERAS, [keras_files["keras"], keras_files["h5"]]),
        "onnx": (ONNX, [_onnx_model(), _onnx_model(where="function", location="../x")]),
        "gguf": (GGUF, [tools]),
        "saved-model": (SAVED_MODEL, [_saved_model(TF2_NODES, [SAVE_FN, RESTORE_FN, SERVE_FN])]),
    }


def test_mutation_fuzz_never_raises(tmp_path: Path, keras_files: dict[str, bytes]) -> None:
    rng = random.Random(1414)
    crashes: list[str] = []
    runs = 0
    for name, (scanner, seeds) in _fuzz_seeds(tmp_path, keras_files).items():
        for seed in seeds:
            for data in _mutants(seed, 400, rng):
                runs += 1
                try:
                    findings = _scan(scanner, data)
                except FileFormatError:
                    continue
                except Exception as exc:
                    crashes.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
                    continue
                assert all(isinstance(f, Finding) for f in findings)
    assert runs == 6 * 400
    assert crashes == []
