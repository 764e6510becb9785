"""Sign and verify model files and directories, in the OpenSSF Model Signing (OMS) format.

    >>> from modelshield.supply_chain.signing import sign_model, verify_model
    >>> sign_model(Path("model/"), private_key, Path("model.sig"))  # doctest: +SKIP
    >>> verified = verify_model(Path("model/"), Path("model.sig"), public_key)  # doctest: +SKIP
    >>> verified.files  # doctest: +SKIP
    ('config.json', 'weights/w0.bin')

Verification fails closed: :func:`verify_model` returns a :class:`VerifiedModel` only when every signature holds
and every file matches; on any failure it raises :class:`~modelshield.errors.VerificationError`, whose ``changed``,
``added`` and ``removed`` fields name the files that differ. There is no flag to forget to check.

What is signed is a manifest: the SHA-256 of every file (or of every fixed-size shard of every file) under the
model path, relative POSIX names, sorted. Files are hashed in parallel threads (hashlib releases the GIL), each
streamed through one reusable buffer, so memory stays flat whatever the model size.

The signature file is a Sigstore bundle (media type ``application/vnd.dev.sigstore.bundle.v0.3+json``) holding a
DSSE envelope over an in-toto statement whose predicate (``https://model_signing/signature/v1.0``) lists the
manifest; this is the format of the OpenSSF ``model_signing`` tool, which verifies modelshield's ECDSA P-256
signatures as its own (``model_signing verify key``). Extensions over the same envelope and manifest:

- ``ed25519``: the one signature is Ed25519 over the DSSE pre-authentication encoding (PAE); its ``keyid`` is
  ``"ed25519"``. Only modelshield verifies it (OMS's key verifier accepts elliptic-curve ECDSA keys only).
- ``hybrid``: the first signature is ECDSA P-256 exactly as OMS writes it, the second ML-DSA-65 (FIPS 204) over
  the same PAE, with ``keyid`` ``"ml-dsa-65:<SHA-256 of its public key>"``. modelshield requires both; the OMS tool,
  which reads the first, still verifies the classical half.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa

from modelshield._internal.atomic import write_text_atomic
from modelshield.errors import FileFormatError, InvalidParameterError, VerificationError
from modelshield.supply_chain.keys import KeyAlgorithm, PrivateKeySet, PublicKeySet

__all__ = [
    "DEFAULT_IGNORED",
    "Manifest",
    "VerifiedModel",
    "check_signature_matches",
    "hash_model",
    "iter_resources",
    "read_signature",
    "sign_manifest",
    "sign_message",
    "sign_model",
    "verify_message",
    "verify_model",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
DEFAULT_IGNORED = (".git", ".gitattributes", ".github", ".gitignore")  # what the OMS tool leaves out by default
_BUFFER = 1 << 20
_SMALL = 1 << 20  # files under this size are hashed in batches of _BATCH
_BATCH = 64
_MAX_SIGNATURE_FILE = 64 << 20
_MLDSA_KEYID = "ml-dsa-65"


@dataclass(frozen=True)
class Manifest:
    """What a signature covers: a digest per file (``name``) or per shard (``name:start:end``)."""

    model_name: str
    digests: dict[str, str]  # resource name -> SHA-256 hex
    serialization: dict[str, Any] = field(default_factory=dict)

    @property
    def root_digest(self) -> str:
        """SHA-256 over the resource digests in name order (the statement's subject digest)."""
        h = hashlib.sha256()
        for name in sorted(self.digests):
            h.update(bytes.fromhex(self.digests[name]))
        return h.hexdigest()

    @property
    def digest_name(self) -> str:
        """How OMS names the digest of each resource: ``sha256``, or ``sha256-sharded-N`` for shards of N bytes."""
        if self.serialization.get("method") == "shards":
            return f"sha256-sharded-{self.serialization.get('shard_size')}"
        return "sha256"

    def statement(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.model_name, "digest": {"sha256": self.root_digest}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "serialization": self.serialization,
                "resources": [
                    {"name": name, "algorithm": self.digest_name, "digest": self.digests[name]}
                    for name in sorted(self.digests)
                ],
            },
        }


