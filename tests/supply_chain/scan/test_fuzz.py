"""Mutation fuzzing of every format scanner: no bytes may make a scanner raise anything but FileFormatError.

Seeds are real files written by the libraries that write them (pickle at every protocol, ``torch.save`` zip and
legacy, TorchScript, joblib with every compression, ``.npy``/``.npz`` with object arrays, safetensors, ONNX, HDF5,
GGUF, tar, compressed streams, a SavedModel protobuf), plus :func:`format_samples` for the formats no cheap real
writer covers. Each mutant goes through every scanner that serves its seed's format, called directly with a
context that lets exceptions through (no catch-all in between), and through :meth:`Scanner.scan_file`.

This module also holds the fuzzing engine that ``benchmarks/scan/fuzz.py`` runs for minutes:

    >>> import random
    >>> len(mutate(random.Random(0), b"\\x80\\x04K\\x01.", None)) > 0
    True
"""

from __future__ import annotations

import bz2
import collections
import datetime
import gzip
import io
import json
import lzma
import multiprocessing
import pickle
import pickletools
import random
import tarfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelshield.errors import FileFormatError
from modelshield.findings import Finding
from modelshield.supply_chain.formats import FormatInfo, ModelFormat, identify_stream
from modelshield.supply_chain.scan.formats import builtin_scanners
from modelshield.supply_chain.scan.formats.pickle import pickle_findings
from modelshield.supply_chain.scan.interface import FormatScanner
from modelshield.supply_chain.scan.registry import ScannerRegistry
from modelshield.supply_chain.scan.scanner import Scanner, _Level
from modelshield.testing.scan_corpus import format_samples

# -- the engine ----------------------------------------------------------------------------------------------------

#: Bytes that parsers trip on: pickle opcodes, sign and length boundaries, digits of other scripts, line ends.
INTERESTING: tuple[bytes, ...] = (
    *(bytes([op.code.encode("latin-1")[0]]) for op in pickletools.opcodes),
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff",
    b"\xff" * 8,
    b"\x7f\xff\xff\xff",
    b"\x00\x00\x00\x80",
    b"\x80\x05",
    b"0",
    b"9",
    b"-1",
    b"99999999999999999999",
    "\u0663".encode(),  # ARABIC-INDIC DIGIT THREE
    "\u0967".encode(),  # DEVANAGARI DIGIT ONE
    "\uff11".encode(),  # FULLWIDTH DIGIT ONE
    b"\n",
    b"\r\n",
    b"'",
    b'"',
    b"\\",
    b"{",
    b"}",
    b"PK\x03\x04",
    b"PK\x01\x02",
    b"PK\x05\x06",
    b"\x1f\x8b",
    b"ustar\x00",
    b"\x93NUMPY",
    b"|O",
    b"GGUF",
    b"\x89HDF\r\n\x1a\n",
    b"os\nsystem\n",
    b"builtins",
)


