"""ML bill of materials: a model, the data it was built from and the Python environment, as CycloneDX 1.6 JSON.

    >>> from pathlib import Path
    >>> from modelshield.supply_chain.bom import build_bom, render_bom
    >>> bom = build_bom(Path("model.safetensors"), data_manifests=[Path("train.manifest.json")])  # doctest: +SKIP
    >>> print(render_bom(bom))  # doctest: +SKIP

What goes in:

- ``metadata``: the time, modelshield as the tool, and the model as the component the BOM describes.
- The model, a ``machine-learning-model`` component: its format identified by content (the file is never loaded),
  the SHA-256 of the file or, for a model directory, one nested ``file`` component with its SHA-256 per file.
- One ``data`` component per data manifest (as written by ``modelshield data manifest``): name, source, row count
  and Merkle root from the manifest, and the SHA-256 of the manifest file itself.
- Every Python distribution installed where the BOM is made, as ``library`` components with a ``pkg:pypi`` purl,
  grouped under one ``modelshield-environment`` component.
- ``dependencies``: model → its files, its data sets and the environment; environment → the libraries.

cyclonedx-python-lib (11.x) has no classes yet for a component's ``modelCard`` and ``data`` (its ``Component``
marks both "TODO since CDX1.5"). The facts they hold are kept on the :class:`~cyclonedx.model.bom.Bom` as
``modelshield:*`` properties, and :func:`render_bom` writes the model card and the data entries from them, then
validates the whole document against the CycloneDX 1.6 JSON schema.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelshield._extras import require
from modelshield._internal.hashing import sha256_file
from modelshield._version import __version__
from modelshield.errors import FileFormatError, MissingExtraError, ModelShieldError
from modelshield.supply_chain.formats import FormatInfo, ModelFormat, identify_format

if TYPE_CHECKING:
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component

__all__ = ["build_bom", "render_bom"]

logger = logging.getLogger(__name__)

_FEATURE = "The ML bill of materials"
_MANIFEST_FORMAT = "modelshield.data-manifest"
_MANIFEST_KEYS = ("name", "source", "n_rows", "rows", "merkle_root", "dataset_digest", "digest")
_URL_SCHEMES = frozenset({"http", "https", "s3", "gs", "hf", "file"})

# bom-refs: readable, stable, unique within the BOM.
_MODEL_REF = "modelshield:model"
_ENVIRONMENT_REF = "modelshield-environment"
_FILE_REF = "modelshield:model/file/"
_DATA_REF = "modelshield:data/"

# Facts for the model card and the data entries, which cyclonedx-python-lib cannot hold in its own classes yet.
_PROP_MODEL_FORMAT = "modelshield:model:format"
_PROP_MODEL_FORMAT_DETAIL = "modelshield:model:format-detail"
_PROP_MODEL_CAN_EXECUTE_CODE = "modelshield:model:can-execute-code"
_PROP_MODEL_TASK = "modelshield:model:task"
_PROP_FILE_FORMAT = "modelshield:file:format"
_PROP_DATA_NAME = "modelshield:data:name"
_PROP_DATA_SOURCE = "modelshield:data:source"
_PROP_DATA_ROWS = "modelshield:data:rows"
_PROP_DATA_MERKLE_ROOT = "modelshield:data:merkle-root"
_PROP_DATA_DIGEST = "modelshield:data:digest"
_PROP_DATA_CREATED = "modelshield:data:created"


def _require_cyclonedx() -> None:
    require("cyclonedx", extra="bom", feature=_FEATURE)


def _sha256(hex_digest: str) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType

    return HashType(alg=HashAlgorithm.SHA_256, content=hex_digest)


def _properties(pairs: Iterable[tuple[str, object]]) -> list[Any]:
    from cyclonedx.model import Property

    return [Property(name=name, value=str(value)) for name, value in pairs if value is not None]


# ---------------------------------------------------------------------------------------------------------------
# The model


def _model_files(root: Path) -> list[Path]:
    """Regular files under ``root``, sorted by relative path; symbolic links are not followed and are skipped."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                logger.warning("Skipping symbolic link %s in model directory %s.", path, root)
            elif path.is_file():
                files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _directory_format(infos: Sequence[FormatInfo], names: Sequence[str]) -> tuple[str, str, bool]:
    """Format, detail and can-execute-code for a model directory, from what its files are."""
    executes = any(info.can_execute_code for info in infos)
    if "saved_model.pb" in names or "saved_model.pbtxt" in names:
        return ModelFormat.TF_SAVEDMODEL.value, "TensorFlow SavedModel directory", executes
    known = sorted({info.format.value for info in infos if info.format is not ModelFormat.UNKNOWN})
    if not known:
        return ModelFormat.UNKNOWN.value, f"directory of {len(infos)} file(s) of no known model format", executes
    return ",".join(known), f"directory of {len(infos)} file(s) holding {', '.join(known)}", executes


