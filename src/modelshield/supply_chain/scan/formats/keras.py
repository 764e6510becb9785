"""Keras models: Lambda layers (serialised Python bytecode) and modules outside Keras named in the config.

    >>> import io, json, zipfile
    >>> from modelshield.supply_chain.scan.formats.keras import KERAS
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> from modelshield.supply_chain.formats import identify_stream
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as zf:
    ...     zf.writestr("config.json", json.dumps({"class_name": "Lambda"}))
    ...     zf.writestr("model.weights.h5", b"")
    >>> size = buffer.tell()
    >>> context = Scanner().context(identify_stream(buffer, size))
    >>> [f.id for f in KERAS.scan(buffer, size, "model.keras", context)]
    ['keras.lambda-layer']

A ``.keras`` file is a zip archive: its ``config.json`` is checked, every other member is scanned by content. An
HDF5 file (``.h5``) keeps its config as a string attribute; its JSON-looking parts are found and checked.
"""

from __future__ import annotations

import re
import zipfile
from typing import BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.formats.zip import zip_findings
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["KERAS", "KerasScanner", "keras_config_findings"]

_KERAS_CODE = re.compile(r'"class_name"\s*:\s*"(Lambda|TFOpLambda|SlicingOpLambda)"')
_KERAS_MODULE = re.compile(r'"module"\s*:\s*"([^"]+)"')
_KERAS_SAFE_MODULES = re.compile(r"^(keras|tensorflow|tf_keras|keras_core|keras_nlp|keras_cv|keras_hub)(\.|$)")
_MAX_CONFIG = 64 * 1024 * 1024  # a larger config.json is scanned like any member
_H5_CHUNK = 16 * 1024 * 1024
_H5_STRING = re.compile(rb'"(?:class_name|module)"\s*:\s*"[^"]{0,256}"')


def keras_config_findings(config_text: str, location: str) -> list[Finding]:
    """Lambda layers and references to modules outside Keras in the text of a model config."""
    found: list[Finding] = []
    lambdas = _KERAS_CODE.findall(config_text)
    if lambdas:
        found.append(
            scan_finding(
                "keras.lambda-layer",
                Severity.HIGH,
                "Keras model holds Lambda layers",
                f"{len(lambdas)} Lambda layer(s): their Python code runs when the model is loaded or called.",
                location,
            )
        )
    foreign = sorted({m for m in _KERAS_MODULE.findall(config_text) if not _KERAS_SAFE_MODULES.match(m)})
    if foreign:
        found.append(
            scan_finding(
                "keras.module-reference",
                Severity.HIGH,
                "Keras config imports modules outside Keras",
                f"Modules named in the config: {', '.join(foreign[:10])}; loading imports them.",
                location,
            )
        )
    return found


def _h5_config_text(fh: BinaryIO) -> str:
    """The JSON-looking parts of an HDF5 file (Keras keeps its model config there as a string attribute)."""
    fh.seek(0)
    found: list[str] = []
    tail = b""
    while chunk := fh.read(_H5_CHUNK):
        data = tail + chunk
        found += [m.decode("latin-1") for m in _H5_STRING.findall(data)]
        tail = data[-512:]
    return "\n".join(dict.fromkeys(found))


def _config_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, member: str) -> list[Finding] | None:
    if info.filename == "config.json" and info.file_size < _MAX_CONFIG:
        return keras_config_findings(zf.read(info).decode("utf-8", "replace"), member)
    return None


class KerasScanner:
    """Keras v3 archives (``.keras``) and HDF5 models (``.h5``)."""

    name = "keras"
    formats = frozenset({ModelFormat.KERAS, ModelFormat.HDF5})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for the config (and, in a ``.keras`` archive, for every other member, by content)."""
        if context.info.format is ModelFormat.KERAS:
            return zip_findings(stream, location, context, handler=_config_member)
        return keras_config_findings(_h5_config_text(stream), location)


KERAS = KerasScanner()