def mutate(rng: random.Random, data: bytes, other: bytes | None) -> bytes:
    """One to four random edits of ``data``; ``other`` (another seed) is spliced in by one of them."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        n = len(out)
        op = rng.randrange(9)
        pos = rng.randrange(n + 1)
        if op == 0 and n:  # flip bits of one byte
            out[min(pos, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # a random byte
            out[min(pos, n - 1)] = rng.randrange(256)
        elif op == 2 and n:  # delete a range
            del out[pos : pos + rng.choice((1, 1, 2, 4, 16, 256))]
        elif op == 3:  # insert random bytes
            out[pos:pos] = rng.randbytes(rng.choice((1, 1, 2, 4, 8)))
        elif op == 4:  # insert an interesting token
            out[pos:pos] = rng.choice(INTERESTING)
        elif op == 5 and n:  # overwrite with an interesting token
            token = rng.choice(INTERESTING)
            out[pos : pos + len(token)] = token
        elif op == 6 and n:  # truncate
            del out[rng.randrange(n) :]
        elif op == 7 and n:  # duplicate a chunk elsewhere
            start = rng.randrange(n)
            chunk = out[start : start + rng.choice((4, 16, 64, 512))]
            at = rng.randrange(n + 1)
            out[at:at] = chunk
        elif op == 8 and other:  # splice: a prefix of one file and a suffix of another
            out = out[:pos] + other[rng.randrange(len(other) + 1) :]
    return bytes(out)


class _RawLevel(_Level):
    """The scanner's own :class:`ScanContext`, without its catch-all: an exception in a nested scanner reaches the
    caller."""

    def scan_member(self, stream: BinaryIO, size: int, location: str) -> list[Finding]:
        if self.depth + 1 > self.limits.max_depth:
            return []
        info = identify_stream(stream, size)
        level = _RawLevel(self.run, self.depth + 1, info)
        scanners = self.run.registry.for_format(info.format)
        if not scanners and info.format is ModelFormat.UNKNOWN:
            return pickle_findings(stream, size, location, level, sniff=True)  # as Scanner.dispatch reads it
        found: list[Finding] = []
        for scanner in scanners:
            found += scanner.scan(stream, size, location, level)
        return found


def raw_scan(run: Scanner, scanner: FormatScanner, data: bytes, fmt: ModelFormat) -> list[Finding]:
    """``scanner.scan`` on ``data`` as a stream of ``fmt`` (or of what ``data`` is identified as, when that is one
    of the scanner's formats); nested streams are scanned without a catch-all. Raises what the scanner raises."""
    stream = io.BytesIO(data)
    info = identify_stream(stream, len(data))
    if info.format not in scanner.formats:
        info = FormatInfo(fmt, "fuzzed", can_execute_code=True)
    return list(scanner.scan(stream, len(data), "fuzz", _RawLevel(run, 0, info)))


def builtin_run() -> Scanner:
    """A scan run over the built-in scanners only (no plug-ins)."""
    return Scanner(registry=ScannerRegistry(builtin_scanners()))


# -- seeds: real files --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A seed file: its name, its bytes, and the format it was written as."""

    name: str
    data: bytes
    format: ModelFormat


def _payload() -> dict[str, object]:
    return {
        "weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "ids": np.array([1, 2, 3], dtype=np.int64),
        "name": "layer\u00e9",
        "misc": [1, 2.5, None, True, b"\x00\x01", (3, 4), {5, 6}, 2**70, -(2**40)],
        "ordered": collections.OrderedDict(a=1),
        "when": datetime.date(2024, 1, 2),
    }


def _identified(name: str, data: bytes) -> Seed:
    return Seed(name, data, identify_stream(io.BytesIO(data), len(data)).format)


def _saved_model_pb() -> bytes:
    """A SavedModel protobuf encoded by hand: schema version 1, one MetaGraphDef tagged "serve" with a graph."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def node(name: str, op: str, *inputs: str) -> bytes:
        return field(1, name.encode()) + field(2, op.encode()) + b"".join(field(3, i.encode()) for i in inputs)

    graph = b"".join(
        field(1, n)
        for n in (node("x", "Placeholder"), node("w", "Const"), node("y", "MatMul", "x", "w"), node("r", "Identity"))
    )
    meta_info = field(4, b"serve") + field(5, b"2.16.1")
    return b"\x08\x01" + field(2, field(1, meta_info) + field(2, graph))


def _hdf5_keras_like(tmp: Path) -> bytes:
    import h5py  # type: ignore[import-untyped]

    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [{"class_name": "Dense", "module":
              "keras.layers", "config": {"units": 2}}]}}  # fmt: skip
    path = tmp / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "3.5.0"
        f.create_dataset("model_weights/dense/kernel", data=np.ones((2, 2), np.float32))
    return path.read_bytes()


def _keras_archive(h5: bytes) -> bytes:
    """The layout Keras 3 writes (config.json, metadata.json, model.weights.h5), without importing Keras."""
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [{"module":
              "keras.layers", "class_name": "Dense", "config": {"units": 2}, "registered_name": None}]}}  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.5.0", "date_saved": "2024-01-01"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", h5)
    return buffer.getvalue()


def _gguf_file(tmp: Path) -> bytes:
    import gguf

    path = tmp / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(16)
    writer.add_chat_template("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    writer.add_token_list(["<s>", "</s>", "a"])
    writer.add_token_scores([0.0, 0.0, -1.0])
    writer.add_tensor("w", np.ones((2, 2), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def _onnx_model() -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 2])],
        [weight],
    )
    return bytes(helper.make_model(graph).SerializeToString())


def _torch_seeds(tmp: Path) -> list[Seed]:
    import torch

    state = {"w": torch.ones(2, 3), "b": torch.zeros(2, dtype=torch.int64), "step": 3}
    seeds = []
    for name, kwargs in (("torch-zip.pt", {}), ("torch-legacy.pt", {"_use_new_zipfile_serialization": False})):
        buffer = io.BytesIO()
        torch.save(state, buffer, **kwargs)
        seeds.append(_identified(name, buffer.getvalue()))
    module = torch.jit.script(torch.nn.Linear(2, 2))
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    seeds.append(_identified("torchscript.pt", buffer.getvalue()))
    return seeds


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def real_seeds(tmp: Path, *, torch: bool = True) -> list[Seed]:
    """Real files of every format the scanner reads (Keras archives in the layout Keras writes; the benchmark adds
    ones written by Keras itself). ``tmp`` is a folder for writers that need a path."""
    import joblib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        payload = _payload()
        plain = pickle.dumps({"w": [1.0, 2.0], "name": "x"}, protocol=2)
        seeds = [_identified(f"pickle-p{p}.pkl", pickle.dumps(payload, protocol=p)) for p in range(6)]
        for compress in (0, "zlib", "gzip", "bz2", "xz", "lzma", "lz4"):
            path = tmp / f"model-{compress}.joblib"
            joblib.dump(payload, path, compress=compress)
            seeds.append(_identified(path.name, path.read_bytes()))
        for name, array in (("float.npy", np.arange(5.0)), ("object.npy", np.array([{"a": 1}, "s", None]))):
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=True)
            seeds.append(_identified(name, buffer.getvalue()))
        buffer = io.BytesIO()
        np.savez(buffer, a=np.arange(3), o=np.array([{"k": 1}], dtype=object))
        seeds.append(_identified("arrays.npz", buffer.getvalue()))
        from safetensors.numpy import save

        seeds.append(_identified("model.safetensors", save({"a": np.ones((2, 3), np.float32), "b": np.arange(4)})))
        seeds.append(_identified("model.onnx", _onnx_model()))
        h5 = _hdf5_keras_like(tmp)
        seeds += [_identified("model.h5", h5), _identified("model.keras", _keras_archive(h5))]
        seeds.append(_identified("model.gguf", _gguf_file(tmp)))
        seeds.append(_identified("saved_model.pb", _saved_model_pb()))
        seeds.append(_identified("legacy.tar", _tar({"pickle": plain, "storages": plain, "tensors": plain})))
        seeds.append(_identified("plain.tar", _tar({"a/weights.pkl": plain, "a/notes.txt": b"hello\n"})))
        seeds += [
            _identified("stream.gz", gzip.compress(plain)),
            _identified("stream.xz", lzma.compress(plain)),
            _identified("stream.lzma", lzma.compress(plain, format=lzma.FORMAT_ALONE)),
            _identified("stream.bz2", bz2.compress(plain)),
            _identified("stream.zlib", zlib.compress(plain)),
        ]
        import lz4.frame  # type: ignore[import-untyped]

        seeds.append(_identified("stream.lz4", lz4.frame.compress(plain)))
        if torch:
            seeds += _torch_seeds(tmp)
    return seeds


def sample_seeds() -> list[Seed]:
    """The scan corpus' small samples of every format (benign and malicious), named after their format."""
    return [
        Seed(f"sample-{fmt.value}-{i}", data, fmt)
        for fmt, datas in format_samples().items()
        for i, data in enumerate(datas)
    ]


# -- the tests ----------------------------------------------------------------------------------------------------

_MUTANTS_PER_SCANNER = 300
_SEED = 20240514


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Seed]:
    return real_seeds(tmp_path_factory.mktemp("seeds")) + sample_seeds()


