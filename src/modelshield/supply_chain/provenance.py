"""Data provenance and lineage: manifests that pin a dataset's records, and diffs between them.

    >>> from modelshield.data import load_breast_cancer
    >>> from modelshield.supply_chain.provenance import build_manifest, diff_manifests
    >>> ds = load_breast_cancer()
    >>> manifest = build_manifest(ds, source="scikit-learn bundled breast_cancer")
    >>> manifest.n_rows, len(manifest.merkle_root)
    (569, 64)
    >>> tampered = ds.subset(slice(0, 568))  # drop the last record
    >>> diff_manifests(manifest, build_manifest(tampered, source="edited")).removed_rows
    (568,)

A :class:`DataManifest` records a dataset's name, source, creation time (UTC), schema, label names, row count, its
content digest (``Dataset.digest``), one SHA-256 digest per record and the Merkle root over them, and optionally the
manifest it was derived from (``parent``: that manifest's digest and path) with a description of the ``transform``.

Record digests and the Merkle tree follow RFC 6962 (Certificate Transparency), section 2.1: a record's leaf hash is
``SHA-256(0x00 || row as float32 little-endian || label as int64 little-endian)``, an inner node's
``SHA-256(0x01 || left || right)``; with ``n`` leaves the left subtree holds the largest power of two below ``n``;
the root of no records is ``SHA-256("")``. Leaf hashes do not depend on a record's position, so diffs match records
by content as well as by index. A manifest's own :attr:`~DataManifest.digest` is the SHA-256 of its canonical JSON
(sorted keys, no whitespace, UTF-8), which is what a child manifest's ``parent.digest`` pins.

Manifests are plain files: sign one like any other artifact (``modelshield sign data.manifest.json``) and verify
the signature before trusting it; :func:`read_manifest` checks only that a manifest is internally consistent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from modelshield._internal.atomic import write_text_atomic
from modelshield._internal.fields import json_field
from modelshield.data.interface import Dataset, Feature, FeatureKind, Schema
from modelshield.errors import (
    FileFormatError,
    InputError,
    InvalidInputError,
    InvalidParameterError,
    VerificationError,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DataManifest",
    "ManifestDiff",
    "ParentRef",
    "build_manifest",
    "diff_datasets",
    "diff_manifests",
    "merkle_root",
    "read_manifest",
    "record_digests",
    "verify_dataset",
    "verify_parent",
    "write_manifest",
]

logger = logging.getLogger(__name__)

FORMAT = "modelshield.data-manifest"
FORMAT_VERSION = 1

_LEAF, _NODE = b"\x00", b"\x01"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]*")
_REQUIRED = (
    "format",
    "format_version",
    "name",
    "source",
    "created",
    "schema",
    "label_names",
    "n_rows",
    "dataset_digest",
    "merkle_root",
    "record_digests",
)
_OPTIONAL = ("parent", "transform")


# --- record digests and the Merkle tree ---------------------------------------------------------------------------


def _leaf_hashes(dataset: Dataset) -> list[bytes]:
    """One RFC 6962 leaf hash per record, from a single contiguous buffer (one hashlib call per row)."""
    n = len(dataset)
    flat = dataset.x.reshape(n, dataset.n_features).astype("<f4", copy=False)  # not flat(): it fails when n == 0
    width = 1 + 4 * flat.shape[1] + 8
    buf = np.zeros((n, width), dtype=np.uint8)  # column 0 stays 0x00, the leaf prefix
    buf[:, 1 : width - 8] = np.ascontiguousarray(flat).view(np.uint8).reshape(n, width - 9)
    buf[:, width - 8 :] = dataset.y.astype("<i8", copy=False).view(np.uint8).reshape(n, 8)
    data = memoryview(buf.tobytes())
    sha256 = hashlib.sha256
    return [sha256(data[k : k + width]).digest() for k in range(0, n * width, width)]


def _root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash; pairing level by level and carrying an odd last node up gives the same tree."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    sha256 = hashlib.sha256
    while len(level) > 1:
        nxt = [sha256(_NODE + left + right).digest() for left, right in zip(level[0::2], level[1::2], strict=False)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def record_digests(dataset: Dataset) -> tuple[str, ...]:
    """The SHA-256 leaf hash (hex) of every record of ``dataset``, in order; see the module docstring."""
    return tuple(h.hex() for h in _leaf_hashes(dataset))


def merkle_root(digests: Sequence[str]) -> str:
    """The RFC 6962 Merkle root (hex) over record digests given as hex strings."""
    return _root([bytes.fromhex(d) for d in digests]).hex()


# --- the manifest -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParentRef:
    """The manifest a dataset was derived from: that manifest's own digest, and its path as given."""

    digest: str
    path: str


