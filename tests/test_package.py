"""The public surface: light imports, complete __all__, install hints for missing extras."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import modelshield
from modelshield._extras import require
from modelshield.errors import MissingExtraError, ModelShieldError


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import sys, modelshield, modelshield.models, modelshield.data, modelshield.findings, modelshield.cli;"
        "heavy = [m for m in ('torch', 'onnxruntime', 'sklearn', 'mlxtend', 'river') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(modelshield.__path__, "modelshield.")]


@pytest.mark.parametrize("name", _modules())
def test_every_module_imports_and_lists_what_it_exports(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    for exported in getattr(module, "__all__", ()):
        assert hasattr(module, exported), f"{name}.__all__ names {exported!r}, which is missing"


def test_missing_extra_names_the_install_command() -> None:
    with pytest.raises(MissingExtraError) as err:
        require("modelshield_no_such_package.sub", extra="torch", feature="Testing")
    assert err.value.remedy == "pip install 'modelshield[torch]'"
    assert isinstance(err.value, ImportError)
    assert isinstance(err.value, ModelShieldError)


def test_broken_inner_import_is_not_disguised_as_missing_extra(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "brokenpkg_ms").mkdir()
    (tmp_path / "brokenpkg_ms" / "__init__.py").write_text("import modelshield_missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as err:
        require("brokenpkg_ms", extra="x", feature="y")
    assert not isinstance(err.value, MissingExtraError)


def test_error_diagnostics_carry_a_remedy() -> None:
    err = ModelShieldError("It broke.", remedy="Fix it.")
    assert err.diagnostics() == "It broke.\nWhat to do: Fix it."


def test_facade_audits_a_zoo_target(zoo_cache, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from modelshield.zoo import load_target

    target = load_target("zoo:cancer-gbm", cache_dir=zoo_cache)
    report = modelshield.run_audit(target, checks=["integrity"], seed=1)
    assert report.target.name == "zoo:cancer-gbm"
    assert [c.name for c in report.checks] == ["integrity"]


def test_module_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "modelshield", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"modelshield {modelshield.__version__}"


def _public_api(module: object, name: str) -> set[str]:
    """Classes and functions a module offers: those it defines, and for a package those it takes from modelshield."""
    import inspect

    package = hasattr(module, "__path__")
    found = set()
    for attr, obj in vars(module).items():
        if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        origin = getattr(obj, "__module__", "") or ""
        if origin == name or (package and origin.startswith("modelshield.")):
            found.add(attr)
    return found


_API_MODULES = [
    m
    for m in _modules()
    # private modules (a segment starting with _) and the CLI's command modules (its API is `main`) are not API
    if not any(part.startswith("_") for part in m.split(".")[1:]) and not m.startswith("modelshield.cli.")
]


@pytest.mark.parametrize("name", _API_MODULES)
def test_every_public_class_and_function_is_in_all(name: str) -> None:
    """__all__ is complete, not only correct: what a module defines for others to use is listed."""
    module = importlib.import_module(name)
    exported = set(getattr(module, "__all__", ()))
    missing = sorted(_public_api(module, name) - exported)
    assert missing == [], f"{name} defines {missing} without listing them in __all__ (or prefix them with _)"


def test_the_facade_offers_exactly_its_all() -> None:
    expected = {
        "Finding", "ModelShieldError", "Report", "Severity", "Target", "VerificationError", "__version__",
        "load_model", "load_target", "run_audit", "scan_file", "verify_model",
    }  # fmt: skip
    assert set(modelshield.__all__) == expected
    for name in expected:
        assert getattr(modelshield, name) is not None
    assert modelshield.Target.__name__ == "Target"
