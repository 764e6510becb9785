"""Training-time defenses, the feature-squeezing detector, harden() and the `harden` command, on zoo:digits-cnn; the
inference-guard types, registry and the package's exports."""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from modelshield._internal.plugins import GUARDS_GROUP
from modelshield.attacks.evasion.evaluation import evaluate_robustness
from modelshield.attacks.evasion.whitebox import pgd
from modelshield.cli import harden as harden_cli
from modelshield.defenses import default_registry
from modelshield.defenses.detectors import FeatureSqueezingDetector, measure_detector
from modelshield.defenses.extraction_monitor import ExtractionMonitor
from modelshield.defenses.interface import (
    Action,
    ClientStates,
    GuardDecision,
    GuardRequest,
    GuardStage,
    InferenceGuard,
)
from modelshield.defenses.output import LabelOnly, TopK
from modelshield.defenses.registry import GuardFactory
from modelshield.defenses.training import (
    EnsembleModule,
    adversarial_training,
    defensive_distillation,
    ensemble,
    standard_training,
    trades,
)
from modelshield.errors import (
    InvalidInputError,
    InvalidParameterError,
    NotFittedError,
    RegistrationError,
    UnknownTargetError,
)
from modelshield.harden import Defense, harden, load_hardened
from modelshield.models.serialization import load_torch_weights
from modelshield.models.torch_classifier import TorchClassifier
from modelshield.target import Target
from modelshield.zoo import architecture, load_target

SHAPE, CLASSES = (1, 8, 8), 10


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny networks: one intra-op thread is faster and does not thrash a shared 2-core runner."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits(zoo_cache: Path) -> Target:
    return load_target("zoo:digits-cnn", cache_dir=zoo_cache, device="cpu")


def _factory() -> torch.nn.Module:
    return architecture("digits-cnn", SHAPE, CLASSES)()


def _pgd_accuracy(clf: TorchClassifier, target: Target, eps: float, n: int = 150) -> float:
    x, y = target.test.x[:n], target.test.y[:n]
    return pgd(clf, x, y, eps=eps, steps=20, seed=0).robust_accuracy


# -- training ------------------------------------------------------------------------------------------------------


def test_adversarial_training_raises_robust_accuracy(digits: Target) -> None:
    """12 epochs, 50/50 clean and PGD-3 batches at ε=0.1. Measured: PGD-20 accuracy at ε=0.1 on 150 test inputs
    42.7% -> 65.3%; clean accuracy 98.2% -> 97.1%; 3 s of training."""
    trained = adversarial_training(_factory, digits.train, eps=0.1, steps=3, mix=0.5, epochs=12, seed=0)
    before, after = _pgd_accuracy(digits.classifier, digits, 0.1), _pgd_accuracy(trained.classifier, digits, 0.1)
    clean_before = digits.classifier.accuracy(digits.test.x, digits.test.y)
    clean_after = trained.classifier.accuracy(digits.test.x, digits.test.y)
    assert after > before + 0.15
    assert clean_after > clean_before - 0.04
    assert trained.seconds > 0 and len(trained.epoch_losses) == 12
    assert trained.defense.startswith("adversarial-training(")


