"""Write the command reference in docs/cli.md from the Typer app, so that the reference cannot drift from the code.

    $ .venv/bin/python docs/gen_cli_reference.py          # rewrite the generated part of docs/cli.md
    $ .venv/bin/python docs/gen_cli_reference.py --check  # exit 1, with a one-line summary, when it is stale

Only the text between the ``BEGIN GENERATED: commands`` and ``END GENERATED: commands`` markers is written; the
prose around it is kept as it is. The reference is built from each click parameter's own fields (``opts``,
``type``, ``default``, ``help``, ...), never from Rich's help rendering, so the output does not depend on the width
of the terminal. tests/cli/test_cli_reference.py runs the check.
"""

from __future__ import annotations

import argparse
import difflib
import enum
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from modelshield.cli.app import app

__all__ = ["DOC", "REGENERATE", "main", "render_reference", "root_command", "splice", "stale_message"]

DOC = Path(__file__).resolve().parent / "cli.md"
BEGIN = "<!-- BEGIN GENERATED: commands -->"
END = "<!-- END GENERATED: commands -->"
REGENERATE = ".venv/bin/python docs/gen_cli_reference.py"
PROG = "modelshield"
NOTICE = (
    "<!-- Written by docs/gen_cli_reference.py from the help texts in src/modelshield/cli/; "
    f"run `{REGENERATE}` after changing a command. -->"
)

#: A click command or group. Typer vendors click from 0.26 on and modelshield never imports click itself, so the
#: code below reads the objects' fields and does not check their classes.
Command = Any
Parameter = Any


def root_command() -> Command:
    """The click group of the ``modelshield`` app (each command module is imported when its command is asked for)."""
    return typer.main.get_command(app)


def render_reference(root: Command) -> str:
    """The Markdown of the reference: the global options, an index of the commands, then each command."""
    commands = list(_walk(root, [PROG]))
    index = ["| command | what it does |", "| --- | --- |"]
    for path, command in commands:
        index.append(f"| [`{' '.join(path)}`](#{'-'.join(path)}) | {_cell(_first_paragraph(command.help))} |")
    blocks = [
        NOTICE,
        "## Global options",
        _paragraphs(root.help),
        _usage(root, [PROG]),
        _table(root.params, "option"),
        "Every command and group also takes `--help`.",
        "## Commands",
        "\n".join(index),
    ]
    for path, command in commands:
        blocks += [f"### `{' '.join(path)}`", _paragraphs(command.help), _usage(command, path)]
        if _is_group(command):
            blocks.append(f"Commands: {', '.join(f'`{name}`' for name, _ in _subcommands(command, path))}.")
        elif _visible(command.params):
            blocks.append(_table(command.params, "argument or option"))
    return "\n\n".join(block for block in blocks if block) + "\n"


def _walk(group: Command, path: list[str]) -> Iterator[tuple[list[str], Command]]:
    """Every visible command under ``group``, depth first, as (path, command), in the order the group lists them."""
    for name, command in _subcommands(group, path):
        yield [*path, name], command
        if _is_group(command):
            yield from _walk(command, [*path, name])


def _subcommands(group: Command, path: list[str]) -> list[tuple[str, Command]]:
    ctx = typer.Context(group, info_name=path[-1])
    found = []
    for name in group.list_commands(ctx):  # the root lists COMMAND_MODULES' order; Typer keeps registration order
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            found.append((name, command))
    return found


def _is_group(command: Command) -> bool:
    return hasattr(command, "list_commands")


def _visible(params: list[Parameter]) -> list[Parameter]:
    return [p for p in params if not getattr(p, "hidden", False)]


def _paragraphs(help_text: str | None) -> str:
    """The help text as Markdown paragraphs: click's ``\\f`` cuts it, a blank line separates paragraphs."""
    text = inspect.cleandoc(help_text or "").split("\f")[0]
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def _first_paragraph(help_text: str | None) -> str:
    return _paragraphs(help_text).split("\n\n")[0]


def _usage(command: Command, path: list[str]) -> str:
    pieces = [*path, "[OPTIONS]"]
    for param in command.params:
        if param.param_type_name == "argument":
            pieces.append(_argument_usage(param))
    if _is_group(command):
        pieces.append("COMMAND [ARGS]...")
    return "\n".join(["```", " ".join(pieces), "```"])


def _argument_usage(param: Parameter) -> str:
    name = _argument_name(param)
    return name if param.required else f"[{name}]"


def _argument_name(param: Parameter) -> str:
    name = param.metavar or param.name.upper()
    return f"{name}..." if param.nargs == -1 else name


