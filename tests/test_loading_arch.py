"""The user's own network for weights-only files: ``file.py:Class`` and ``module:Class``, imported for code the user
trusts, with one clear error for each way that naming it can go wrong."""

from __future__ import annotations

import json
import logging
import runpy
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modelshield.cli import main
from modelshield.errors import FileFormatError, InvalidParameterError
from modelshield.loading import load_model
from modelshield.models import Bounds, TorchClassifier

NETS = textwrap.dedent(
    """
    import torch


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Flatten(), torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, CLASSES)
            )

        def forward(self, x):
            return self.body(x)


    def build():
        return Net()


    class NeedsWidth(torch.nn.Module):
        def __init__(self, width):
            super().__init__()


    class Broken(torch.nn.Module):
        def __init__(self):
            raise RuntimeError("no GPU here")


    class NotANet:
        pass


    def not_a_net():
        return 3


    net = Net()
    """
)


def _write_nets(folder: Path, name: str = "nets.py", *, features: int = 64, classes: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"FEATURES = {features}\nCLASSES = {classes}\n{NETS}", encoding="utf-8")
    return path


def _weights(code: Path, out: Path) -> torch.nn.Module:
    """A Net from ``code`` with seeded weights, saved to ``out`` as safetensors."""
    torch.manual_seed(0)
    net: torch.nn.Module = runpy.run_path(str(code))["Net"]().eval()
    save_file(net.state_dict(), str(out))
    return net


@pytest.fixture
def clean_modules() -> Iterator[None]:
    """Forget the modules a test imports, and check that it leaves ``sys.path`` as it found it."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    assert sys.path == path


def _load(weights: Path, architecture: str) -> TorchClassifier:
    loaded = load_model(
        weights, architecture=architecture, input_shape=(1, 8, 8), n_classes=10, clip_values=Bounds(0.0, 1.0)
    )
    assert isinstance(loaded.classifier, TorchClassifier)
    return loaded.classifier


@pytest.mark.usefixtures("clean_modules")
def test_a_file_class_loads_the_weights_and_predicts_as_the_original(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code = _write_nets(tmp_path / "code")
    original = _weights(code, tmp_path / "model.safetensors")
    x = np.random.default_rng(0).uniform(size=(16, 1, 8, 8)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="modelshield.loading"):
        clf = _load(tmp_path / "model.safetensors", f"{code}:Net")
    assert f"Importing the file {code}" in caplog.text and "code you trust" in caplog.text
    with torch.no_grad():
        expected = original(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(clf.logits(x), expected, atol=1e-6)
    assert clf.white_box
    built = _load(tmp_path / "model.safetensors", f"{code}:build")  # a function that builds the network
    np.testing.assert_allclose(built.logits(x), expected, atol=1e-6)


@pytest.mark.usefixtures("clean_modules")
def test_a_module_class_is_imported_from_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "work" / "arch_pkg_one"
    code = _write_nets(package, "models.py")
    (package / "__init__.py").write_text("", encoding="utf-8")
    original = _weights(code, tmp_path / "model.safetensors")
    monkeypatch.chdir(tmp_path / "work")
    clf = _load(tmp_path / "model.safetensors", "arch_pkg_one.models:Net")
    x = np.random.default_rng(1).uniform(size=(4, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(clf.logits(x), original(torch.from_numpy(x)).numpy(), atol=1e-6)


@pytest.mark.usefixtures("clean_modules")
@pytest.mark.parametrize(
    ("attribute", "message", "remedy"),
    [
        ("Missing", "has no 'Missing'; it defines Broken, NeedsWidth, Net.", "--arch {where}:Class"),
        ("NotANet", "is the class NotANet, which is not a torch.nn.Module.", "Name the class of the network"),
        ("net", "is a Net, not a torch.nn.Module class.", "a function that returns the network"),
        ("NeedsWidth", "NeedsWidth() raised TypeError:", "--arch {where}:build"),
        ("Broken", "Broken() raised RuntimeError: no GPU here", "built with no arguments"),
        ("not_a_net", "not_a_net() returned a int, not a torch.nn.Module.", "Name the class of the network"),
        ("FEATURES", "is a int, not a torch.nn.Module class.", "Name the class of the network"),
    ],
)
def test_each_wrong_name_is_one_clear_error(tmp_path: Path, attribute: str, message: str, remedy: str) -> None:
    code = _write_nets(tmp_path / "code")
    _weights(code, tmp_path / "model.safetensors")
    with pytest.raises(
        InvalidParameterError,
    ) as caught:
        _load(tmp_path / "model.safetensors", f"{code}:{attribute}")
    assert message in str(caught.value)
    assert remedy.format(where=code) in caught.value.cli_remedy
    assert "--arch" not in caught.value.remedy  # the library's remedy speaks of architecture=


@pytest.mark.usefixtures("clean_modules")
def test_code_that_cannot_be_imported_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = _write_nets(tmp_path / "code")
    _weights(code, tmp_path / "model.safetensors")
    weights = tmp_path / "model.safetensors"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_arch.py").write_text("import a_package_nobody_installed\n", encoding="utf-8")
    (tmp_path / "raises_arch.py").write_text("raise SystemError('bad state')\n", encoding="utf-8")
    cases = {
        "no_such_arch_module:Net": "No module named 'no_such_arch_module' can be imported",
        f"{tmp_path / 'absent.py'}:Net": "absent.py does not exist",
        "broken_arch:Net": "failed: ModuleNotFoundError: No module named 'a_package_nobody_installed'",
        f"{tmp_path / 'broken_arch.py'}:Net": "failed: ModuleNotFoundError: No module named 'a_package_nobody",
        f"{tmp_path / 'raises_arch.py'}:Net": "failed: SystemError: bad state",
        "not a module:Net": "is neither module:Class nor file.py:Class",
        f"{code}:": "is neither module:Class nor file.py:Class",
    }
    for architecture, message in cases.items():
        with pytest.raises(InvalidParameterError) as caught:
            _load(weights, architecture)
        assert message in str(caught.value), architecture


@pytest.mark.usefixtures("clean_modules")
def test_weights_of_another_network_do_not_fit(tmp_path: Path) -> None:
    _weights(_write_nets(tmp_path / "wide", features=64, classes=10), tmp_path / "model.safetensors")
    narrow = _write_nets(tmp_path / "narrow", features=64, classes=3)
    with pytest.raises(FileFormatError, match="do not fit the architecture"):
        _load(tmp_path / "model.safetensors", f"{narrow}:Net")


@pytest.mark.usefixtures("clean_modules")
def test_the_cli_audits_a_users_network_white_box(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _write_nets(tmp_path / "code", features=4, classes=2)
    _weights(code, tmp_path / "model.safetensors")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(60, 4)).astype(np.float32)
    rows = ["a,b,c,d,label", *(f"{','.join(f'{v:.6f}' for v in row)},{int(row[0] > 0.5)}" for row in x)]
    (tmp_path / "test.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    base = ["audit", "--model", str(tmp_path / "model.safetensors"), "--data", str(tmp_path / "test.csv")]
    assert main([*base, "--arch", f"{code}:Net", "--checks", "baseline", "--format", "json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert report["findings"]
    assert main([*base, "--arch", f"{code}:Nett", "--checks", "baseline", "--format", "json"]) == 2
    assert f"--arch {code}:Class" in capsys.readouterr().err