def test_training_is_deterministic_under_a_seed(digits: Target) -> None:
    runs = [adversarial_training(_factory, digits.train, eps=0.1, steps=2, epochs=1, mix=0.5, seed=3) for _ in "ab"]
    states = [r.module.state_dict() for r in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = standard_training(_factory, digits.train, epochs=1, seed=4).module.state_dict()
    assert not all(torch.equal(states[0][k], other[k]) for k in other)


def test_ensemble_predicts_the_average(digits: Target) -> None:
    trained = ensemble(_factory, digits.train, members=3, epochs=1, seed=0)
    module = trained.module
    assert isinstance(module, EnsembleModule) and len(module.members) == 3
    x = digits.test.x[:50]
    with torch.no_grad():
        each = torch.stack([torch.softmax(m(torch.from_numpy(x.copy())), dim=1) for m in module.members])
    np.testing.assert_allclose(trained.classifier.predict_proba(x), each.mean(0).numpy(), atol=1e-5)
    logits = EnsembleModule(list(module.members), combine="logits")
    with torch.no_grad():
        xt = torch.from_numpy(x.copy())
        expected = torch.stack([m(xt) for m in module.members]).mean(0)
        torch.testing.assert_close(logits(xt), expected)
    assert trained.classifier.loss_gradient(x[:4], digits.test.y[:4]).shape == (4, *SHAPE)  # still white-box


def test_bad_hyper_parameters_are_refused(digits: Target) -> None:
    with pytest.raises(InvalidParameterError, match="eps"):
        adversarial_training(_factory, digits.train, eps=0.0)
    with pytest.raises(InvalidParameterError, match="mix"):
        adversarial_training(_factory, digits.train, eps=0.1, mix=1.5)
    with pytest.raises(InvalidParameterError, match="beta"):
        trades(_factory, digits.train, eps=0.1, beta=-1)
    with pytest.raises(InvalidParameterError, match="temperature"):
        defensive_distillation(_factory, digits.train, temperature=0.5)
    with pytest.raises(InvalidParameterError, match="optimizer"):
        standard_training(_factory, digits.train, optimizer="rmsprop")  # type: ignore[arg-type]


@pytest.mark.slow
def test_adversarial_training_full(digits: Target) -> None:
    """Zoo recipe (30 epochs), PGD-7 at ε=0.1; worst case over FGSM/PGD/APGD-CE/APGD-DLR on all 450 test inputs.

    Measured (CPU, seed 0): clean 98.2% -> 98.4%; robust at ε=0.05 86.0% -> 93.1%, ε=0.1 46.2% -> 77.6%,
    ε=0.2 0.4% -> 13.1%; training 14.6 s. The hardened model's evaluation raises `more-effort-helps` at ε=0.2
    (PGD-160 with restarts 14% vs PGD-40 19%), which the worst case (13.1%) already accounts for.
    """
    trained = adversarial_training(_factory, digits.train, eps=0.1, seed=0)
    x, y = digits.test.x, digits.test.y
    before = evaluate_robustness(digits.classifier, x, y, eps=(0.05, 0.1, 0.2), seed=0)
    after = evaluate_robustness(trained.classifier, x, y, eps=(0.05, 0.1, 0.2), seed=0)
    assert after.worst[1] > before.worst[1] + 0.2
    assert after.clean_accuracy > before.clean_accuracy - 0.03
    assert "unbounded" not in {r.id for r in after.reliability}


@pytest.mark.slow
def test_trades_full(digits: Target) -> None:
    """TRADES, β=6, PGD-7 on the KL at ε=0.1, 30 epochs. Measured (CPU, seed 0): clean 97.3%; robust at ε=0.05
    92.7%, ε=0.1 78.7%, ε=0.2 28.7% (baseline 86.0 / 46.2 / 0.4%); training 18.3 s; no reliability finding."""
    trained = trades(_factory, digits.train, eps=0.1, seed=0)
    x, y = digits.test.x, digits.test.y
    after = evaluate_robustness(trained.classifier, x, y, eps=(0.05, 0.1, 0.2), seed=0)
    assert after.worst[1] > 0.65
    assert after.clean_accuracy > 0.95
    assert after.reliable


@pytest.mark.slow
def test_distillation_is_flagged_not_robust(digits: Target) -> None:
    """Defensive distillation at T=20, 30 epochs each for teacher and student. Measured (CPU, seed 0): clean 92.0%;
    worst-case robust 74.2 / 42.0 / 1.8% at ε=0.05 / 0.1 / 0.2, i.e. no better than the undefended 86.0 / 46.2 /
    0.4%; PGD-CE alone reports 32.9% at ε=0.2 but APGD-DLR 2.2% (masked cross-entropy gradients), and the
    evaluation raises `unbounded` (2.7% left at ε=1) and `more-effort-helps`."""
    trained = defensive_distillation(_factory, digits.train, seed=0)
    x, y = digits.test.x, digits.test.y
    before = evaluate_robustness(digits.classifier, x, y, eps=(0.05, 0.1, 0.2), seed=0)
    after = evaluate_robustness(trained.classifier, x, y, eps=(0.05, 0.1, 0.2), seed=0)
    looks_more_robust = after.worst[1] > before.worst[1] + 0.05
    assert after.reliability or not looks_more_robust


# -- detector ------------------------------------------------------------------------------------------------------


def test_feature_squeezing_detects_pgd(digits: Target) -> None:
    """Fit on half the test split, measure on the other half against PGD-40 at ε=0.1 (successful examples only).

    Measured: detection rate 95.8%, false-positive rate 5.3% (target 5%), ROC AUC 0.988.
    """
    clf = digits.classifier
    order = np.random.default_rng(0).permutation(len(digits.test))
    fit_idx, held = order[:225], order[225:]
    detector = FeatureSqueezingDetector(fpr=0.05).fit(clf, digits.test.x[fit_idx])
    attack = pgd(clf, digits.test.x[held], digits.test.y[held], eps=0.1, steps=40, seed=0)
    adversarial = attack.x_adv[attack.success & attack.clean_correct]
    m = measure_detector(detector, digits.test.x[held], adversarial)
    assert m.false_positive_rate <= 0.12
    assert m.detection_rate > 0.8 > 5 * m.false_positive_rate
    assert m.auc > 0.95
    assert detector.is_adversarial(adversarial).mean() == pytest.approx(m.detection_rate)
    detection_rate, fpr, auc = m  # a plain tuple as well
    assert (detection_rate, fpr, auc) == (m.detection_rate, m.false_positive_rate, m.auc)
    mixed = np.concatenate([adversarial[:10], digits.test.x[held][:10]])
    before = clf.queries
    decision = detector.inspect(GuardRequest("mallory", mixed))
    assert clf.queries - before == decision.queries == 20 * 2  # the input and its 3-bit squeeze
    assert decision.stage is GuardStage.INPUT and decision.probabilities is None
    np.testing.assert_array_equal(decision.flagged, detector.is_adversarial(mixed))
    np.testing.assert_allclose(decision.scores, detector.score(mixed))
    assert decision.action is Action.FLAG and "feature-squeezing" in decision.reasons[0]


def test_detector_threshold_matches_fpr_on_fitting_data(digits: Target) -> None:
    detector = FeatureSqueezingDetector(bit_depth=4, median_size=2, fpr=0.1).fit(digits.classifier, digits.test.x)
    assert [s.name for s in detector.squeezers_] == ["bit-depth-4", "median-2x2"]
    assert np.mean(detector.clean_scores_ > detector.threshold_) <= 0.1
    squeezed = detector.squeeze(digits.test.x[:5], "bit-depth-4")
    assert np.allclose(squeezed * 15, np.round(squeezed * 15), atol=1e-5)
    with pytest.raises(NotFittedError):
        FeatureSqueezingDetector().score(digits.test.x[:2])
    with pytest.raises(NotFittedError):
        FeatureSqueezingDetector().inspect(GuardRequest("c", digits.test.x[:2]))
    with pytest.raises(InvalidParameterError):
        FeatureSqueezingDetector(fpr=1.0)
    with pytest.raises(InvalidInputError):
        detector.inspect(GuardRequest("c", digits.test.x[:2].reshape(2, -1)))


# -- harden --------------------------------------------------------------------------------------------------------


def test_harden_writes_weights_and_comparison(digits: Target, tmp_path: Path) -> None:
    result = harden(digits, "adversarial-training", eps=0.1, seed=0, epochs=2, eval_eps=(0.1,), eval_n=30,
                    eval_steps=5)  # fmt: skip
    assert result.defense is Defense.ADVERSARIAL_TRAINING and result.n_eval == 30 and result.epochs == 2
    assert len(result.before.robust_accuracy) == len(result.after.robust_accuracy) == 1
    out = tmp_path / "models" / "digits-at.safetensors"
    report = result.save(out)
    assert report == tmp_path / "models" / "digits-at.safetensors.json"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, report.name]  # no temporary files left
    data = json.loads(report.read_text())
    assert data["defense"] == "adversarial-training" and data["weights"] == out.name
    assert data["before"]["clean_accuracy"] == result.before.clean_accuracy
    assert math.isclose(data["training_seconds"], result.training_seconds)
    x = digits.test.x[:40]
    net = architecture("digits-cnn", SHAPE, CLASSES)()
    load_torch_weights(net, out)
    reloaded = TorchClassifier(net, n_classes=CLASSES, input_shape=SHAPE, device="cpu")
    np.testing.assert_array_equal(reloaded.predict(x), result.classifier.predict(x))
    np.testing.assert_allclose(load_hardened(out, digits).predict_proba(x), result.classifier.predict_proba(x))


