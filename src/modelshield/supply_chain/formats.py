"""Identify a model file's format from its content, never from its name.

    >>> from pathlib import Path
    >>> from modelshield.supply_chain.formats import identify_format
    >>> info = identify_format(Path("model.safetensors"))  # doctest: +SKIP
    >>> info.format, info.can_execute_code  # doctest: +SKIP
    (<ModelFormat.SAFETENSORS: 'safetensors'>, False)

Only headers are read (and, for zip archives, the central directory): identification costs the same for a
kilobyte and for a 10 GB checkpoint. The file is never loaded, unpickled or decompressed here.
"""

from __future__ import annotations

import enum
import json
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelshield.errors import FileFormatError

__all__ = ["EXPECTED_SUFFIXES", "FormatInfo", "ModelFormat", "identify_format", "identify_stream"]

_HEAD = 4096
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


class ModelFormat(enum.StrEnum):
    """File formats that models are stored in."""

    PICKLE = "pickle"
    PYTORCH_ZIP = "pytorch-zip"
    PYTORCH_EXPORT = "pytorch-export"
    TORCHSCRIPT = "torchscript"
    PYTORCH_LEGACY_TAR = "pytorch-legacy-tar"
    SKOPS = "skops"
    NUMPY = "numpy"
    NUMPY_NPZ = "numpy-npz"
    KERAS = "keras"
    HDF5 = "hdf5"
    SAFETENSORS = "safetensors"
    ONNX = "onnx"
    TF_SAVEDMODEL = "tensorflow-savedmodel"
    GGUF = "gguf"
    COMPRESSED = "compressed"
    ZIP = "zip"
    TAR = "tar"
    UNKNOWN = "unknown"


# Formats whose ordinary loaders run code (or unpickle) when the file is loaded.
_EXECUTES = {
    ModelFormat.PICKLE,
    ModelFormat.PYTORCH_ZIP,
    ModelFormat.PYTORCH_EXPORT,
    ModelFormat.TORCHSCRIPT,
    ModelFormat.PYTORCH_LEGACY_TAR,
    ModelFormat.KERAS,
    ModelFormat.HDF5,
    ModelFormat.COMPRESSED,
}

# What a file of each format is usually called; a mismatch is worth a look.
EXPECTED_SUFFIXES: dict[ModelFormat, frozenset[str]] = {
    ModelFormat.PICKLE: frozenset({".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt", ".dat"}),
    ModelFormat.PYTORCH_ZIP: frozenset({".pt", ".pth", ".bin", ".ckpt", ".tar"}),
    ModelFormat.PYTORCH_EXPORT: frozenset({".pt2"}),
    ModelFormat.TORCHSCRIPT: frozenset({".pt", ".pth", ".torchscript", ".ptl"}),
    ModelFormat.PYTORCH_LEGACY_TAR: frozenset({".pt", ".pth", ".tar"}),
    ModelFormat.SKOPS: frozenset({".skops"}),
    ModelFormat.NUMPY: frozenset({".npy"}),
    ModelFormat.NUMPY_NPZ: frozenset({".npz"}),
    ModelFormat.KERAS: frozenset({".keras"}),
    ModelFormat.HDF5: frozenset({".h5", ".hdf5", ".keras"}),
    ModelFormat.SAFETENSORS: frozenset({".safetensors"}),
    ModelFormat.ONNX: frozenset({".onnx"}),
    ModelFormat.TF_SAVEDMODEL: frozenset({".pb"}),
    ModelFormat.GGUF: frozenset({".gguf"}),
    ModelFormat.COMPRESSED: frozenset({".joblib", ".gz", ".xz", ".bz2", ".z", ".lz4", ".zlib", ".pkl"}),
    ModelFormat.ZIP: frozenset({".zip"}),
    ModelFormat.TAR: frozenset({".tar"}),
}


@dataclass(frozen=True)
class FormatInfo:
    """What a file is, by its content, and whether loading it the usual way can run code."""

    format: ModelFormat
    detail: str
    can_execute_code: bool

    def suffix_matches(self, path: Path) -> bool | None:
        """Whether ``path``'s suffix is one this format usually has; None when the format has no usual suffix."""
        expected = EXPECTED_SUFFIXES.get(self.format)
        return None if expected is None else path.suffix.lower() in expected


def _info(fmt: ModelFormat, detail: str) -> FormatInfo:
    return FormatInfo(format=fmt, detail=detail, can_execute_code=fmt in _EXECUTES)


def identify_format(path: Path) -> FormatInfo:
    """The format of the file at ``path``, from its leading bytes (and a zip's or tar's member names).

    Raises :class:`FileFormatError` when the path is missing, not a regular file, or unreadable.
    """
    if not path.exists():
        raise FileFormatError(f"Model file {path} does not exist.", remedy="Check the path.")
    if not path.is_file():
        raise FileFormatError(f"{path} is not a regular file.", remedy="Pass the model file itself.")
    try:
        with path.open("rb") as fh:
            return identify_stream(fh, path.stat().st_size)
    except OSError as exc:
        raise FileFormatError(f"Cannot read {path}: {exc.strerror}.") from exc


