"""A third-party package (tests/plugins/example_plugin, installed in the test venv by `make install`) adds a check,
an attack, a scanner and a guard through entry points; modelshield discovers each, lists it, runs it, and the
plug-in passes the conformance suite of its kind."""

from __future__ import annotations

import json
import pickle
from importlib import metadata
from pathlib import Path

import pytest

from modelshield.testing import check_attack, check_check, check_guard, check_scanner, tiny_target

pytestmark = pytest.mark.skipif(
    not any(e.name == "example-check" for e in metadata.entry_points(group="modelshield.checks")),
    reason="the example plug-in package is not installed (make install installs it)",
)


def test_the_plugin_check_is_listed_and_audit_runs_it(capsys: pytest.CaptureFixture[str]) -> None:
    from modelshield.audit import AuditOptions, Auditor, default_registry
    from modelshield.cli import main

    registry = default_registry()
    assert "example-plugin-check" in registry.names()
    assert "example-plugin-check" not in default_registry(entry_points=False).names()
    target = tiny_target("tabular")
    check_check(registry.get("example-plugin-check"), target)

    report = Auditor(AuditOptions(checks=("example-plugin-check",))).run(target)
    assert [c.name for c in report.checks] == ["example-plugin-check"]
    assert [f.id for f in report.findings] == ["example-plugin.stability"]
    # not a default check: an audit that names no checks leaves it out
    assert "example-plugin-check" not in [c.name for c in Auditor(AuditOptions()).checks]

    assert main(["checks"]) == 0
    assert "example-plugin-check" in capsys.readouterr().out


def test_the_plugin_attack_is_listed_and_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from modelshield.attacks.registry import default_attack_registry, run_attack
    from modelshield.cli import main

    registry = default_attack_registry()
    attack = registry.get("example-noise")
    target = tiny_target("image")
    result = run_attack("example-noise", target, seed=3, registry=registry)
    assert result.attack == "example-noise(eps=0.1)"
    assert result.queries == 2 * min(100, len(target.test))
    check_attack(attack, tiny_target("image"))

    assert main(["attacks", "--format", "json"]) == 0
    listed = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert {"example-noise", "pgd"} <= listed


def test_the_plugin_scanner_runs_on_every_scan(tmp_path: Path) -> None:
    from modelshield.supply_chain.scan import scan_file
    from modelshield.supply_chain.scan.registry import default_registry

    registry = default_registry()
    scanner = registry.get("example-plugin-marker")
    marked = tmp_path / "marked.pkl"
    marked.write_bytes(pickle.dumps({"note": "EXAMPLE-PLUGIN-MARKER"}))
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"note": "nothing to see"}))
    assert [f.id for f in scan_file(marked).findings] == ["example-plugin.marker"]
    assert scan_file(plain).findings == ()
    check_scanner(scanner, [marked.read_bytes(), plain.read_bytes()])


def test_the_plugin_guard_is_created_fresh_and_conforms() -> None:
    from modelshield.defenses.registry import default_registry

    registry = default_registry()
    assert "example-clip" in registry.names()
    first, second = registry.create("example-clip"), registry.create("example-clip")
    assert first is not second
    target = tiny_target("tabular")
    check_guard(registry.get("example-clip"), target.classifier, target.train.x, target.train.y)