def test_harden_ensemble_round_trips(digits: Target, tmp_path: Path) -> None:
    result = harden(digits, Defense.ENSEMBLE, members=2, seed=0, epochs=1, eval_eps=(0.1,), eval_n=10,
                    eval_steps=2)  # fmt: skip
    out = tmp_path / "ensemble.safetensors"
    result.save(out)
    x = digits.test.x[:20]
    np.testing.assert_allclose(load_hardened(out, digits).predict_proba(x), result.classifier.predict_proba(x))


def test_harden_refuses_bad_defense_and_non_zoo_targets(digits: Target) -> None:
    with pytest.raises(InvalidParameterError, match="Unknown defense 'pixel-dust'"):
        harden(digits, "pixel-dust")
    own = Target(name="my-model.onnx", classifier=digits.classifier, test=digits.test, train=digits.train)
    with pytest.raises(InvalidParameterError, match="PyTorch reference targets") as info:
        harden(own, "trades")
    assert "zoo:digits-cnn" in info.value.remedy and "zoo:cancer-gbm" not in info.value.remedy
    sklearn_named = Target(name="zoo:cancer-gbm", classifier=digits.classifier, test=digits.test)
    with pytest.raises(InvalidParameterError, match="Cannot harden 'zoo:cancer-gbm'"):
        harden(sklearn_named, "ensemble")


