"""Load a model file into a :class:`~modelshield.models.Classifier`, safely by default: scan, then load.

    >>> from modelshield.loading import load_model
    >>> loaded = load_model("model.onnx")  # doctest: +SKIP
    >>> loaded.classifier.predict(x)  # doctest: +SKIP

The format is identified from the file's content, not its name. Formats that cannot run code are loaded
directly: ONNX, skops (scikit-learn; types outside skops' default trust list must be named in ``trusted_types``),
safetensors and PyTorch state dicts (read with ``weights_only=True``; these hold weights only, so an
``architecture`` must be given: ``zoo:NAME``, or the user's own network class as ``package.module:Class`` or
``path/to/file.py:Class``, whose code is imported and run, so for code the user trusts only). Pickle, joblib, full
PyTorch checkpoints and ``torch.export`` archives (whose loader unpickles) are refused with
:class:`UnsafeModelError` unless ``unsafe_pickle=True`` is passed, which logs a warning: unpickling a file runs
whatever code its author put in it.

This module composes two layers, and so lives above both: the scanner (:mod:`modelshield.supply_chain.scan`)
vets every file whose format cannot run code before it is parsed (a tampered header, a Keras Lambda layer), and the
safe readers of :mod:`modelshield.models.serialization` load it.

A model and the data it is audited on must agree before any long work starts: :func:`align_data` checks the
features, puts the labels in the model's class order (data files know only their own, sorted, order) and runs the
model on two rows, raising one clear :class:`~modelshield.errors.InvalidInputError` for whatever does not fit.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield._extras import require
from modelshield.data.interface import Dataset
from modelshield.errors import (
    FileFormatError,
    InvalidInputError,
    InvalidParameterError,
    ModelError,
    ModelShieldError,
    UnsafeModelError,
)
from modelshield.models.interface import Bounds, Classifier
from modelshield.models.serialization import load_skops, load_torch_weights
from modelshield.supply_chain.formats import FormatInfo, ModelFormat, identify_format

if TYPE_CHECKING:
    import torch

__all__ = ["LoadedModel", "align_data", "load_model", "model_classes"]

log = logging.getLogger(__name__)

Architecture = Callable[[], "torch.nn.Module"]


@dataclass(frozen=True)
class LoadedModel:
    """A classifier loaded from a file, with the file's identified format."""

    classifier: Classifier
    path: Path
    format: FormatInfo


def load_model(
    path: str | Path,
    *,
    architecture: Architecture | str | None = None,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
    clip_values: Bounds | None = None,
    trusted_types: Sequence[str] = (),
    unsafe_pickle: bool = False,
    unsafe_ignore_scan: bool = False,
    device: str | None = "auto",
) -> LoadedModel:
    """Load the model at ``path`` as a classifier; see the module docstring for the formats and the rules.

    ``input_shape`` and ``n_classes`` describe the data: PyTorch models need both; a file that records its own
    input shape is checked against ``input_shape``, and one that records its classes keeps them. ``architecture``
    is a factory of the untrained network for weights-only files, ``"zoo:NAME"`` for a reference architecture
    built for that input shape and class count, or the user's own network as ``"package.module:Class"`` (imported
    as ``python -m`` would, the current directory first) or ``"path/to/file.py:Class"``, built with ``Class()``
    (a function that returns the network will do too). Naming code imports it and runs it with the caller's
    permissions, as ``python -m`` would: name only code you trust (a warning is logged naming it).

    Even with ``unsafe_pickle``, a file that the scanner rates critical (it would run a shell, ``eval``, import a
    module to call into it...) is refused; ``unsafe_ignore_scan`` overrides that second refusal too, with a warning.
    """
    path = Path(path)
    info = identify_format(path)
    fmt = info.format
    if architecture is not None and fmt in (ModelFormat.ONNX, ModelFormat.SKOPS):
        raise InvalidParameterError(
            f"{path} is {'an ONNX' if fmt is ModelFormat.ONNX else 'a skops'} model, which holds its own network; "
            "an architecture is only for weights-only files (safetensors, PyTorch state dicts).",
            remedy="Leave the architecture out.",
            cli_remedy="Drop --arch.",
        )
    if not info.can_execute_code:
        _refuse_if_scan_fails(path)
    if fmt is ModelFormat.ONNX:
        from modelshield.models.onnx_classifier import OnnxClassifier

        clf: Classifier = OnnxClassifier(path, input_shape=input_shape, n_classes=n_classes, clip_values=clip_values)
    elif fmt is ModelFormat.SKOPS:
        clf = _sklearn(load_skops(path, trusted_types=trusted_types), input_shape, clip_values)
    elif fmt is ModelFormat.SAFETENSORS or (fmt is ModelFormat.PYTORCH_ZIP and architecture is not None):
        clf = _torch_from_weights(path, architecture, input_shape, n_classes, clip_values, device)
    elif info.can_execute_code:
        if not unsafe_pickle:
            raise UnsafeModelError(f"Loading {path} can run code that the file contains ({info.detail}).")
        _refuse_if_critical(path, override=unsafe_ignore_scan)
        log.warning("Unpickling %s (%s): loading pickles was explicitly allowed.", path, info.detail)
        clf = _from_unsafe(path, info, input_shape, n_classes, clip_values, device)
    else:
        raise FileFormatError(
            f"modelshield cannot load {path} as a model ({info.detail}).",
            remedy="Use ONNX, skops, or safetensors weights with an architecture.",
        )
    return LoadedModel(classifier=clf, path=path, format=info)