def identify_stream(fh: BinaryIO, size: int) -> FormatInfo:
    """The format of the seekable binary stream ``fh`` of ``size`` bytes (read from its start; position kept)."""
    start = fh.tell()
    try:
        fh.seek(0)
        head = fh.read(_HEAD)
        if not head:
            return _info(ModelFormat.UNKNOWN, "empty file")
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return _identify_zip(fh)
        if head.startswith(b"\x93NUMPY"):
            return _identify_npy(head)
        if head.startswith(b"GGUF"):
            return _info(ModelFormat.GGUF, "GGUF container (llama.cpp)")
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            return _info(ModelFormat.HDF5, "HDF5 file (Keras .h5 models may hold Lambda layers with code)")
        if _is_safetensors(head, size):  # before compression: a 93-byte header starts like LZMA
            return _info(ModelFormat.SAFETENSORS, "safetensors (JSON header, raw tensor bytes)")
        compressed = _compression(head)
        if compressed:
            return _info(ModelFormat.COMPRESSED, f"{compressed}-compressed stream (joblib compresses pickles this way)")
        if len(head) > 262 and head[257:262] == b"ustar":
            return _identify_tar(fh)
        if _is_pickle(fh, head, size):
            proto = head[1] if head[0] == 0x80 else 0
            return _info(ModelFormat.PICKLE, f"pickle stream, protocol {proto}")
        if _is_saved_model(head):
            return _info(ModelFormat.TF_SAVEDMODEL, "TensorFlow SavedModel graph (protobuf)")
        if _is_onnx(head):
            return _info(ModelFormat.ONNX, "ONNX ModelProto (protobuf)")
        return _info(ModelFormat.UNKNOWN, "no known model format matches the content")
    finally:
        fh.seek(start)


def _identify_zip(fh: BinaryIO) -> FormatInfo:
    try:
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError, struct.error) as exc:
        return _info(ModelFormat.ZIP, f"zip archive with an unreadable directory ({exc})")
    tails = {n.split("/", 1)[-1] if "/" in n else n for n in names}
    if any(n.endswith("models/model.json") for n in names) or "archive_format" in tails:
        return _info(ModelFormat.PYTORCH_EXPORT, "torch.export archive (.pt2; its loader may unpickle)")
    if "constants.pkl" in tails and any("/code/" in f"/{n}" for n in names):
        return _info(ModelFormat.TORCHSCRIPT, "TorchScript archive (code and pickled constants)")
    if any(n.endswith("data.pkl") for n in names):
        return _info(ModelFormat.PYTORCH_ZIP, "PyTorch zip checkpoint (a pickle plus tensor storages)")
    if "schema.json" in names:
        return _info(ModelFormat.SKOPS, "skops archive (scikit-learn, no pickle)")
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
        return _info(ModelFormat.KERAS, "Keras v3 archive (config may reference Lambda layers or custom code)")
    if names and all(n.endswith(".npy") for n in names):
        return _info(ModelFormat.NUMPY_NPZ, f"NumPy .npz archive of {len(names)} arrays")
    return _info(ModelFormat.ZIP, f"zip archive of {len(names)} members")


def _identify_npy(head: bytes) -> FormatInfo:
    header = head[10:].split(b"\n", 1)[0]
    if b"'|O'" in header or b'"|O"' in header:
        return FormatInfo(ModelFormat.NUMPY, "NumPy array of Python objects (loading it unpickles)", True)
    return _info(ModelFormat.NUMPY, "NumPy array")


def _identify_tar(fh: BinaryIO) -> FormatInfo:
    try:
        fh.seek(0)
        with tarfile.open(fileobj=fh) as tf:
            names = {m.name.rsplit("/", 1)[-1] for m in tf.getmembers()}
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        return _info(ModelFormat.TAR, f"tar archive that cannot be listed ({exc})")
    if {"pickle", "storages", "tensors"} <= names:
        return _info(ModelFormat.PYTORCH_LEGACY_TAR, "legacy PyTorch tar checkpoint (pickles)")
    return _info(ModelFormat.TAR, f"tar archive of {len(names)} members")


def _compression(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if len(head) > 1 and head[0] == 0x78 and head[1] in (0x01, 0x5E, 0x9C, 0xDA):
        return "zlib"
    if len(head) > 13 and head[0] == 0x5D and head[1:3] == b"\x00\x00":  # LZMA "alone" (joblib's lzma)
        return "lzma"
    return None


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n <= min(size - 8, _MAX_SAFETENSORS_HEADER) or head[8:9] != b"{":
        return False
    if n + 8 <= len(head):
        try:
            return isinstance(json.loads(head[8 : 8 + n]), dict)
        except ValueError:
            return False
    return True


_PICKLE_STARTS = frozenset(b"(]}cIFLSVXNaK")


def _is_pickle(fh: BinaryIO, head: bytes, size: int) -> bool:
    if head[0] == 0x80 and len(head) > 1 and 0 <= head[1] <= 5:
        return True
    if head[0] not in _PICKLE_STARTS:
        return False
    # Protocol 0/1 pickles are text-like; they end with the STOP opcode.
    fh.seek(size - 1)
    return fh.read(1) == b"."


def _is_saved_model(head: bytes) -> bool:
    # SavedModel: schema version 1 (field 1), then a MetaGraphDef (field 2) whose tags name the serving graph.
    return head.startswith(b"\x08\x01\x12") and (b"serve" in head or b"tensorflow" in head)


def _is_onnx(head: bytes) -> bool:
    # ModelProto starts with ir_version (field 1, varint): 0x08, a small version, then another field's tag.
    if len(head) < 4 or head[0] != 0x08 or not 1 <= head[1] <= 32:
        return False
    return head[2] in {0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0x4A, 0x52, 0x5A, 0x62, 0x6A, 0x72}
