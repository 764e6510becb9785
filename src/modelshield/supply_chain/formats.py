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
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelshield.errors import FileFormatError

__all__ = [
    "EXPECTED_SUFFIXES",
    "LEGACY_TORCH_MEMBERS",
    "NPY_MAGIC",
    "NPY_MAX_HEADER",
    "FormatInfo",
    "ModelFormat",
    "NpyHeader",
    "NpyHeaderError",
    "ProtoError",
    "ProtoField",
    "compression",
    "identify_format",
    "identify_stream",
    "is_tar_header",
    "proto_fields",
    "read_npy_header",
]

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
        if head.startswith(NPY_MAGIC):
            return _identify_npy(fh, size)
        if head.startswith(b"GGUF"):
            return _info(ModelFormat.GGUF, "GGUF container (llama.cpp)")
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            return _info(ModelFormat.HDF5, "HDF5 file (Keras .h5 models may hold Lambda layers with code)")
        if _is_safetensors(head, size):  # before compression: a 93-byte header starts like LZMA
            return _info(ModelFormat.SAFETENSORS, "safetensors (JSON header, raw tensor bytes)")
        if is_tar_header(head):  # torch.load tries tar before anything else
            return _identify_tar(fh)
        compressed = compression(head)
        if compressed:
            return _info(ModelFormat.COMPRESSED, f"{compressed}-compressed stream (joblib compresses pickles this way)")
        if _is_pickle(fh, head, size):
            proto = head[1] if head[0] == 0x80 else 0
            return _info(ModelFormat.PICKLE, f"pickle stream, protocol {proto}")
        if _is_saved_model(fh, size):
            return _info(ModelFormat.TF_SAVEDMODEL, "TensorFlow SavedModel graph (protobuf)")
        if _is_onnx(fh, size):
            return _info(ModelFormat.ONNX, "ONNX ModelProto (protobuf)")
        return _info(ModelFormat.UNKNOWN, "no known model format matches the content")
    finally:
        fh.seek(start)


def _count(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless ``n`` is 1: "1 member", "3 members"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _identify_zip(fh: BinaryIO) -> FormatInfo:
    import zipfile  # here, not at the top: a scan of plain pickles never needs it

    try:
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError, struct.error) as exc:
        return _info(ModelFormat.ZIP, f"zip archive with an unreadable directory ({exc})")
    # PyTorch's reader (miniz) finds records by name ignoring case: so does identification of its formats.
    folded = [n.lower() for n in names]
    tails = {n.split("/", 1)[-1] if "/" in n else n for n in folded}
    if any(n.endswith("models/model.json") for n in folded) or "archive_format" in tails:
        return _info(ModelFormat.PYTORCH_EXPORT, "torch.export archive (.pt2; its loader may unpickle)")
    if "constants.pkl" in tails and any("/code/" in f"/{n}" for n in folded):
        return _info(ModelFormat.TORCHSCRIPT, "TorchScript archive (code and pickled constants)")
    if any(n.endswith("data.pkl") for n in folded):
        return _info(ModelFormat.PYTORCH_ZIP, "PyTorch zip checkpoint (a pickle plus tensor storages)")
    if "schema.json" in names:
        return _info(ModelFormat.SKOPS, "skops archive (scikit-learn, no pickle)")
    if "config.json" in names:  # Keras' saving_lib reads config.json first, whatever the weights store
        return _info(ModelFormat.KERAS, "Keras v3 archive (config may reference Lambda layers or custom code)")
    if names and all(n.endswith(".npy") for n in names):
        return _info(ModelFormat.NUMPY_NPZ, f"NumPy .npz archive of {_count(len(names), 'array')}")
    return _info(ModelFormat.ZIP, f"zip archive of {_count(len(names), 'member')}")


# --- NumPy .npy headers, read as numpy.lib.format reads them -------------------------------------------------

#: The magic string that opens every ``.npy`` file.
NPY_MAGIC = b"\x93NUMPY"
_NPY_VERSIONS = {(1, 0): ("<H", "latin1"), (2, 0): ("<I", "latin1"), (3, 0): ("<I", "utf8")}
#: Headers longer than this are not parsed (numpy itself refuses more than 10,000 characters unless the caller
#: passes ``allow_pickle=True``, which object arrays need anyway).
NPY_MAX_HEADER = 1024 * 1024
_NPY_KEYS = frozenset({"descr", "fortran_order", "shape"})