def _refuse_if_critical(path: Path, *, override: bool) -> None:
    """Refuse to unpickle a file whose scan finds code that runs on load (critical), unless ``override``."""
    from modelshield.findings import Severity
    from modelshield.supply_chain.scan import scan_file

    critical = [f for f in scan_file(path).findings if f.severity >= Severity.CRITICAL]
    if not critical:
        return
    shown = "; ".join(f"{f.title} ({f.id})" for f in critical[:3])
    if override:
        log.warning(
            "Loading %s although its scan is critical (%s), because unsafe_ignore_scan=True was given.", path, shown
        )
        return
    raise UnsafeModelError(
        f"{path} would run code when it is unpickled: {shown}.",
        remedy="Do not load it. If you wrote it and know why the scanner objects, run `modelshield scan` on it and "
        "pass --unsafe-ignore-scan as well as --unsafe-allow-pickle.",
    )


def _refuse_if_scan_fails(path: Path) -> None:
    """Refuse a file whose scan reaches high severity (a tampered header, a Lambda layer, escaping paths...)."""
    from modelshield.findings import Severity
    from modelshield.supply_chain.scan import scan_file

    bad = [f for f in scan_file(path).findings if f.severity >= Severity.HIGH]
    if bad:
        shown = "; ".join(f"{f.title} ({f.id})" for f in bad[:3])
        raise UnsafeModelError(
            f"{path} fails its security scan: {shown}.",
            remedy="Run `modelshield scan` on it for the details; do not load it unless you trust its origin.",
        )


def _sklearn(estimator: Any, input_shape: tuple[int, ...] | None, clip_values: Bounds | None) -> Classifier:
    from modelshield.models.sklearn_classifier import SklearnClassifier

    return SklearnClassifier(estimator, input_shape=input_shape, clip_values=clip_values)


def _need_shape(path: Path, input_shape: tuple[int, ...] | None, n_classes: int | None) -> tuple[tuple[int, ...], int]:
    if input_shape is None or n_classes is None:
        raise InvalidParameterError(
            f"{path} holds a PyTorch model, which does not record its input shape and classes.",
            remedy="Pass input_shape and n_classes (the CLI takes them from --data).",
        )
    return input_shape, n_classes


def _reference_architecture(name: str, input_shape: tuple[int, ...], n_classes: int) -> Architecture:
    """The untrained network of torch reference target ``name`` for this input shape and class count."""
    from modelshield.zoo import ZOO, architecture

    entry = ZOO.get(name.removeprefix("zoo:"))
    if entry is not None and entry.recipe.get("arch") == "cnn" and len(input_shape) != 3:
        raise InvalidInputError(
            f"{name} is a convolutional network for images of shape (channels, height, width), but the data's "
            f"inputs have shape {input_shape}.",
            remedy="Pass the architecture the weights were trained with; for images, data whose inputs have shape "
            "(channels, height, width), such as an NPZ file.",
            cli_remedy="Pass the architecture the weights were trained with to --arch; for images, --data whose "
            "inputs have shape (channels, height, width), such as an NPZ file.",
        )
    return architecture(name, input_shape, n_classes)


