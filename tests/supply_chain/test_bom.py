"""The ML bill of materials: CycloneDX 1.6 JSON that validates, with the model, its files, data sets and libraries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from typer.testing import CliRunner

from modelshield import __version__
from modelshield.cli.bom import register
from modelshield.errors import FileFormatError
from modelshield.supply_chain.bom import build_bom, render_bom

MERKLE_ROOT = "ab" * 32


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _render(model: Path, **kwargs: Any) -> dict[str, Any]:
    text = render_bom(build_bom(model, **kwargs))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document: dict[str, Any] = json.loads(text)
    return document


def _hash(component: dict[str, Any]) -> str:
    (entry,) = component["hashes"]
    assert entry["alg"] == "SHA-256"
    content: str = entry["content"]
    return content


def _depends_on(document: dict[str, Any], ref: str) -> list[str]:
    deps: list[str] = next(d.get("dependsOn", []) for d in document["dependencies"] if d["ref"] == ref)
    return deps


@pytest.fixture
def npy_model(tmp_path: Path) -> Path:
    path = tmp_path / "weights.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    return path


@pytest.fixture
def make_manifest(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "digits", **fields: Any) -> Path:
        path = tmp_path / f"{name}.manifest.json"
        body = {
            "format": "modelshield.data-manifest",
            "format_version": 1,
            "name": name,
            "source": "https://example.org/digits.csv",
            "n_rows": 1797,
            "dataset_digest": "cd" * 32,
            "merkle_root": MERKLE_ROOT,
            "record_digests": [],
            **fields,
        }
        path.write_text(json.dumps(body), encoding="utf-8")
        return path

    return make


def test_single_file_model(npy_model: Path) -> None:
    document = _render(npy_model, name="tiny", version="1.0", task="regression")

    assert document["specVersion"] == "1.6"
    assert document["bomFormat"] == "CycloneDX"
    metadata = document["metadata"]
    assert metadata["timestamp"]
    (tool,) = metadata["tools"]["components"]
    assert (tool["name"], tool["version"]) == ("modelshield", __version__)

    model = metadata["component"]
    assert model["type"] == "machine-learning-model"
    assert (model["name"], model["version"]) == ("tiny", "1.0")
    assert _hash(model) == _sha256(npy_model)
    card = model["modelCard"]
    assert card["modelParameters"] == {"task": "regression"}
    assert {"name": "modelshield:model:format", "value": "numpy"} in card["properties"]
    assert card["considerations"]["technicalLimitations"]
    assert "components" not in model


def test_model_name_defaults_to_the_file_name(npy_model: Path) -> None:
    model = _render(npy_model)["metadata"]["component"]
    assert model["name"] == "weights.npy"
    assert "version" not in model
    assert "task" not in model["modelCard"].get("modelParameters", {})


def test_directory_model_lists_each_file_with_its_hash(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    model_dir = tmp_path / "model"
    (model_dir / "tokenizer").mkdir(parents=True)
    save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(model_dir / "model.safetensors"))
    (model_dir / "config.json").write_text('{"hidden": 4}', encoding="utf-8")
    (model_dir / "tokenizer" / "vocab.txt").write_text("a\nb\n", encoding="utf-8")

    document = _render(model_dir)
    model = document["metadata"]["component"]
    assert model["name"] == "model"
    assert "hashes" not in model
    files = {c["name"]: c for c in model["components"]}
    assert sorted(files) == ["config.json", "model.safetensors", "tokenizer/vocab.txt"]
    for rel, component in files.items():
        assert component["type"] == "file"
        assert _hash(component) == _sha256(model_dir / rel)
    assert {"name": "modelshield:model:format", "value": "safetensors"} in model["modelCard"]["properties"]
    assert {c["bom-ref"] for c in files.values()} <= set(_depends_on(document, model["bom-ref"]))


def test_directory_model_does_not_follow_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model", encoding="utf-8")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"\x00" * 16)
    (model_dir / "link.txt").symlink_to(outside)

    names = [c["name"] for c in _render(model_dir)["metadata"]["component"]["components"]]
    assert names == ["weights.bin"]


def test_data_manifest_becomes_a_data_component(npy_model: Path, make_manifest: Callable[..., Path]) -> None:
    manifest = make_manifest()
    document = _render(npy_model, data_manifests=[manifest])

    (data,) = [c for c in document["components"] if c["type"] == "data"]
    assert data["name"] == "digits"
    assert _hash(data) == _sha256(manifest)
    (entry,) = data["data"]
    assert entry["type"] == "dataset"
    assert entry["name"] == "digits"
    assert entry["contents"]["url"] == "https://example.org/digits.csv"
    props = {p["name"]: p["value"] for p in entry["contents"]["properties"]}
    assert props["modelshield:data:merkle-root"] == MERKLE_ROOT
    assert props["modelshield:data:rows"] == "1797"
    assert MERKLE_ROOT in entry["description"]

    model = document["metadata"]["component"]
    assert model["modelCard"]["modelParameters"]["datasets"] == [{"ref": data["bom-ref"]}]
    assert data["bom-ref"] in _depends_on(document, model["bom-ref"])


def test_sparse_manifest_with_a_non_url_source(npy_model: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"name": "train set", "source": "sklearn load_digits()", "rows": 5}), "utf-8")
    (data,) = [c for c in _render(npy_model, data_manifests=[manifest])["components"] if c["type"] == "data"]
    (entry,) = data["data"]
    assert "url" not in entry["contents"]
    assert "sklearn load_digits()" in entry["description"]
    assert "5 rows" in entry["description"]


def test_environment_libraries(npy_model: Path) -> None:
    document = _render(npy_model)
    libraries = [c for c in document["components"] if c["type"] == "library"]
    purls = [c["purl"] for c in libraries]
    names = [c["name"] for c in libraries]
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    assert f"pkg:pypi/numpy@{np.__version__}" in purls
    assert any(p.startswith("pkg:pypi/cyclonedx-python-lib@") for p in purls)  # normalised, lower case
    assert all(c["bom-ref"] == c["purl"] for c in libraries)

    (environment,) = [c for c in document["components"] if c["bom-ref"] == "modelshield-environment"]
    assert set(_depends_on(document, environment["bom-ref"])) == set(purls)
    assert environment["bom-ref"] in _depends_on(document, document["metadata"]["component"]["bom-ref"])


def test_pickle_model_card_warns_that_loading_runs_code(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04K\x01.")  # pickle of the int 1, written by hand: never unpickled here
    card = _render(path)["metadata"]["component"]["modelCard"]
    assert {"name": "modelshield:model:can-execute-code", "value": "true"} in card["properties"]
    assert any("run code" in text for text in card["considerations"]["technicalLimitations"])


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        build_bom(tmp_path / "nope.onnx")


def test_empty_model_directory(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="no regular files"):
        build_bom(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "not valid JSON"), ("[1, 2]", "not a data manifest"), (b"\xff\xfe", "not valid JSON")],
)
def test_bad_manifest(npy_model: Path, tmp_path: Path, content: str | bytes, match: str) -> None:
    manifest = tmp_path / "bad.json"
    if isinstance(content, bytes):
        manifest.write_bytes(content)
    else:
        manifest.write_text(content, encoding="utf-8")
    with pytest.raises(FileFormatError, match=match) as info:
        build_bom(npy_model, data_manifests=[manifest])
    assert "modelshield data manifest" in info.value.remedy


def test_missing_manifest(npy_model: Path, tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="does not exist"):
        build_bom(npy_model, data_manifests=[tmp_path / "absent.json"])


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # keeps `bom` a subcommand, as in the real app
        pass

    register(app)
    return app


def test_cli_writes_the_file(
    cli: typer.Typer, npy_model: Path, make_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "bom.json"
    args = ["bom", str(npy_model), "--data", str(make_manifest("a")), "--data", str(make_manifest("b"))]
    result = CliRunner().invoke(cli, [*args, "--output", str(out), "--name", "m", "--version", "2"])
    assert result.exit_code == 0, result.output
    assert result.output == ""
    text = out.read_text(encoding="utf-8")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)
    assert (document["metadata"]["component"]["name"], document["metadata"]["component"]["version"]) == ("m", "2")
    assert sorted(c["name"] for c in document["components"] if c["type"] == "data") == ["a", "b"]


def test_cli_prints_to_stdout(cli: typer.Typer, npy_model: Path) -> None:
    result = CliRunner().invoke(cli, ["bom", str(npy_model)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metadata"]["component"]["type"] == "machine-learning-model"


def test_cli_missing_model_raises_file_format_error(cli: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bom", str(tmp_path / "absent.pt")])
    assert isinstance(result.exception, FileFormatError)
