"""The built-in format scanners, one module per format; the scanner registry starts with them.

    >>> from modelshield.supply_chain.scan.formats import builtin_scanners
    >>> [s.name for s in builtin_scanners()]
    ['pickle', 'numpy', 'zip', 'tar', 'compressed', 'safetensors', 'keras', 'gguf', 'onnx', 'saved-model']

Each module holds one :class:`~modelshield.supply_chain.scan.interface.FormatScanner` (a class, and its instance
in capitals) and what only that format needs. Together they serve every
:class:`~modelshield.supply_chain.formats.ModelFormat` but ``UNKNOWN``:

- ``pickle``: raw pickles, judged by the scan policy; ``numpy``: the pickle payload of ``.npy`` object arrays;
- ``zip``: PyTorch, TorchScript, ``.pt2``, skops, ``.npz`` and plain zip archives, member by member;
- ``tar``: tar archives and legacy PyTorch checkpoints; ``compressed``: gzip, zlib, xz, LZMA and bzip2 streams;
- ``safetensors``: header checks; ``keras``: ``.keras`` archives and ``.h5`` configs; ``gguf``: chat templates;
- ``onnx``: external data and custom domains; ``saved-model``: TensorFlow ops that run Python or touch files.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, BinaryIO

from modelshield.supply_chain.formats import ModelFormat as _Format
from modelshield.supply_chain.scan.formats.pickle import PICKLE
from modelshield.supply_chain.scan.interface import FormatScanner

if TYPE_CHECKING:
    from modelshield.findings import Finding
    from modelshield.supply_chain.scan.interface import ScanContext

__all__ = ["FormatScanner", "LazyScanner", "builtin_scanners"]


class LazyScanner:
    """A built-in scanner whose module is imported the first time a file of its formats is scanned.

    ``modelshield scan model.pkl`` then imports the pickle scanner only, not the zip reader or the Keras, GGUF,
    ONNX or SavedModel parsers: start-up is most of a CI gate's time on small files. Its name and formats are known
    without the import, and it pickles (to worker processes) as the same reference.
    """

    def __init__(self, name: str, formats: Iterable[_Format], target: str) -> None:
        self.name = name
        self.formats = frozenset(formats)
        self.target = target  # "module:ATTRIBUTE"
        self._scanner: FormatScanner | None = None
        self._lock = threading.Lock()

    def load(self) -> FormatScanner:
        """The scanner itself (its module imported on the first call)."""
        if self._scanner is None:
            with self._lock:
                if self._scanner is None:
                    module, attribute = self.target.split(":")
                    self._scanner = getattr(importlib.import_module(module), attribute)
        return self._scanner

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> Iterable[Finding]:
        return self.load().scan(stream, size, location, context)

    def __reduce__(self) -> tuple[type[LazyScanner], tuple[str, frozenset[_Format], str]]:
        return (LazyScanner, (self.name, self.formats, self.target))

    def __repr__(self) -> str:
        return f"LazyScanner({self.name!r}, {self.target!r})"


def _lazy(name: str, module: str, attribute: str, *formats: _Format) -> LazyScanner:
    return LazyScanner(name, formats, f"modelshield.supply_chain.scan.formats.{module}:{attribute}")


def builtin_scanners() -> list[FormatScanner]:
    """The built-in scanners, in the order they are registered (and run, when two serve one format)."""
    return [
        PICKLE,
        _lazy("numpy", "numpy", "NUMPY", _Format.NUMPY),
        _lazy(
            "zip",
            "zip",
            "ZIP",
            _Format.PYTORCH_ZIP,
            _Format.TORCHSCRIPT,
            _Format.PYTORCH_EXPORT,
            _Format.SKOPS,
            _Format.NUMPY_NPZ,
            _Format.ZIP,
        ),
        _lazy("tar", "tar", "TAR", _Format.TAR, _Format.PYTORCH_LEGACY_TAR),
        _lazy("compressed", "compressed", "COMPRESSED", _Format.COMPRESSED),
        _lazy("safetensors", "safetensors", "SAFETENSORS", _Format.SAFETENSORS),
        _lazy("keras", "keras", "KERAS", _Format.KERAS, _Format.HDF5),
        _lazy("gguf", "gguf", "GGUF", _Format.GGUF),
        _lazy("onnx", "onnx", "ONNX", _Format.ONNX),
        _lazy("saved-model", "saved_model", "SAVED_MODEL", _Format.TF_SAVEDMODEL),
    ]