class NpyHeaderError(ValueError):
    """A ``.npy`` header that numpy would refuse (``refused``) or that is too large to parse (not ``refused``).

    ``data_offset`` is where the array data would begin, when the header length could be read.
    """

    def __init__(self, message: str, *, data_offset: int | None, refused: bool = True) -> None:
        super().__init__(message)
        self.data_offset = data_offset
        self.refused = refused


@dataclass(frozen=True)
class NpyHeader:
    """A ``.npy`` header as numpy reads it: version, where the data begins, and the array's dtype."""

    version: tuple[int, int]
    data_offset: int
    shape: tuple[int, ...]
    descr: str  # the dtype, as numpy prints it
    has_object: bool  # loading the array unpickles the data that follows the header


def _filter_py2_longs(text: str) -> str:
    """numpy's ``_filter_header``: drop the ``L`` after integers that Python 2 wrote (``(3L, 4L)``)."""
    import io
    import tokenize

    tokens = []
    last_was_number = False
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if last_was_number and token.type == tokenize.NAME and token.string == "L":
            continue
        tokens.append(token)
        last_was_number = token.type == tokenize.NUMBER
    return tokenize.untokenize(tokens)


def _npy_literal(text: str, version: tuple[int, int], offset: int) -> object:
    """The header text as a Python literal, read as numpy reads it (Python 2 ``L`` suffixes retried for 1.0, 2.0)."""
    import ast
    import tokenize
    import warnings

    try:
        try:
            d = ast.literal_eval(text)
        except SyntaxError:
            if version > (2, 0):
                raise
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d = ast.literal_eval(_filter_py2_longs(text))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, tokenize.TokenError) as exc:
        raise NpyHeaderError(f"the header cannot be parsed: {exc}", data_offset=offset) from None
    return d


