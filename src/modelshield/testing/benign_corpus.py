# ruff: noqa: E501, PLR0915 - one writer per entry reads best as one long table
"""Benign model files written by the real libraries (and copied from their wheels), on which a scanner must be quiet.

    >>> from pathlib import Path
    >>> from modelshield.testing.benign_corpus import write_benign_corpus
    >>> entries = write_benign_corpus(Path("benign"))  # doctest: +SKIP
    >>> len(entries) >= 40  # doctest: +SKIP
    True

Nothing here is hand-assembled: every file is what PyTorch, scikit-learn, joblib, pandas, NumPy, ONNX, onnxruntime,
gguf and Keras write when asked to save a small model, or a test file that NumPy, SciPy and joblib ship inside
their own wheels (Python 2-era pickles included). Each :class:`BenignEntry` names the loader that reads it
(``modelshield.testing.oracle`` loads it with that loader) and its family. Sizes are tiny and every random draw
comes from a seeded generator of its own, so the corpus is the same on every run and writes in a few seconds.

Families whose library is not installed are left out. Files from the wheels that a Python 3 loader refuses
(Python 2 pickles of ``str`` and joblib's compressed array companions) are in :data:`UNLOADABLE_FAMILY`: real files
a scanner must still be quiet on, which the oracle cannot load.
"""

from __future__ import annotations

import argparse
import functools
import pickle
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["LOADERS", "UNLOADABLE_FAMILY", "BenignEntry", "benign_entries", "write_benign_corpus"]

#: The loaders of the ground-truth oracle (``modelshield.testing.oracle``).
LOADERS = frozenset({"pickle", "torch", "joblib", "numpy", "keras", "onnx", "gguf-template", "torchscript"})

#: Real files from the wheels that Python 3 loaders refuse (Python 2 ``str`` pickles, joblib array companions).
UNLOADABLE_FAMILY = "wheel-testdata-unloadable"


@dataclass(frozen=True)
class BenignEntry:
    """One benign file: its path relative to the corpus root, the oracle loader that reads it, and its family."""

    name: str
    loader: str
    family: str


_Writer = Callable[[Path], object]


