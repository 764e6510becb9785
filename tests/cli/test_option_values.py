"""Option values out of range or outside their choices are usage errors (exit 2) before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.cli import main
from modelshield.cli.options import KEY_ALGORITHMS, SEVERITIES
from modelshield.findings import Severity
from modelshield.supply_chain.keys import KeyAlgorithm


def test_the_cli_lists_match_the_library() -> None:
    assert tuple(a.value for a in KeyAlgorithm) == KEY_ALGORITHMS
    assert tuple(s.value for s in Severity) == SEVERITIES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keygen", "--out", "{t}", "--algorithm", "rsa"], "'rsa' is not one of"),
        (["sign", "{t}", "--key", "{t}/k.key", "--shard-size", "0"], "'--shard-size': 0 is not in the range"),
        (["decrypt", "{t}/x.age", "--output", "{t}/x", "--max-work-factor", "64"], "64 is not in the range"),
        (["registry", "promote", "m", "1", "--public-key", "{t}/k.pub", "--fail-on", "never"], "'never' is not one of"),
    ],
)
def test_bad_values_are_usage_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.format(t=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing started