def read_npy_header(fh: BinaryIO, size: int) -> NpyHeader:
    """The ``.npy`` header of ``fh`` (read from its start), parsed exactly as ``numpy.lib.format.read_array`` does.

    ``ast.literal_eval`` reads the header dict (it evaluates literals only, never code) and numpy's own
    ``descr_to_dtype`` turns its ``descr`` into a dtype, so an object dtype is recognised however it is spelled
    (``'O'``, ``'|O8'``, a structured dtype with an object field, a subarray of objects). Raises
    :class:`NpyHeaderError` where numpy would refuse the header, or where it is too large to parse here.
    """
    import warnings

    fh.seek(0)
    magic = fh.read(8)
    if len(magic) < 8 or not magic.startswith(NPY_MAGIC):
        raise NpyHeaderError("the magic string is missing or truncated", data_offset=None)
    version = (magic[6], magic[7])
    if version not in _NPY_VERSIONS:
        raise NpyHeaderError(f"format version {version} is not one numpy reads", data_offset=None)
    fmt, encoding = _NPY_VERSIONS[version]
    raw_len = fh.read(struct.calcsize(fmt))
    if len(raw_len) != struct.calcsize(fmt):
        raise NpyHeaderError("the header length is truncated", data_offset=None)
    (length,) = struct.unpack(fmt, raw_len)
    offset = 8 + len(raw_len) + length
    if offset > size:
        raise NpyHeaderError(f"the header claims {length:,} bytes, past the end of the file", data_offset=None)
    if length > NPY_MAX_HEADER:
        raise NpyHeaderError(
            f"the header is {length:,} bytes long, too long to parse here", data_offset=offset, refused=False
        )
    try:
        text = fh.read(length).decode(encoding)
    except UnicodeDecodeError as exc:
        raise NpyHeaderError(f"the header is not {encoding}: {exc}", data_offset=offset) from None
    d = _npy_literal(text, version, offset)
    if not isinstance(d, dict):
        raise NpyHeaderError(f"the header is not a dictionary but {type(d).__name__}", data_offset=offset)
    if set(d) != _NPY_KEYS:
        raise NpyHeaderError(f"the header has keys {sorted(map(repr, d))}, not numpy's three", data_offset=offset)
    shape = d["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) for x in shape):
        raise NpyHeaderError(f"the shape {shape!r} is not a tuple of integers", data_offset=offset)
    if not isinstance(d["fortran_order"], bool):
        raise NpyHeaderError(f"fortran_order {d['fortran_order']!r} is not a bool", data_offset=offset)
    from numpy.lib.format import descr_to_dtype

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dtype = descr_to_dtype(d["descr"])
    except Exception as exc:  # numpy raises many kinds on a bad descr; all mean refused
        raise NpyHeaderError(f"descr {d['descr']!r} is not a dtype numpy accepts: {exc}", data_offset=offset) from None
    return NpyHeader(version, offset, shape, str(dtype), bool(dtype.hasobject))


def _identify_npy(fh: BinaryIO, size: int) -> FormatInfo:
    try:
        header = read_npy_header(fh, size)
    except NpyHeaderError as exc:
        if not exc.refused:
            return FormatInfo(ModelFormat.NUMPY, f"NumPy array whose header cannot be parsed here ({exc})", True)
        return _info(ModelFormat.NUMPY, f"NumPy file whose header numpy refuses ({exc})")
    if header.has_object:
        return FormatInfo(ModelFormat.NUMPY, "NumPy array of Python objects (loading it unpickles)", True)
    return _info(ModelFormat.NUMPY, f"NumPy array of {header.descr}")


# --- tar, read as tarfile reads it ------------------------------------------------------------------------------


_TAR_BLOCK = 512  # tarfile.BLOCKSIZE


def is_tar_header(head: bytes) -> bool:
    """Whether ``head`` opens with a tar header that ``tarfile`` accepts: any of v7, ustar, GNU or pax.

    tarfile needs no magic; it takes a 512-byte block whose checksum (signed or unsigned) matches its
    ``chksum`` field, and so does this.
    """
    if len(head) < _TAR_BLOCK:
        return False
    import tarfile  # here, not at the top: a scan of small pickles never needs it

    try:
        tarfile.TarInfo.frombuf(head[:_TAR_BLOCK], tarfile.ENCODING, "surrogateescape")
    except (tarfile.HeaderError, ValueError, OverflowError, UnicodeError):
        return False
    return True


#: The members that ``torch.load`` reads from a legacy tar checkpoint (each one holds pickles).
LEGACY_TORCH_MEMBERS = frozenset({"pickle", "storages", "tensors"})


def _identify_tar(fh: BinaryIO) -> FormatInfo:
    import tarfile

    names: set[str] = set()
    try:
        fh.seek(0)
        with tarfile.open(fileobj=fh, mode="r:") as tf:
            names = {os.path.normpath(m.name) for m in tf.getmembers()}
    except (tarfile.TarError, OSError, ValueError, EOFError, OverflowError, UnicodeError) as exc:
        if names & LEGACY_TORCH_MEMBERS:
            return _info(ModelFormat.PYTORCH_LEGACY_TAR, f"legacy PyTorch tar checkpoint that cannot be listed ({exc})")
        return _info(ModelFormat.TAR, f"tar archive that cannot be listed ({exc})")
    if names & LEGACY_TORCH_MEMBERS:  # torch.load extracts these by name (the last of each name wins)
        return _info(ModelFormat.PYTORCH_LEGACY_TAR, "legacy PyTorch tar checkpoint (pickles)")
    return _info(ModelFormat.TAR, f"tar archive of {_count(len(names), 'member')}")


# --- compressed streams, detected as joblib detects them --------------------------------------------------------

# joblib's prefixes (joblib/compressor.py), in its registration order, then the old "ZF" zfile and 7z.
_COMPRESSION_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"ZF", "joblib-zfile"),  # joblib < 0.10: "ZF", a hex length, then zlib
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZ", "bzip2"),
    (b"\x5d\x00", "lzma"),
    (b"\xfd7zXZ", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)


def compression(head: bytes) -> str | None:
    """The compression of a stream that opens with ``head``, as joblib's ``_detect_compressor`` sees it.

    joblib takes any first byte ``0x78`` for zlib, ``BZ`` for bzip2 and ``5d 00`` for LZMA, however the rest
    looks; a stream that fails to decompress then fails the load, after the unpickler has run on what came out.
    """
    for prefix, name in _COMPRESSION_PREFIXES:
        if head.startswith(prefix):
            return name
    return None


# --- safetensors and pickles --------------------------------------------------------------------------------------


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n <= min(size - 8, _MAX_SAFETENSORS_HEADER) or head[8:9] != b"{":
        return False
    if n + 8 <= len(head):
        try:
            return isinstance(json.loads(head[8 : 8 + n]), dict)
        except (ValueError, RecursionError):
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


# --- protobuf: a bounded reader of the wire format, for SavedModel and ONNX ------------------------------------

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MAX_PROTO_FIELDS = 4096  # fields read per message before a prefix that parses is taken as enough


class ProtoError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


@dataclass(frozen=True)
class ProtoField:
    """One field of a protobuf message: its number, wire type, and either its value (varint, fixed) or, for a
    length-delimited field, where its payload lies in the stream (``start`` and ``end``)."""

    number: int
    wire_type: int
    value: int
    start: int
    end: int


