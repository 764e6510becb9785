"""The ground-truth oracle (modelshield.testing.oracle): benign files load clean, payloads are caught."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from modelshield.testing.oracle import LOADERS, run_loader, run_loaders


def _v0_call(module: str, name: str, arg: str) -> bytes:
    return f"c{module}\n{name}\n(V{arg}\ntR.".encode()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    joblib = pytest.importorskip("joblib")
    root = tmp_path_factory.mktemp("oracle")
    model = root / "model"
    model.mkdir()
    (model / "benign.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0], "name": "x"}))
    torch.save({"w": torch.ones(3)}, model / "benign.pt")
    joblib.dump({"w": np.arange(3.0)}, model / "benign.joblib")
    np.save(model / "benign.npy", np.arange(4.0))
    (model / "system.pkl").write_bytes(_v0_call("os", "system", "true"))
    (model / "marker.pkl").write_bytes(_v0_call("os", "system", 'touch "$MODELSHIELD_ORACLE_MARKER"'))
    (model / "sleep.pkl").write_bytes(b"ctime\nsleep\n(I30\ntR.")
    (model / "read-outside.pkl").write_bytes(_v0_call("builtins", "open", str(root / "secret.txt")))
    (root / "secret.txt").write_text("secret")
    items = [
        (model / "benign.pkl", "pickle"),
        (model / "benign.pt", "torch"),
        (model / "benign.joblib", "joblib"),
        (model / "benign.npy", "numpy"),
        (model / "system.pkl", "pickle"),
        (model / "marker.pkl", "pickle"),
        (model / "sleep.pkl", "pickle"),
        (model / "read-outside.pkl", "pickle"),
        (model / "benign.pkl", "joblib"),
    ]
    return {
        Path(str(p)).name + ":" + loader: r for (p, loader), r in zip(items, run_loaders(items, timeout=8), strict=True)
    }


@pytest.mark.parametrize("key", ["benign.pkl:pickle", "benign.pt:torch", "benign.joblib:joblib", "benign.npy:numpy"])
@pytest.mark.slow
def test_benign_files_load_clean(results: dict[str, object], key: str) -> None:
    result = results[key]
    assert not result.dangerous, result.events  # type: ignore[attr-defined]
    assert result.loaded, result.error  # type: ignore[attr-defined]


@pytest.mark.slow
def test_os_system_is_dangerous(results: dict[str, object]) -> None:
    result = results["system.pkl:pickle"]
    assert result.dangerous  # type: ignore[attr-defined]
    assert any("os.system" in e for e in result.events)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_marker_file_is_detected(results: dict[str, object]) -> None:
    assert any("marker file" in e for e in results["marker.pkl:pickle"].events)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_timeout_kills_the_load(results: dict[str, object]) -> None:
    result = results["sleep.pkl:pickle"]
    assert not result.loaded  # type: ignore[attr-defined]
    assert result.error is not None and result.error.startswith("timeout")  # type: ignore[attr-defined]
    assert not result.dangerous  # type: ignore[attr-defined]


@pytest.mark.slow
def test_read_outside_the_model_folder_is_dangerous(results: dict[str, object]) -> None:
    result = results["read-outside.pkl:pickle"]
    assert result.dangerous  # type: ignore[attr-defined]
    assert any("outside the model folder" in e for e in result.events)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_results_keep_the_order_of_the_items(results: dict[str, object]) -> None:
    assert results["benign.pkl:joblib"].loader == "joblib"  # type: ignore[attr-defined]


@pytest.mark.slow
def test_onnx_external_data_outside_the_folder(tmp_path: Path) -> None:
    """onnx 1.23 refuses ``../`` external data before reading it: the oracle must say it did not load, not that
    it read the file; a path inside the folder loads clean."""
    np = pytest.importorskip("numpy")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    def model(location: str) -> object:
        tensor = numpy_helper.from_array(np.ones(4, dtype=np.float32), "w")
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "16")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        graph = helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
            [tensor],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    folder = tmp_path / "m"
    folder.mkdir()
    data = np.ones(4, dtype=np.float32).tobytes()
    (tmp_path / "outside.bin").write_bytes(data)
    (folder / "inside.bin").write_bytes(data)
    onnx.save(model("inside.bin"), folder / "ok.onnx")
    onnx.save(model("../outside.bin"), folder / "escape.onnx")
    ok, escape = run_loaders([(folder / "ok.onnx", "onnx"), (folder / "escape.onnx", "onnx")])
    assert ok.loaded and not ok.dangerous, (ok.error, ok.events)
    assert escape.dangerous or not escape.loaded


def test_unknown_loader_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unknown loader"):
        run_loader(tmp_path / "x", "nope")
    assert "pickle" in LOADERS and "gguf-template" in LOADERS


@pytest.mark.slow
def test_a_file_that_asks_the_unpickler_for_gigabytes_fails_in_its_child(tmp_path: Path) -> None:
    """A memo index the real unpickler grows its memo to 6.4 GB for (it would, uncapped, on this machine): the
    child's memory is capped, so the load ends in MemoryError instead of taking the machine's memory."""
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x02K\x01r" + (400_000_000).to_bytes(4, "little") + b".")
    result = run_loader(path, "pickle")
    assert not result.loaded and result.error is not None and "MemoryError" in result.error