def _pickle(obj: object, path: Path, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


# -- PyTorch -------------------------------------------------------------------------------------------------------
def _filled(factory: Callable[[], torch.nn.Module], seed: int = 0) -> torch.nn.Module:
    """``factory()`` built on the meta device, then filled from a generator of its own (no global state touched)."""
    import torch

    with torch.device("meta"):
        module = factory()
    module = module.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            else:
                tensor.zero_()
    return module.eval()


def _torch_writers() -> dict[str, tuple[str, str, _Writer]]:
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(1)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    def zoo() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * 3 * 3, 8), nn.LayerNorm(8), nn.Dropout(0.1), nn.GELU(), nn.Linear(8, 4),
        )  # fmt: skip

    def recurrent() -> nn.Module:
        # Only torch.nn's own classes: a full-module pickle names them, and a local class could not be pickled.
        return nn.ModuleDict({
            "embed": nn.Embedding(10, 4), "lstm": nn.LSTM(4, 4, batch_first=True), "gru": nn.GRU(4, 4),
            "attention": nn.MultiheadAttention(4, 2, batch_first=True),
            "encoder": nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 8, batch_first=True), 1,
                                             enable_nested_tensor=False),
            "head": nn.Linear(4, 2),
        })  # fmt: skip

    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            if bool(h.sum() > 0):
                h = h * 2
            for _ in range(2):
                h = h + 1
            return torch.as_tensor(self.b(h))

    float_dtypes = (torch.float16, torch.float32, torch.float64, torch.bfloat16)
    fp8 = [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                                       "float8_e8m0fnu") if hasattr(torch, n)]  # fmt: skip
    ints = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)
    uints = [getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n)]
    complexes = [getattr(torch, n) for n in ("complex32", "complex64", "complex128") if hasattr(torch, n)]
    bits = [getattr(torch, n) for n in ("bits8", "bits16", "bits1x8", "bits2x4", "bits4x2") if hasattr(torch, n)]

    def cast(dtypes: list[torch.dtype] | tuple[torch.dtype, ...]) -> dict[str, torch.Tensor]:
        out = {}
        for dtype in dtypes:
            if dtype.is_complex:
                out[str(dtype)] = rand(2, 3).to(torch.complex64).to(dtype)
            elif dtype.is_floating_point:
                out[str(dtype)] = rand(2, 3).to(dtype)
            elif str(dtype).startswith("torch.bits"):
                out[str(dtype)] = torch.zeros(2, 3, dtype=torch.uint8 if dtype.itemsize == 1 else torch.int16).view(
                    dtype
                )
            else:
                out[str(dtype)] = (rand(2, 3) * 10).abs().to(dtype)
        return out

    def fp8_dict() -> dict[str, torch.Tensor]:
        out = cast(fp8)
        if hasattr(torch, "float4_e2m1fn_x2"):
            out["torch.float4_e2m1fn_x2"] = torch.zeros(2, 3, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
        return out

    def quantized() -> dict[str, torch.Tensor]:
        x = rand(3, 4)
        return {
            "quint8": torch.quantize_per_tensor(x, 0.1, 3, torch.quint8),
            "qint8": torch.quantize_per_tensor(x, 0.05, 0, torch.qint8),
            "qint32": torch.quantize_per_tensor(x, 0.01, 0, torch.qint32),
        }

    def per_channel() -> dict[str, torch.Tensor]:
        x = rand(3, 4)
        scales, zeros = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64), torch.zeros(3, dtype=torch.long)
        return {
            "affine": torch.quantize_per_channel(x, scales, zeros, 0, torch.qint8),
            "affine_uint8": torch.quantize_per_channel(x, scales, zeros + 2, 1 - 1, torch.quint8),
            "float_qparams": torch.quantize_per_channel(
                x, scales.float(), torch.zeros(3), 0, torch.quint8
            ),  # per_channel_affine_float_qparams, used by quantised embedding bags
        }

    def sparse() -> dict[str, torch.Tensor]:
        dense = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 3.0]])
        return {"coo": dense.to_sparse(), "csr": dense.to_sparse_csr(), "csc": dense.to_sparse_csc(),
                "bsr": dense.to_sparse_bsr((1, 1)), "bsc": dense.to_sparse_bsc((1, 1))}  # fmt: skip

    def nested() -> dict[str, torch.Tensor]:
        return {
            "strided": torch.nested.nested_tensor([rand(2), rand(3)]),
            "jagged": torch.nested.nested_tensor([rand(2, 4), rand(3, 4)], layout=torch.jagged),
        }

    def optimised(name: str) -> dict[str, object]:
        model = _filled(lambda: nn.Linear(4, 2), seed=2)
        optimisers: dict[str, Callable[[], torch.optim.Optimizer]] = {
            "sgd": lambda: torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True),
            "adam": lambda: torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True),
            "adamw": lambda: torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01),
        }
        optimiser = optimisers[name]()
        model(rand(3, 4)).pow(2).mean().backward()
        optimiser.step()
        return {"model": model.state_dict(), "optimizer": optimiser.state_dict(), "epoch": 1}

    def scheduled(name: str) -> dict[str, object]:
        from torch.optim import lr_scheduler

        model = _filled(lambda: nn.Linear(4, 2), seed=3)
        optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        schedulers: dict[str, Callable[[], lr_scheduler.LRScheduler]] = {
            "steplr": lambda: lr_scheduler.StepLR(optimiser, step_size=2, gamma=0.5),
            "onecyclelr": lambda: lr_scheduler.OneCycleLR(optimiser, max_lr=0.1, total_steps=10),
            "cosineannealinglr": lambda: lr_scheduler.CosineAnnealingLR(optimiser, T_max=5),
        }
        scheduler = schedulers[name]()
        optimiser.step()
        scheduler.step()
        return {"scheduler": scheduler.state_dict(), "optimizer": optimiser.state_dict()}

    def fairseq() -> dict[str, object]:
        model = _filled(lambda: nn.Sequential(nn.Embedding(8, 4), nn.Linear(4, 8)), seed=4)
        optimiser = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.98))
        args = argparse.Namespace(
            arch="transformer_iwslt_de_en", task="translation", criterion="label_smoothed_cross_entropy",
            optimizer="adam", adam_betas="(0.9, 0.98)", lr=[0.0005], lr_scheduler="inverse_sqrt",
            max_tokens=4096, seed=1, source_lang="de", target_lang="en", share_all_embeddings=False,
            dropout=0.3, label_smoothing=0.1, fp16=False, data="data-bin/iwslt14.tokenized.de-en",
        )  # fmt: skip
        return {
            "args": args,
            "cfg": None,
            "model": model.state_dict(),
            "optimizer_history": [
                {
                    "criterion_name": "LabelSmoothedCrossEntropyCriterion",
                    "optimizer_name": "FairseqAdam",
                    "lr_scheduler_state": {"best": 3.91},
                    "num_updates": 1200,
                },
            ],
            "extra_state": {"epoch": 3, "val_loss": 3.91, "train_iterator": {"epoch": 3, "iterations_in_epoch": 0}},
            "last_optimizer_state": optimiser.state_dict(),
        }

    def script(path: Path) -> None:
        torch.jit.save(torch.jit.script(_filled(Branchy, seed=5)), str(path))

    def trace(path: Path) -> None:
        model = _filled(zoo, seed=6)
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), str(path))  # type: ignore[no-untyped-call]

    def save(make: Callable[[], object], **kwargs: Any) -> _Writer:
        return lambda path: torch.save(make(), path, **kwargs)

    legacy = (*float_dtypes, *ints, torch.complex64, torch.complex128)
    writers: dict[str, tuple[str, str, _Writer]] = {
        "torch.dtypes-float.pt": ("torch", "torch-dtypes", save(lambda: cast(float_dtypes))),
        "torch.dtypes-float8.pt": ("torch", "torch-dtypes", save(fp8_dict)),
        "torch.dtypes-int-bool.pt": ("torch", "torch-dtypes", save(lambda: cast(ints))),
        "torch.dtypes-uint-wide.pt": ("torch", "torch-dtypes", save(lambda: cast(uints))),
        "torch.dtypes-complex.pt": ("torch", "torch-dtypes", save(lambda: cast(complexes))),
        "torch.dtypes-bits.pt": ("torch", "torch-dtypes", save(lambda: cast(bits))),
        "torch.quantized-per-tensor.pt": ("torch", "torch-quantized", save(quantized)),
        "torch.quantized-per-channel.pt": ("torch", "torch-quantized", save(per_channel)),
        "torch.sparse-layouts.pt": ("torch", "torch-sparse", save(sparse)),
        "torch.nested-tensors.pt": ("torch", "torch-nested", save(nested)),
        "torch.full-module-zoo.pt": ("torch", "torch-module", save(lambda: _filled(zoo, seed=7))),
        "torch.full-module-recurrent.pt": ("torch", "torch-module", save(lambda: _filled(recurrent, seed=8))),
        "torch.recurrent-state-dict.pt": (
            "torch",
            "torch-state-dict",
            save(lambda: _filled(recurrent, seed=8).state_dict()),
        ),
        "torch.legacy-format-dtypes.pt": (
            "torch",
            "torch-legacy",
            save(lambda: cast(legacy), _use_new_zipfile_serialization=False),
        ),
        "torch.legacy-format-module.pt": (
            "torch",
            "torch-legacy",
            save(lambda: _filled(zoo, seed=9), _use_new_zipfile_serialization=False),
        ),
        "torch.fairseq-checkpoint.pt": ("torch", "torch-checkpoint", save(fairseq)),
        "torchscript.scripted.pt": ("torchscript", "torchscript", script),
        "torchscript.traced.pt": ("torchscript", "torchscript", trace),
    }
    for name in ("sgd", "adam", "adamw"):
        writers[f"torch.optimizer-{name}.pt"] = ("torch", "torch-optimizer", save(functools.partial(optimised, name)))
    for name in ("steplr", "onecyclelr", "cosineannealinglr"):
        writers[f"torch.scheduler-{name}.pt"] = ("torch", "torch-scheduler", save(functools.partial(scheduled, name)))
    return writers


