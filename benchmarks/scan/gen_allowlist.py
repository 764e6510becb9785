"""Regenerate the library-class part of the scanner's allowlist from the installed libraries.

    python benchmarks/scan/gen_allowlist.py > src/modelshield/supply_chain/scan/allowlist_libraries.txt

A pickle names a class by the module that defines it (``cls.__module__``) and its qualified name, so the classes a
real artifact can reference are exactly the classes *defined* in these libraries. Names merely imported into a
library module (``sklearn.datasets._base.Path``) are reachable through ``getattr`` too, which is why a pattern such
as "any capitalised name under sklearn" is not an allowlist; this script lists defined classes only, and leaves out
the modules whose classes start threads, open sockets or files when built.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import re
import sys
import warnings

# Modules whose classes touch the outside world when built or set up (or exist only for tests and tooling).
_SKIP = (
    "sklearn.datasets", "sklearn.callback", "sklearn.utils._testing", "sklearn.utils._mocking",
    "sklearn.utils.parallel", "sklearn.externals", "sklearn.utils._show_versions", "sklearn.utils._repr_html",
    "sklearn.experimental", "sklearn.conftest", "sklearn.utils.fixes", "sklearn.utils._estimator_html_repr",
    "sklearn.utils._joblib",
    "pandas._libs.parsers", "pandas._libs.writers", "pandas._libs.json", "pandas._libs.testing", "pandas._libs.sas",
    "pandas._libs.byteswap", "pandas.io", "pandas.plotting", "pandas.util", "pandas.testing", "pandas._testing",
    "pandas.core.config_init",
    "torch.nn.parallel", "torch.nn.utils.prune", "torch.nn.attention", "torch.nn.modules.lazy",
)  # fmt: skip


def _walk(root: str) -> list[str]:
    pkg = importlib.import_module(root)
    names = [root]
    for info in pkgutil.walk_packages(pkg.__path__, root + "."):
        if ".tests" in info.name or info.name.endswith(".conftest") or info.name.startswith(_SKIP):
            continue
        names.append(info.name)
    return names


def _classes(root: str, keep: type | tuple[type, ...] | None = None) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for name in _walk(root):
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: S112 - optional sub-packages that need more dependencies
            continue
        for obj in vars(module).values():
            if not inspect.isclass(obj) or obj.__module__ != name or "<" in obj.__qualname__:
                continue
            if issubclass(obj, BaseException):
                continue
            if keep is not None and not issubclass(obj, keep):
                continue
            found.add((obj.__module__, obj.__qualname__))
    return found


_RECONSTRUCTOR = re.compile(
    r"__pyx_unpickle_\w+|_unpickle\w*|\w+_unpickle|_new_[A-Z]\w*|__\w+_ctor|_reconstruct\w*|newObj"
)


def _reconstructors(root: str) -> set[tuple[str, str]]:
    """Functions defined in ``root`` that pickles call to rebuild objects, by the libraries' own naming."""
    found: set[tuple[str, str]] = set()
    for name in _walk(root):
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: S112
            continue
        for attr, obj in vars(module).items():
            if _RECONSTRUCTOR.fullmatch(attr) and callable(obj) and getattr(obj, "__module__", None) == name:
                found.add((name, attr))
    return found


def _data_class(cls: type) -> bool:
    """Whether ``cls`` (a public pandas name) is written in pandas' data packages: the file most of its own methods
    come from (its ``__module__`` is the public one)."""
    files = [f.__code__.co_filename.replace("\\", "/") for f in vars(cls).values() if hasattr(f, "__code__")]
    if not files:
        return True  # compiled (Cython) classes: Timestamp, Timedelta, Period, Interval
    home = max(set(files), key=files.count)
    return any(f"/{p.replace('.', '/')}" in home for p in _PANDAS_DATA)


# pandas packages whose classes hold data (frames, series, indexes, arrays, dtypes, blocks). Its other packages
# evaluate expressions (pandas.core.computation.expr.Expr parses and runs Python in its constructor), apply
# functions, group, window or plot: none of that belongs in a pickle of data.
_PANDAS_DATA = (
    "pandas.core.arrays", "pandas.core.dtypes", "pandas.core.indexes", "pandas.core.internals", "pandas.core.frame",
    "pandas.core.series", "pandas.core.flags", "pandas.core.generic", "pandas.core.base", "pandas.core.sparse",
    "pandas._libs",
)  # fmt: skip
# Activation functions that modules keep as attributes (TransformerEncoderLayer's activation=F.relu).
_ACTIVATIONS = (
    "relu", "relu6", "gelu", "silu", "mish", "elu", "selu", "celu", "leaky_relu", "rrelu", "glu", "hardtanh",
    "hardswish", "hardsigmoid", "logsigmoid", "softplus", "softshrink", "hardshrink", "tanhshrink", "softsign",
    "softmax", "softmin", "log_softmax", "tanh", "sigmoid", "prelu", "threshold",
)  # fmt: skip
# scikit-learn classes that are not estimators but that fitted estimators hold (found in the files they write):
# losses and links (arithmetic), the histogram-boosting tree predictor, MLP optimisers, Bunch.
_SKLEARN_HELD = ("sklearn._loss.loss", "sklearn._loss.link", "sklearn.ensemble._hist_gradient_boosting.predictor",
                 "sklearn.neural_network._stochastic_optimizers", "sklearn.utils._bunch")  # fmt: skip


