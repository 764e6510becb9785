"""One way to hash a whole file: SHA-256 through :func:`hashlib.file_digest` (zero-copy reads, the GIL released).

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     p = pathlib.Path(d, "x")
...     _ = p.write_bytes(b"abc")
...     sha256_file(p)[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from modelshield.errors import FileFormatError

__all__ = ["sha256_file"]


def sha256_file(path: str | Path) -> str:
    """SHA-256 (hex) of the file at ``path``; :class:`FileFormatError` when it cannot be read."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise FileFormatError(f"Cannot read {path}: {exc.strerror or exc}.", remedy="Check the path.") from exc
