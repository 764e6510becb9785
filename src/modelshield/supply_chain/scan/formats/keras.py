"""Keras models: the config is parsed as JSON and every serialised object in it is judged, as ``load_model`` reads it.

    >>> import io, json, zipfile
    >>> from modelshield.supply_chain.scan.formats.keras import KERAS
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> from modelshield.supply_chain.formats import identify_stream
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as zf:
    ...     zf.writestr("config.json", json.dumps({"class_name": "Lambda", "config": {}}))
    ...     zf.writestr("model.weights.h5", b"")
    >>> size = buffer.tell()
    >>> context = Scanner().context(identify_stream(buffer, size))
    >>> [f.id for f in KERAS.scan(buffer, size, "model.keras", context)]
    ['keras.lambda-layer']

A ``.keras`` file is a zip archive: its ``config.json`` is decoded with :mod:`json` (escapes and all, as Keras
decodes it) and walked; every dict with a ``class_name`` is an object Keras rebuilds. What is judged:

- code: ``Lambda``, ``TFOpLambda``, ``SlicingOpLambda`` layers and ``__lambda__`` objects (marshalled bytecode);
- imports: a ``module`` outside Keras' own packages (``builtins`` only for plain function names);
- custom objects: a ``registered_name`` of the form ``package>Name`` (the loading process's own code runs);
- files and URLs read at load time: lookup and vectorisation layers whose ``vocabulary`` (or ``idf_weights``) is
  a path, any ``filepath``/``path``/``origin``/``url``-like key with a string value, and references to Keras'
  file, saving and configuration functions.

Every other member of the archive is scanned by content. A legacy HDF5 model (``.h5``) keeps its config in the root
group's ``model_config`` attribute. HDF5 stores attribute values unfiltered and contiguous, so the config is found
by decoding, with :meth:`json.JSONDecoder.raw_decode`, every JSON object the file's bytes hold (h5py is not used:
libhdf5 loops forever on some damaged files). A file that names ``model_config`` but yields no config, and a file
whose attribute storage is compressed (where a config could hide), are reported.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.formats.zip import zip_findings
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["KERAS", "KerasScanner", "keras_config_findings"]

#: Packages whose modules Keras itself resolves (``keras.src...`` included); anything else is imported user code.
_KERAS_PACKAGES = frozenset({"keras", "tf_keras", "keras_core", "keras_hub", "keras_nlp", "keras_cv"})
_KERAS_PREFIXES = ("tensorflow.keras.", "tensorflow.python.keras.")
#: Layers whose config holds Python code.
_CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
#: Objects that are not classes: Keras builds them from data (no import, no code).
_DATA_OBJECTS = frozenset(
    {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__", "__typespec__"}
)
#: Layers that read a file when a string is given where data is expected.
_FILE_LAYERS = frozenset({"StringLookup", "IntegerLookup", "TextVectorization", "IndexLookup"})
_FILE_LAYER_KEYS = frozenset({"vocabulary", "idf_weights"})
#: Config keys whose string values name files or URLs, whatever the layer.
_FILE_KEY = re.compile(
    r"(^|_)(file|filepath|filename|path|dir|directory|origin|url|uri|fname|cache_dir|cache_subdir)s?$", re.IGNORECASE
)
#: Keras functions that touch files, fetch URLs, or change how loading works: never a modelling function.
_NON_MODELING = re.compile(
    r"^keras\.(src\.)?(utils|saving|models|config|backend|preprocessing|datasets|callbacks|export)"
)
_MAX_CONFIG = 64 * 1024 * 1024
_MAX_NODES = 2_000_000  # JSON values walked per config
_H5_CHUNK = 16 * 1024 * 1024
_H5_OVERLAP = 4 * 1024 * 1024  # a config split across two chunks is found in the second
_FRACTAL_HEAP = re.compile(rb"FRHP\x00")  # signature, version 0; then heap-ID length (2), I/O filter length (2)
_H5_CANDIDATE = re.compile(rb'\{\s*"')
_H5_MAX_ATTEMPTS = 200_000


def _package_allowed(module: str) -> bool:
    return module.split(".", 1)[0] in _KERAS_PACKAGES or module.startswith(_KERAS_PREFIXES)


def _objects(config: object) -> Iterator[tuple[str, dict[str, object]]]:
    """Every dict of the decoded config with its JSON path, breadth first, without recursion."""
    queue: list[tuple[str, object]] = [("$", config)]
    seen = 0
    while queue and seen < _MAX_NODES:
        path, value = queue.pop()
        seen += 1
        if isinstance(value, dict):
            yield path, value
            queue += [(f"{path}.{k}", v) for k, v in value.items() if isinstance(v, dict | list)]
        elif isinstance(value, list):
            queue += [(f"{path}[{i}]", v) for i, v in enumerate(value) if isinstance(v, dict | list)]


class _Judge:
    """Collects what one config asks Keras to do, then turns it into findings."""

    def __init__(self) -> None:
        self.code: list[str] = []
        self.modules: set[str] = set()
        self.custom: set[str] = set()
        self.files: list[str] = []
        self.functions: set[str] = set()

    def visit(self, path: str, obj: dict[str, object]) -> None:
        class_name = obj.get("class_name")
        module = obj.get("module")
        inner = obj.get("config")
        for key, value in obj.items():
            if isinstance(value, str) and value and _FILE_KEY.search(str(key)):
                self.files.append(f"{path}.{key} = {value[:200]!r}")
        if not isinstance(class_name, str):
            return
        if class_name in _CODE_LAYERS or class_name == "__lambda__":
            self.code.append(f"{class_name} at {path}")
        elif class_name in _DATA_OBJECTS:
            return
        if isinstance(module, str):
            if module == "builtins":
                if class_name != "function":
                    self.modules.add(f"builtins.{class_name}")
            elif not _package_allowed(module):
                self.modules.add(module)
            elif class_name == "function" and isinstance(inner, str) and _NON_MODELING.match(module):
                self.functions.add(f"{module}.{inner}")
        elif module is not None:
            self.modules.add(repr(module)[:100])
        registered = obj.get("registered_name")
        if isinstance(registered, str) and ">" in registered:
            self.custom.add(registered)
        if class_name in _FILE_LAYERS and isinstance(inner, dict):
            for key in _FILE_LAYER_KEYS:
                value = inner.get(key)
                if isinstance(value, str) and value:
                    self.files.append(f"{path}.config.{key} = {value[:200]!r}")

    def findings(self, location: str) -> list[Finding]:
        found: list[Finding] = []
        if self.code:
            found.append(
                scan_finding(
                    "keras.lambda-layer",
                    Severity.HIGH,
                    "Keras model holds Lambda layers",
                    f"{len(self.code)} object(s) with Python code ({', '.join(self.code[:5])}): their code runs when "
                    "the model is loaded with safe_mode=False or with an older Keras, or when it is called.",
                    location,
                    evidence={"code": [*self.code[:20]]},
                )
            )
        if self.modules:
            names = sorted(self.modules)
            found.append(
                scan_finding(
                    "keras.module-reference",
                    Severity.HIGH,
                    "Keras config imports modules outside Keras",
                    f"Modules named in the config: {', '.join(names[:10])}; loading imports them or resolves "
                    "objects from them.",
                    location,
                    evidence={"modules": [*names[:50]]},
                )
            )
        if self.custom:
            names = sorted(self.custom)
            found.append(
                scan_finding(
                    "keras.custom-object",
                    Severity.HIGH,
                    "Keras config needs custom objects",
                    f"Registered custom objects: {', '.join(names[:10])}; loading runs their code from the loading "
                    "process.",
                    location,
                    evidence={"objects": [*names[:50]]},
                )
            )
        if self.functions:
            names = sorted(self.functions)
            found.append(
                scan_finding(
                    "keras.non-modeling-function",
                    Severity.HIGH,
                    "Keras config references file or configuration functions",
                    f"Functions named in the config: {', '.join(names[:10])}; they touch files, fetch URLs or "
                    "change how Keras loads models.",
                    location,
                    evidence={"functions": [*names[:50]]},
                )
            )
        if self.files:
            found.append(
                scan_finding(
                    "keras.file-reference",
                    Severity.HIGH,
                    "Keras config names files or URLs read at load time",
                    f"{len(self.files)} path(s) or URL(s): {'; '.join(self.files[:5])}. Loading reads (or fetches) "
                    "them from the loading host.",
                    location,
                    evidence={"paths": [*self.files[:50]]},
                )
            )
        return found


def keras_config_findings(config: str | bytes, location: str) -> list[Finding]:
    """Findings for the text of a Keras model config (``config.json``, or an HDF5 file's ``model_config``)."""
    try:
        decoded = json.loads(config)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        return [
            scan_finding(
                "keras.config-corrupt",
                Severity.MEDIUM,
                "Keras config cannot be decoded",
                f"The model config is not valid JSON ({str(exc)[:200]}); Keras cannot load the model.",
                location,
            )
        ]
    return _judge_values([decoded], location)


def _judge_values(values: list[object], location: str) -> list[Finding]:
    judge = _Judge()
    for value in values:
        for path, obj in _objects(value):
            judge.visit(path, obj)
    return judge.findings(location)


def _h5_json_texts(fh: BinaryIO) -> tuple[list[object], bool, bool, bool]:
    """The JSON objects found in an HDF5 file's bytes, whether it names ``model_config``, whether the search gave
    up (too many candidates), and whether the file has a filtered (compressed) fractal heap, where attributes could
    hide from a search of the bytes."""
    fh.seek(0)
    decoder = json.JSONDecoder()
    values: list[object] = []
    marker = False
    attempts = 0
    tail = b""
    base = 0  # file offset of data[0]
    resume = 0  # file offset before which everything is decoded already
    filtered = False
    while chunk := fh.read(_H5_CHUNK):
        data = tail + chunk
        marker = marker or b"model_config" in data
        filtered = filtered or any(
            data[m.start() + 7 : m.start() + 9] not in (b"\0\0", b"") for m in _FRACTAL_HEAP.finditer(data)
        )
        text = data.decode("latin-1")
        for match in _H5_CANDIDATE.finditer(data):
            if base + match.start() < resume:
                continue
            attempts += 1
            if attempts > _H5_MAX_ATTEMPTS:
                return values, marker, True, filtered
            try:
                value, end = decoder.raw_decode(text, match.start())
            except (ValueError, RecursionError):
                continue
            if isinstance(value, dict):
                values.append(value)
                resume = base + end
        tail = data[-_H5_OVERLAP:]
        base += len(data) - len(tail)
    return values, marker, False, filtered


def _keras_objects(values: list[object]) -> bool:
    return any(isinstance(obj.get("class_name"), str) for value in values for _, obj in _objects(value))


def _h5_findings(fh: BinaryIO, location: str) -> list[Finding]:
    values, marker, gave_up, filtered = _h5_json_texts(fh)
    found = _judge_values(values, location)
    if gave_up:
        found.append(
            scan_finding(
                "keras.config-unreadable",
                Severity.HIGH,
                "Keras config could not be searched to the end",
                f"The file holds more than {_H5_MAX_ATTEMPTS:,} JSON-like texts; the model config was not found.",
                location,
            )
        )
    elif filtered:
        found.append(
            scan_finding(
                "keras.config-unreadable",
                Severity.HIGH,
                "HDF5 file holds compressed attribute storage",
                "A fractal heap (dense attribute or link storage) is compressed with I/O filters: a model config "
                "stored there is invisible to the scanner, yet HDF5 and Keras would read it.",
                location,
            )
        )
    elif marker and not _keras_objects(values):
        found.append(
            scan_finding(
                "keras.config-missing",
                Severity.MEDIUM,
                "Keras config not found",
                "The HDF5 file names a model_config but no readable Keras config was found in it.",
                location,
            )
        )
    return found


def _config_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, member: str) -> list[Finding] | None:
    if info.filename != "config.json":
        return None
    if info.file_size > _MAX_CONFIG:
        return [
            scan_finding(
                "keras.config-unreadable",
                Severity.HIGH,
                "Keras config too large to check",
                f"config.json holds {info.file_size:,} bytes, more than the {_MAX_CONFIG:,} the scanner reads; Keras "
                "would still load it.",
                member,
            )
        ]
    return keras_config_findings(zf.read(info), member)


class KerasScanner:
    """Keras v3 archives (``.keras``) and HDF5 models (``.h5``)."""

    name = "keras"
    formats = frozenset({ModelFormat.KERAS, ModelFormat.HDF5})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for the config (and, in a ``.keras`` archive, for every other member, by content)."""
        if context.info.format is ModelFormat.KERAS:
            return zip_findings(stream, location, context, handler=_config_member)
        return _h5_findings(stream, location)


KERAS = KerasScanner()
