"""What ``modelshield scan`` imports: only what scanning needs (a structural check; timing lives in the benchmark).

Each check runs in a fresh interpreter, since this test process has long since imported everything.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from modelshield.cli.app import COMMAND_MODULES, app, load_commands

#: Libraries that scanning never needs; importing any of them costs a CLI run tens to hundreds of milliseconds.
HEAVY = ("numpy", "torch", "sklearn", "pandas", "scipy", "onnx", "onnxruntime", "jinja2", "matplotlib", "skops")


def _imported_after(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; the heavy libraries and the modelshield modules it imported."""
    probe = (
        f"{code}\n"
        "import json, sys\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "ours = sorted(m for m in sys.modules if m.startswith('modelshield'))\n"
        "print(json.dumps({'heavy': heavy, 'modelshield': ours}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    result: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_resolving_the_scan_command_imports_no_heavy_library() -> None:
    imported = _imported_after(
        "import contextlib, io\n"
        "from modelshield.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['scan', '--help']) == 0\n"
        # what the command's body imports before it scans: the scanner and the scan renderers
        "import modelshield.supply_chain.scan, modelshield.reporting.scan\n"
    )
    assert imported["heavy"] == []
    loaded_commands = {m.removeprefix("modelshield.cli.") for m in imported["modelshield"]} & set(
        COMMAND_MODULES.values()
    )
    assert loaded_commands == {"scan"}  # no other command module (audit pulls numpy, data pulls pandas, ...)
    for layer in ("audit", "data", "models", "attacks", "defenses", "zoo", "target"):
        assert f"modelshield.{layer}" not in imported["modelshield"], f"scan imported modelshield.{layer}"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_plain_scan_imports_neither_the_cli_framework_nor_package_metadata(tmp_path: Path, fmt: str) -> None:
    """``modelshield scan FILE``, as a CI gate runs it once per file: no Typer, Click or Rich (Rich only for a
    table of findings), no importlib.metadata (the email package)."""
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    probe = (
        "import contextlib, io, json, sys\n"
        "from modelshield.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['scan', {str(model)!r}, '--format', {fmt!r}]) == 0\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & {"typer", "click", "rich", "email", *HEAVY}  # importlib.metadata imports email


def test_importing_the_cli_loads_no_command_module() -> None:
    imported = _imported_after("import modelshield.cli")
    assert imported["heavy"] == []
    assert not {f"modelshield.cli.{m}" for m in COMMAND_MODULES.values()} & set(imported["modelshield"])


@pytest.mark.parametrize("module", sorted(set(COMMAND_MODULES.values())))
def test_each_command_module_defines_exactly_the_commands_the_table_gives_it(module: str) -> None:
    expected = {name for name, home in COMMAND_MODULES.items() if home == module}
    assert set(load_commands(module)) == expected


def test_help_lists_every_command_in_the_table_order() -> None:
    import typer

    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="modelshield")
    assert group.list_commands(ctx) == list(COMMAND_MODULES)  # type: ignore[attr-defined]
    for name in COMMAND_MODULES:
        command = group.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None and command.name == name
        assert command.get_short_help_str()  # each lists with its help text
    assert group.get_command(ctx, "no-such-command") is None  # type: ignore[attr-defined]