@dataclass(frozen=True)
class VerifiedModel:
    """A model that verified: every signature held for the key, and every file matches the signed manifest.

    Only :func:`verify_model` returns one, and only on success; a failure raises
    :class:`~modelshield.errors.VerificationError` instead.
    """

    path: Path
    algorithm: KeyAlgorithm
    key_fingerprint: str  # of the public key the signature verified with (PublicKeySet.fingerprint)
    manifest: Manifest  # what was signed, and matched: a SHA-256 digest per file (or per shard)

    @property
    def files(self) -> tuple[str, ...]:
        """The files the signature covers, as relative POSIX names (a single file by its own name)."""
        sharded = self.manifest.serialization.get("method") == "shards"
        names = {_file_of(n, sharded) for n in self.manifest.digests}
        return tuple(sorted(self.path.name if n == "." else n for n in names))

    def summary(self) -> str:
        """One line for people."""
        return (
            f"verified ({self.algorithm.value}, key {self.key_fingerprint[:16]}): every one of the "
            f"{len(self.files)} signed file(s) matches the signed manifest"
        )


def _listed(changed: Sequence[str], added: Sequence[str], removed: Sequence[str]) -> str:
    """``changed: a, b; added: c; removed: d``, at most ten names per kind."""
    parts = []
    for label, names in (("changed", changed), ("added", added), ("removed", removed)):
        if names:
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts)


# -- hashing ------------------------------------------------------------------------------------------------------


def _ignored(relative: str, ignore: frozenset[str]) -> bool:
    """Whether ``relative`` (a POSIX path) is an ignored path or lies under one."""
    if relative in ignore:
        return True
    parts = relative.split("/")
    return any("/".join(parts[:i]) in ignore for i in range(1, len(parts)))


