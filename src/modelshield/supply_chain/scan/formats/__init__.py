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

from modelshield.supply_chain.scan.formats.compressed import COMPRESSED
from modelshield.supply_chain.scan.formats.gguf import GGUF
from modelshield.supply_chain.scan.formats.keras import KERAS
from modelshield.supply_chain.scan.formats.numpy import NUMPY
from modelshield.supply_chain.scan.formats.onnx import ONNX
from modelshield.supply_chain.scan.formats.pickle import PICKLE
from modelshield.supply_chain.scan.formats.safetensors import SAFETENSORS
from modelshield.supply_chain.scan.formats.saved_model import SAVED_MODEL
from modelshield.supply_chain.scan.formats.tar import TAR
from modelshield.supply_chain.scan.formats.zip import ZIP
from modelshield.supply_chain.scan.interface import FormatScanner

__all__ = ["FormatScanner", "builtin_scanners"]


def builtin_scanners() -> list[FormatScanner]:
    """The built-in scanners, in the order they are registered (and run, when two serve one format)."""
    return [PICKLE, NUMPY, ZIP, TAR, COMPRESSED, SAFETENSORS, KERAS, GGUF, ONNX, SAVED_MODEL]
