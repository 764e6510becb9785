"""Error messages speak the language of the interface that shows them: options on the command line, arguments in
Python."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest

import modelshield
from modelshield.cli import main
from modelshield.cli._console import guarded
from modelshield.errors import InvalidParameterError, UnsafeModelError

SRC = Path(modelshield.__file__).parent
#: A Python keyword argument (``unsafe_pickle=True``, ``parent=``): in a class's default remedy, which any raise
#: of the class without a remedy of its own shows, the CLI included.
_PYTHON_WORDS = re.compile(r"\b[a-z][a-z_]*=")
#: A "(CLI: --option)" aside: a remedy its author knew the command line shows, written for both audiences at once.
_ASIDE = re.compile(r"CLI: *--")


def _text(node: ast.expr) -> str:
    """The literal text of a string expression (f-strings: their constant parts)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    return ""


def test_every_remedy_in_python_words_has_a_command_line_version() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue  # the CLI's own messages name options already
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                keywords = {k.arg: k.value for k in node.keywords}
                remedy = keywords.get("remedy")
                if remedy is not None and _ASIDE.search(_text(remedy)) and "cli_remedy" not in keywords:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
            elif isinstance(node, ast.ClassDef):
                assigned = {
                    t.id: s.value
                    for s in node.body
                    if isinstance(s, ast.Assign | ast.AnnAssign) and s.value is not None
                    for t in (s.targets if isinstance(s, ast.Assign) else [s.target])
                    if isinstance(t, ast.Name)
                }
                default = assigned.get("default_remedy")
                if (
                    default is not None
                    and _PYTHON_WORDS.search(_text(default))
                    and "default_cli_remedy" not in assigned
                ):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} (class {node.name})")
    assert offenders == [], "remedies in Python words without a cli_remedy: " + ", ".join(offenders)


def test_the_command_line_prints_the_command_line_remedy(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse() -> int:
        raise UnsafeModelError("model.pkl would run code when it is loaded.")

    assert guarded(refuse) == 2
    err = capsys.readouterr().err
    assert "--unsafe-allow-pickle" in err and "unsafe_pickle" not in err
    assert "unsafe_pickle=True" in UnsafeModelError("x").remedy  # Python callers get Python words

    def python_only() -> int:
        raise InvalidParameterError("bad", remedy="Pass x=1.", cli_remedy="Pass --x 1.")

    assert guarded(python_only) == 2
    assert capsys.readouterr().err == "error: bad Fix: Pass --x 1.\n"


def test_a_pickle_model_is_refused_in_command_line_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"weights": [0.5, 0.25]}))
    data = tmp_path / "test.csv"
    data.write_text("a,b,label\n0.1,0.2,0\n0.3,0.4,1\n")
    assert main(["audit", "--model", str(model), "--data", str(data), "--checks", "baseline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "--unsafe-allow-pickle" in err and "unsafe_pickle" not in err


@pytest.mark.parametrize("content", [b"", b"\x00\x01 not a model at all"])
def test_a_file_that_is_no_model_is_described_in_plain_grammar(tmp_path: Path, content: bytes) -> None:
    from modelshield.errors import FileFormatError
    from modelshield.loading import load_model

    path = tmp_path / "model.bin"
    path.write_bytes(content)
    with pytest.raises(FileFormatError) as caught:
        load_model(path)
    assert caught.value.message.startswith(f"modelshield cannot load {path} as a model (")
    assert " a empty" not in caught.value.message and "is a no " not in caught.value.message


def test_counts_agree_with_their_nouns(tmp_path: Path) -> None:
    import zipfile

    from modelshield.supply_chain.formats import identify_format

    for n in (1, 2):
        path = tmp_path / f"{n}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for i in range(n):
                zf.writestr(f"m{i}.txt", "x")
        detail = identify_format(path).detail
        assert detail == ("zip archive of 1 member" if n == 1 else "zip archive of 2 members")