def _model_component(
    model: Path, *, name: str | None, version: str | None, task: str | None
) -> tuple[Component, list[Component]]:
    """The model component and, for a directory, the file components nested under it."""
    from cyclonedx.model.component import Component, ComponentType

    if not model.exists():
        raise FileFormatError(f"Model {model} does not exist.", remedy="Check the path to the model file or directory.")
    component_name = name or model.resolve().name or str(model)
    files: list[Component] = []
    if model.is_dir():
        paths = _model_files(model)
        if not paths:
            raise FileFormatError(
                f"Model directory {model} holds no regular files.",
                remedy="Pass the directory the model's files are in, or the model file itself.",
            )
        infos = [identify_format(path) for path in paths]
        relative = [path.relative_to(model).as_posix() for path in paths]
        fmt, detail, executes = _directory_format(infos, relative)
        for path, rel, info in zip(paths, relative, infos, strict=True):
            files.append(
                Component(
                    type=ComponentType.FILE,
                    name=rel,
                    bom_ref=_FILE_REF + rel,
                    hashes=[_sha256(sha256_file(path))],
                    properties=_properties([(_PROP_FILE_FORMAT, info.format.value)]),
                )
            )
        hashes: list[Any] = []
        description = f"Machine-learning model directory {component_name}: {detail}."
    else:
        info = identify_format(model)  # raises FileFormatError for a non-regular or unreadable path
        fmt, detail, executes = info.format.value, info.detail, info.can_execute_code
        hashes = [_sha256(sha256_file(model))]
        description = f"Machine-learning model file {model.name}: {detail}."
    component = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=component_name,
        version=version,
        bom_ref=_MODEL_REF,
        description=description,
        hashes=hashes,
        components=files,
        properties=_properties(
            [
                (_PROP_MODEL_FORMAT, fmt),
                (_PROP_MODEL_FORMAT_DETAIL, detail),
                (_PROP_MODEL_CAN_EXECUTE_CODE, str(executes).lower()),
                (_PROP_MODEL_TASK, task),
            ]
        ),
    )
    return component, files


# ---------------------------------------------------------------------------------------------------------------
# Data manifests


