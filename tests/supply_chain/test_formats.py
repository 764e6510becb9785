"""Format identification by content, on files written by the real libraries."""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest

from modelshield.errors import FileFormatError
from modelshield.supply_chain.formats import ModelFormat, identify_format


def _pickle(protocol: int) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=protocol))


def _torch_zip(p: Path) -> None:
    import torch

    torch.save({"w": torch.ones(3)}, p)


def _torchscript(p: Path) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():  # TorchScript is deprecated, but its files are still everywhere
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(p))


def _safetensors(p: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(p))


def _skops(p: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from skops.io import dump

    dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), p)


def _onnx(p: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    onnx.save(helper.make_model(graph, producer_name="modelshield-test"), str(p))


def _joblib_compressed(p: Path) -> None:
    joblib.dump({"w": np.ones(3)}, p, compress=("gzip", 3))


def _npy(p: Path) -> None:
    np.save(p, np.arange(6.0))


def _npy_object(p: Path) -> None:
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)


def _npz(p: Path) -> None:
    with p.open("wb") as fh:
        np.savez(fh, a=np.ones(2), b=np.zeros(3))


def _legacy_tar(p: Path) -> None:
    with tarfile.open(p, "w") as tf:
        for name in ("pickle", "storages", "tensors"):
            data = pickle.dumps(name)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _plain_zip(p: Path) -> None:
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("readme.txt", "hello")


CASES: list[tuple[str, Callable[[Path], None], ModelFormat, bool]] = [
    ("pickle-protocol0.pkl", _pickle(0), ModelFormat.PICKLE, True),
    ("pickle-protocol2.pkl", _pickle(2), ModelFormat.PICKLE, True),
    ("pickle-protocol5.pkl", _pickle(5), ModelFormat.PICKLE, True),
    ("torch-zip.pt", _torch_zip, ModelFormat.PYTORCH_ZIP, True),
    ("torchscript.pt", _torchscript, ModelFormat.TORCHSCRIPT, True),
    ("weights.safetensors", _safetensors, ModelFormat.SAFETENSORS, False),
    ("model.skops", _skops, ModelFormat.SKOPS, False),
    ("model.onnx", _onnx, ModelFormat.ONNX, False),
    ("model.joblib", _joblib_compressed, ModelFormat.COMPRESSED, True),
    ("array.npy", _npy, ModelFormat.NUMPY, False),
    ("object-array.npy", _npy_object, ModelFormat.NUMPY, True),
    ("arrays.npz", _npz, ModelFormat.NUMPY_NPZ, False),
    ("legacy.tar", _legacy_tar, ModelFormat.PYTORCH_LEGACY_TAR, True),
    ("plain.zip", _plain_zip, ModelFormat.ZIP, False),
    ("model.gguf", lambda p: p.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(16)), ModelFormat.GGUF, False),
    ("model.h5", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64)), ModelFormat.HDF5, True),
    ("noise.bin", lambda p: p.write_bytes(bytes(range(7, 250))), ModelFormat.UNKNOWN, False),
    ("empty.bin", lambda p: p.write_bytes(b""), ModelFormat.UNKNOWN, False),
]


@pytest.mark.parametrize(("name", "write", "expected", "executes"), CASES, ids=[c[0] for c in CASES])
def test_identifies_format_by_content(
    tmp_path: Path, name: str, write: Callable[[Path], None], expected: ModelFormat, executes: bool
) -> None:
    path = tmp_path / name
    write(path)
    info = identify_format(path)
    assert info.format is expected, info.detail
    assert info.can_execute_code is executes


def test_name_does_not_fool_identification(tmp_path: Path) -> None:
    disguised = tmp_path / "model.safetensors"
    _pickle(4)(disguised)
    info = identify_format(disguised)
    assert info.format is ModelFormat.PICKLE
    assert info.suffix_matches(disguised) is False
    assert info.suffix_matches(tmp_path / "model.pkl") is True


def test_missing_and_directory_paths_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        identify_format(tmp_path / "nope.onnx")
    with pytest.raises(FileFormatError, match="not a regular file"):
        identify_format(tmp_path)
