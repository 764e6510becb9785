"""The layer rules hold, and the guard that enforces them bites: a deliberate upward import fails the contracts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (dev extra)")


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin", "HOME": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=src,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package to break on purpose."""
    src = tmp_path_factory.mktemp("scratch") / "src"
    shutil.copytree(ROOT / "src" / "modelshield", src / "modelshield", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def test_the_tree_keeps_every_contract(scratch: Path) -> None:
    result = _lint(scratch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("models/_scratch.py", "import modelshield.audit.runner\n", "Layers,"),  # a building block imports composition
        ("supply_chain/_scratch.py", "from modelshield.cli import main\n", "Layers,"),  # anything imports the CLI
        ("attacks/_scratch.py", "import modelshield.defenses.output\n", "Layers,"),  # attacks sit below defenses
        ("reporting/_scratch.py", "import modelshield.data.interface\n", "Reporting"),  # reporting reads reports only
        ("cli/options.py", "import modelshield.cli.app\n", "CLI"),  # a cycle inside the CLI
    ],
)
def test_an_upward_import_breaks_a_contract(scratch: Path, module: str, statement: str, contract: str) -> None:
    path = scratch / "modelshield" / module
    original = path.read_text() if path.exists() else None
    path.write_text((original or '"""Scratch."""\n') + statement)
    try:
        result = _lint(scratch)
    finally:
        if original is None:
            path.unlink()
        else:
            path.write_text(original)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout


def test_no_module_imports_the_package_facade() -> None:
    """Lower layers take the version from `_version`; only the entry point may use the façade."""
    graph = grimp.build_graph("modelshield")
    importers = graph.find_modules_that_directly_import("modelshield") - {"modelshield.__main__"}
    assert importers == set()


def test_only_the_cli_reads_the_environment() -> None:
    """Library code takes explicit arguments; `os.environ`/`os.getenv` appear only under cli/, and in the scanner's
    ground-truth oracle, which builds the environment of the throw-away interpreters it loads files in."""
    import ast

    offenders = []
    for path in sorted((ROOT / "src" / "modelshield").rglob("*.py")):
        relative = path.relative_to(ROOT / "src" / "modelshield")
        if "cli" in relative.parts[:1] or relative.as_posix() == "testing/oracle.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_documented_layers_are_the_contract() -> None:
    """docs/architecture.md draws the same floors, in the same order, as the contract CI runs."""
    import re
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers"]
    contract = [layer.replace("modelshield.", "") for layer in layers["layers"]]
    doc = (ROOT / "docs" / "architecture.md").read_text()
    drawn = [m.group(1).strip() for m in re.finditer(r"^ │ (\S.*?)(?:  |│)", doc, flags=re.MULTILINE)]
    assert drawn == contract