# -- scikit-learn and joblib ---------------------------------------------------------------------------------------
_SKLEARN_MODELS = ("knn-kd-tree", "knn-ball-tree", "gradient-boosting-regressor", "hist-gradient-boosting",
                   "random-forest-regressor", "logistic-regression", "svc", "mlp", "column-transformer-pipeline",
                   "isolation-forest", "kmeans", "pca", "tfidf")  # fmt: skip


def _sklearn_models() -> dict[str, object]:
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestRegressor,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "colour": rng.choice(["red", "green", "blue"], 60)})
    columns = ColumnTransformer([("num", StandardScaler(), ["a", "b"]),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"])])  # fmt: skip
    texts = ["the cat sat", "the dog ran", "a cat and a dog", "nothing here", "dogs and cats"]
    return {
        "knn-kd-tree": KNeighborsClassifier(3, algorithm="kd_tree").fit(x, y),
        "knn-ball-tree": KNeighborsClassifier(3, algorithm="ball_tree").fit(x, y),
        "gradient-boosting-regressor": GradientBoostingRegressor(n_estimators=3, random_state=0).fit(x, x[:, 2]),
        "hist-gradient-boosting": HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(x, y),
        "random-forest-regressor": RandomForestRegressor(n_estimators=3, random_state=0).fit(x, x[:, 2]),
        "logistic-regression": LogisticRegression().fit(x, y),
        "svc": SVC(probability=False).fit(x, y),
        "mlp": MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(x, y),
        "column-transformer-pipeline": Pipeline([("prep", columns), ("clf", LogisticRegression())]).fit(frame, y),
        "isolation-forest": IsolationForest(n_estimators=3, random_state=0).fit(x),
        "kmeans": KMeans(2, n_init=1, random_state=0).fit(x),
        "pca": PCA(2).fit(x),
        "tfidf": TfidfVectorizer().fit(texts),
    }


def _dump_fitted(models: Callable[[], dict[str, object]], name: str, compress: int | None, path: Path) -> None:
    import joblib

    if compress is None:
        _pickle(models()[name], path)
    else:
        joblib.dump(models()[name], path, compress=compress)


def _dump_compressed(bundle: Callable[[], object], method: str, path: Path) -> None:
    import joblib

    joblib.dump(bundle(), path, compress=(method, 3))


def _to_pickle(make: Callable[[], Any], path: Path) -> None:
    make().to_pickle(path)


def _sklearn_writers() -> dict[str, tuple[str, str, _Writer]]:

    models = functools.cache(_sklearn_models)  # fitted when the first file is written, not when listed
    writers: dict[str, tuple[str, str, _Writer]] = {}
    for name in _SKLEARN_MODELS:
        writers[f"sklearn.{name}.pkl"] = ("pickle", "sklearn", functools.partial(_dump_fitted, models, name, None))
        writers[f"sklearn.{name}.joblib"] = ("joblib", "sklearn", functools.partial(_dump_fitted, models, name, 0))

    def bundle() -> dict[str, object]:
        return {"model": models()["hist-gradient-boosting"], "knn": models()["knn-ball-tree"], "meta": {"v": 1}}

    compressions = {"zlib": "z", "gzip": "gz", "bz2": "bz2", "lzma": "lzma", "xz": "xz", "lz4": "lz4"}
    for method, suffix in compressions.items():
        if method == "lz4":
            try:
                import lz4  # type: ignore[import-untyped]  # noqa: F401 - only to know whether joblib can write lz4
            except ImportError:
                continue
        writers[f"joblib.compress-{method}.joblib.{suffix}"] = (
            "joblib", "joblib-compression", functools.partial(_dump_compressed, bundle, method)
        )  # fmt: skip
    return writers


# -- pandas --------------------------------------------------------------------------------------------------------
def _pandas_writers() -> dict[str, tuple[str, str, _Writer]]:
    import numpy as np
    import pandas as pd

    frames: dict[str, Callable[[], Any]] = {
        "numeric": lambda: pd.DataFrame({"i": np.arange(4), "f": np.linspace(0, 1, 4), "b": [True, False] * 2}),
        "string-default": lambda: pd.DataFrame({"s": ["a", "b", None, "d"], "t": list("wxyz")}),
        "categorical": lambda: pd.DataFrame({"c": pd.Categorical(["lo", "hi", "lo", "mid"], ordered=True)}),
        "datetime-tz": lambda: pd.DataFrame(
            {
                "paris": pd.date_range("2024-01-01", periods=3, freq="h", tz="Europe/Paris"),
                "utc": pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC"),
                "naive": pd.date_range("2024-01-01", periods=3, freq="min"),
            }
        ),
        "multiindex": lambda: pd.DataFrame(
            {"v": np.arange(4.0)}, index=pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["k", "n"])
        ),
        "nullable-period-interval": lambda: pd.DataFrame(
            {
                "Int64": pd.array([1, None, 3], dtype="Int64"),
                "boolean": pd.array([True, None, False], dtype="boolean"),
                "period": pd.period_range("2024-01", periods=3, freq="M"),
                "interval": pd.interval_range(0, 3),
                "timedelta": pd.to_timedelta([1, 2, 3], unit="s"),
                "sparse": pd.arrays.SparseArray([0.0, 0.0, 1.0]),
            }
        ),
        "series": lambda: pd.Series([1.5, 2.5], index=pd.Index(["x", "y"], name="key"), name="value"),
    }
    try:
        import pyarrow  # noqa: F401 - only to know whether Arrow-backed dtypes exist

        frames["arrow-backed"] = lambda: pd.DataFrame({
            "i": pd.array([1, 2, None], dtype="int64[pyarrow]"),
            "s": pd.array(["a", None, "c"], dtype="string[pyarrow]"),
            "f": pd.array([0.5, None, 1.5], dtype="float64[pyarrow]"),
            "ts": pd.Series(pd.date_range("2024", periods=3)).astype("timestamp[ns][pyarrow]"),
        })  # fmt: skip
    except ImportError:
        pass
    writers: dict[str, tuple[str, str, _Writer]] = {}
    for name, make in frames.items():
        writers[f"pandas.{name}.to-pickle.pkl"] = ("pickle", "pandas", functools.partial(_to_pickle, make))
    writers["pandas.all-frames.protocol2.pkl"] = (
        "pickle", "pandas", lambda p: _pickle({k: f() for k, f in frames.items()}, p, 2)
    )  # fmt: skip
    writers["pandas.all-frames.protocol5.pkl"] = (
        "pickle", "pandas", lambda p: _pickle({k: f() for k, f in frames.items()}, p, 5)
    )  # fmt: skip
    return writers


# -- NumPy ---------------------------------------------------------------------------------------------------------
def _numpy_writers() -> dict[str, tuple[str, str, _Writer]]:
    import numpy as np

    rng = np.random.default_rng(5)
    nested_dtype = np.dtype([("id", "<u4"), ("pos", "<f4", (3,)), ("name", "U8"),
                             (("weight label", "w"), ">f8"), ("inner", [("a", "i2"), ("b", "?")])])  # fmt: skip

    def structured() -> Any:
        return np.zeros(3, dtype=nested_dtype)

    def objects() -> Any:
        return np.array([{"a": 1}, [1, 2.5], "text", None, (3, b"raw")], dtype=object)

    def masked() -> object:
        return np.ma.masked_array(rng.normal(size=(2, 3)), mask=np.array([[0, 1, 0], [1, 0, 0]], bool), fill_value=-1.0)

    def scalars() -> object:
        return {"f16": np.float16(1.5), "i64": np.int64(7), "c": np.complex128(1 + 2j), "dt": np.datetime64("2024-01-01"),
                "td": np.timedelta64(3, "s"), "s": np.str_("x"), "b": np.bool_(True), "dtype": np.dtype(">i4"),
                "fortran": np.asfortranarray(np.ones((2, 3)))}  # fmt: skip

    def generators() -> object:
        return {"generator": np.random.default_rng(1), "legacy": np.random.RandomState(2),
                "philox": np.random.Generator(np.random.Philox(3)), "mt": np.random.MT19937(4),
                "sfc64": np.random.SFC64(5)}  # fmt: skip

    return {
        "numpy.structured-nested.npy": ("numpy", "numpy", lambda p: np.save(p, structured())),
        "numpy.object-plain-data.npy": ("numpy", "numpy", lambda p: np.save(p, objects(), allow_pickle=True)),
        "numpy.big-endian-fortran.npy": (
            "numpy",
            "numpy",
            lambda p: np.save(p, np.asfortranarray(np.ones((2, 3), ">f2"))),
        ),
        "numpy.matrix.pkl": ("pickle", "numpy", lambda p: _pickle(np.matrix([[1, 2], [3, 4]]), p)),
        "numpy.masked-array.pkl": ("pickle", "numpy", lambda p: _pickle(masked(), p)),
        "numpy.scalars-protocol2.pkl": ("pickle", "numpy", lambda p: _pickle(scalars(), p, 2)),
        "numpy.scalars-protocol5.pkl": ("pickle", "numpy", lambda p: _pickle(scalars(), p, 5)),
        "numpy.random-generators.pkl": ("pickle", "numpy", lambda p: _pickle(generators(), p)),
        "numpy.savez-compressed-mixed.npz": (
            "numpy",
            "numpy",
            lambda p: np.savez_compressed(
                p,
                structured=structured(),
                when=np.arange("2024-01", "2024-04", dtype="datetime64[M]"),
                text=np.array(["ab", "cde"]),
                half=np.ones(3, np.float16),
            ),
        ),
        "numpy.savez-objects.npz": ("numpy", "numpy", lambda p: np.savez(p, objects=objects(), plain=np.ones(2))),
    }


# -- ONNX and onnxruntime ------------------------------------------------------------------------------------------
def _onnx_writers() -> dict[str, tuple[str, str, _Writer]]:
    import onnx  # noqa: F401 - only to know whether ONNX entries can be written

    def export(path: Path) -> None:
        import torch
        from torch import nn

        model = _filled(lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                                              nn.Linear(2 * 6 * 6, 4), nn.GELU(), nn.LayerNorm(4)), seed=11)  # fmt: skip
        try:
            torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["x"], output_names=["y"],
                              dynamo=False, dynamic_axes={"x": {0: "batch"}})  # fmt: skip
        except Exception:
            _onnx_by_helper(path)

    def optimised(source: Path, level: str) -> _Writer:
        def write(path: Path) -> None:
            import onnxruntime as ort

            if not source.exists():
                export(source)
            options = ort.SessionOptions()
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            options.optimized_model_filepath = str(path)
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])

        return write

    writers: dict[str, tuple[str, str, _Writer]] = {"onnx.torch-export.onnx": ("onnx", "onnx", export)}
    try:
        import onnxruntime  # noqa: F401 - only to know whether optimised models can be written
    except ImportError:
        return writers
    # The source is written into the same directory by the entry above, which runs first.
    writers["onnx.ort-optimised-all.onnx"] = ("onnx", "onnx-ort", lambda p: optimised(
        p.with_name("onnx.torch-export.onnx"), "ORT_ENABLE_ALL")(p))  # fmt: skip
    writers["onnx.ort-optimised-extended.onnx"] = ("onnx", "onnx-ort", lambda p: optimised(
        p.with_name("onnx.torch-export.onnx"), "ORT_ENABLE_EXTENDED")(p))  # fmt: skip
    return writers