def _varint(fh: BinaryIO, end: int) -> int:
    result = shift = 0
    for _ in range(10):
        if fh.tell() >= end:
            raise ProtoError("a varint runs past the end of its message")
        byte = fh.read(1)
        if not byte:
            raise ProtoError("a varint runs past the end of the file")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
    raise ProtoError("a varint is longer than 10 bytes")


def proto_fields(fh: BinaryIO, start: int, end: int, *, max_fields: int = _MAX_PROTO_FIELDS) -> list[ProtoField]:
    """The fields of the protobuf message in ``fh[start:end]``, as a protobuf parser reads them.

    Length-delimited payloads are skipped, not read (their bounds are returned). Groups (wire types 3 and 4) are
    refused. At most ``max_fields`` fields are read; the rest of the message is then not checked. Raises
    :class:`ProtoError` on bytes that are not a message.
    """
    fields: list[ProtoField] = []
    fh.seek(start)
    while fh.tell() < end and len(fields) < max_fields:
        key = _varint(fh, end)
        number, wire = key >> 3, key & 7
        if number == 0 or number > 0x1FFFFFFF:
            raise ProtoError(f"field number {number} is out of range")
        here = fh.tell()
        if wire == _VARINT:
            value = _varint(fh, end)
            fields.append(ProtoField(number, wire, value, here, fh.tell()))
        elif wire in (_I64, _I32):
            width = 8 if wire == _I64 else 4
            if here + width > end:
                raise ProtoError("a fixed-width field runs past the end of its message")
            raw = fh.read(width)
            if len(raw) != width:
                raise ProtoError("a fixed-width field runs past the end of the file")
            fields.append(ProtoField(number, wire, int.from_bytes(raw, "little"), here, here + width))
        elif wire == _LEN:
            length = _varint(fh, end)
            payload = fh.tell()
            if payload + length > end:
                raise ProtoError(f"field {number} claims {length:,} bytes, past the end of its message")
            fields.append(ProtoField(number, wire, length, payload, payload + length))
            fh.seek(payload + length)
        else:
            raise ProtoError(f"wire type {wire} (a group or invalid) in field {number}")
    return fields


def _message(fh: BinaryIO, start: int, end: int, expected: dict[int, int]) -> list[ProtoField] | None:
    """The fields of ``fh[start:end]`` when each is one of ``expected`` (number: wire type); None otherwise."""
    try:
        fields = proto_fields(fh, start, end)
    except (ProtoError, OSError, ValueError):
        return None
    if any(expected.get(f.number) != f.wire_type for f in fields):
        return None
    return fields


# SavedModel: saved_model_schema_version = 1 (varint), meta_graphs = 2 (MetaGraphDef, repeated).
_SAVED_MODEL = {1: _VARINT, 2: _LEN}
# MetaGraphDef: meta_info_def 1, graph_def 2, saver_def 3, collection_def 4, signature_def 5, asset_file_def 6,
# object_graph_def 7 (and room for two more): all messages.
_META_GRAPH = dict.fromkeys(range(1, 10), _LEN)
# ModelProto: ir_version 1, producer_name 2, producer_version 3, domain 4, model_version 5, doc_string 6,
# graph 7, opset_import 8, metadata_props 14, training_info 20, functions 25, configuration 26.
_ONNX_MODEL = {1: _VARINT, 2: _LEN, 3: _LEN, 4: _LEN, 5: _VARINT, 6: _LEN, 7: _LEN, 8: _LEN, 14: _LEN}
_ONNX_MODEL |= {20: _LEN, 25: _LEN, 26: _LEN}
# OperatorSetIdProto: domain 1, version 2.
_ONNX_OPSET = {1: _LEN, 2: _VARINT}


def _is_saved_model(fh: BinaryIO, size: int) -> bool:
    """A SavedModel: the file parses as SavedModel fields, and every MetaGraphDef as MetaGraphDef fields."""
    fields = _message(fh, 0, size, _SAVED_MODEL)
    graphs = [f for f in fields or () if f.number == 2]
    if not graphs:
        return False
    return all(_message(fh, g.start, g.end, _META_GRAPH) is not None for g in graphs[:16])


def _is_onnx(fh: BinaryIO, size: int) -> bool:
    """An ONNX ModelProto: the file parses as ModelProto fields, with a graph or an IR version, and every
    opset import parses as an OperatorSetIdProto."""
    fields = _message(fh, 0, size, _ONNX_MODEL)
    if not fields or not any(f.number in (1, 7) for f in fields):
        return False
    opsets = [f for f in fields if f.number == 8]
    return all(_message(fh, o.start, o.end, _ONNX_OPSET) is not None for o in opsets[:64])
