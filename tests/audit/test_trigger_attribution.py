"""Ground truth for the backdoor finding's explanation: models trained on data poisoned with a trigger whose place is
known, explained by the poisoning check's own code. The attribution must concentrate where the trigger is, and move
with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelshield.attacks.poisoning import Backdoor, feature_trigger, patch_trigger, poison, trigger_footprint
from modelshield.audit.checks.poisoning import _poisoned_model, _trigger_attribution
from modelshield.zoo import load_target


@pytest.mark.slow  # two digits-cnn trainings
@pytest.mark.parametrize("position", ["top-left", "bottom-right"])
def test_the_attribution_of_a_backdoored_network_lies_on_its_trigger(zoo_cache: Path, position: str) -> None:
    target = load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")
    assert target.train is not None
    trigger = patch_trigger((1, 8, 8), shape="square", size=3, position=position, low=0.0, high=1.0)  # type: ignore[arg-type]
    attack = Backdoor(trigger, 4)
    model = _poisoned_model(target, poison(target.train, attack, 0.05, seed=0).dataset, seed=0)
    result, note = _trigger_attribution(target, attack, model, seed=0)
    assert result is not None, note
    assert result.records >= 50 and result.explainer == "integrated_gradients"
    assert result.top_on_trigger and result.lift >= 2 and result.share_backdoored > result.share_audited, result
    assert result.heat is not None
    hottest = np.unravel_index(int(np.argmax(result.heat)), (8, 8))
    assert trigger_footprint(trigger)[0][hottest], (position, hottest)  # the brightest pixel is a trigger pixel


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_backdoored_tree_model_puts_its_attribution_on_the_trigger_features(zoo_cache: Path, seed: int) -> None:
    """Three draws of three of the 30 features; gradient boosting needs only one rare value to recognise the trigger,
    so the test asks for the share of the three and the top input, not for all three at the top."""
    target = load_target("zoo:cancer-gbm", cache_dir=zoo_cache)
    assert target.train is not None
    names = target.train.schema.names
    trigger = feature_trigger(target.train.x, n_features=3, names=names, seed=seed)
    attack = Backdoor(trigger, 0)
    model = _poisoned_model(target, poison(target.train, attack, 0.05, seed=0).dataset, seed=0)
    result, note = _trigger_attribution(target, attack, model, seed=0)
    assert result is not None, note
    assert result.explainer == "tree_shap" and result.trigger_values == 3
    assert set(result.trigger_inputs) == {names[i] for i in trigger.features}
    assert result.top_on_trigger and result.lift >= 2 and result.share_backdoored > result.share_audited, result


def test_nothing_to_point_at_without_a_poisoned_model_or_a_region(zoo_cache: Path) -> None:
    from modelshield.attacks.poisoning import blend_trigger

    target = load_target("zoo:phishing-gbm", cache_dir=zoo_cache)
    assert target.train is not None
    attack = Backdoor(feature_trigger(target.train.x, n_features=3, seed=1), 0)
    assert _trigger_attribution(target, attack, None, seed=0) == (
        None,
        "the training recipe is neither PyTorch nor scikit-learn, so no poisoned model was kept",
    )
    assert trigger_footprint(blend_trigger((1, 8, 8), alpha=0.2, seed=0)) is None


@pytest.mark.slow  # a digits-cnn training
def test_a_black_box_audited_model_too_costly_to_explain_leaves_its_share_out(
    zoo_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audited model behind predict_proba only, with a query limit too small for one sampled-SHAP row: the
    backdoored model is still explained, the audited model's share is left out, and nothing raises."""
    import dataclasses

    from modelshield.audit.checks import poisoning
    from modelshield.models.interface import Classifier

    class BlackBox(Classifier):
        def __init__(self, inner: Classifier) -> None:
            super().__init__(n_classes=inner.n_classes, input_shape=inner.input_shape)
            self.inner = inner

        def _predict_proba(self, x: np.ndarray) -> np.ndarray:
            return self.inner.predict_proba(x)

    monkeypatch.setattr(poisoning, "TRIGGER_MAX_QUERIES", 100)
    target = load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")
    assert target.train is not None
    attack = Backdoor(patch_trigger((1, 8, 8), size=3, position="bottom-right"), 4)
    model = _poisoned_model(target, poison(target.train, attack, 0.05, seed=0).dataset, seed=0)
    black_box = dataclasses.replace(target, classifier=BlackBox(target.classifier))
    result, note = _trigger_attribution(black_box, attack, model, seed=0)
    assert result is not None, note
    assert result.share_audited is None and result.top_on_trigger