def _scanner_ids() -> list[str]:
    return [s.name for s in builtin_scanners()]


def test_every_builtin_scanner_and_every_format_it_serves_has_a_seed(seeds: list[Seed]) -> None:
    seeded = {s.format for s in seeds}
    missing = {
        scanner.name: sorted(f.value for f in scanner.formats - seeded)
        for scanner in builtin_scanners()
        if scanner.formats - seeded
    }
    assert missing == {}, f"formats served without a fuzzing seed: {missing}"
    real = {s.format for s in seeds if not s.name.startswith("sample-")}
    assert [s.name for s in builtin_scanners() if not s.formats & real] == []


def _fuzz_scanner(name: str, seeds: list[Seed], folder: Path) -> list[str]:
    """The failures of one scanner's mutants; the mutant being checked is kept in ``folder / "mutant"``."""
    scanner = next(s for s in builtin_scanners() if s.name == name)
    mine = [s for s in seeds if s.format in scanner.formats]
    rng = random.Random(f"{_SEED}-{name}")
    run = builtin_run()
    target = folder / "mutant"
    failures: list[str] = []
    for i in range(_MUTANTS_PER_SCANNER):
        seed = mine[i % len(mine)]
        data = mutate(rng, seed.data, rng.choice(seeds).data)
        target.write_bytes(data)
        (folder / "which").write_text(f"{seed.name} mutant {i} ({len(data)} bytes)")
        try:
            raw_scan(run, scanner, data, seed.format)
        except FileFormatError:
            pass
        except Exception as exc:
            failures.append(f"{seed.name} mutant {i} ({len(data)} bytes) direct: {type(exc).__name__}: {exc}")
        try:
            scan = run.scan_file(target)
        except Exception as exc:
            failures.append(f"{seed.name} mutant {i} scan_file: {type(exc).__name__}: {exc}")
        else:
            internal = [f.description for f in scan.findings if f.id == "scan.internal-error"]
            failures += [f"{seed.name} mutant {i} scan_file internal error: {d}" for d in internal]
    return failures