# -- CLI -----------------------------------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    harden_cli.register(app)
    return app


def test_cli_harden_json(zoo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(zoo_cache))
    out = tmp_path / "hardened.safetensors"
    args = ["harden", "--target", "zoo:digits-cnn", "--defense", "trades", "--out", str(out), "--epochs", "1",
            "--eval-n", "20", "--eval-steps", "2", "--format", "json"]  # fmt: skip
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["defense"] == "trades" and data["eval_eps"] == [0.05, 0.1, 0.2]
    assert out.is_file() and Path(data["comparison"]).is_file()


def test_cli_harden_text_and_errors(zoo_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(zoo_cache))
    out = tmp_path / "d.safetensors"
    args = ["harden", "--target", "zoo:digits-cnn", "--defense", "distillation", "--out", str(out), "--epochs", "1",
            "--eval-n", "10", "--eval-steps", "2"]  # fmt: skip
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "clean accuracy" in result.stdout and "training seconds" in result.stdout
    bad = CliRunner().invoke(_app(), ["harden", "--target", "zoo:digits-cnn", "--defense", "magic", "--out", str(out)])
    assert bad.exit_code == 2
    unknown = CliRunner().invoke(_app(), ["harden", "--target", "zoo:nope", "--defense", "trades", "--out", str(out)])
    assert unknown.exit_code != 0 and "nope" in str(unknown.exception)


# -- the package surface and the guard registry ----------------------------------------------------------------------


def test_the_lazy_map_lists_each_name_once_and_every_export_resolves() -> None:
    from modelshield import defenses

    listed = [name for _, names in defenses._EXPORTS for name in names]
    assert sorted({n for n in listed if listed.count(n) > 1}) == []
    assert sorted(listed) == sorted(defenses.__all__)
    submodules = {m.name for m in pkgutil.iter_modules(defenses.__path__)}
    assert submodules.isdisjoint(listed)  # importing a submodule would rebind its name on the package
    for module, names in defenses._EXPORTS:
        for name in names:
            assert getattr(defenses, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError):
        defenses.MonitorNotFittedError  # noqa: B018 - merged into modelshield.errors.NotFittedError