def _onnx_by_helper(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], [0.05 * i for i in range(12)])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.0, 0.1, 0.2])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Add", ["z", "b"], ["s"]),
         helper.make_node("Relu", ["s"], ["y"])],
        "exported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [weight, bias],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


# -- GGUF ----------------------------------------------------------------------------------------------------------
# Chat templates in the shape of the ones real models ship (ChatML, Llama 3, Mistral, tool-use templates), written
# here from scratch.
_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_LLAMA3 = (
    "{{- bos_token }}\n{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}\n"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    '{%- set date_string = strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "26 Jul 2024" %}'
    "{%- endif %}{%- endif %}\n"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    '{%- set messages = messages[1:] %}{%- else %}{%- set system_message = "" %}{%- endif %}\n'
    '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}{{- "Today Date: " + date_string + "\\n\\n" }}'
    '{%- if tools is not none %}{{- "You have access to the following functions.\\n\\n" }}'
    '{%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}{%- endif %}'
    '{{- system_message }}{{- "<|eot_id|>" }}\n'
    "{%- for message in messages %}{%- if not (message.role == 'ipython' or message.role == 'tool' or "
    "'tool_calls' in message) %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] | trim + '<|eot_id|>' }}"
    "{%- elif 'tool_calls' in message %}{%- set tool_call = message.tool_calls[0].function %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    '{{- \'{"name": "\' + tool_call.name + \'", "parameters": \' }}{{- tool_call.arguments | tojson }}'
    '{{- "}" }}{{- "<|eot_id|>" }}'
    '{%- else %}{{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}'
    "{%- if message.content is mapping or message.content is iterable %}{{- message.content | tojson }}"
    '{%- else %}{{- message.content }}{%- endif %}{{- "<|eot_id|>" }}{%- endif %}{%- endfor %}\n'
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}\n"
)
_MISTRAL = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}\n"
    "{{- bos_token }}{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{%- endif %}"
    "{%- if message['role'] == 'user' %}{%- if loop.last and system_message is defined %}"
    "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the exception of an "
    "initial optional system message!') }}{%- endif %}{%- endfor %}\n"
)
_NAMESPACE = (
    "{%- set ns = namespace(found_system=false, last_user=-1, tool_count=0) %}"
    "{%- for message in messages %}{%- if message.role == 'system' %}{%- set ns.found_system = true %}{%- endif %}"
    "{%- if message.role == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- if not ns.found_system %}<|system|>\nYou are a helpful assistant.<|end|>\n{%- endif %}"
    "{%- for message in messages %}<|{{ message.role }}|>\n"
    "{%- if message.content is string %}{{ message.content | trim }}"
    "{%- else %}{%- for part in message.content %}{%- if part.type == 'text' %}{{ part.text }}"
    "{%- elif part.type == 'image' %}<|image|>{%- endif %}{%- endfor %}{%- endif %}"
    "{%- if loop.index0 == ns.last_user and add_generation_prompt %}<|end|>\n<|assistant|>\n"
    "{%- else %}<|end|>\n{%- endif %}{%- endfor %}"
)
_TOOLS = (
    "{%- macro render_params(params) -%}{%- for name, spec in params.properties | items %}"
    "{{ name }}: {{ spec.type | default('any') }}{{ ', ' if not loop.last }}{%- endfor %}{%- endmacro %}"
    "{%- if tools %}<tools>\n{%- for tool in tools %}{%- set fn = tool.function if tool.function is defined else tool %}"
    "{{ fn.name }}({{ render_params(fn.parameters) }}) - {{ fn.description | trim }}\n"
    "{{ fn | tojson }}\n{%- endfor %}</tools>\n{%- endif %}"
    "{%- for message in messages %}{%- if message.role == 'tool' %}<tool_response>{{ message.content | tojson }}"
    "</tool_response>{%- elif message.tool_calls is defined %}{%- for call in message.tool_calls %}"
    '<tool_call>{"name": {{ call.function.name | tojson }}, "arguments": {{ call.function.arguments | tojson }}}'
    "</tool_call>{%- endfor %}{%- else %}{{ message.role | upper }}: {{ message.content }}\n{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}ASSISTANT:{%- endif %}"
)
_GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + "
    "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{'<start_of_turn>model\\n'}}{% endif %}"
)


