"""The quick way into ``modelshield scan`` means what the Typer command means, or steps aside for it."""

from __future__ import annotations

import inspect
import io
import os
import pickle
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from modelshield.cli import app as typer_app
from modelshield.cli import main
from modelshield.cli.app import load_commands
from modelshield.cli.scan import scan_command
from modelshield.cli.scan_core import OPTIONS, ScanArgs, parse_scan_args


class Payload:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("true",))


def test_the_quick_parser_knows_exactly_the_options_of_the_typer_command() -> None:
    command = load_commands("scan")["scan"]
    options = {p.opts[0]: p.multiple for p in command.params if p.param_type_name == "option"}
    options.pop("--help", None)
    assert options == OPTIONS
    (argument,) = [p for p in command.params if p.param_type_name == "argument"]
    assert argument.nargs == -1 and argument.required
    signature = inspect.signature(scan_command).parameters
    assert list(signature) == list(ScanArgs._fields)  # one body: the Typer command builds ScanArgs from its own
    defaults = {name: p.default for name, p in signature.items() if p.default is not inspect.Parameter.empty}
    assert defaults == {**ScanArgs._field_defaults, "exclude": None}


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-v", "m.pkl"],
        ["--", "m.pkl"],
        ["-"],
        ["m.pkl", "--output"],
        ["m.pkl", "--outp", "x"],  # Click takes no abbreviations: Typer explains
        ["m.pkl", "--format", "xml"],
        ["m.pkl", "--format", "html"],  # a format other commands write, not this one
        ["m.pkl", "--fail-on", "severe"],
        ["m.pkl", "--output", "-x"],
        ["m.pkl", "--exclude="],
        ["m.pkl", ""],
    ],
)
def test_anything_but_a_plain_valid_use_is_left_to_typer(argv: list[str]) -> None:
    assert parse_scan_args(argv) is None


def test_values_are_read_as_click_reads_them() -> None:
    args = parse_scan_args(["a.pkl", "--fail-on", "low", "--exclude=*.txt", "b", "--fail-on=medium", "--exclude", "c"])
    assert args == ScanArgs(paths=(Path("a.pkl"), Path("b")), fail_on="medium", exclude=("*.txt", "c"))


def _run(entry: object, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = entry(argv)  # type: ignore[operator]
    timing = re.compile(r"(scanned in |\"duration_s\": )[0-9.e-]+")
    return code, timing.sub(r"\1T", out.getvalue()), err.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "clean.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    (tmp_path / "sub" / "evil.bin").write_bytes(pickle.dumps(Payload()))
    (tmp_path / "policy.json").write_text('{"allow": ["os.system"]}')
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["{t}/clean.pkl"],
        ["{t}"],
        ["{t}", "--format", "json"],
        ["--format=sarif", "{t}/sub"],
        ["{t}", "--fail-on", "never"],
        ["--fail-on", "critical", "--fail-on", "low", "{t}/clean.pkl"],
        ["{t}", "--exclude", "sub/*", "--exclude", "*.json"],
        ["{t}/sub", "--policy", "{t}/policy.json", "--format", "json"],
        ["{t}/missing.pkl"],
        ["{t}/clean.pkl", "--policy", "{t}/missing.toml"],
    ],
)
def test_the_quick_way_and_typer_give_the_same_output_and_exit_code(tree: Path, argv: list[str]) -> None:
    args = ["scan", *(a.format(t=tree) for a in argv)]
    assert parse_scan_args(args[1:]) is not None
    quick, typer = _run(main, args), _run(typer_app.main, args)
    assert quick == typer
    assert quick[0] in (0, 1, 2)


def test_an_output_file_is_the_same_either_way(tree: Path) -> None:
    for fmt in ("text", "json", "sarif"):
        written = []
        for entry in (main, typer_app.main):
            out = tree / f"out.{fmt}"
            assert _run(entry, ["scan", str(tree / "sub"), "--format", fmt, "--output", str(out)])[0] == 1
            written.append(re.sub(r"(scanned in |\"duration_s\": |\"endTimeUtc\": )\S+", "T", out.read_text()))
            out.unlink()
        assert written[0] == written[1]
