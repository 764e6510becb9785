"""Containers read as their loaders read them: .npy headers, tar, joblib compression, safetensors, protobuf ids.

Files are written by the real libraries where they can be; the mutation fuzz at the end calls each scanner
directly (not through ``Scanner.dispatch``) and allows no exception but :class:`FileFormatError`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import pickle
import random
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

import joblib
import numpy as np
import pytest

from modelshield.errors import FileFormatError
from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat, identify_stream, is_tar_header
from modelshield.supply_chain.scan.formats.compressed import COMPRESSED
from modelshield.supply_chain.scan.formats.numpy import NUMPY
from modelshield.supply_chain.scan.formats.safetensors import SAFETENSORS
from modelshield.supply_chain.scan.formats.tar import TAR
from modelshield.supply_chain.scan.interface import FormatScanner
from modelshield.supply_chain.scan.scanner import Scanner

# A pickle that would run `true` (never loaded here).
_EVIL = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."


def _scan(scanner: FormatScanner, data: bytes) -> list[Finding]:
    stream = io.BytesIO(data)
    info = identify_stream(stream, len(data))
    return list(scanner.scan(cast(BinaryIO, stream), len(data), "f", Scanner().context(info)))


def _ids(findings: list[Finding], at_least: Severity = Severity.INFO) -> set[str]:
    return {f.id for f in findings if f.severity >= at_least}


def _npy(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
    return buffer.getvalue()


# --- .npy ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [object, [("a", "f4"), ("b", "O")], [("a", "O", (2,))], np.dtype((object, (2,)))],
    ids=["plain", "structured", "structured-subarray", "subarray"],
)
@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_object_dtypes_however_spelled_are_pickles(dtype: object, version: tuple[int, int]) -> None:
    array = np.zeros(2, dtype=dtype)
    data = _npy(array, version)
    assert identify_stream(io.BytesIO(data), len(data)).can_execute_code
    assert _scan(NUMPY, data) == []
    # The same header with a payload that runs code: the pickle after the header is scanned.
    header_end = data.index(b"\n") + 1
    assert "pickle.dangerous-call" in _ids(_scan(NUMPY, data[:header_end] + _EVIL))


def test_numeric_npy_is_not_read_past_its_header() -> None:
    data = _npy(np.arange(6.0))
    info = identify_stream(io.BytesIO(data), len(data))
    assert (info.format, info.can_execute_code) == (ModelFormat.NUMPY, False)
    assert _scan(NUMPY, data) == []


def test_object_spelling_in_a_field_name_is_not_an_object_array() -> None:
    data = _npy(np.zeros(2, dtype=[("|O", "f8")]))  # the substring "|O" in a name, not a dtype
    assert not identify_stream(io.BytesIO(data), len(data)).can_execute_code
    assert _scan(NUMPY, data) == []


def test_python2_long_suffixes_are_read_as_numpy_reads_them() -> None:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1L,), }".ljust(117) + b"\n"
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + _EVIL
    assert "pickle.dangerous-call" in _ids(_scan(NUMPY, data))


def test_refused_header_with_a_pickle_after_it_fails_closed() -> None:
    header = b"{'descr': '|O', 'shape': (1,)}".ljust(53) + b"\n"  # no fortran_order: numpy refuses
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + _EVIL
    found = _scan(NUMPY, data)
    assert "numpy.header" in _ids(found, Severity.HIGH)
    assert "pickle.dangerous-call" in _ids(found)
    harmless = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(8)
    assert _ids(_scan(NUMPY, harmless), Severity.MEDIUM) == {"numpy.header"}
    assert max(f.severity for f in _scan(NUMPY, harmless)) is Severity.MEDIUM


# --- tar ------------------------------------------------------------------------------------------------------------


def _tar(members: dict[str, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _v7(members: dict[str, bytes]) -> bytes:
    """A pre-POSIX (v7) tar: no ustar magic, only the checksum says it is a header."""
    out = b""
    for name, data in members.items():
        block = bytearray(512)
        block[0 : len(name)] = name.encode()
        block[100:108] = b"0000644\0"
        block[124:136] = f"{len(data):011o}\0".encode()
        block[136:148] = b"00000000000\0"
        block[156] = ord("0")
        block[148:156] = b" " * 8
        block[148:156] = f"{sum(block):06o}\0 ".encode()
        out += bytes(block) + data + bytes(-len(data) % 512)
    return out + bytes(1024)


def _legacy_torch_tar(main: bytes) -> bytes:
    """A legacy torch checkpoint as torch < 0.4 wrote it: one float storage, one tensor, the main pickle."""
    storages = pickle.dumps(1, protocol=2)
    storages += b"\x80\x02(K\x00X\x03\x00\x00\x00cpuctorch\nFloatStorage\nt."
    storages += struct.pack("<q", 3) + struct.pack("<3f", 1, 2, 3) + pickle.dumps([], protocol=2)
    tensors = pickle.dumps(1, protocol=2) + b"\x80\x02(K\x01K\x00ctorch\nFloatTensor\nt."
    tensors += struct.pack("<i", 1) + bytes(4) + struct.pack("<qqq", 3, 1, 0)
    return _tar({"sys_info": pickle.dumps({}, protocol=2), "pickle": main, "storages": storages, "tensors": tensors})


@pytest.mark.parametrize(
    "write",
    [lambda m: _tar(m, tarfile.GNU_FORMAT), lambda m: _tar(m, tarfile.USTAR_FORMAT), _tar, _v7],
    ids=["gnu", "ustar", "pax", "v7"],
)
def test_every_tar_dialect_is_identified_and_scanned(write: Callable[[dict[str, bytes]], bytes]) -> None:
    data = write({"weights/model.pkl": _EVIL})
    assert is_tar_header(data[:512])
    assert identify_stream(io.BytesIO(data), len(data)).format is ModelFormat.TAR
    assert "pickle.dangerous-call" in _ids(_scan(TAR, data))


def test_legacy_torch_members_are_walked_as_torch_walks_them() -> None:
    data = _legacy_torch_tar(b"\x80\x02X\x01\x00\x00\x001Q.")
    assert identify_stream(io.BytesIO(data), len(data)).format is ModelFormat.PYTORCH_LEGACY_TAR
    assert "tar.legacy-unfollowed" not in _ids(_scan(TAR, data))
    assert "pickle.dangerous-call" in _ids(_scan(TAR, _legacy_torch_tar(_EVIL)))


def test_legacy_member_that_does_not_look_like_a_pickle_is_still_read_as_one() -> None:
    disguised = b"\x00" * 8 + _EVIL  # a leading junk byte sequence, then the payload
    found = _scan(TAR, _tar({"storages": disguised, "pickle": b"N."}))
    assert "tar.legacy-unfollowed" in _ids(found, Severity.HIGH)


def test_tar_names_and_links_that_escape() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for name, kind, target in (("../up", tarfile.REGTYPE, ""), ("ln", tarfile.SYMTYPE, "/etc/passwd")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info, io.BytesIO(b""))
        info = tarfile.TarInfo("pickle")
        info.type, info.linkname = tarfile.SYMTYPE, "elsewhere"
        tf.addfile(info)
    found = _ids(_scan(TAR, buffer.getvalue()), Severity.HIGH)
    assert {"archive.path-traversal", "archive.link"} <= found


def test_truncated_legacy_member_is_high_and_its_prefix_scanned() -> None:
    data = _tar({"pickle": _EVIL + bytes(4000)})
    cut = data[: 512 + 512 + 200]  # pax header, member header, part of the data
    found = _scan(TAR, cut)
    assert "pickle.dangerous-call" in _ids(found)
    assert max(f.severity for f in found) >= Severity.HIGH


# --- compressed -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"])
def test_joblib_compressions_are_decompressed(tmp_path: Path, method: str) -> None:
    path = tmp_path / "m.joblib"
    joblib.dump({"w": np.ones(3), "n": "x"}, path, compress=(method, 3))
    data = path.read_bytes()
    assert identify_stream(io.BytesIO(data), len(data)).format is ModelFormat.COMPRESSED
    assert _scan(COMPRESSED, data) == []
    # Truncated: joblib unpickles what comes out before the damage, which is scanned; the rest cannot be read by
    # anyone, so the damage itself is medium.
    found = _scan(COMPRESSED, data[:-7])
    assert "archive.corrupt" in _ids(found, Severity.MEDIUM)
    assert "archive.corrupt" not in _ids(found, Severity.HIGH)


def test_lz4_payload_is_found() -> None:
    import lz4.frame  # type: ignore[import-untyped]

    assert "pickle.dangerous-call" in _ids(_scan(COMPRESSED, lz4.frame.compress(_EVIL)))


def test_every_gzip_member_is_read() -> None:
    data = gzip.compress(pickle.dumps(1)) + gzip.compress(_EVIL)
    assert "pickle.dangerous-call" in _ids(_scan(COMPRESSED, data))


def test_joblib_zlib_prefix_is_one_byte_and_nothing_decompressing_is_not_a_stream() -> None:
    data = b"\x78" + bytes(40)  # joblib takes this for zlib; it cannot be decompressed, so no loader reads it
    assert identify_stream(io.BytesIO(data), len(data)).format is ModelFormat.COMPRESSED
    assert _ids(_scan(COMPRESSED, data)) == {"archive.not-compressed"}
    assert _ids(_scan(COMPRESSED, data), Severity.LOW) == set()
    assert "archive.trailing-data" in _ids(_scan(COMPRESSED, zlib.compress(b"N.") + b"junk"))


# --- safetensors ----------------------------------------------------------------------------------------------------


def _safetensors() -> bytes:
    from safetensors.numpy import save

    return cast(bytes, save({"a": np.ones((3, 4), np.float32), "b": np.zeros(5, np.int64)}))


def _header_file(header: str, data: bytes) -> bytes:
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_real_safetensors_clean_and_appended_bytes_are_reported() -> None:
    data = _safetensors()
    assert _scan(SAFETENSORS, data) == []
    assert _ids(_scan(SAFETENSORS, data + b"hidden")) == {"safetensors.trailing-data"}


@pytest.mark.parametrize(
    ("header", "rule"),
    [
        ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', "safetensors.gap"),
        ('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {}}', "safetensors.duplicate-key"),
        ('{"__metadata__":{"k":1},"w":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}', "safetensors.metadata"),
        ('{"w": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}}', "safetensors.tensor"),
        ('{"w": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}', "safetensors.tensor"),
        ('{"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 8]}}', "safetensors.shape"),
    ],
)  # fmt: skip
def test_safetensors_headers_checked_like_the_rust_crate(header: str, rule: str) -> None:
    assert rule in _ids(_scan(SAFETENSORS, _header_file(header, bytes(8))))


# --- protobuf and Keras identification -------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_saved_model_and_onnx_by_their_wire_format() -> None:
    meta_graph = _len_field(1, _len_field(4, b"serve")) + _len_field(2, b"")  # no keyword needed
    saved = b"\x08\x01" + _len_field(2, meta_graph)
    assert identify_stream(io.BytesIO(saved), len(saved)).format is ModelFormat.TF_SAVEDMODEL
    broken = b"\x08\x01" + _len_field(2, b"\x12\xff")  # a MetaGraphDef field that runs past its end
    assert identify_stream(io.BytesIO(broken), len(broken)).format is not ModelFormat.TF_SAVEDMODEL
    onnx = b"\x08\x09" + _len_field(2, b"me") + _len_field(7, b"") + _len_field(8, b"\x10\x11")
    assert identify_stream(io.BytesIO(onnx), len(onnx)).format is ModelFormat.ONNX
    assert identify_stream(io.BytesIO(onnx[:-1]), len(onnx) - 1).format is ModelFormat.UNKNOWN


def test_keras_archive_by_its_config(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        zf.writestr("model.weights.npz", b"")
    data = path.read_bytes()
    assert identify_stream(io.BytesIO(data), len(data)).format is ModelFormat.KERAS


# --- bounded mutation fuzz ------------------------------------------------------------------------------------------


def _mutants(seed_data: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        data = bytearray(seed_data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            pos = rng.randrange(max(len(data), 1))
            if op == 0 and data:
                data[pos] = rng.randrange(256)
            elif op == 1:
                del data[pos : pos + rng.randint(1, 16)]
            elif op == 2:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            else:
                del data[pos:]
        out.append(bytes(data))
    return out


def _seeds() -> dict[str, tuple[FormatScanner, list[bytes]]]:
    import lz4.frame

    npys = [_npy(np.zeros(2, dtype=[("a", "f4"), ("b", "O")])), _npy(np.arange(3.0), (3, 0))]
    tars = [_legacy_torch_tar(_EVIL), _v7({"x.pkl": _EVIL}), _tar({"a.pkl": pickle.dumps([1])}, tarfile.GNU_FORMAT)]
    blob = pickle.dumps({"w": list(range(50))})
    packed = [zlib.compress(blob), gzip.compress(blob), lz4.frame.compress(blob)]
    return {
        "numpy": (NUMPY, npys),
        "tar": (TAR, tars),
        "compressed": (COMPRESSED, packed),
        "safetensors": (SAFETENSORS, [_safetensors()]),
    }


@pytest.mark.parametrize("handler", ["numpy", "tar", "compressed", "safetensors"])
def test_mutated_containers_never_raise(handler: str) -> None:
    scanner, seeds = _seeds()[handler]
    rng = random.Random(f"containers-{handler}")
    run = Scanner()
    for seed in seeds:
        for data in _mutants(seed, rng, 600 // len(seeds)):
            stream = io.BytesIO(data)
            info = identify_stream(stream, len(data))
            with contextlib.suppress(FileFormatError):
                scanner.scan(cast(BinaryIO, stream), len(data), "f", run.context(info))
