"""The file scanner on files written by the real libraries: archives, compression, nesting, limits."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.errors import FileFormatError
from modelshield.findings import Severity
from modelshield.supply_chain.scan.interface import ScanLimits, ScanOptions
from modelshield.supply_chain.scan.scanner import scan_file, scan_stream


class Reduce:
    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def worst(path: Path, **kwargs: Any) -> Severity | None:
    return scan_file(path, **kwargs).max_severity


def test_benign_torch_checkpoint_is_clean_and_payload_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.pt"
    torch.save({f"layer{i}": torch.zeros(512, 512) for i in range(8)}, path)
    result = scan_file(path)
    assert result.format == "pytorch-zip"
    assert result.findings == ()


def test_payload_in_torch_checkpoint_names_the_inner_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2), "hook": Reduce(os.system, "id")}, path)
    (finding,) = scan_file(path).findings
    assert finding.id == "pickle.dangerous-call"
    assert finding.severity is Severity.CRITICAL
    assert finding.location is not None and finding.location.endswith("!model/data.pkl")
    assert finding.evidence["opcode"] == "REDUCE"


def test_zip_in_zip_and_tar(tmp_path: Path) -> None:
    inner = tmp_path / "inner.pkl"
    inner.write_bytes(pickle.dumps(Reduce(eval, "1+1")))
    outer = tmp_path / "bundle.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "weights")  # no extension: found by content
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as zf:
        zf.write(outer, "deep/bundle.zip")
    assert worst(nested) is Severity.CRITICAL
    tar = tmp_path / "legacy.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(inner, "pickle")
    (finding,) = scan_file(tar).findings
    assert finding.location is not None and finding.location.endswith("legacy.tar!pickle")


@pytest.mark.parametrize("method", ["gzip", "zlib", "xz", "bz2"])
def test_compressed_pickles(tmp_path: Path, method: str) -> None:
    import joblib

    path = tmp_path / f"model.{method}.joblib"
    joblib.dump({"fn": Reduce(os.system, "id")}, path, compress=(method, 3))
    assert worst(path) is Severity.CRITICAL


def test_object_array_in_npy_and_npz(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([Reduce(os.system, "id")], dtype=object), allow_pickle=True)
    assert worst(tmp_path / "a.npy") is Severity.CRITICAL
    np.savez(tmp_path / "b.npz", ok=np.ones(3), bad=np.array([Reduce(exec, "1")], dtype=object))
    assert worst(tmp_path / "b.npz") is Severity.CRITICAL
    np.save(tmp_path / "plain.npy", np.arange(10.0))
    assert worst(tmp_path / "plain.npy") is None


def test_decompression_bomb_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(pickle.dumps(b"\x00" * 20_000_000))
    options = ScanOptions(limits=ScanLimits(max_ratio=10.0))
    ids = {f.id for f in scan_file(path, options=options).findings}
    assert "archive.decompression-limit" in ids


def test_depth_limit(tmp_path: Path) -> None:
    payload = pickle.dumps({"a": 1})
    for _ in range(6):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr("x", payload)
        payload = buffer.getvalue()
    path = tmp_path / "deep.zip"
    path.write_bytes(payload)
    assert "archive.depth-limit" in {f.id for f in scan_file(path).findings}


def test_local_and_central_names_that_differ(tmp_path: Path) -> None:
    path = tmp_path / "confused.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("data.pkl", pickle.dumps({"a": 1}))
    raw = bytearray(path.read_bytes())
    local = raw.index(b"data.pkl")  # the first occurrence is the local header's
    raw[local : local + 8] = b"evil.pkl"
    path.write_bytes(bytes(raw))
    assert "archive.name-mismatch" in {f.id for f in scan_file(path).findings}


def test_missing_file() -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        scan_file(Path("/nonexistent/model.pt"))


def _sklearn_models() -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = load_digits(return_X_y=True)
    x, y = x[:300], y[:300]
    return {
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        "hist-boosting": HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(x, y),
        "pipeline-svc": make_pipeline(StandardScaler(), SVC(random_state=0)).fit(x, y),
        "arrays": {
            "f": np.asfortranarray(np.ones((3, 2))),
            "s": np.array(["ab", "c"]),
            "rec": np.zeros(3, dtype=[("x", "f4"), ("y", "i8")]),
            "obj": np.array([{"a": 1}, None], dtype=object),
        },
    }


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("lzma", 3), ("xz", 3), ("bz2", 3)], ids=str)
def test_benign_joblib_files_are_clean(tmp_path: Path, compress: object) -> None:
    import joblib

    for name, model in _sklearn_models().items():
        path = tmp_path / f"{name}.joblib"
        joblib.dump(model, path, compress=compress)
        result = scan_file(path)
        assert result.max_severity is None or result.max_severity < Severity.MEDIUM, (name, result.findings)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_benign_sklearn_pickles_are_clean(tmp_path: Path, protocol: int) -> None:
    for name, model in _sklearn_models().items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(pickle.dumps(model, protocol=protocol))
        result = scan_file(path)
        assert result.max_severity is None or result.max_severity < Severity.MEDIUM, (name, result.findings)


@pytest.mark.parametrize("compress", [0, 3, ("lzma", 3)], ids=str)
def test_payload_in_a_joblib_object_array_is_caught(tmp_path: Path, compress: object) -> None:
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump(
        {"w": np.ones(1000), "objs": np.array([Reduce(os.system, "id")], dtype=object)}, path, compress=compress
    )
    assert worst(path) is Severity.CRITICAL


def test_small_safetensors_is_not_mistaken_for_lzma(tmp_path: Path) -> None:
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (93 - len(header))  # 93 = 0x5D, the first byte of an LZMA stream
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 4)
    result = scan_file(path)
    assert (result.format, result.findings) == ("safetensors", ())


_SEEDS: list[bytes] = []


def _seed_archives() -> list[bytes]:
    if not _SEEDS:
        for build in (_zip_seed, _tar_seed, _gzip_seed):
            _SEEDS.append(build())
    return _SEEDS


def _zip_seed() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a/data.pkl", pickle.dumps({"w": [1, 2]}))
        zf.writestr("a/version", "3")
    return buffer.getvalue()


def _tar_seed() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        data = pickle.dumps([1, 2, 3])
        info = tarfile.TarInfo("pickle")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _gzip_seed() -> bytes:
    return gzip.compress(pickle.dumps({"a": "b"}))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2), st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=12))
def test_mutated_archives_never_crash(which: int, edits: list[tuple[int, int]]) -> None:
    data = bytearray(_seed_archives()[which])
    for position, value in edits:
        data[position % len(data)] = value
    findings = scan_stream(io.BytesIO(bytes(data)), len(data), location="fuzz")
    assert all(f.location is not None and f.location.startswith("fuzz") for f in findings)


def test_member_name_cut_to_nothing_by_a_nul_byte_is_scanned_not_a_crash() -> None:
    data = bytearray(_zip_seed())
    data[209] = 0  # the first byte of the central directory's name of "a/data.pkl"
    assert data[209 - 46 : 209 - 42] == b"PK\x01\x02"
    findings = scan_stream(io.BytesIO(bytes(data)), len(data), location="z.zip")
    assert [f.id for f in findings] == ["archive.name-mismatch"]


def test_onnx_strings_that_are_not_utf8_are_reported_not_a_crash(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", "../XXXX"
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"], domain="com.XXXX")], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [weight])  # fmt: skip
    raw = helper.make_model(graph).SerializeToString().replace(b"XXXX", b"\xff\xfe\xfd\xfc")
    path = tmp_path / "m.onnx"
    path.write_bytes(raw)
    found = {f.id: f for f in scan_file(path).findings}
    assert set(found) == {"onnx.external-data-escape", "onnx.custom-domain"}
    assert "\ufffd" in found["onnx.custom-domain"].description