def _table(params: list[Parameter], first_column: str) -> str:
    lines = [f"| {first_column} | value | default | description |", "| --- | --- | --- | --- |"]
    for param in _visible(params):
        cells = (_names(param), _value(param), _default(param), _description(param))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _names(param: Parameter) -> str:
    if param.param_type_name == "argument":
        return f"`{_argument_name(param)}`"
    names = ", ".join(f"`{opt}`" for opt in param.opts)
    if param.secondary_opts:
        names += " / " + ", ".join(f"`{opt}`" for opt in param.secondary_opts)
    return names


def _value(param: Parameter) -> str:
    """What the parameter takes: flag, choices, metavar or type; marked when it may be given more than once."""
    if getattr(param, "count", False):
        return "flag, repeatable (`-vv`)" if "-v" in param.opts else "flag, repeatable"
    if getattr(param, "is_flag", False):
        return "flag"
    value = f"`{_type_name(param)}`"
    if param.nargs == -1:
        value += ", one or more" if param.required else ", any number"
    elif param.nargs > 1:
        value += f", {param.nargs} values"
    if param.multiple:
        value += ", repeatable"
    return value


def _type_name(param: Parameter) -> str:
    kind = param.type
    if param.metavar and param.param_type_name == "option":  # an argument's metavar is its name
        return str(param.metavar)
    if getattr(kind, "choices", None):
        return "|".join(str(getattr(c, "value", c)) for c in kind.choices)
    if kind.name == "path":
        return "FILE" if not kind.dir_okay else "DIR" if not kind.file_okay else "PATH"
    name = {"integer range": "INTEGER", "float range": "FLOAT"}.get(kind.name, kind.name.upper())
    if hasattr(kind, "min_open"):  # click's IntRange and FloatRange
        bounds = []
        if kind.min is not None:
            bounds.append(f"{'>' if kind.min_open else '>='} {kind.min}")
        if kind.max is not None:
            bounds.append(f"{'<' if kind.max_open else '<='} {kind.max}")
        name += " " + " and ".join(bounds)
    return str(name)


def _default(param: Parameter) -> str:
    if param.required:
        return "required"
    default = param.default
    if getattr(param, "is_flag", False) and not getattr(param, "count", False):
        return "on" if default else "off"
    if default is None or (param.multiple and not default):
        return ""
    if callable(default):
        return "computed"
    if isinstance(default, list | tuple):
        return ", ".join(f"`{_plain(v)}`" for v in default)
    return f"`{_plain(default)}`"


def _plain(value: object) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _description(param: Parameter) -> str:
    text = " ".join((getattr(param, "help", None) or "").split())
    envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
    if envvars:
        text += f" Environment: {', '.join(f'`{name}`' for name in envvars)}."
    return text.strip()


def _cell(text: str) -> str:
    """``text`` fit for one Markdown table cell: on one line, with ``|`` escaped (also inside code spans)."""
    return " ".join(text.split()).replace("|", "\\|")


def splice(document: str, generated: str) -> str:
    """``document`` with the text between its generated markers replaced by ``generated``."""
    if document.count(BEGIN) != 1 or document.count(END) != 1 or document.index(BEGIN) > document.index(END):
        raise ValueError(f"docs/cli.md must hold the line {BEGIN} once, and after it the line {END} once.")
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated}{END}{tail}"


def stale_message(path: Path, generated: str) -> str | None:
    """None when ``path`` holds ``generated`` between its markers, else one line saying what differs and what to do."""
    current = path.read_text(encoding="utf-8")
    wanted = splice(current, generated)
    if wanted == current:
        return None
    old, new = current.splitlines(), wanted.splitlines()
    first = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
    diff = list(difflib.unified_diff(old, new, lineterm="", n=0))
    added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
    return (
        f"{path.parent.name}/{path.name} is stale: its generated command reference differs from line {first + 1} on "
        f"({_lines(added)} to add, {_lines(removed)} to remove). Run `{REGENERATE}` and commit the result."
    )


def _lines(n: int) -> str:
    return "1 line" if n == 1 else f"{n} lines"


def main(argv: list[str] | None = None) -> int:
    """Rewrite docs/cli.md (0), or with ``--check`` report whether it is current (0) or stale (1)."""
    parser = argparse.ArgumentParser(description="Write the command reference in docs/cli.md from the Typer app.")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/cli.md is stale; write nothing")
    args = parser.parse_args(argv)
    generated = render_reference(root_command())
    message = stale_message(DOC, generated)
    if args.check:
        if message is not None:
            print(message, file=sys.stderr)
            return 1
        return 0
    if message is not None:
        DOC.write_text(splice(DOC.read_text(encoding="utf-8"), generated), encoding="utf-8")
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
