"""docs/cli.md: the command reference in it is the one docs/gen_cli_reference.py writes from the Typer app, and its
list of environment variables names every variable the CLI reads."""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
CLI_SOURCES = ROOT / "src" / "modelshield" / "cli"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    """docs/gen_cli_reference.py, imported from its path (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_cli_reference", ROOT / "docs" / "gen_cli_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_current(gen: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert gen.main(["--check"]) == 0, capsys.readouterr().err


def _commands(group: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
    """Every command under ``group``, by its full name."""
    ctx = typer.Context(group, info_name=path[-1])
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield " ".join([*path, name]), command
        if hasattr(command, "list_commands"):
            yield from _commands(command, [*path, name])


def _sections(reference: str) -> dict[str, str]:
    """Each command's section of the generated reference, by the command's full name."""
    parts = reference.split("\n### `")[1:]
    return {part.split("`", 1)[0]: part for part in parts}


def test_the_reference_names_every_argument_and_option(gen: ModuleType) -> None:
    root = gen.root_command()
    reference = gen.render_reference(root)
    for opt in (opt for param in root.params for opt in param.opts):
        assert f"`{opt}`" in reference.split("\n## Commands")[0]
    sections = _sections(reference)
    for name, command in _commands(root, ["modelshield"]):
        for param in command.params:
            if param.param_type_name == "argument":
                names = [param.metavar or param.name.upper()]
            else:
                names = [*param.opts, *param.secondary_opts]
            for each in names:
                assert f"`{each}" in sections[name], f"{each} of {name} is missing from the reference"


def _probe_option() -> Any:
    """A click option made by Typer, as a command module would declare it; its help holds a table separator."""
    probe = typer.Typer()

    @probe.command()
    def command(probe_option: Annotated[int, typer.Option(help="New | untested.")] = 3) -> None:
        """A command with one option."""

    return typer.main.get_command(probe).params[0]


def test_an_option_added_without_regenerating_makes_the_check_fail(gen: ModuleType) -> None:
    root = gen.root_command()  # a fresh group: its commands are built for it alone
    scan = root.get_command(typer.Context(root, info_name="modelshield"), "scan")
    scan.params.append(_probe_option())
    reference = gen.render_reference(root)
    assert "| `--probe-option` | `INTEGER` | `3` | New \\| untested. |" in _sections(reference)["modelshield scan"]
    message = gen.stale_message(gen.DOC, reference)
    assert message is not None
    assert "docs/cli.md is stale" in message
    assert "Run `.venv/bin/python docs/gen_cli_reference.py`" in message


def _table_rows(markdown: str) -> Iterator[list[str]]:
    """Each table of ``markdown`` (outside code blocks) as its rows."""
    table: list[str] = []
    fenced = False
    for line in [*markdown.splitlines(), ""]:
        fenced = fenced != line.startswith("```")
        if line.startswith("|") and not fenced:
            table.append(line)
        elif table:
            yield table
            table = []


def _cells(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row)) - 2


def test_every_table_row_has_its_header_s_columns(gen: ModuleType) -> None:
    root = gen.root_command()
    scan = root.get_command(typer.Context(root, info_name="modelshield"), "scan")
    scan.params.append(_probe_option())
    documents = {"generated": gen.render_reference(root), "docs/cli.md": gen.DOC.read_text(encoding="utf-8")}
    for where, markdown in documents.items():
        tables = list(_table_rows(markdown))
        assert tables
        for table in tables:
            for row in table:
                assert _cells(row) == _cells(table[0]), f"{where}: {row}"


def test_the_reference_does_not_depend_on_the_terminal_width(gen: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    narrow = gen.render_reference(gen.root_command())
    monkeypatch.setenv("COLUMNS", "300")
    assert gen.render_reference(gen.root_command()) == narrow


def _strings(node: ast.expr | None, constants: dict[str, str]) -> set[str]:
    """The string values of a literal, a module-level string constant, or a list or tuple of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name) and node.id in constants:
        return {constants[node.id]}
    if isinstance(node, ast.List | ast.Tuple):
        return {value for element in node.elts for value in _strings(element, constants)}
    return set()


def _environment_names(tree: ast.Module) -> set[str]:
    """The environment variables the module reads by a name known before it runs: ``os.environ.get(NAME)``,
    ``os.getenv(NAME)``, ``os.environ[NAME]``, ``NAME in os.environ``, and click's ``envvar=NAME``."""
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    environ = {"os.environ", "environ"}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            reader = ast.unparse(node.func)
            if reader in {"os.environ.get", "environ.get", "os.getenv", "getenv"}:
                names |= _strings(node.args[0] if node.args else None, constants)
            for keyword in node.keywords:
                if keyword.arg == "envvar":
                    names |= _strings(keyword.value, constants)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and ast.unparse(node.value) in environ:
            names |= _strings(node.slice, constants)
        elif isinstance(node, ast.Compare) and ast.unparse(node.comparators[0]) in environ:
            names |= _strings(node.left, constants)  # NAME in os.environ
    return names


def test_environment_names_finds_every_kind_of_read() -> None:
    source = """
import os
CACHE = "E_CONSTANT"
os.environ.get("E_GET")
os.environ.get(CACHE)
os.getenv("E_GETENV", "default")
os.environ["E_SUBSCRIPT"]
os.environ["E_WRITTEN"] = "1"
"E_IN" in os.environ
typer.Option("--x", envvar="E_OPTION")
typer.Option("--y", envvar=["E_LIST_1", "E_LIST_2"])
os.environ.get(variable)
"""
    assert _environment_names(ast.parse(source)) == {
        "E_CONSTANT",
        "E_GET",
        "E_GETENV",
        "E_SUBSCRIPT",
        "E_IN",
        "E_OPTION",
        "E_LIST_1",
        "E_LIST_2",
    }


def test_every_environment_variable_the_cli_reads_is_documented(gen: ModuleType) -> None:
    read = set()
    for source in sorted(CLI_SOURCES.rglob("*.py")):
        read |= _environment_names(ast.parse(source.read_text(encoding="utf-8"), filename=str(source)))
    document = gen.DOC.read_text(encoding="utf-8")
    section = document.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    missing = sorted(name for name in read if f"`{name}`" not in section)
    assert not missing, f"docs/cli.md's 'Environment variables' section does not list {', '.join(missing)}."