def test_the_guard_registry_does_not_import_torch() -> None:
    code = (
        "import sys; from modelshield.defenses import default_registry; "
        "default_registry(entry_points=False).create('strip'); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_registry_hands_out_fresh_guards_of_their_stage() -> None:
    registry = default_registry(entry_points=False)
    assert registry.names() == (
        "feature-squeezing",
        "strip",
        "extraction-monitor",
        "top-k",
        "rounding",
        "label-only",
        "noise",
        "reverse-sigmoid",
    )
    first, second = registry.create("extraction-monitor"), registry.create("extraction-monitor")
    assert first is not second and type(first) is ExtractionMonitor
    for factory in registry:
        guard = factory()
        assert isinstance(guard, InferenceGuard) and guard.stage is factory.stage and factory.summary
    assert [f.name for f in registry.stage(GuardStage.INPUT)] == ["feature-squeezing", "strip"]
    with pytest.raises(RegistrationError, match="already registered"):
        registry.register(registry.get("top-k"))
    with pytest.raises(UnknownTargetError, match="Unknown guard 'nope'"):
        registry.create("nope")
    registry.register(GuardFactory("mislabelled", GuardStage.INPUT, TopK, "declares the wrong stage"))
    with pytest.raises(RegistrationError, match="input stage"):
        registry.create("mislabelled")
    registry.register(GuardFactory("nothing", GuardStage.INPUT, _not_a_guard, "builds no guard"))
    with pytest.raises(RegistrationError, match="not an InferenceGuard"):
        registry.create("nothing")


def _not_a_guard() -> Any:
    return object()


@dataclass(frozen=True)
class _EntryPoint:
    name: str
    value: str
    obj: object

    def load(self) -> object:
        return self.obj


ENTRY_POINTS = "modelshield._internal.plugins.entry_points"
PLUGIN_GUARD = GuardFactory("plugin-label", GuardStage.OUTPUT, LabelOnly, "A third party's guard.")


@pytest.mark.parametrize("declared", [PLUGIN_GUARD, lambda: PLUGIN_GUARD], ids=["factory", "callable"])
def test_guards_load_from_entry_points(monkeypatch: pytest.MonkeyPatch, declared: object) -> None:
    entry = _EntryPoint("plugin-label", "their_package:GUARD", declared)
    monkeypatch.setattr(ENTRY_POINTS, lambda group: [entry] if group == GUARDS_GROUP else [])
    registry = default_registry()
    assert registry.names()[-1] == "plugin-label"
    assert isinstance(registry.create("plugin-label"), LabelOnly)


def test_a_broken_guard_entry_point_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _EntryPoint("plugin-broken", "their_package:NOT_A_FACTORY", 42)
    monkeypatch.setattr(ENTRY_POINTS, lambda group: [entry] if group == GUARDS_GROUP else [])
    with pytest.raises(RegistrationError, match="'plugin-broken'"):
        default_registry()


def test_requests_and_decisions_are_validated_and_frozen() -> None:
    x = np.zeros((2, 3))
    with pytest.raises(InvalidInputError, match="batch"):
        GuardRequest("c", np.zeros(3))
    with pytest.raises(InvalidInputError, match="NaN"):
        GuardRequest("c", np.full((2, 3), np.nan))
    with pytest.raises(InvalidInputError, match="probabilities"):
        GuardRequest("c", x, probabilities=np.full((3, 2), 0.5))
    with pytest.raises(InvalidInputError, match="non-negative"):
        GuardRequest("c", x, probabilities=np.array([[1.5, -0.5], [0.5, 0.5]]))
    given = np.ones((2, 3))
    request = GuardRequest("c", given, probabilities=np.full((2, 2), 0.5))
    given[0, 0] = 7.0  # the request keeps its own copy
    assert request.x[0, 0] == 1.0 and request.x.dtype == np.float32 and not request.x.flags.writeable
    with pytest.raises(InvalidParameterError):
        GuardDecision("g", GuardStage.INPUT, "c", (Action.ALLOW,), np.zeros(2), None)
    with pytest.raises(InvalidParameterError):
        GuardDecision("g", GuardStage.OUTPUT, "c", (Action.ALLOW,), np.zeros(1), None)  # no probabilities
    decision = GuardDecision("g", GuardStage.INPUT, "c", (Action.ALLOW, Action.BLOCK), np.array([0.1, 0.9]), 0.5)
    assert decision.action is Action.BLOCK and decision.flagged.tolist() == [False, True]
    assert json.loads(json.dumps(decision.to_dict()))["actions"] == ["allow", "block"]
    with pytest.raises(ValueError, match="read-only"):
        decision.scores[0] = 1.0
    assert Action.worst([]) is Action.ALLOW


def test_client_states_are_bounded_and_least_recently_seen_go_first() -> None:
    states: ClientStates[list[int]] = ClientStates(list, max_clients=2)
    for client in ("a", "b", "a", "c"):
        with states.hold(client) as seen:
            seen.append(1)
    assert states.clients() == ("a", "c") and states.total(len) == 3 and len(states) == 2
    assert states.peek("b") is None and states.peek("a") == [1, 1]
    states.forget("a")
    assert states.clients() == ("c",)
    with pytest.raises(InvalidParameterError):
        ClientStates(list, max_clients=0)
