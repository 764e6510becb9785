"""A content-addressed blob store: every file is kept once, under the SHA-256 of its bytes.

    >>> from modelshield.registry.store import BlobStore
    >>> store = BlobStore(Path("registry/objects"))  # doctest: +SKIP
    >>> artifact = store.put_model(Path("model/"))  # doctest: +SKIP
    >>> store.materialize(artifact.digest, Path("copy/model"), kind=artifact.kind)  # doctest: +SKIP

Blobs live at ``ROOT/sha256/ab/cdef…``. A blob is written by a streaming copy into a temporary file beside the
blobs (same file system), hashed on the way, flushed to disk, then renamed into place; a blob that is already there
is not rewritten. A model directory is stored as the blobs of its files plus one *tree* blob, the canonical JSON of
the sorted list of ``{"name", "digest", "size"}``; the directory's digest is the tree's. Nothing here loads or
unpickles a model: bytes are copied, never interpreted (except tree blobs, which are JSON).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from modelshield.errors import FileFormatError, VerificationError

__all__ = ["Artifact", "ArtifactKind", "BlobStore", "TreeEntry", "canonical_json"]

_BUFFER = 1 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MAX_TREE = 256 << 20


class ArtifactKind(enum.StrEnum):
    """Whether a stored model is one file or a directory of files."""

    FILE = "file"
    DIRECTORY = "directory"


@dataclass(frozen=True)
class TreeEntry:
    """One file of a stored directory: its relative POSIX name, digest and size."""

    name: str
    digest: str
    size: int


@dataclass(frozen=True)
class Artifact:
    """A model as stored: its digest (of the file, or of the directory's tree blob), kind and total size."""

    digest: str
    kind: ArtifactKind
    size: int
    files: tuple[TreeEntry, ...]


def canonical_json(value: object) -> bytes:
    """The one byte form of ``value`` that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _check_digest(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise FileFormatError(f"{digest!r} is not a SHA-256 digest (64 lower-case hex digits).")
    return digest


def _safe_name(name: object) -> str:
    """``name`` if it is a relative POSIX path that stays inside its root, else FileFormatError."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name or name.startswith("/"):
        raise FileFormatError(f"Unsafe file name {name!r} in a stored tree.", remedy="The tree blob was tampered with.")
    parts = PurePosixPath(name).parts
    if any(p in {"", ".", ".."} for p in name.split("/")) or PurePosixPath(*parts).as_posix() != name:
        raise FileFormatError(f"Unsafe file name {name!r} in a stored tree.", remedy="The tree blob was tampered with.")
    return name


class BlobStore:
    """Blobs under ``root``, addressed by SHA-256. Safe for several processes at once: writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- blobs ------------------------------------------------------------------------------------------------------

    def path_of(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it is there)."""
        _check_digest(digest)
        return self.root / "sha256" / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path_of(digest).is_file()

    def put_stream(self, source: BinaryIO) -> tuple[str, int]:
        """Copy ``source`` into the store; ``(digest, size)``. An existing blob is kept, not rewritten."""
        staging = self.root / "sha256" / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="blob.", suffix=".tmp", dir=staging)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                h = hashlib.sha256()
                while chunk := source.read(_BUFFER):
                    h.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            final = self.path_of(digest)
            if final.is_file():
                os.unlink(tmp)  # dedupe: the same bytes are already there
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
                _fsync_dir(final.parent)
            return digest, size
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def put_file(self, path: Path) -> tuple[str, int]:
        """Copy the regular file ``path`` into the store; ``(digest, size)``. Symbolic links are refused."""
        if path.is_symlink() or not path.is_file():
            raise FileFormatError(f"{path} is not a regular file.", remedy="Pass a regular file (links are refused).")
        with path.open("rb") as fh:
            return self.put_stream(fh)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; its digest."""
        return self.put_stream(io.BytesIO(data))[0]

    def open(self, digest: str) -> BinaryIO:
        """The blob, opened for reading (not verified: use :meth:`read_bytes` or :meth:`verify`)."""
        try:
            return self.path_of(digest).open("rb")
        except FileNotFoundError as exc:
            raise FileFormatError(
                f"Blob {digest} is missing from {self.root}.", remedy="The store was damaged; restore it from backup."
            ) from exc

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """The blob's bytes; with ``verify``, VerificationError unless they hash to ``digest``."""
        with self.open(digest) as fh:
            data = fh.read()
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise VerificationError(
                f"Blob {digest} does not match its digest: the store was tampered with.", subject=digest
            )
        return data

    def verify(self, digest: str) -> None:
        """Check that the blob is there and that its bytes hash to ``digest``; return nothing.

        Fails closed: raises :class:`VerificationError` when the blob is missing or altered, and
        :class:`FileFormatError` only when ``digest`` is not a SHA-256 digest.
        """
        path = self.path_of(digest)
        try:
            with path.open("rb") as fh:
                actual = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as exc:
            raise VerificationError(
                f"Blob {digest} is missing from {self.root} or unreadable ({exc.strerror or exc}).",
                remedy="The store was damaged; restore it from backup.",
                subject=digest,
            ) from exc
        if actual != digest:
            raise VerificationError(
                f"Blob {digest} does not match its digest (it hashes to {actual}): the store was tampered with.",
                remedy="Restore the store from backup, and find out who could write to it.",
                subject=digest,
            )

    # -- models -----------------------------------------------------------------------------------------------------

    def put_model(self, path: Path) -> Artifact:
        """Store a model file, or a directory as its files plus a tree blob. Symbolic links are refused."""
        if path.is_symlink():
            raise FileFormatError(f"{path} is a symbolic link.", remedy="Pass the file or directory it points to.")
        if path.is_file():
            digest, size = self.put_file(path)
            return Artifact(digest, ArtifactKind.FILE, size, (TreeEntry(path.name, digest, size),))
        if not path.is_dir():
            raise FileFormatError(f"{path} does not exist.", remedy="Check the model path.")
        entries = [TreeEntry(name, *self.put_file(file)) for name, file in _walk(path)]
        if not entries:
            raise FileFormatError(f"{path} holds no files.", remedy="Pass a model directory with its files.")
        tree = self.put_bytes(canonical_json([dataclasses.asdict(e) for e in entries]))
        return Artifact(tree, ArtifactKind.DIRECTORY, sum(e.size for e in entries), tuple(entries))

    def read_tree(self, digest: str) -> tuple[TreeEntry, ...]:
        """The entries of tree blob ``digest``, verified and checked for unsafe names."""
        if self.path_of(digest).stat().st_size > _MAX_TREE:
            raise FileFormatError(f"Tree blob {digest} is too large.")
        try:
            raw = json.loads(self.read_bytes(digest))
            entries = tuple(
                TreeEntry(_safe_name(e["name"]), _check_digest(e["digest"]), int(e["size"]))
                for e in raw
                if isinstance(e, dict) and set(e) == {"name", "digest", "size"}
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise FileFormatError(f"Blob {digest} is not a tree.") from exc
        names = [e.name for e in entries]
        if not isinstance(raw, list) or len(entries) != len(raw) or names != sorted(set(names)):
            raise FileFormatError(f"Blob {digest} is not a well-formed tree (entries malformed, unsorted or repeated).")
        return entries

    def materialize(self, digest: str, dest: Path, *, kind: ArtifactKind, verify: bool = True) -> Path:
        """Rebuild the file or directory ``digest`` at ``dest``, which must not exist; ``dest``.

        With ``verify``, every blob is hashed as it is copied and a mismatch raises VerificationError. Nothing
        appears at ``dest`` unless all of it verified: the copy is built in a staging folder beside ``dest`` and
        moved into place at the end (without replacing anything that appeared there meanwhile); on any error the
        staging folder is removed.
        """
        if dest.exists() or dest.is_symlink():
            raise FileFormatError(f"{dest} already exists.", remedy="Choose a path that does not exist.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
        try:
            built = staging / "out"
            if kind is ArtifactKind.FILE:
                self._copy_out(digest, built, verify=verify)
            else:
                self._build_tree(digest, built, verify=verify)
            _move_into_place(built, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def _build_tree(self, digest: str, dest: Path, *, verify: bool) -> None:
        entries = self.read_tree(digest)
        dest.mkdir()
        root = dest.resolve()
        for entry in entries:
            target = root.joinpath(*entry.name.split("/"))
            if not target.parent.resolve().is_relative_to(root):  # a link planted by someone else meanwhile
                raise FileFormatError(f"{entry.name!r} would be written outside {dest}.")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._copy_out(entry.digest, target, verify=verify)

    def _copy_out(self, digest: str, dest: Path, *, verify: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(dest, flags, 0o644)
        except FileExistsError as exc:
            raise FileFormatError(f"{dest} already exists (a tree names it twice).") from exc
        with self.open(digest) as src, os.fdopen(fd, "wb") as out:
            actual = _copy(src, out)
        if verify and actual != digest:
            raise VerificationError(
                f"Blob {digest} does not match its digest (it hashes to {actual}): the store was tampered with.",
                subject=digest,
            )


def _move_into_place(built: Path, dest: Path) -> None:
    """Move the verified ``built`` to ``dest``, refusing (not replacing) anything that appeared there meanwhile."""
    try:
        if built.is_dir():
            if dest.exists() or dest.is_symlink():  # rename() would replace an empty directory
                raise FileExistsError(dest)
            os.rename(built, dest)
        else:
            os.link(built, dest)  # fails if dest exists, unlike rename()
    except FileExistsError as exc:
        raise FileFormatError(f"{dest} appeared while it was being written.", remedy="Export again elsewhere.") from exc


def _copy(src: BinaryIO, out: BinaryIO) -> str:
    """Copy ``src`` to ``out`` and return the SHA-256 of what was copied, in one pass."""
    h = hashlib.sha256()
    while chunk := src.read(_BUFFER):
        h.update(chunk)
        out.write(chunk)
    return h.hexdigest()


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX name, path) of every regular file under ``root``, sorted; links and specials refused."""
    found: list[tuple[str, Path]] = []
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                name = prefix + entry.name
                if entry.is_symlink():
                    raise FileFormatError(
                        f"{entry.path} is a symbolic link.", remedy="Replace the link with the file it points to."
                    )
                if entry.is_dir(follow_symlinks=False):
                    pending.append((name + "/", Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    found.append((name, Path(entry.path)))
                else:
                    raise FileFormatError(f"{entry.path} is not a regular file.", remedy="Remove it.")
    yield from sorted(found)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