def _torch_from_weights(
    path: Path,
    architecture: Architecture | str | None,
    input_shape: tuple[int, ...] | None,
    n_classes: int | None,
    clip_values: Bounds | None,
    device: str | None,
) -> Classifier:
    from modelshield.models.torch_classifier import TorchClassifier

    if architecture is None:
        raise InvalidParameterError(
            f"{path} holds weights only; the network that uses them must be given.",
            remedy="Pass architecture= (a factory of the network, zoo:NAME for a reference architecture, or "
            "module:Class or file.py:Class for your own network class).",
            cli_remedy="Pass --arch zoo:NAME for a reference architecture, or --arch module:Class or "
            "--arch path/to/file.py:Class for your own network class.",
        )
    shape, classes = _need_shape(path, input_shape, n_classes)
    if isinstance(architecture, str) and _is_code_reference(architecture):
        net = _user_network(architecture)
    else:
        factory = (
            _reference_architecture(architecture, shape, classes) if isinstance(architecture, str) else architecture
        )
        net = factory()
    try:
        load_torch_weights(net, path)
    except ModelShieldError:
        raise
    except Exception as exc:  # torch and safetensors raise types of their own for files they cannot read
        raise FileFormatError(
            f"{path} cannot be read as PyTorch weights: {_one_line(exc)}",
            remedy="Pass a safetensors file, or a state dict saved with torch.save(model.state_dict(), path).",
        ) from exc
    return TorchClassifier(net, n_classes=classes, input_shape=shape, clip_values=clip_values, device=device)


def _is_code_reference(architecture: str) -> bool:
    """True for ``module:Class`` and ``file.py:Class``; ``zoo:NAME`` and plain names are reference targets."""
    return not architecture.startswith("zoo:") and ":" in architecture


def _arch_error(message: str, *, remedy: str) -> InvalidParameterError:
    return InvalidParameterError(message, remedy=remedy, cli_remedy=remedy.replace("architecture=", "--arch "))


_ARCH_FORMS = (
    "Pass architecture=package.module:Class (importable from the current directory) or "
    "architecture=path/to/file.py:Class."
)


def _user_network(spec: str) -> torch.nn.Module:
    """The network that the user's code ``spec`` builds: ``package.module:Class`` or ``path/to/file.py:Class``,
    imported (which runs it), then ``Class()`` called with no arguments; one :class:`InvalidParameterError` with the
    remedy for whatever fails."""
    require("torch", extra="torch", feature="PyTorch models")
    import torch

    where, _, attribute = spec.rpartition(":")
    is_file = where.endswith(".py") or "/" in where or os.sep in where
    if not where or not attribute or not (is_file or all(part.isidentifier() for part in where.split("."))):
        raise _arch_error(f"Architecture {spec!r} is neither module:Class nor file.py:Class.", remedy=_ARCH_FORMS)
    log.warning(
        "Importing the %s %s to build the network for the weights: this runs that code with your permissions; "
        "name only code you trust.",
        "file" if is_file else "module",
        where,
    )
    module = _import_file(spec, Path(where)) if is_file else _import_module(spec, where)
    obj: Any = module
    for name in attribute.split("."):
        if not hasattr(obj, name):
            nets = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, torch.nn.Module))
            defined = f"it defines {', '.join(nets[:8])}" if nets else "it defines no torch.nn.Module class"
            raise _arch_error(
                f"{where} has no {attribute!r}; {defined}.",
                remedy=f"Name the class of the network: architecture={where}:Class.",
            )
        obj = getattr(obj, name)
    built_by = "a function that returns the network"
    if isinstance(obj, torch.nn.Module) or not callable(obj):
        raise _arch_error(
            f"{spec} is a {type(obj).__name__}, not a torch.nn.Module class.",
            remedy=f"Name the class of the network, or {built_by}.",
        )
    if isinstance(obj, type) and not issubclass(obj, torch.nn.Module):
        raise _arch_error(
            f"{spec} is the class {obj.__name__}, which is not a torch.nn.Module.",
            remedy=f"Name the class of the network (a torch.nn.Module subclass), or {built_by}.",
        )
    try:
        net = obj()
    except Exception as exc:  # the user's constructor: a TypeError for missing arguments, or anything it raises
        raise _arch_error(
            f"{spec}() raised {type(exc).__name__}: {_one_line(exc)}",
            remedy=f"The network is built with no arguments: add {built_by} to your code (def build(): return "
            f"Net(...)) and pass architecture={where}:build.",
        ) from exc
    if not isinstance(net, torch.nn.Module):
        raise _arch_error(
            f"{spec}() returned a {type(net).__name__}, not a torch.nn.Module.",
            remedy=f"Name the class of the network, or {built_by}.",
        )
    return net