_CHILD_TIMEOUT_S = 120  # far above the few seconds a scanner's mutants take; only a hang reaches it


@pytest.mark.parametrize("name", _scanner_ids())
def test_mutants_never_raise_from_a_scanner_or_from_scan_file(name: str, seeds: list[Seed], tmp_path: Path) -> None:
    # In a forked child, so that a scan stuck in native code (where no signal reaches) fails the test, not the run.
    def child() -> None:
        failures = _fuzz_scanner(name, seeds, tmp_path)
        (tmp_path / "failures.json").write_text(json.dumps(failures))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(_CHILD_TIMEOUT_S)
    if process.is_alive():
        process.kill()
        process.join()
        which = (tmp_path / "which").read_text()
        pytest.fail(f"the scan of {which} did not finish in {_CHILD_TIMEOUT_S} s: a hang (input kept at "
                    f"{tmp_path / 'mutant'})")  # fmt: skip
    assert process.exitcode == 0, f"the fuzzing process died (exit {process.exitcode})"
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert failures == [], f"{len(failures)} of {_MUTANTS_PER_SCANNER} mutants crashed:\n" + "\n".join(failures[:10])


_MAGICS = (
    b"\x80\x02",
    b"\x80\x05\x95",
    b"(",
    b"c",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x93NUMPY\x01\x00",
    b"\x93NUMPY\x02\x00",
    b"GGUF\x03\x00\x00\x00",
    b"\x89HDF\r\n\x1a\n",
    b"\x1f\x8b\x08",
    b"\xfd7zXZ\x00",
    b"BZh9",
    b"\x04\x22\x4d\x18",
    b"x\x9c",
    b"\x5d\x00\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"\x08\x01\x12",
    b"\x08\x07\x12",
    b"\x10\x00\x00\x00\x00\x00\x00\x00{",
)


def _scan_bytes_never_raises(data: bytes) -> None:
    findings = builtin_run().scan_stream(io.BytesIO(data), len(data), location="fuzz")
    assert [f.description for f in findings if f.id == "scan.internal-error"] == []


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    _scan_bytes_never_raises(data)


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_MAGICS), st.binary(max_size=1024), st.booleans())
def test_bytes_after_every_format_magic_never_raise(magic: bytes, body: bytes, stop: bool) -> None:
    # A final "." makes text-first-byte pickles recognisable; a tar-like tail makes the "ustar" magic land at 257.
    _scan_bytes_never_raises(magic + body + (b"." if stop else b""))


@settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=262, max_size=1024))
def test_bytes_with_a_tar_magic_never_raise(body: bytes) -> None:
    _scan_bytes_never_raises(body[:257] + b"ustar\x0000" + body[264:])