@dataclass(frozen=True)
class DataManifest:
    """What a dataset held when it was recorded, and where it came from. Build with :func:`build_manifest`."""

    name: str
    source: str
    created: str  # UTC, ISO 8601 ("2024-06-01T12:00:00Z")
    schema: Schema
    label_names: tuple[str, ...]
    n_rows: int
    dataset_digest: str
    merkle_root: str
    record_digests: tuple[str, ...]
    parent: ParentRef | None = None
    transform: str | None = None
    format_version: int = FORMAT_VERSION

    def __repr__(self) -> str:
        return (
            f"DataManifest(name={self.name!r}, n_rows={self.n_rows}, merkle_root={self.merkle_root[:12]}, "
            f"parent={self.parent.digest[:12] if self.parent else None})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "name": self.name,
            "source": self.source,
            "created": self.created,
            "schema": {
                "features": [
                    {
                        "name": f.name,
                        "kind": f.kind.value,
                        "low": f.low,
                        "high": f.high,
                        "immutable": f.immutable,
                        "sensitive": f.sensitive,
                        "categories": list(f.categories),
                    }
                    for f in self.schema.features
                ],
                "input_shape": list(self.schema.input_shape),
                "label": self.schema.label,
            },
            "label_names": list(self.label_names),
            "n_rows": self.n_rows,
            "dataset_digest": self.dataset_digest,
            "merkle_root": self.merkle_root,
            "record_digests": list(self.record_digests),
            "parent": None if self.parent is None else {"digest": self.parent.digest, "path": self.parent.path},
            "transform": self.transform,
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """JSON with sorted keys; canonical (no whitespace) unless ``indent`` is given."""
        separators = (",", ":") if indent is None else (",", ": ")
        try:
            return json.dumps(
                self.to_dict(),
                sort_keys=True,
                separators=separators,
                indent=indent,
                ensure_ascii=False,
                allow_nan=False,
            )
        except ValueError as exc:
            raise InvalidInputError(
                f"Manifest {self.name!r} holds a value JSON cannot represent: {exc}.",
                remedy="Give every schema feature finite bounds (or none).",
            ) from exc

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON: what a child manifest's ``parent.digest`` pins."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(cls, data: object, *, where: str = "The manifest") -> DataManifest:
        """Validate and read a dict from :meth:`to_dict`; raises :class:`FileFormatError` or
        :class:`VerificationError` (record digests that do not hash to the Merkle root)."""
        return _parse(data, where)

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "The manifest") -> DataManifest:
        """Read :meth:`to_json`'s output, with the checks of :meth:`from_dict`."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise FileFormatError(
                f"{where} is not valid JSON: {' '.join(str(exc).split())}.",
                remedy="Regenerate it with `modelshield data manifest`; it may be truncated or edited by hand.",
            ) from exc
        return _parse(data, where)


def _bad(where: str, problem: str) -> FileFormatError:
    return FileFormatError(
        f"{where} is not a valid data manifest: {problem}.",
        remedy="Regenerate it with `modelshield data manifest`; do not edit manifests by hand.",
    )


def _get(data: Mapping[str, object], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    return json_field(data, key, kind, lambda problem: _bad(where, problem))


def _parse_schema(raw: object, where: str) -> Schema:
    if not isinstance(raw, dict):
        raise _bad(where, "field 'schema' must be an object")
    try:
        features = tuple(
            Feature(
                name=str(f["name"]),
                kind=FeatureKind(f["kind"]),
                low=None if f.get("low") is None else float(f["low"]),
                high=None if f.get("high") is None else float(f["high"]),
                immutable=bool(f.get("immutable", False)),
                sensitive=bool(f.get("sensitive", False)),
                categories=tuple(str(c) for c in f.get("categories", ())),
            )
            for f in raw["features"]
        )
        return Schema(features=features, input_shape=tuple(raw["input_shape"]), label=str(raw["label"]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(where, f"field 'schema' is malformed ({type(exc).__name__}: {exc})") from exc


def _parse(data: object, where: str) -> DataManifest:
    if not isinstance(data, dict):
        raise _bad(where, f"it holds a JSON {type(data).__name__}, not an object")
    if data.get("format") != FORMAT:
        raise _bad(where, f"its 'format' is {data.get('format')!r}, not {FORMAT!r}")
    version = data.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise FileFormatError(
            f"{where} has manifest format version {version!r}; this modelshield reads version {FORMAT_VERSION}.",
            remedy="Use the modelshield release that wrote it, or regenerate it with `modelshield data manifest`.",
        )
    missing = [k for k in _REQUIRED if k not in data]
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        problems = ([f"missing field(s) {missing}"] if missing else []) + (
            [f"unknown field(s) {unknown}"] if unknown else []
        )
        raise _bad(where, "; ".join(problems))
    n_rows = _get(data, "n_rows", int, where)
    digests = _get(data, "record_digests", list, where)
    if not all(isinstance(d, str) and len(d) == 64 for d in digests) or not _HEX.fullmatch("".join(digests)):
        raise _bad(where, "'record_digests' must be 64-character lower-case hex SHA-256 digests")
    if len(digests) != n_rows:
        raise _bad(where, f"'n_rows' is {n_rows} but it lists {len(digests)} record digests")
    for key in ("dataset_digest", "merkle_root"):
        if not _HEX64.fullmatch(_get(data, key, str, where)):
            raise _bad(where, f"{key!r} must be a 64-character lower-case hex SHA-256 digest")
    created = _get(data, "created", str, where)
    try:
        stamp = datetime.fromisoformat(created)
    except ValueError as exc:
        raise _bad(where, f"'created' is {created!r}, not an ISO 8601 timestamp") from exc
    if stamp.utcoffset() is None or stamp.utcoffset():
        raise _bad(where, f"'created' is {created!r}, not in UTC")
    label_names = _get(data, "label_names", list, where)
    if not all(isinstance(n, str) for n in label_names):
        raise _bad(where, "'label_names' must be a list of strings")
    parent_raw = data.get("parent")
    parent = None
    if parent_raw is not None:
        if not (
            isinstance(parent_raw, dict)
            and set(parent_raw) == {"digest", "path"}
            and isinstance(parent_raw["path"], str)
            and isinstance(parent_raw["digest"], str)
            and _HEX64.fullmatch(parent_raw["digest"])
        ):
            raise _bad(where, "'parent' must be null or an object with a hex 'digest' and a 'path'")
        parent = ParentRef(digest=parent_raw["digest"], path=parent_raw["path"])
    transform = data.get("transform")
    if transform is not None and not isinstance(transform, str):
        raise _bad(where, "'transform' must be null or a string")
    manifest = DataManifest(
        name=_get(data, "name", str, where),
        source=_get(data, "source", str, where),
        created=created,
        schema=_parse_schema(data["schema"], where),
        label_names=tuple(label_names),
        n_rows=n_rows,
        dataset_digest=data["dataset_digest"],
        merkle_root=data["merkle_root"],
        record_digests=tuple(digests),
        parent=parent,
        transform=transform,
        format_version=version,
    )
    root = merkle_root(manifest.record_digests)
    if root != manifest.merkle_root:
        raise VerificationError(
            f"{where} is inconsistent: its record digests hash to the Merkle root {root}, "
            f"but it records {manifest.merkle_root}. It was altered after it was written."
        )
    return manifest


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest(
    dataset: Dataset,
    *,
    source: str,
    parent: str | Path | None = None,
    transform: str | None = None,
    created: datetime | None = None,
) -> DataManifest:
    """Record ``dataset``: schema, digests of every record, their Merkle root, and its lineage.

    ``parent`` is the path of the manifest of the dataset this one was derived from; it is read and checked, and
    its digest recorded with the path as given. ``transform`` says how (it needs ``parent``). ``created``
    (default: now) must be timezone-aware.
    """
    if transform is not None and parent is None:
        raise InvalidParameterError(
            "transform describes how a dataset was derived from its parent, but no parent manifest was given.",
            remedy="Pass parent= as well, or put the description in source.",
            cli_remedy="Pass --parent as well, or put the description in --source.",
        )
    if created is not None and created.utcoffset() is None:
        raise InvalidParameterError("created must be a timezone-aware datetime.", remedy="Use datetime.now(UTC).")
    parent_ref = None
    if parent is not None:
        parent_ref = ParentRef(digest=read_manifest(Path(parent)).digest, path=str(parent))
    leaves = _leaf_hashes(dataset)
    return DataManifest(
        name=dataset.name,
        source=source,
        created=_utc_now() if created is None else created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        schema=dataset.schema,
        label_names=dataset.label_names,
        n_rows=len(dataset),
        dataset_digest=dataset.digest,
        merkle_root=_root(leaves).hex(),
        record_digests=tuple(h.hex() for h in leaves),
        parent=parent_ref,
        transform=transform,
    )


def write_manifest(manifest: DataManifest, path: str | Path, *, overwrite: bool = False) -> None:
    """Write ``manifest`` as indented JSON, atomically; an existing file is replaced only with ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(
            f"{path} already exists; modelshield does not overwrite it unless asked to.",
            remedy="Choose another path, or pass overwrite=True.",
            cli_remedy="Choose another path, or pass --overwrite.",
        )
    write_text_atomic(path, manifest.to_json(indent=1) + "\n")
    logger.info("wrote manifest %s (%d rows, root %s)", path, manifest.n_rows, manifest.merkle_root)


