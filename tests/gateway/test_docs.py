"""docs/gateway.md shows the configuration template as `gateway init` writes it."""

from __future__ import annotations

from pathlib import Path

from modelshield.gateway.config import template

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"


def test_the_documented_template_is_the_real_one() -> None:
    text = DOC.read_text()
    start = text.index("```toml\n", text.index("## Configuration reference")) + len("```toml\n")
    end = text.index("```\n", start)
    assert text[start:end] == template()
