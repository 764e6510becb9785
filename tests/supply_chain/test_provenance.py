"""Data manifests: round trips, the Merkle tree, diffs, lineage, bad files and the ``data`` CLI."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from modelshield.cli.data import register
from modelshield.data import Dataset, Schema, load_breast_cancer
from modelshield.errors import (
    FileFormatError,
    InputError,
    InvalidParameterError,
    ModelShieldError,
    VerificationError,
)
from modelshield.supply_chain.provenance import (
    DataManifest,
    build_manifest,
    diff_datasets,
    merkle_root,
    read_manifest,
    record_digests,
    verify_dataset,
    verify_parent,
    write_manifest,
)

WHEN = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _ds(x: np.ndarray, y: np.ndarray, name: str = "toy") -> Dataset:
    return Dataset(
        x=x, y=y, schema=Schema.continuous([f"f{j}" for j in range(x.shape[1])]), label_names=("a", "b"), name=name
    )


@pytest.fixture
def toy() -> Dataset:
    rng = np.random.default_rng(0)
    return _ds(rng.random((40, 5), dtype=np.float32), rng.integers(0, 2, 40))


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, literally: split at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _reference_root(leaves[:k]) + _reference_root(leaves[k:])).digest()


def test_round_trip_through_json_and_a_file(tmp_path: Path) -> None:
    manifest = build_manifest(load_breast_cancer(), source="scikit-learn", created=WHEN)
    assert manifest.n_rows == len(manifest.record_digests) == 569
    assert manifest.created == "2024-06-01T12:00:00Z"
    assert manifest.dataset_digest == load_breast_cancer().digest
    assert DataManifest.from_json(manifest.to_json()) == manifest
    path = tmp_path / "bc.manifest.json"
    write_manifest(manifest, path)
    again = read_manifest(path)
    assert again == manifest
    assert again.digest == manifest.digest == hashlib.sha256(manifest.to_json().encode()).hexdigest()
    assert manifest.to_json() == json.dumps(json.loads(manifest.to_json()), sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 8, 13])
def test_merkle_root_is_rfc6962(n: int) -> None:
    rng = np.random.default_rng(n)
    ds = _ds(rng.random((n, 3), dtype=np.float32), np.arange(n) % 2)
    leaves = [
        hashlib.sha256(b"\x00" + row.astype("<f4").tobytes() + np.int64(label).astype("<i8").tobytes()).digest()
        for row, label in zip(ds.x, ds.y, strict=True)
    ]
    assert record_digests(ds) == tuple(leaf.hex() for leaf in leaves)
    assert (
        build_manifest(ds, source="s").merkle_root == merkle_root(record_digests(ds)) == _reference_root(leaves).hex()
    )


def test_one_changed_value_changes_the_root_and_one_record_digest(toy: Dataset) -> None:
    x = toy.x.copy()
    x[7, 2] = np.nextafter(x[7, 2], np.float32(2))  # the smallest possible change
    a, b = build_manifest(toy, source="s"), build_manifest(_ds(x, toy.y), source="s")
    assert a.merkle_root != b.merkle_root
    assert [i for i, (p, q) in enumerate(zip(a.record_digests, b.record_digests, strict=True)) if p != q] == [7]


def _flip_label(ds: Dataset) -> Dataset:
    y = ds.y.copy()
    y[[3, 11]] = 1 - y[[3, 11]]
    return _ds(ds.x, y)


def _change_feature(ds: Dataset) -> Dataset:
    x = ds.x.copy()
    x[20, 0] += 1
    return _ds(x, ds.y)


def _append(ds: Dataset) -> Dataset:
    return _ds(np.concatenate([ds.x, ds.x[:2] + 5]), np.concatenate([ds.y, [0, 1]]))


def _delete(ds: Dataset) -> Dataset:
    keep = np.setdiff1d(np.arange(len(ds)), [0, 17, 39])
    return ds.subset(keep)


def _reorder(ds: Dataset) -> Dataset:
    return ds.subset(np.random.default_rng(1).permutation(len(ds)))


@pytest.mark.parametrize(
    ("tamper", "added", "removed", "changed", "reordered"),
    [
        (_flip_label, (), (), (3, 11), False),
        (_change_feature, (), (), (20,), False),
        (_append, (40, 41), (), (), False),
        (_delete, (), (0, 17, 39), (), False),
        (_reorder, (), (), (), True),
    ],
)
def test_diff_finds_exactly_the_tampered_rows(
    toy: Dataset,
    tamper: Callable[[Dataset], Dataset],
    added: tuple[int, ...],
    removed: tuple[int, ...],
    changed: tuple[int, ...],
    reordered: bool,
) -> None:
    diff = diff_datasets(toy, tamper(toy))
    assert (diff.added_rows, diff.removed_rows, diff.changed_rows) == (added, removed, changed)
    assert (diff.added, diff.removed, diff.changed) == (len(added), len(removed), len(changed))
    assert diff.reordered is reordered
    assert diff.same_records is not (added or removed or changed)
    assert not diff.identical
    assert not diff.schema_changed


def test_diff_of_identical_data_and_duplicates(toy: Dataset) -> None:
    assert diff_datasets(toy, toy).identical
    doubled = toy.subset(np.array([*range(40), 5, 5]))
    diff = diff_datasets(toy, doubled, limit=1)
    assert (diff.added, diff.added_rows, diff.removed, diff.reordered) == (2, (40,), 0, False)
    back = diff_datasets(doubled, toy)
    assert (back.removed_rows, back.unchanged) == ((40, 41), 40)
    other = Dataset(toy.x, toy.y, Schema.continuous([f"g{j}" for j in range(5)]), ("a", "b"))
    assert diff_datasets(toy, other).schema_changed


def test_lineage_is_recorded_and_the_parent_digest_checked(toy: Dataset, tmp_path: Path) -> None:
    parent_path = tmp_path / "raw.manifest.json"
    write_manifest(build_manifest(toy, source="https://example.org/raw.csv"), parent_path)
    child = build_manifest(toy.subset(slice(0, 30)), source="derived", parent=parent_path, transform="head(30)")
    assert child.parent is not None
    assert child.parent.path == str(parent_path)
    assert child.parent.digest == read_manifest(parent_path).digest
    assert child.transform == "head(30)"
    assert DataManifest.from_json(child.to_json()) == child
    assert verify_parent(child).digest == child.parent.digest
    write_manifest(build_manifest(toy, source="something else"), parent_path, overwrite=True)
    with pytest.raises(VerificationError, match="parent changed") as err:
        verify_parent(child)
    assert err.value.subject == str(parent_path)
    with pytest.raises(InvalidParameterError, match="no parent"):
        build_manifest(toy, source="s", transform="dropped rows")
    with pytest.raises(FileFormatError, match="does not exist"):
        build_manifest(toy, source="s", parent=tmp_path / "missing.json")


def test_verify_dataset(toy: Dataset) -> None:
    manifest = build_manifest(toy, source="s")
    verify_dataset(manifest, toy)
    with pytest.raises(VerificationError, match="2 changed") as err:
        verify_dataset(manifest, _flip_label(toy))
    assert err.value.subject == toy.name


def _edit(key: str, value: object) -> Callable[[dict[str, object]], object]:
    def edit(data: dict[str, object]) -> object:
        data[key] = value
        return data

    return edit


def _tamper_record(data: dict[str, object]) -> object:
    digests = data["record_digests"]
    assert isinstance(digests, list)
    digests[4] = "0" * 64
    return data


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda d: [d], FileFormatError, "JSON list, not an object"),
        (_edit("format_version", 99), FileFormatError, "format version 99; this modelshield reads version 1"),
        (lambda d: {k: v for k, v in d.items() if k not in ("n_rows", "schema")}, FileFormatError, "'n_rows'"),
        (_edit("format", "sbom"), FileFormatError, "'format' is 'sbom'"),
        (_edit("extra", 1), FileFormatError, "unknown field"),
        (_edit("n_rows", 3), FileFormatError, "'n_rows' is 3 but it lists 40"),
        (_edit("created", "yesterday"), FileFormatError, "not an ISO 8601"),
        (_edit("schema", {"features": []}), FileFormatError, "'schema' is malformed"),
        (_edit("merkle_root", "0" * 64), VerificationError, "altered after it was written"),
        (_tamper_record, VerificationError, "altered after it was written"),
    ],
)
def test_bad_manifests_are_refused_clearly(
    toy: Dataset,
    tmp_path: Path,
    edit: Callable[[dict[str, object]], object],
    error: type[ModelShieldError],
    message: str,
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(edit(json.loads(build_manifest(toy, source="s").to_json()))))
    with pytest.raises(error, match=message) as info:
        read_manifest(path)
    assert str(path) in str(info.value)
    assert info.value.remedy
    assert [p.name for p in tmp_path.iterdir()] == ["bad.json"]


def test_truncated_json_and_refused_overwrite_leave_nothing_behind(toy: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_manifest(build_manifest(toy, source="s"), path)
    text = path.read_text()
    with pytest.raises(InputError, match="already exists"):
        write_manifest(build_manifest(toy, source="other"), path)
    assert path.read_text() == text
    path.write_text(text[: len(text) // 2])
    with pytest.raises(FileFormatError, match="not valid JSON") as info:
        read_manifest(path)
    assert "modelshield data manifest" in info.value.remedy
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


# --- CLI ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> Callable[..., Result]:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["data", *args])


def _npz(path: Path, ds: Dataset) -> Path:
    np.savez(path, x=ds.x, y=ds.y)
    return path


def test_cli_manifest_and_diff(
    cli: Callable[..., Result], toy: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("manifest", "bundled:breast_cancer", "--source", "scikit-learn")
    assert result.exit_code == 0, result.output
    manifest = read_manifest(tmp_path / "breast_cancer.manifest.json")
    assert f"569 rows, Merkle root {manifest.merkle_root}" in result.output
    assert cli("diff", "breast_cancer.manifest.json", "bundled:breast_cancer").exit_code == 0

    old = _npz(tmp_path / "old.npz", toy)
    new = _npz(tmp_path / "new.npz", _flip_label(toy))
    result = cli("manifest", str(old), "--source", "old.npz", "--output", "old.json")
    assert result.exit_code == 0
    result = cli("manifest", str(new), "--source", "new", "--parent", "old.json", "--transform", "relabel")
    assert result.exit_code == 0
    child = read_manifest(tmp_path / "new.manifest.json")
    assert child.parent is not None
    assert (child.parent.path, child.transform) == ("old.json", "relabel")

    result = cli("diff", "old.json", "new.manifest.json")
    assert result.exit_code == 1
    assert "changed:   2 (rows 3, 11 of both)" in result.output
    result = cli("diff", "old.json", str(new), "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert (report["changed_rows"], report["identical"]) == ([3, 11], False)

    shuffled = _npz(tmp_path / "shuffled.npz", _reorder(toy))
    assert cli("diff", str(old), str(shuffled)).exit_code == 1
    assert cli("diff", str(old), str(shuffled), "--ignore-order").exit_code == 0


def test_cli_bad_input(cli: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("a,b\n1,x\n")
    result = cli("manifest", "bad.csv", "--source", "s", "--label", "b")
    assert isinstance(result.exception, ModelShieldError)  # the root app exits 2
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]
    (tmp_path / "broken.json").write_text("{not json")
    result = cli("diff", "broken.json", "bundled:breast_cancer")
    assert isinstance(result.exception, FileFormatError)
    result = cli("diff", "missing.json", "bundled:breast_cancer")
    assert isinstance(result.exception, FileFormatError)
    assert cli("diff", "a", "b", "--format", "xml").exit_code == 2


def test_the_root_cli_wires_data_commands_with_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelshield.cli.app import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bc.json"
    assert main(["data", "manifest", "bundled:breast_cancer", "--source", "bundled", "--output", str(out)]) == 0
    assert main(["data", "diff", str(out), "bundled:breast_cancer"]) == 0
    assert main(["data", "diff", str(out), "bundled:digits"]) == 1
    assert main(["data", "diff", str(out), str(tmp_path / "missing.csv")]) == 2