def read_manifest(path: str | Path) -> DataManifest:
    """Read and check a manifest file: :class:`FileFormatError` if it is not one, :class:`VerificationError` if its
    record digests do not hash to its Merkle root."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise FileFormatError(f"Manifest {path} does not exist.", remedy="Check the path.") from exc
    except OSError as exc:
        raise FileFormatError(f"Manifest {path} cannot be read: {exc}.", remedy="Check the path.") from exc
    return DataManifest.from_json(raw, where=f"Manifest {path}")


def verify_parent(manifest: DataManifest, path: str | Path | None = None) -> DataManifest:
    """Read ``manifest``'s parent (from ``path``, default the recorded path) and check its digest; return it.

    Raises :class:`VerificationError` when the parent manifest is not the one recorded.
    """
    if manifest.parent is None:
        raise InvalidParameterError(f"Manifest {manifest.name!r} records no parent.", remedy="Nothing to verify.")
    parent_path = Path(manifest.parent.path if path is None else path)
    parent = read_manifest(parent_path)
    if parent.digest != manifest.parent.digest:
        raise VerificationError(
            f"The parent manifest {parent_path} has digest {parent.digest}, but manifest {manifest.name!r} was "
            f"derived from one with digest {manifest.parent.digest}: the parent changed, or is another file.",
            remedy="Pass the parent manifest the dataset was derived from, or do not trust the recorded lineage.",
            subject=str(parent_path),
        )
    return parent


def verify_dataset(manifest: DataManifest, dataset: Dataset) -> None:
    """Check that ``dataset`` holds exactly the records ``manifest`` recorded, in order, with the same schema.

    Returns nothing; raises :class:`VerificationError` on any difference (see :func:`diff_manifests` for which).
    """
    diff = diff_manifests(manifest, build_manifest(dataset, source=""))
    if not diff.identical:
        raise VerificationError(
            f"Dataset {dataset.name!r} does not match manifest {manifest.name!r}: {diff.summary()}.",
            remedy="Do not train on it: find what changed with `modelshield data diff`, or obtain the data again.",
            subject=dataset.name,
        )


# --- diffs --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestDiff:
    """How dataset B differs from dataset A, record by record.

    Records are matched by content first: each record of B is paired with an unpaired identical record of A (the
    earliest), wherever it sits, so moved and duplicated records are handled. Records left unpaired on both sides at
    the same index are ``changed`` (a record edited in place: a flipped label, a changed value). The rest are
    ``added`` (in B only; indices into B) and ``removed`` (in A only; indices into A). ``reordered`` says whether the
    paired records appear in another relative order. ``schema_changed`` compares the features' names, kinds and
    categories, the input shape and the label name (not the bounds, which follow the data). The ``*_rows`` tuples hold
    at most the first ``limit`` indices.
    """

    rows_a: int
    rows_b: int
    merkle_root_a: str
    merkle_root_b: str
    unchanged: int
    added: int
    removed: int
    changed: int
    added_rows: tuple[int, ...]
    removed_rows: tuple[int, ...]
    changed_rows: tuple[int, ...]
    reordered: bool
    schema_changed: bool
    label_names_changed: bool

    @property
    def same_records(self) -> bool:
        """The same records, as a multiset: nothing added, removed or changed (the order may differ)."""
        return self.added == self.removed == self.changed == 0

    @property
    def identical(self) -> bool:
        """The same records in the same order, with the same schema and label names."""
        return self.same_records and not (self.reordered or self.schema_changed or self.label_names_changed)

    def summary(self) -> str:
        """One line: what differs."""
        if self.identical:
            return f"identical ({self.rows_a} rows)"
        parts = [f"{self.added} added", f"{self.removed} removed", f"{self.changed} changed"]
        if self.reordered:
            parts.append("reordered")
        if self.schema_changed:
            parts.append("schema changed")
        if self.label_names_changed:
            parts.append("label names changed")
        return f"{self.rows_a} -> {self.rows_b} rows: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``identical`` and ``same_records``."""
        return {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()},
            "same_records": self.same_records,
            "identical": self.identical,
        }