def _import_module(spec: str, name: str) -> Any:
    """Import module ``name`` as ``python -m`` would, the current directory first on the path (for this import
    only)."""
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise _arch_error(
                f"No module named {exc.name!r} can be imported for architecture {spec!r} (from {cwd} or the "
                "installed packages).",
                remedy="Run from the directory that holds the module, install its package, or pass "
                "architecture=path/to/file.py:Class.",
            ) from exc
        raise _import_failed(spec, exc) from exc
    except Exception as exc:  # whatever the user's module raises while it is imported
        raise _import_failed(spec, exc) from exc
    finally:
        sys.path.remove(cwd)


def _import_file(spec: str, path: Path) -> Any:
    """Import the Python file ``path`` as a module of its own, its directory first on the path (for this import
    only, as ``python path`` would for its sibling modules)."""
    if not path.is_file():
        raise _arch_error(
            f"{path} does not exist (architecture {spec!r}).",
            remedy="Check the path to the Python file that defines the network (architecture=path/to/file.py:Class).",
        )
    name = f"modelshield_architecture_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise _arch_error(f"{path} cannot be imported as Python code.", remedy="Name a .py file.")
    module = importlib.util.module_from_spec(module_spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module  # dataclasses and typing look their module up while the file runs
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # whatever the user's file raises while it runs
        del sys.modules[name]
        raise _import_failed(spec, exc) from exc
    finally:
        sys.path.remove(folder)
    return module


def _import_failed(spec: str, exc: BaseException) -> InvalidParameterError:
    return _arch_error(
        f"Importing the code of architecture {spec!r} failed: {type(exc).__name__}: {_one_line(exc)}",
        remedy="Fix the error in that code (run it with python to see the traceback, or add -v), or check that its "
        "own imports are installed.",
    )


def _from_unsafe(
    path: Path,
    info: FormatInfo,
    input_shape: tuple[int, ...] | None,
    n_classes: int | None,
    clip_values: Bounds | None,
    device: str | None,
) -> Classifier:
    if info.format in (ModelFormat.PYTORCH_ZIP, ModelFormat.PYTORCH_LEGACY_TAR, ModelFormat.PYTORCH_EXPORT):
        torch = require("torch", extra="torch", feature="PyTorch models")
        from modelshield.models.torch_classifier import TorchClassifier

        if info.format is ModelFormat.PYTORCH_EXPORT:
            module = torch.export.load(path).module()
        else:
            module = torch.load(path, map_location="cpu", weights_only=False)  # nosec: explicit opt-in, warned above
        if not isinstance(module, torch.nn.Module):
            raise FileFormatError(f"{path} holds a {type(module).__name__}, not a torch.nn.Module.")
        shape, classes = _need_shape(path, input_shape, n_classes)
        return TorchClassifier(module, n_classes=classes, input_shape=shape, clip_values=clip_values, device=device)
    if info.format in (ModelFormat.PICKLE, ModelFormat.COMPRESSED):
        import joblib

        try:
            obj = joblib.load(path)  # explicit opt-in, warned above
        except Exception as exc:
            raise FileFormatError(f"{path} could not be unpickled: {exc}.") from exc
        if hasattr(obj, "predict_proba"):
            return _sklearn(obj, input_shape, clip_values)
        raise FileFormatError(f"{path} holds a {type(obj).__name__}, which has no predict_proba.")
    raise FileFormatError(f"modelshield cannot load {path} as a model ({info.detail}).")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def model_classes(classifier: Classifier) -> tuple[str, ...] | None:
    """The class names a model declares, in the order of its outputs (an ONNX graph's classifier labels,
    scikit-learn's ``classes_``), as text; None for models that do not name their classes."""
    labels = getattr(classifier, "class_labels", None)
    return None if labels is None else tuple(str(label) for label in labels)


_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def _whole_numbers(names: Sequence[str]) -> bool:
    return all(_WHOLE_NUMBER.fullmatch(name) for name in names)


def _shown(names: Sequence[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _class_order(classifier: Classifier, data: Dataset, classes: Sequence[str] | None) -> tuple[str, ...]:
    """The names of the model's outputs, in order: the model's own, else ``classes``, else whole-number labels as
    their own output index."""
    declared = model_classes(classifier)
    k = classifier.n_classes
    if classes is not None:
        given = tuple(str(c).strip() for c in classes)
        if len(given) != k:
            raise InvalidInputError(
                f"{len(given)} classes were named ({_shown(given)}), but the model has {k} outputs.",
                remedy="Name one class per model output, the class of output 0 first.",
                cli_remedy="Give --classes one name per model output, the class of output 0 first.",
            )
        if declared is not None and not _whole_numbers(declared) and given != declared:
            raise InvalidInputError(
                f"The model names its classes {_shown(declared)}, in that order, and the classes given are "
                f"{_shown(given)}.",
                remedy="Leave the classes out: the model's own names and order are used.",
                cli_remedy="Drop --classes: the model's own names and order are used.",
            )
        return given
    if declared is not None:
        return declared
    if _whole_numbers(data.label_names):
        return tuple(str(i) for i in range(k))
    example = ",".join(data.label_names[:k])
    raise InvalidInputError(
        f"The labels in column {data.schema.label!r} are names ({_shown(data.label_names)}), and the model does "
        f"not record which of its {k} outputs is which class.",
        remedy="Pass classes= with the class of each output, output 0 first.",
        cli_remedy=f"Name the class of each output with --classes, output 0 first (for example --classes {example} "
        f"if output 0 is {data.label_names[0]!r}).",
    )


def align_data(classifier: Classifier, data: Dataset, *, classes: Sequence[str] | None = None) -> Dataset:
    """``data`` with its labels in the model's class order, once the model has shown that it can take the data.

    The class order is the model's own where it names its classes (:func:`model_classes`); else ``classes``, the
    class of each output, output 0 first; else, for labels that are whole numbers, label ``k`` is output ``k``.
    Then every label of the data must be one of those classes, and the model must predict on two rows of the data.
    Anything that does not fit raises :class:`InvalidInputError` naming the value, before any long work.
    """
    where = data.source or data.name
    if data.schema.input_shape != classifier.input_shape:
        raise InvalidInputError(
            f"The model takes inputs of shape {classifier.input_shape}; {where} has inputs of shape "
            f"{data.schema.input_shape}.",
            remedy="Pass data with the features the model was trained on, in the same order; in a table, every "
            "column but the label column is a feature.",
        )
    order = _class_order(classifier, data, classes)
    counts = data.class_counts()
    present = [data.label_names[k] for k in range(data.n_classes) if counts[k]]
    unknown = [name for name in present if name not in order]
    if unknown:
        if classes is None and model_classes(classifier) is not None and not _whole_numbers(order):
            remedy = cli_remedy = (
                f"Check that the label column is the right one: the model was trained on the classes {_shown(order)}."
            )
        else:
            remedy = "Pass classes= naming every class the data holds, the class of output 0 first."
            cli_remedy = (
                f"Name the class of each model output with --classes, output 0 first (for example --classes "
                f"{','.join(present[: classifier.n_classes])} if output 0 is {present[0]!r}), or check --label."
            )
        raise InvalidInputError(
            f"Label {unknown[0]!r} in column {data.schema.label!r} of {where} is not one of the model's classes "
            f"({_shown(order)}).",
            remedy=remedy,
            cli_remedy=cli_remedy,
        )
    aligned = data.relabel(order)
    _probe(classifier, aligned, where)
    return aligned


def _probe(classifier: Classifier, data: Dataset, where: str) -> None:
    """Run the model on the first two rows of ``data``: what its declared shapes cannot promise, a run shows."""
    fresh = classifier.queries == 0
    try:
        classifier.predict_proba(data.x[:2])
    except (ModelError, InvalidInputError) as exc:
        raise _fails_on(where, exc) from exc
    except ModelShieldError:
        raise
    except Exception as exc:  # a framework's own error (torch: mat1 and mat2 shapes cannot be multiplied)
        raise _fails_on(where, exc) from exc
    finally:
        if fresh:
            classifier.reset_queries()  # the probe is no query that an attack or a check made


def _fails_on(where: str, exc: BaseException) -> InvalidInputError:
    return InvalidInputError(
        f"The model fails on the first rows of {where}: {_one_line(exc)}",
        remedy="Check that the data has the features the model was trained on, in the same order, and for weights "
        "that the architecture is the one they were trained with.",
        cli_remedy="Check that --data has the features the model was trained on, in the same order, and for weights "
        "that --arch is the architecture they were trained with.",
    )