def _files(root: Path, ignore: Sequence[str]) -> list[tuple[str, Path]]:
    """(name, path) for every regular file under ``root``; a symbolic link anywhere is refused."""
    if root.is_symlink():
        raise FileFormatError(f"{root} is a symbolic link.", remedy="Sign the file or directory it points to.")
    if root.is_file():
        return [(".", root)]
    if not root.is_dir():
        raise FileFormatError(f"{root} does not exist.", remedy="Check the model path.")
    ignored = frozenset(str(PurePosixPath(i)) for i in ignore)
    found: list[tuple[str, Path]] = []
    pending = [("", str(root))]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                relative = prefix + entry.name
                if _ignored(relative, ignored):
                    continue
                if entry.is_symlink():
                    raise FileFormatError(
                        f"{entry.path} is a symbolic link: a signature over it could be redirected to another file.",
                        remedy="Replace the link with the file, or add it to the ignore list.",
                    )
                if entry.is_dir(follow_symlinks=False):
                    pending.append((relative + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found.append((relative, Path(entry.path)))
                else:
                    raise FileFormatError(f"{entry.path} is not a regular file.", remedy="Remove it or ignore it.")
    return sorted(found)


def _hash_range(path: Path, start: int, end: int) -> str:
    h = hashlib.sha256()
    buffer = bytearray(min(_BUFFER, max(end - start, 1)))
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            n = fh.readinto(view[: min(len(buffer), left)])
            if not n:
                raise FileFormatError(f"{path} changed size while it was being hashed.", remedy="Sign it again.")
            h.update(view[:n])
            left -= n
    return h.hexdigest()


def hash_model(
    path: Path,
    *,
    ignore: Sequence[str] = DEFAULT_IGNORED,
    shard_size: int | None = None,
    workers: int | None = None,
) -> Manifest:
    """The manifest of ``path`` (a file or a directory): whole files, or shards of ``shard_size`` bytes."""
    if shard_size is not None and shard_size < 1:
        raise InvalidParameterError(f"Shard size must be positive, not {shard_size}.")
    ignore = tuple(ignore)
    tasks: list[tuple[str, Path, int, int]] = []
    for name, file in _files(path, ignore):
        size = file.stat().st_size
        if shard_size is None:
            tasks.append((name, file, 0, size))
        else:  # as the OMS tool shards: [0, s), [s, 2s), ...; an empty file has no shard
            tasks += [
                (f"{name}:{a}:{min(a + shard_size, size)}", file, a, min(a + shard_size, size))
                for a in range(0, size, shard_size)
            ]
    # Largest first, so that one big file does not start last and leave the other workers idle; small files go in
    # batches, so that thread hand-offs do not cost more than the hashing.
    order = sorted(tasks, key=lambda t: t[3] - t[2], reverse=True)
    batches: list[list[tuple[str, Path, int, int]]] = []
    for task in order:
        if (
            batches
            and task[3] - task[2] < _SMALL
            and len(batches[-1]) < _BATCH
            and batches[-1][0][3] - batches[-1][0][2] < _SMALL
        ):
            batches[-1].append(task)
        else:
            batches.append([task])

    def run(batch: list[tuple[str, Path, int, int]]) -> list[tuple[str, str]]:
        return [(name, _hash_range(file, start, end)) for name, file, start, end in batch]

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        digests = dict(pair for done in pool.map(run, batches) for pair in done)
    serialization: dict[str, Any] = {"method": "files" if shard_size is None else "shards", "hash_type": "sha256"}
    if shard_size is not None:
        serialization["shard_size"] = shard_size
    serialization["allow_symlinks"] = False
    serialization["ignore_paths"] = list(ignore)
    return Manifest(model_name=path.resolve().name, digests=digests, serialization=serialization)


# -- signing ------------------------------------------------------------------------------------------------------


def _pae(payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of an in-toto payload."""
    return b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)


def _pem_hint(key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> str:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _mldsa_keyid(key: mldsa.MLDSA65PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"{_MLDSA_KEYID}:{hashlib.sha256(der).hexdigest()}"


def sign_message(message: bytes, key: PrivateKeySet) -> list[dict[str, str]]:
    """The signature entries (``{"sig": base64, "keyid": ...}``) over ``message``, as a DSSE envelope holds them.

    One entry for an ECDSA P-256 key (``keyid`` ``""``, as OMS writes it) or an Ed25519 key (``"ed25519"``); two for
    a hybrid key, the classical one first and then ML-DSA-65 (``"ml-dsa-65:<SHA-256 of its public key>"``).
    :func:`verify_message` checks them.
    """
    algorithm = key.algorithm
    if not algorithm.signs:
        raise InvalidParameterError(f"A {algorithm.value} key encrypts; it cannot sign.", remedy="Use a signing key.")
    signatures: list[dict[str, str]] = []
    first = key.keys[0]
    if isinstance(first, ec.EllipticCurvePrivateKey):
        signatures.append(
            {"sig": base64.b64encode(first.sign(message, ec.ECDSA(hashes.SHA256()))).decode(), "keyid": ""}
        )
    elif isinstance(first, ed25519.Ed25519PrivateKey):
        signatures.append({"sig": base64.b64encode(first.sign(message)).decode(), "keyid": "ed25519"})
    else:  # pragma: no cover - the algorithm check above rules it out
        raise InvalidParameterError(f"Unexpected signing key {type(first).__name__}.")
    if algorithm is KeyAlgorithm.HYBRID:
        pq = key.keys[1]
        assert isinstance(pq, mldsa.MLDSA65PrivateKey)  # noqa: S101 - guaranteed by the HYBRID layout
        signatures.append({"sig": base64.b64encode(pq.sign(message)).decode(), "keyid": _mldsa_keyid(pq.public_key())})
    return signatures


def sign_manifest(manifest: Manifest, key: PrivateKeySet) -> dict[str, Any]:
    """The Sigstore bundle (as JSON data) signing ``manifest`` with ``key``."""
    payload = json.dumps(manifest.statement(), indent=2, sort_keys=True).encode()
    signatures = sign_message(_pae(payload), key)
    first = key.keys[0]
    assert isinstance(first, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)  # noqa: S101 - sign_message checked
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": _pem_hint(first.public_key())}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": signatures,
        },
    }


def sign_model(
    path: Path,
    key: PrivateKeySet,
    signature: Path,
    *,
    ignore: Sequence[str] = DEFAULT_IGNORED,
    shard_size: int | None = None,
    overwrite: bool = True,
) -> Manifest:
    """Hash ``path``, sign its manifest with ``key`` and write the bundle to ``signature`` (atomically).

    A signature file inside the model directory is left out of the manifest (and named in its ignore list).
    """
    if signature.exists() and not overwrite:
        raise FileFormatError(f"{signature} already exists.", remedy="Pass another --output, or remove it.")
    ignore = list(ignore)
    if path.is_dir() and signature.resolve().is_relative_to(path.resolve()):
        ignore.append(signature.resolve().relative_to(path.resolve()).as_posix())
    manifest = hash_model(path, ignore=ignore, shard_size=shard_size)
    write_text_atomic(signature, json.dumps(sign_manifest(manifest, key), indent=2) + "\n")
    return manifest


# -- verification -------------------------------------------------------------------------------------------------


def read_signature(path: Path) -> dict[str, Any]:
    """The bundle in ``path``, checked for shape (not yet for validity)."""
    try:
        if path.stat().st_size > _MAX_SIGNATURE_FILE:
            raise FileFormatError(f"{path} is too large to be a signature.")
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileFormatError(f"Signature file {path} does not exist.", remedy="Check the path.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(f"{path} is not a signature bundle (not JSON).", remedy="Pass the .sig file.") from exc
    envelope = bundle.get("dsseEnvelope") if isinstance(bundle, dict) else None
    if (
        not isinstance(envelope, dict)
        or bundle.get("mediaType") != BUNDLE_MEDIA_TYPE
        or envelope.get("payloadType") != PAYLOAD_TYPE
        or not isinstance(envelope.get("payload"), str)
        or not isinstance(envelope.get("signatures"), list)
        or not envelope["signatures"]
        or not all(isinstance(s, dict) and isinstance(s.get("sig"), str) for s in envelope["signatures"])
    ):
        raise FileFormatError(
            f"{path} is not a model signature bundle (media type {BUNDLE_MEDIA_TYPE}, DSSE in-toto envelope).",
            remedy="Sign the model with `modelshield sign` or `model_signing sign key`.",
        )
    return dict(bundle)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise VerificationError("The signature bundle holds invalid base64.") from exc


def verify_message(message: bytes, signatures: Sequence[Mapping[str, str]], key: PublicKeySet) -> None:
    """Return when every signature ``key``'s algorithm requires holds over ``message``; else VerificationError.

    ``signatures`` are entries as :func:`sign_message` makes them. The first must be the classical signature; a
    hybrid key also needs the ML-DSA-65 entry whose ``keyid`` names its public key. Fails closed: a missing,
    malformed or wrong signature, or a key that cannot verify, all raise.
    """
    first = key.keys[0]
    try:
        if not signatures or not isinstance(signatures[0], Mapping) or not isinstance(signatures[0].get("sig"), str):
            raise VerificationError("There is no signature to verify.")
        if isinstance(first, ec.EllipticCurvePublicKey):
            first.verify(_b64(signatures[0]["sig"]), message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(first, ed25519.Ed25519PublicKey):
            first.verify(_b64(signatures[0]["sig"]), message)
        else:
            raise VerificationError(
                f"A {key.algorithm.value} key cannot verify signatures.", remedy="Pass a signing public key."
            )
    except InvalidSignature as exc:
        raise VerificationError(
            "The signature does not hold for this public key (wrong key, or the bundle was altered)."
        ) from exc
    if key.algorithm is KeyAlgorithm.HYBRID:
        pq = key.keys[1]
        assert isinstance(pq, mldsa.MLDSA65PublicKey)  # noqa: S101 - guaranteed by the HYBRID layout
        keyid = _mldsa_keyid(pq)
        entries = [s for s in signatures[1:] if isinstance(s, Mapping) and s.get("keyid") == keyid]
        if not entries or not isinstance(entries[0].get("sig"), str):
            raise VerificationError(
                "The bundle has no ML-DSA-65 signature for this key: the post-quantum half is missing."
            )
        try:
            pq.verify(_b64(entries[0]["sig"]), message)
        except InvalidSignature as exc:
            raise VerificationError("The ML-DSA-65 signature does not hold (the post-quantum half).") from exc


def _check_signatures(envelope: dict[str, Any], key: PublicKeySet) -> bytes:
    """The payload, once every signature the key's algorithm requires holds; else VerificationError."""
    payload = _b64(envelope["payload"])
    verify_message(_pae(payload), envelope["signatures"], key)
    return payload


def _signed_manifest(payload: bytes) -> Manifest:
    try:
        statement = json.loads(payload)
        subject = statement["subject"]
        predicate = statement["predicate"]
        if statement.get("predicateType") != PREDICATE_TYPE or len(subject) != 1:
            raise VerificationError(f"The signed statement is not a {PREDICATE_TYPE} statement about one model.")
        digests = {}
        for r in predicate["resources"]:
            if not str(r.get("algorithm")).startswith("sha256") or not isinstance(r.get("name"), str):
                raise VerificationError("The signed manifest uses an unsupported digest or malformed names.")
            digests[r["name"]] = str(r["digest"])
        manifest = Manifest(str(subject[0]["name"]), digests, dict(predicate["serialization"]))
        expected = subject[0]["digest"]["sha256"]
        root = manifest.root_digest  # ValueError for a digest that is not hex
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VerificationError("The signed statement is malformed.") from exc
    if root != expected:
        raise VerificationError("The signed manifest is inconsistent: its resources do not hash to its subject digest.")
    return manifest


_TAMPERED_REMEDY = "Do not load it: obtain the model and its signature again from a trusted source, and verify again."
_KEY_REMEDY = (
    "Check that the public key is the signer's. If it is, do not load the model: obtain it and its signature again "
    "from a trusted source."
)


def verify_model(path: Path, signature: Path, key: PublicKeySet) -> VerifiedModel:
    """Check ``signature`` with ``key``, then re-hash ``path`` as the signed manifest describes and compare.

    Fails closed: returns a :class:`VerifiedModel` only when every signature the key's algorithm requires holds and
    every file matches. Raises :class:`VerificationError` on any failure (a signature that does not hold, a wrong
    key, a malformed or unsupported manifest, files changed, added or removed: named in its fields and message).
    Raises :class:`FileFormatError` only for unusable input (a missing model path, a file that is not a bundle).
    """
    if not (path.exists() or path.is_symlink()):
        raise FileFormatError(f"{path} does not exist.", remedy="Check the model path.")
    envelope = read_signature(signature)["dsseEnvelope"]
    try:
        signed = _signed_manifest(_check_signatures(envelope, key))
    except VerificationError as exc:
        raise VerificationError(
            f"Signature {signature.name} does not verify model {path.name}: {exc.message}",
            remedy=_KEY_REMEDY,
            subject=str(path),
        ) from exc
    _check_files(path, signature, signed)
    return VerifiedModel(path=path, algorithm=key.algorithm, key_fingerprint=key.fingerprint, manifest=signed)


def check_signature_matches(path: Path, signature: Path) -> Manifest:
    """Check that the manifest in ``signature`` describes the files of ``path``, without checking who signed it.

    This is what can be known before the signer's key is at hand (``registry add`` attaches a signature then): it
    refuses a signature of another model or of another version of it, raising :class:`VerificationError` naming
    the files that differ. It does not make the model trustworthy: only :func:`verify_model` with the signer's key
    does.
    """
    if not (path.exists() or path.is_symlink()):
        raise FileFormatError(f"{path} does not exist.", remedy="Check the model path.")
    envelope = read_signature(signature)["dsseEnvelope"]
    try:
        signed = _signed_manifest(_b64(envelope["payload"]))
    except VerificationError as exc:
        raise VerificationError(
            f"Signature {signature.name} cannot be read against model {path.name}: {exc.message}",
            remedy="Pass the signature that `modelshield sign` wrote for this model.",
            subject=str(path),
        ) from exc
    _check_files(path, signature, signed)
    return signed


def _check_files(path: Path, signature: Path, signed: Manifest) -> None:
    """Re-hash ``path`` as the signed manifest describes it and compare; VerificationError on any difference."""
    try:
        method = signed.serialization.get("method")
        shard = signed.serialization.get("shard_size")
        if method not in {"files", "shards"} or (method == "shards" and not (isinstance(shard, int) and shard > 0)):
            raise VerificationError(f"The signed manifest uses an unsupported serialization {method!r}.")
        if signed.serialization.get("hash_type", "sha256") != "sha256" or signed.serialization.get("allow_symlinks"):
            raise VerificationError("The signed manifest allows symbolic links or uses a digest other than SHA-256.")
        ignore = signed.serialization.get("ignore_paths", [])
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise VerificationError("The signed manifest's ignore_paths is not a list of paths.")
    except VerificationError as exc:
        raise VerificationError(
            f"Signature {signature.name} does not verify model {path.name}: {exc.message}",
            remedy=_KEY_REMEDY,
            subject=str(path),
        ) from exc
    if path.is_dir() and signature.resolve().is_relative_to(path.resolve()):
        ignore.append(signature.resolve().relative_to(path.resolve()).as_posix())
    try:
        actual = hash_model(path, ignore=ignore, shard_size=shard if method == "shards" else None)
    except FileFormatError as exc:  # the model exists, but cannot be hashed as signed (a link planted in it...)
        raise VerificationError(
            f"Model {path.name} cannot be checked against signature {signature.name}: {exc.message}",
            remedy=_TAMPERED_REMEDY,
            subject=str(path),
        ) from exc
    changed, added, removed = _compare(signed, actual)
    if path.is_file():  # a single file's resource is named "." (as OMS names it): show its name instead
        changed, added, removed = (
            tuple(path.name if n == "." else n for n in names) for names in (changed, added, removed)
        )
    if changed or added or removed:
        raise VerificationError(
            f"Model {path.name} does not match signature {signature.name}: {_listed(changed, added, removed)}.",
            remedy=_TAMPERED_REMEDY,
            subject=str(path),
            changed=changed,
            added=added,
            removed=removed,
        )


def _file_of(name: str, sharded: bool) -> str:
    return name.rsplit(":", 2)[0] if sharded else name


def _compare(signed: Manifest, actual: Manifest) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The files (changed, added, removed), each sorted."""
    sharded = signed.serialization.get("method") == "shards"
    changed = {
        _file_of(n, sharded)
        for n in signed.digests.keys() & actual.digests.keys()
        if signed.digests[n] != actual.digests[n]
    }
    signed_files = {_file_of(n, sharded) for n in signed.digests}
    actual_files = {_file_of(n, sharded) for n in actual.digests}
    # A file whose size changed has shards on one side only: it is changed, not added and removed.
    changed |= (
        {_file_of(n, sharded) for n in signed.digests.keys() ^ actual.digests.keys()} & signed_files & actual_files
    )
    return (
        tuple(sorted(changed)),
        tuple(sorted(actual_files - signed_files)),
        tuple(sorted(signed_files - actual_files)),
    )


def iter_resources(manifest: Manifest) -> Iterator[tuple[str, str]]:
    """(name, digest) pairs in name order."""
    for name in sorted(manifest.digests):
        yield name, manifest.digests[name]