def _gguf_writers() -> dict[str, tuple[str, str, _Writer]]:
    import numpy as np

    def write(template: str | list[dict[str, str]]) -> _Writer:
        def run(path: Path) -> None:
            import gguf

            writer = gguf.GGUFWriter(str(path), "llama")
            writer.add_name("tiny-benign")
            writer.add_context_length(64)
            writer.add_embedding_length(8)
            writer.add_block_count(1)
            writer.add_tokenizer_model("gpt2")
            writer.add_token_list(["<s>", "</s>", "a", "b"])
            writer.add_bos_token_id(0)
            writer.add_eos_token_id(1)
            writer.add_chat_template(template)
            writer.add_tensor("token_embd.weight", np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()

        return run

    return {
        "gguf.chatml.gguf": ("gguf-template", "gguf", write(_CHATML)),
        "gguf.llama3-tools.gguf": ("gguf-template", "gguf", write(_LLAMA3)),
        "gguf.mistral-raise-exception.gguf": ("gguf-template", "gguf", write(_MISTRAL)),
        "gguf.namespace-loop-last.gguf": ("gguf-template", "gguf", write(_NAMESPACE)),
        "gguf.tools-macro.gguf": ("gguf-template", "gguf", write(_TOOLS)),
        "gguf.named-templates.gguf": (
            "gguf-template",
            "gguf",
            write([{"name": "default", "template": _GEMMA}, {"name": "tool_use", "template": _TOOLS}]),
        ),
    }


# -- Keras ---------------------------------------------------------------------------------------------------------
def _keras_writers() -> dict[str, tuple[str, str, _Writer]]:
    # Keras picks its backend from KERAS_BACKEND when first imported (the test suite's conftest chooses torch, the
    # one installed beside modelshield); the corpus never changes the process's environment itself.
    try:
        import keras  # type: ignore[import-untyped]
    except ImportError:
        return {}
    if keras.backend.backend() != "torch":
        return {}
    import numpy as np

    def seeded(model: keras.Model) -> keras.Model:
        rng = np.random.default_rng(6)
        model.set_weights([rng.normal(scale=0.1, size=w.shape).astype(w.dtype) for w in model.get_weights()])
        return model

    def sequential() -> keras.Model:
        return seeded(keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                        keras.layers.Dropout(0.1), keras.layers.Dense(2, activation="softmax")]))  # fmt: skip

    def functional() -> keras.Model:
        a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
        h = keras.layers.Concatenate()([keras.layers.Dense(4)(a), keras.layers.Dense(4)(b)])
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.LayerNormalization()(keras.layers.Activation("gelu")(h))
        return seeded(keras.Model([a, b], keras.layers.Dense(1, activation="sigmoid")(h), name="two_inputs"))

    def convolutional() -> keras.Model:
        x = keras.Input((8, 8, 1))
        h = keras.layers.Conv2D(2, 3, padding="same")(x)
        h = keras.layers.GlobalAveragePooling2D()(keras.layers.MaxPooling2D()(h))
        embed = keras.Input((5,), dtype="int32")
        e = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(10, 4)(embed))
        out = keras.layers.Dense(3)(keras.layers.Concatenate()([h, e]))
        return seeded(keras.Model([x, embed], out))

    return {
        "keras.sequential.keras": ("keras", "keras", lambda p: sequential().save(p)),
        "keras.functional.keras": ("keras", "keras", lambda p: functional().save(p)),
        "keras.conv-embedding.keras": ("keras", "keras", lambda p: convolutional().save(p)),
        "keras.sequential-legacy.h5": ("keras", "keras-h5", lambda p: sequential().save(p)),
        "keras.functional-legacy.h5": ("keras", "keras-h5", lambda p: functional().save(p)),
    }