def _compiled(module_name: str) -> bool:
    """Whether a module is a compiled extension (Cython data structures: trees, losses, distance metrics)."""
    module = sys.modules.get(module_name)
    return str(getattr(module, "__file__", "")).endswith((".so", ".pyd"))


def main() -> None:
    """Only families whose construction is known to store state: scikit-learn estimators (its API forbids logic
    in ``__init__``) and its compiled data structures, PyTorch modules and optimisers (not LR schedulers, whose
    constructors call the functions they are given), SciPy sparse containers, NumPy random generators, pandas'
    data classes, and the libraries' own unpickling helpers."""
    warnings.filterwarnings("ignore")
    import pandas
    import pandas.arrays
    import scipy.sparse
    import sklearn.base
    import torch
    import torch.nn.functional

    rows: dict[tuple[str, str], str] = {}
    for key in _classes("sklearn"):
        cls = getattr(sys.modules[key[0]], key[1].split(".")[0])
        if isinstance(cls, type) and issubclass(cls, sklearn.base.BaseEstimator):
            rows[key] = "scikit-learn estimator"
        elif _compiled(key[0]):
            rows[key] = "scikit-learn compiled data structure"
        elif key[0] in _SKLEARN_HELD:
            rows[key] = "scikit-learn class that fitted estimators hold"
    for key in _reconstructors("sklearn"):
        rows[key] = "scikit-learn Cython reconstructor"
    for key in _classes("torch.nn.modules", torch.nn.Module):
        rows[key] = "PyTorch module class"
    for key in _classes("torch.optim", torch.optim.Optimizer):
        rows[key] = "PyTorch optimiser class"
    for key in _classes("scipy.sparse", (scipy.sparse.spmatrix, scipy.sparse.sparray)):
        rows[key] = "SciPy sparse class"
    for key in _classes("numpy.random"):
        rows[key] = "NumPy random generator class"
    for key in _reconstructors("numpy.random"):
        rows[key] = "NumPy random generator reconstructor"
    for root in ("pandas.core", "pandas._libs"):
        for key in _classes(root):
            if key[0].startswith(_PANDAS_DATA):
                rows[key] = "pandas data class"
        for key in _reconstructors(root):
            rows[key] = "pandas reconstructor"
    # pandas 3 names its public classes by their public path (DataFrame.__module__ == "pandas"), and pickles do
    # too: the public names whose methods are written in pandas' data packages.
    # pandas 2 and earlier named the same classes by the module that defines them (pandas.core.frame.DataFrame),
    # and most pandas pickles in the wild were written so: every path in pandas' data packages that reaches the
    # same class object is listed (the same object behaves the same, whatever the path).
    public_classes: dict[int, type] = {}
    for public in (pandas, pandas.arrays):
        for attr, obj in vars(public).items():
            if inspect.isclass(obj) and obj.__module__.startswith("pandas") and _data_class(obj):
                rows[(public.__name__, attr)] = "pandas data class"
                public_classes[id(obj)] = obj
    for root in ("pandas.core", "pandas._libs"):
        for name in _walk(root):
            if not name.startswith(_PANDAS_DATA):
                continue
            module = sys.modules.get(name)
            for attr, obj in vars(module).items() if module is not None else ():
                if id(obj) in public_classes and attr == obj.__name__:
                    rows.setdefault((name, attr), "pandas data class (another path to it)")
    for attr in _ACTIVATIONS:
        if inspect.isfunction(getattr(torch.nn.functional, attr, None)):
            rows[("torch.nn.functional", attr)] = "PyTorch activation function"
    packages = ("scikit-learn", "torch", "scipy", "numpy", "pandas")
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in packages)
    lines = [
        f"# Generated by benchmarks/scan/gen_allowlist.py from {versions}; Python {sys.version.split()[0]}.",
        "# module<TAB>name<TAB>reason: classes and reconstructors these libraries define (not merely import).",
        *(f"{module}\t{name}\t{reason}" for (module, name), reason in sorted(rows.items())),
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
