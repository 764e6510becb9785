"""``modelshield harden --defense dp-sgd``: the privacy comparison end to end, and its input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelshield.cli import main


def test_dp_options_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "m.safetensors")
    base = ["harden", "--target", "zoo:cancer-mlp-overfit", "--out", out]
    assert main([*base, "--defense", "dp-sgd"]) == 2
    assert "needs --epsilon" in capsys.readouterr().err
    assert main([*base, "--defense", "trades", "--epsilon", "8"]) == 2
    assert "belong to --defense dp-sgd" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.slow
def test_dp_sgd_compares_membership_before_and_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "dp.safetensors"
    argv = ["harden", "--target", "zoo:cancer-mlp-overfit", "--defense", "dp-sgd", "--epsilon", "4"]
    code = main([*argv, "--epochs", "3", "--reference-models", "3", "--out", str(out), "--format", "json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["defense"] == "dp-sgd"
    assert result["privacy"]["epsilon"] <= 4.0 + 1e-6
    for side in ("before", "after"):
        membership = result[side]["membership"]
        assert {p["fpr_target"] for p in membership["tpr_at_fpr"]} == {0.001, 0.01}
        assert membership["recipe"]["non_members"] > membership["non_members"]  # pooled over reference models
    assert out.exists() and Path(result["comparison"]).exists()