# -- test data from the wheels -------------------------------------------------------------------------------------
_PY2 = ("py27", "py2-")


def _wheel_files() -> list[tuple[Path, str, str, str]]:
    """(source, package, loader, family) for the test data that joblib, NumPy and SciPy ship inside their wheels."""
    found: list[tuple[Path, str, str, str]] = []
    try:
        import joblib

        data = Path(joblib.__file__).parent / "test" / "data"
        for path in sorted(data.glob("joblib_*")):
            unloadable = any(tag in path.name for tag in _PY2) or path.name.endswith(".npy.z")
            loader = "numpy" if path.suffix == ".npy" else "joblib"
            found.append((path, "joblib", loader, UNLOADABLE_FAMILY if unloadable else "wheel-testdata"))
    except ImportError:
        pass
    import numpy as np

    root = Path(np.__file__).parent
    for path in sorted([*root.glob("*/tests/data/*.np[yz]"), *root.glob("*/tests/data/*.pkl*"),
                        *root.glob("*/*/tests/data/*.np[yz]")]):  # fmt: skip
        if path.suffix == ".pkl":
            loader = "pickle"
        elif path.name.endswith(".pkl.gz"):
            loader = "joblib"  # joblib reads gzip-compressed pickles; pickle.load does not
        else:
            loader = "numpy"
        # astype_copy.pkl is a Python 2 pickle of a str-bearing array, loadable only with encoding="latin1".
        unloadable = any(tag in path.name for tag in _PY2) or path.name == "astype_copy.pkl"
        found.append((path, "numpy", loader, UNLOADABLE_FAMILY if unloadable else "wheel-testdata"))
    try:
        import scipy

        for path in sorted(Path(scipy.__file__).parent.rglob("*.np[yz]")):
            found.append((path, "scipy", "numpy", "wheel-testdata"))
    except ImportError:
        pass
    return found


