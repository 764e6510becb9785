"""Reference targets: trained reproducibly, cached by content, rebuilt when tampered with."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from modelshield._internal.hashing import sha256_file
from modelshield.data import load_bundled
from modelshield.errors import UnknownTargetError
from modelshield.models import GradientClassifier
from modelshield.testing import check_classifier
from modelshield.zoo import ZOO, architecture, load_target, status
from modelshield.zoo.catalog import RECIPE_VERSION


def test_digits_cnn_is_a_working_white_box_target(zoo_cache: Path) -> None:
    target = load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")
    assert isinstance(target.classifier, GradientClassifier)
    assert target.classifier.input_shape == (1, 8, 8)
    assert target.model_format == "safetensors"
    assert target.model_path is not None and target.model_path.is_file()
    assert target.classifier.accuracy(target.test.x, target.test.y) > 0.9
    check_classifier(target.classifier, target.test.x[:16])


def test_cache_is_reused_and_tampering_is_rebuilt(zoo_cache: Path) -> None:
    first = load_target("cancer-gbm", cache_dir=zoo_cache)
    assert first.model_path is not None
    stamp = first.model_path.stat().st_mtime_ns
    again = load_target("cancer-gbm", cache_dir=zoo_cache)
    assert again.model_path == first.model_path
    assert again.model_path is not None and again.model_path.stat().st_mtime_ns == stamp  # not retrained

    first.model_path.write_bytes(first.model_path.read_bytes() + b"\x00")  # tamper
    tampered = sha256_file(first.model_path)
    rebuilt = load_target("cancer-gbm", cache_dir=zoo_cache)
    assert rebuilt.model_path is not None
    recorded = json.loads((rebuilt.model_path.parent / "meta.json").read_text())["model_sha256"]
    assert sha256_file(rebuilt.model_path) == recorded != tampered
    assert rebuilt.classifier.accuracy(rebuilt.test.x, rebuilt.test.y) == first.classifier.accuracy(
        first.test.x, first.test.y
    )


def test_training_is_reproducible(tmp_path: Path, global_setters: list[str]) -> None:
    """The same bytes for the same seed, whatever state torch's global generator is in (another thread may be
    drawing from it); training neither seeds it nor sets the thread count."""
    torch = pytest.importorskip("torch")
    calls = global_setters
    torch.default_generator.manual_seed(1)
    a = load_target("digits-mlp", cache_dir=tmp_path / "a", device="cpu")
    torch.default_generator.manual_seed(2)
    b = load_target("digits-mlp", cache_dir=tmp_path / "b", device="cpu")
    assert a.model_sha256 == b.model_sha256
    assert calls == []
    c = load_target("digits-mlp", cache_dir=tmp_path / "c", device="cpu", seed=1)
    assert c.model_sha256 != a.model_sha256


@pytest.mark.parametrize("name", [n for n, e in ZOO.items() if e.family == "torch"])
def test_networks_start_from_the_weights_of_recipe_version_1(name: str) -> None:
    """Initialising from a local generator draws exactly what ``torch.manual_seed(seed)`` then building did, so the
    trained targets (and their cache keys, RECIPE_VERSION 1) stay valid. If this fails, bump RECIPE_VERSION."""
    torch = pytest.importorskip("torch")
    from modelshield.models.nets import seeded_network

    data = load_bundled(ZOO[name].dataset)
    factory = architecture(name, data.schema.input_shape, data.n_classes)
    torch.default_generator.manual_seed(3)
    before = factory().state_dict()
    torch.default_generator.manual_seed(4)  # must not matter
    now = seeded_network(factory, 3).state_dict()
    assert RECIPE_VERSION == 1
    assert list(now) == list(before)
    assert all(torch.equal(now[k], before[k]) for k in before)


def test_concurrent_first_loads_share_one_entry(tmp_path: Path) -> None:
    """Two threads that load the same target from an empty cache both train it; the second to finish keeps the
    first one's entry (which the first may be reading) instead of replacing it."""
    start = threading.Barrier(2)

    def load(_: int) -> str | None:
        start.wait()
        return load_target("cancer-mlp", cache_dir=tmp_path, device="cpu").model_sha256

    with ThreadPoolExecutor(max_workers=2) as pool:
        digests = list(pool.map(load, range(2)))
    assert digests[0] is not None and digests[0] == digests[1]
    (entry,) = tmp_path.iterdir()  # one entry, no staging directory left behind
    assert entry.name.startswith("cancer-mlp-")


def test_overfit_variant_overfits_more_than_the_regularised_one(zoo_cache: Path) -> None:
    loose = status("cancer-mlp-overfit", cache_dir=zoo_cache)
    tight = status("cancer-mlp", cache_dir=zoo_cache)
    assert loose.train_accuracy == 1.0
    # The loss gap between unseen and training data is what membership inference exploits.
    assert loose.test_loss is not None and loose.train_loss is not None
    assert tight.test_loss is not None and tight.train_loss is not None
    assert loose.test_loss - loose.train_loss > 1.5 * (tight.test_loss - tight.train_loss)


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(UnknownTargetError, match="Unknown reference target 'zoo:nope'") as err:
        load_target("zoo:nope")
    assert "zoo:digits-cnn" in err.value.remedy


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_target_builds_and_beats_chance(name: str, zoo_cache: Path) -> None:
    target = load_target(name, cache_dir=zoo_cache, device="cpu")
    accuracy = target.classifier.accuracy(target.test.x, target.test.y)
    chance = np.bincount(target.test.y).max() / len(target.test)
    assert accuracy > chance + 0.5 * (1 - chance), f"{name}: {accuracy:.3f} vs majority class {chance:.3f}"
    check_classifier(target.classifier, target.test.x[:16])
