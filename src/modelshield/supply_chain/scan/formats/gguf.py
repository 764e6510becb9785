"""GGUF files (llama.cpp): header sanity, and chat templates that reach Python internals (Jinja injection).

    >>> import io, struct
    >>> from modelshield.supply_chain.scan.formats.gguf import GGUF
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> data = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    >>> GGUF.scan(io.BytesIO(data), len(data), "model.gguf", Scanner().context())
    []

Only the metadata is read; numeric arrays (vocabulary scores) are stepped over and tensor data is never touched.
"""

from __future__ import annotations

import re
import struct
from typing import Any, BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["GGUF", "GgufScanner"]

_JINJA_RISK = re.compile(
    r"__(class|globals|subclasses|builtins|import|init|mro|base|bases|getattribute|code|func)__"
    r"|\b(os|subprocess|popen|eval|exec|import_module|cycler|joiner|lipsum|request|config|self)\b\s*[.\[(]"
)
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_MAX_KV = 100_000
_MAX_STRING = 64 * 1024 * 1024
_MAX_ARRAY = 50_000_000


def _string(fh: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", fh.read(8))
    if n > _MAX_STRING:
        raise ValueError(f"string of {n:,} bytes")
    return fh.read(n).decode("utf-8", "replace")


def _value(fh: BinaryIO, kind: int, depth: int = 0) -> Any:
    if kind in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[kind]
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]
    if kind == 8:
        return _string(fh)
    if kind == 9 and depth < 2:
        (item_kind,) = struct.unpack("<I", fh.read(4))
        (count,) = struct.unpack("<Q", fh.read(8))
        if count > _MAX_ARRAY:
            raise ValueError(f"array of {count:,} items")
        if item_kind in _GGUF_SCALARS:  # numeric arrays: skip, they are vocabulary scores and the like
            fh.seek(count * struct.calcsize(_GGUF_SCALARS[item_kind]), 1)
            return None
        for _ in range(count):  # string arrays (vocabularies): read past them
            _value(fh, item_kind, depth + 1)
        return None
    raise ValueError(f"unknown value type {kind}")


def _metadata(fh: BinaryIO, size: int) -> dict[str, Any]:
    fh.seek(0)
    magic, version = struct.unpack("<4sI", fh.read(8))
    if magic != b"GGUF" or version not in (1, 2, 3):
        raise ValueError(f"magic {magic!r}, version {version}")
    _tensors, kv_count = struct.unpack("<QQ", fh.read(16))
    if kv_count > _MAX_KV:
        raise ValueError(f"{kv_count:,} metadata entries")
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = _string(fh)
        (kind,) = struct.unpack("<I", fh.read(4))
        metadata[key] = _value(fh, kind)
        if fh.tell() > size:
            raise ValueError("metadata runs past the end of the file")
    return metadata


class GgufScanner:
    """GGUF metadata: chat templates that can run code when rendered."""

    name = "gguf"
    formats = frozenset({ModelFormat.GGUF})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for an unreadable header and for chat templates that reach Python internals."""
        try:
            metadata = _metadata(stream, size)
        except (ValueError, struct.error) as exc:
            return [scan_finding("gguf.header", Severity.MEDIUM, "GGUF header cannot be read", str(exc), location)]
        found: list[Finding] = []
        for key, value in metadata.items():
            if "chat_template" in key and isinstance(value, str):
                hits = sorted({m.group(0) for m in _JINJA_RISK.finditer(value)})
                if hits:
                    found.append(
                        scan_finding(
                            "gguf.template-injection",
                            Severity.CRITICAL,
                            "GGUF chat template reaches Python internals",
                            f"{key} uses {', '.join(hits[:6])}: rendering it can run code in an unsandboxed Jinja.",
                            location,
                        )
                    )
        return found


GGUF = GgufScanner()
