"""The trigger-family generator the sanitiser is measured with: fresh draws every time, in range, where each family
says it draws them, and the mask trigger's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from modelshield.attacks.poisoning.triggers import (
    TRIGGER_FAMILIES,
    BlendTrigger,
    FeatureTrigger,
    MaskTrigger,
    PatchTrigger,
    random_trigger,
)
from modelshield.errors import InvalidInputError, InvalidParameterError

IMAGES = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
TABLE = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32) * 10


@pytest.mark.parametrize("family", [f for f in TRIGGER_FAMILIES if f != "feature"])
def test_image_families_draw_a_different_in_range_trigger_every_time(family: str) -> None:
    rng = np.random.default_rng(0)
    stamped = [random_trigger(family, IMAGES, rng).apply(IMAGES[:1])[0] for _ in range(20)]  # type: ignore[arg-type]
    assert all(s.shape == IMAGES.shape[1:] and s.min() >= 0 and s.max() <= 1 for s in stamped)
    assert len({s.tobytes() for s in stamped}) == 20  # never the same twice
    assert all(not np.array_equal(s, IMAGES[0]) for s in stamped)  # each changes the image


def test_central_patches_keep_away_from_the_border_and_corner_patches_touch_it() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        central = random_trigger("central", IMAGES, rng)
        assert isinstance(central, PatchTrigger)
        h, w = central.pattern.shape[1:]
        assert central.row >= 2 and central.row + h <= 6 and central.col >= 2 and central.col + w <= 6
        border = random_trigger("corner", IMAGES, rng)
        assert isinstance(border, PatchTrigger)
        h, w = border.pattern.shape[1:]
        assert border.row in (0, 8 - h) or border.col in (0, 8 - w)
        assert border.pattern.max() == IMAGES.max()  # never an all-dark patch


def test_blended_and_distributed_draws_are_blends_or_masks() -> None:
    rng = np.random.default_rng(0)
    blends = [random_trigger("blended", IMAGES, rng) for _ in range(30)]
    assert {type(b) for b in blends} == {BlendTrigger, MaskTrigger}
    assert all(0.1 <= b.alpha <= 0.25 for b in blends if isinstance(b, BlendTrigger))
    scattered = random_trigger("distributed", IMAGES, rng)
    assert isinstance(scattered, MaskTrigger) and scattered.alpha == 1.0
    assert 4 <= int(scattered.mask.sum()) <= 8  # 1/16 to 1/8 of 64 pixels


def test_feature_triggers_set_one_to_three_features_within_their_range() -> None:
    rng = np.random.default_rng(0)
    draws = [random_trigger("feature", TABLE, rng) for _ in range(40)]
    assert all(isinstance(d, FeatureTrigger) for d in draws)
    assert {len(d.features) for d in draws} == {1, 2, 3}  # type: ignore[union-attr]
    for d in draws:
        assert isinstance(d, FeatureTrigger)
        for f, v in zip(d.features, d.values, strict=True):
            assert TABLE[:, f].min() <= v <= TABLE[:, f].max()


def test_mask_trigger_mixes_the_pattern_in_where_the_mask_is_set() -> None:
    pattern = np.ones((1, 2, 2), np.float32)
    mask = np.array([[[1, 0], [0, 0]]], np.float32)
    out = MaskTrigger(pattern=pattern, mask=mask, alpha=0.5).apply(np.zeros((1, 1, 2, 2), np.float32))
    assert out.tolist() == [[[[0.5, 0.0], [0.0, 0.0]]]]
    with pytest.raises(InvalidParameterError, match="alpha"):
        MaskTrigger(pattern=pattern, mask=mask, alpha=0.0)
    with pytest.raises(InvalidParameterError, match="selects no value"):
        MaskTrigger(pattern=pattern, mask=np.zeros_like(mask), alpha=1.0)


def test_random_trigger_refuses_unknown_families_and_images_for_tabular_families() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidParameterError, match="Unknown trigger family"):
        random_trigger("sticker", IMAGES, rng)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="needs images"):
        random_trigger("central", TABLE, rng)
