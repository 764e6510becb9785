"""Library code has no process-wide side effects: it never seeds a global random generator and never sets torch's
thread count or determinism mode. Those are one setting for the whole process: the security gateway runs library
code in threads, and a call in one thread changes every other thread's random stream or thread pool. Only the
command line (``cli/``), which owns its process, may set them, once, at start-up.

The check reads the source as Python syntax (``ast``), resolving import aliases, so ``import numpy as np`` then
``np.random.seed(0)`` is found and ``torch.Generator().manual_seed(0)`` (a local generator) is not.
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from modelshield.errors import InvalidParameterError

SRC = Path(__file__).resolve().parents[1] / "src" / "modelshield"
#: Sub-packages allowed to configure the process: the applications, not the library.
APPLICATIONS = ("cli",)

FORBIDDEN = frozenset(
    {
        "torch.manual_seed",
        "torch.random.manual_seed",
        "torch.seed",
        "torch.random.seed",
        "torch.set_rng_state",
        "torch.random.set_rng_state",
        "torch.cuda.manual_seed",
        "torch.cuda.manual_seed_all",
        "torch.set_num_threads",
        "torch.set_num_interop_threads",
        "torch.use_deterministic_algorithms",
        "numpy.random.seed",
        "numpy.random.set_state",
        "random.seed",
        "random.setstate",
    }
)


@dataclass(frozen=True)
class Violation:
    """A call of a process-wide setter, at ``path:line``."""

    path: str
    line: int
    call: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.call}(...)"


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name of what it was imported as, over every import in the module (local ones too)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:  # `import torch.random` binds `torch`
                    head = alias.name.split(".")[0]
                    names[head] = head
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None (e.g. ``torch.Generator().manual_seed``)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def violations(source: str, path: str = "<string>") -> list[Violation]:
    """The calls of :data:`FORBIDDEN` functions in ``source``."""
    tree = ast.parse(source, filename=path)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        resolved = aliases.get(head, head) + (f".{rest}" if rest else "")
        if resolved in FORBIDDEN:
            found.append(Violation(path, node.lineno, resolved))
    return sorted(found, key=lambda v: v.line)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import torch\ntorch.manual_seed(0)", ["torch.manual_seed"]),
        ("import numpy as np\n\ndef f():\n    np.random.seed(1)", ["numpy.random.seed"]),
        ("from torch import set_num_threads as threads\nthreads(1)", ["torch.set_num_threads"]),
        ("import random\nrandom.seed(3)", ["random.seed"]),
        (
            "def f():\n    import torch\n    torch.use_deterministic_algorithms(True)",
            ["torch.use_deterministic_algorithms"],
        ),
        ("import torch.random\ntorch.random.manual_seed(0)", ["torch.random.manual_seed"]),
        ("import torch\ng = torch.Generator().manual_seed(0)", []),
        ("import numpy as np\nrng = np.random.default_rng(0)", []),
        ("import random\nr = random.Random(0)\nr.seed(1)", []),
        ("import torch\nn = torch.get_num_threads()", []),
    ],
)
def test_the_finder_finds_global_setters_and_nothing_else(source: str, expected: list[str]) -> None:
    assert [v.call for v in violations(source)] == expected


def test_the_finder_names_file_and_line() -> None:
    (found,) = violations("import torch\n\n\ntorch.manual_seed(0)\n", "pkg/mod.py")
    assert str(found) == "pkg/mod.py:4: torch.manual_seed(...)"


def test_library_code_sets_no_process_wide_state() -> None:
    files = [p for p in sorted(SRC.rglob("*.py")) if p.relative_to(SRC).parts[0] not in APPLICATIONS]
    assert len(files) > 50  # the walk found the package
    found = [
        v for path in files for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(SRC.parents[1])))
    ]
    assert not found, (
        "Library code sets process-wide state (use a local torch.Generator / numpy Generator, and leave thread "
        "counts to the application: modelshield.cli._threads):\n" + "\n".join(map(str, found))
    )


def test_the_cli_helper_sets_threads_without_importing_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before torch is imported, the helper leaves it unimported and sets OMP_NUM_THREADS (which torch reads when it
    loads); after, it sets torch's thread count directly."""
    from modelshield.cli._threads import configure_torch_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    configure_torch_threads(2)
    assert os.environ["OMP_NUM_THREADS"] == "2"
    assert "torch" not in sys.modules

    calls: list[int] = []
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(set_num_threads=calls.append))
    configure_torch_threads(3)
    assert calls == [3]
    assert os.environ["OMP_NUM_THREADS"] == "2"  # untouched once torch is loaded


def test_the_cli_helper_refuses_a_bad_count() -> None:
    from modelshield.cli._threads import configure_torch_threads

    with pytest.raises(InvalidParameterError, match="positive") as info:
        configure_torch_threads(0)
    assert "--threads" in info.value.remedy
