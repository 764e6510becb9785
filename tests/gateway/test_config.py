"""Command-line overrides of the configuration are validated like the file, and their errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelshield.errors import InvalidParameterError
from modelshield.gateway.config import parse_config, template


def test_a_source_flag_replaces_the_files_source() -> None:
    config = parse_config(template(source='file = "/models/m.onnx"'), base=Path("/srv/gw"))
    swapped = config.with_source(registry="churn@production")
    assert (swapped.model.source, swapped.model.registry, swapped.model.file) == ("registry", "churn@production", None)
    assert config.with_source() is config
    assert not config.with_model(require_signature=False, public_key=None).model.require_signature


def test_a_bad_override_names_its_key() -> None:
    config = parse_config(template(source='file = "/models/m.onnx"'), base=Path("/srv/gw"))
    with pytest.raises(InvalidParameterError, match=r"\[model\]: registry takes NAME@STAGE"):
        config.with_source(registry="churn")
    with pytest.raises(InvalidParameterError, match=r"\[model\] poll_s"):
        config.with_model(poll_s=-1)