def _copy_wheel_files(root: Path) -> list[BenignEntry]:
    entries = []
    for source, package, loader, family in _wheel_files():
        relative = Path("wheel-testdata") / package / source.name
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        entries.append(BenignEntry(relative.as_posix(), loader, family))
    return entries


def _writers() -> dict[str, tuple[str, str, _Writer]]:
    writers: dict[str, tuple[str, str, _Writer]] = {}
    for group in (_torch_writers, _sklearn_writers, _pandas_writers, _numpy_writers, _onnx_writers, _gguf_writers,
                  _keras_writers):  # fmt: skip
        try:
            writers.update(group())
        except ImportError:
            continue  # the library of that family is not installed
    return writers


def benign_entries() -> list[BenignEntry]:
    """The entries :func:`write_benign_corpus` writes with the libraries installed here, without writing them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library import notices
        entries = [BenignEntry(name, loader, family) for name, (loader, family, _) in _writers().items()]
    for source, package, loader, family in _wheel_files():
        entries.append(BenignEntry(f"wheel-testdata/{package}/{source.name}", loader, family))
    return entries


def write_benign_corpus(root: Path) -> list[BenignEntry]:
    """Write the benign corpus under ``root`` (created if needed) and return its entries, in writing order.

    Generated files lie at the top of ``root``; files copied from the wheels under ``root/wheel-testdata/<package>``
    (joblib's Python 2-era pickles keep their companion files beside them, as joblib expects).
    """
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library deprecation and convergence notices while writing fixtures
        for name, (loader, family, write) in _writers().items():
            write(root / name)
            entries.append(BenignEntry(name, loader, family))
    entries.extend(_copy_wheel_files(root))
    return entries