def _get_str(data: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _get_int(data: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    """The manifest as a JSON object, and the SHA-256 of its bytes."""
    remedy = "Pass a data manifest written by `modelshield data manifest`."
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise FileFormatError(f"Data manifest {path} does not exist.", remedy="Check the path.") from exc
    except OSError as exc:
        raise FileFormatError(f"Cannot read data manifest {path}: {exc.strerror}.", remedy=remedy) from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise FileFormatError(f"Data manifest {path} is not valid JSON: {exc}", remedy=remedy) from exc
    if not isinstance(data, dict) or not any(key in data for key in _MANIFEST_KEYS):
        raise FileFormatError(
            f"{path} is JSON but not a data manifest (no 'name', 'source', 'n_rows' or 'merkle_root').", remedy=remedy
        )
    fmt = data.get("format")
    if fmt is not None and fmt != _MANIFEST_FORMAT:
        logger.warning("Data manifest %s declares format %r, not %r; reading it anyway.", path, fmt, _MANIFEST_FORMAT)
    return data, hashlib.sha256(raw).hexdigest()


def _data_component(path: Path, index: int) -> Component:
    from cyclonedx.model.component import Component, ComponentType

    data, manifest_sha256 = _read_manifest(path)
    name = _get_str(data, "name") or path.stem
    source = _get_str(data, "source")
    rows = _get_int(data, "n_rows", "rows")
    description = (
        f"Data set {name!r}" + (f" from {source}" if source else "") + (f", {rows} rows" if rows is not None else "")
    )
    return Component(
        type=ComponentType.DATA,
        name=name,
        bom_ref=f"{_DATA_REF}{index}/{name}",
        description=f"{description}; described by the data manifest {path.name} (the hash is the manifest's).",
        hashes=[_sha256(manifest_sha256)],
        properties=_properties(
            [
                (_PROP_DATA_NAME, name),
                (_PROP_DATA_SOURCE, source),
                (_PROP_DATA_ROWS, rows),
                (_PROP_DATA_MERKLE_ROOT, _get_str(data, "merkle_root")),
                (_PROP_DATA_DIGEST, _get_str(data, "dataset_digest", "digest", "sha256")),
                (_PROP_DATA_CREATED, _get_str(data, "created")),
            ]
        ),
    )


# ---------------------------------------------------------------------------------------------------------------
# The Python environment


def _normalise(name: str) -> str:
    """PEP 503 normalised project name (also what a pypi purl wants: lower case, runs of ``-_.`` as ``-``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions() -> Iterator[tuple[str, str]]:
    """(normalised name, version) of each installed distribution; the first one found wins, as for imports."""
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        try:
            raw_name, version = dist.name, dist.version
        except (TypeError, KeyError, OSError):  # a dist-info directory without readable metadata
            continue
        if not raw_name or not version:
            continue  # broken metadata: nothing to name it by
        name = _normalise(raw_name)
        if name not in seen:
            seen.add(name)
            yield name, version


def _environment_components() -> tuple[Component, list[Component]]:
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    libraries = []
    for name, version in sorted(_distributions()):
        purl = PackageURL(type="pypi", name=name, version=version)
        libraries.append(
            Component(type=ComponentType.LIBRARY, name=name, version=version, purl=purl, bom_ref=purl.to_string())
        )
    environment = Component(
        type=ComponentType.PLATFORM,
        name="python-environment",
        version=platform.python_version(),
        bom_ref=_ENVIRONMENT_REF,
        description=(
            f"The Python {platform.python_version()} ({platform.python_implementation()}) environment this BOM was "
            f"made in, with its {len(libraries)} installed distributions."
        ),
    )
    return environment, libraries


# ---------------------------------------------------------------------------------------------------------------
# Public API


def build_bom(
    model: Path,
    *,
    data_manifests: Sequence[Path] = (),
    name: str | None = None,
    version: str | None = None,
    task: str | None = None,
) -> Bom:
    """A CycloneDX BOM of ``model`` (a file or a directory), its data sets and the running Python environment.

    ``name`` defaults to the model's file or directory name; ``task`` (e.g. ``"classification"``) goes in the model
    card. The model is identified by content only; it is never loaded. Turn the result into JSON with
    :func:`render_bom`.

    Raises :class:`FileFormatError` for a missing or unreadable model, and for a data manifest that is missing or
    not JSON; :class:`MissingExtraError` when cyclonedx-python-lib is not installed.
    """
    _require_cyclonedx()
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType

    model_component, files = _model_component(model, name=name, version=version, task=task)
    datasets = [_data_component(path, index) for index, path in enumerate(data_manifests)]
    environment, libraries = _environment_components()

    bom = Bom()
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="modelshield", version=__version__, bom_ref="modelshield:tool")
    )
    bom.metadata.component = model_component
    bom.components.update([*datasets, environment, *libraries])
    bom.register_dependency(model_component, [*files, *datasets, environment])
    bom.register_dependency(environment, libraries)
    return bom


def render_bom(bom: Bom) -> str:
    """The BOM as CycloneDX 1.6 JSON, with the model card and data entries, validated against the 1.6 schema.

    Raises :class:`ModelShieldError` when the document does not validate (a bug in modelshield), and
    :class:`MissingExtraError` when the JSON-schema validation dependencies are not installed.
    """
    _require_cyclonedx()
    from cyclonedx.exception import MissingOptionalDependencyException
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    document = json.loads(JsonV1Dot6(bom).output_as_string())
    _add_ml_sections(document)
    order = ["$schema", "bomFormat", "specVersion", "serialNumber", "version", "metadata", "components"]
    document = {key: document[key] for key in [*order, *sorted(document)] if key in document}
    text = json.dumps(document, indent=2, ensure_ascii=False)
    try:
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    except MissingOptionalDependencyException as exc:
        raise MissingExtraError(
            f"{_FEATURE} validates its output against the CycloneDX schema, which needs jsonschema: {exc}",
            remedy="pip install 'modelshield[bom]'",
        ) from exc
    if error is not None:
        raise ModelShieldError(f"The CycloneDX 1.6 BOM modelshield produced does not validate: {error.data.message}")
    return text


# ---------------------------------------------------------------------------------------------------------------
# modelCard and componentData, written from the modelshield:* properties


def _walk(components: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for component in components:
        yield component
        yield from _walk(component.get("components", []))


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p.get("value", "") for p in component.get("properties", []) if "name" in p}


def _add_ml_sections(document: dict[str, Any]) -> None:
    metadata_component = document.get("metadata", {}).get("component")
    components = list(_walk([*([metadata_component] if metadata_component else []), *document.get("components", [])]))
    data_refs = {c["bom-ref"] for c in components if c.get("type") == "data" and "bom-ref" in c}
    depends = {d["ref"]: d.get("dependsOn", []) for d in document.get("dependencies", [])}
    for component in components:
        if component.get("type") == "machine-learning-model":
            component["modelCard"] = _model_card(
                component, [r for r in depends.get(component.get("bom-ref"), []) if r in data_refs]
            )
        elif component.get("type") == "data":
            component["data"] = [_component_data(component)]


def _model_card(component: dict[str, Any], dataset_refs: Sequence[str]) -> dict[str, Any]:
    props = _props(component)
    parameters: dict[str, Any] = {}
    if props.get(_PROP_MODEL_TASK):
        parameters["task"] = props[_PROP_MODEL_TASK]
    if dataset_refs:
        parameters["datasets"] = [{"ref": ref} for ref in dataset_refs]
    fmt = props.get(_PROP_MODEL_FORMAT, ModelFormat.UNKNOWN.value)
    detail = props.get(_PROP_MODEL_FORMAT_DETAIL, "no detail")
    limitations = [
        f"Stored as {fmt} ({detail}), identified by content; modelshield did not load or evaluate the model."
    ]
    if props.get(_PROP_MODEL_CAN_EXECUTE_CODE) == "true":
        limitations.append(
            "Loading this model with its usual loader can run code stored in the file; scan it with "
            "`modelshield scan` and load it only from a trusted, verified source."
        )
    card: dict[str, Any] = {"bom-ref": f"{component['bom-ref']}/model-card"} if "bom-ref" in component else {}
    if parameters:
        card["modelParameters"] = parameters
    card["considerations"] = {"technicalLimitations": limitations}
    card["properties"] = [
        {"name": key, "value": props[key]}
        for key in (_PROP_MODEL_FORMAT, _PROP_MODEL_FORMAT_DETAIL, _PROP_MODEL_CAN_EXECUTE_CODE)
        if key in props
    ]
    return card


def _component_data(component: dict[str, Any]) -> dict[str, Any]:
    props = _props(component)
    entry: dict[str, Any] = {"type": "dataset", "name": props.get(_PROP_DATA_NAME, component.get("name", ""))}
    source = props.get(_PROP_DATA_SOURCE)
    contents: dict[str, Any] = {}
    if source and not re.search(r"\s", source) and urlsplit(source).scheme in _URL_SCHEMES:
        contents["url"] = source
    contents["properties"] = [
        {"name": key, "value": props[key]}
        for key in (_PROP_DATA_SOURCE, _PROP_DATA_ROWS, _PROP_DATA_MERKLE_ROOT, _PROP_DATA_DIGEST, _PROP_DATA_CREATED)
        if key in props
    ]
    if not contents["properties"]:
        del contents["properties"]
    if contents:
        entry["contents"] = contents
    parts = [f"source: {source}"] if source else []
    if _PROP_DATA_ROWS in props:
        parts.append(f"{props[_PROP_DATA_ROWS]} rows")
    if _PROP_DATA_MERKLE_ROOT in props:
        parts.append(f"Merkle root of the records {props[_PROP_DATA_MERKLE_ROOT]}")
    if parts:
        entry["description"] = "; ".join(parts) + "."
    return entry