def _diff(
    a: Sequence[str], b: Sequence[str], *, roots: tuple[str, str], schema: bool, labels: bool, limit: int
) -> ManifestDiff:
    if limit < 0:
        raise InvalidParameterError(f"limit must be 0 or more, got {limit}.")
    positions: dict[str, deque[int]] = {}
    for i, d in enumerate(a):
        positions.setdefault(d, deque()).append(i)
    paired: list[int] = []  # the A index of each paired record, in B's order
    only_b: list[int] = []
    for j, d in enumerate(b):
        queue = positions.get(d)
        if queue:
            paired.append(queue.popleft())
        else:
            only_b.append(j)
    only_a = sorted(i for queue in positions.values() for i in queue)
    changed = sorted(set(only_a).intersection(only_b))
    in_place = set(changed)
    removed = [i for i in only_a if i not in in_place]
    added = [j for j in only_b if j not in in_place]
    return ManifestDiff(
        rows_a=len(a),
        rows_b=len(b),
        merkle_root_a=roots[0],
        merkle_root_b=roots[1],
        unchanged=len(paired),
        added=len(added),
        removed=len(removed),
        changed=len(changed),
        added_rows=tuple(added[:limit]),
        removed_rows=tuple(removed[:limit]),
        changed_rows=tuple(changed[:limit]),
        reordered=any(x > y for x, y in pairwise(paired)),
        schema_changed=schema,
        label_names_changed=labels,
    )


def _schema_key(schema: Schema) -> tuple[object, ...]:
    """What a schema change means for a diff: features' names, kinds and categories, the shape and the label.

    Bounds are left out: loaders infer them from the data, so they move whenever the extreme records do.
    """
    return (schema.input_shape, schema.label, tuple((f.name, f.kind, f.categories) for f in schema.features))


def diff_manifests(a: DataManifest, b: DataManifest, *, limit: int = 10) -> ManifestDiff:
    """Compare the records of two manifests (A the old, B the new); see :class:`ManifestDiff` for the definitions."""
    return _diff(
        a.record_digests,
        b.record_digests,
        roots=(a.merkle_root, b.merkle_root),
        schema=_schema_key(a.schema) != _schema_key(b.schema),
        labels=a.label_names != b.label_names,
        limit=limit,
    )


def diff_datasets(a: Dataset, b: Dataset, *, limit: int = 10) -> ManifestDiff:
    """:func:`diff_manifests` for two datasets in memory."""
    return diff_manifests(build_manifest(a, source=""), build_manifest(b, source=""), limit=limit)
