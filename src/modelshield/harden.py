"""Harden a reference target: retrain it with a defense, then compare robustness before and after.

    >>> from modelshield.harden import harden
    >>> from modelshield.zoo import load_target
    >>> result = harden(load_target("zoo:digits-cnn"), "adversarial-training", eps=0.1, seed=0)  # doctest: +SKIP
    >>> result.before.robust_accuracy, result.after.robust_accuracy  # doctest: +SKIP
    >>> result.save(Path("digits-cnn-at.safetensors"))  # doctest: +SKIP

The hardened model has the target's architecture (rebuilt by :func:`modelshield.zoo.architecture`) and is trained
on ``target.train`` with the zoo's recipe for that target (optimiser, learning rate, batch size, epochs). Both
models are then evaluated on ``target.test`` by
:func:`~modelshield.attacks.evasion.evaluation.evaluate_robustness`: clean accuracy, and robust accuracy at each ε
as the worst case over FGSM, PGD, APGD-CE and APGD-DLR, with the reliability checks on, so a defense that only
masks gradients (defensive distillation) is flagged rather than reported as robust.

:meth:`HardeningResult.save` writes the weights as safetensors (a state dict, nothing executable) and the
comparison as JSON beside them (``FILE.json``), each atomically; :func:`load_hardened` reads the weights back.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield._internal.atomic import write_bytes_atomic, write_text_atomic
from modelshield._internal.hashing import sha256_file
from modelshield.attacks.evasion.evaluation import Reliability, evaluate_robustness
from modelshield.errors import FileFormatError, InvalidParameterError
from modelshield.models.interface import Classifier
from modelshield.target import Target

if TYPE_CHECKING:
    from modelshield.attacks.metrics import RocSummary
    from modelshield.defenses.training import TrainedModel
    from modelshield.models.retrain import Trainer
    from modelshield.models.torch_classifier import TorchClassifier

__all__ = ["Defense", "HardeningResult", "ModelScores", "harden", "harden_dp", "load_hardened"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class Defense(enum.StrEnum):
    """The training-time defenses :func:`harden` applies."""

    ADVERSARIAL_TRAINING = "adversarial-training"
    TRADES = "trades"
    DISTILLATION = "distillation"
    ENSEMBLE = "ensemble"
    DP_SGD = "dp-sgd"

    @classmethod
    def parse(cls, value: str | Defense) -> Defense:
        if isinstance(value, Defense):
            return value
        try:
            return cls(value.strip().lower().replace("_", "-"))
        except ValueError:
            raise InvalidParameterError(
                f"Unknown defense {value!r}.", remedy=f"Use one of: {', '.join(d.value for d in cls)}."
            ) from None


@dataclass(frozen=True)
class ModelScores:
    """One model's clean accuracy and worst-case robust accuracy at each ε, with failed reliability checks."""

    clean_accuracy: float
    robust_accuracy: tuple[float, ...]  # at each of HardeningResult.eval_eps
    reliability: tuple[Reliability, ...] = ()
    membership: Mapping[str, Any] | None = None  # membership-attack figures (the dp-sgd defense)

    @property
    def reliable(self) -> bool:
        return not self.reliability

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": list(self.robust_accuracy),
            "reliable": self.reliable,
            "reliability": [{"id": r.id, "message": r.message} for r in self.reliability],
            **({"membership": dict(self.membership)} if self.membership is not None else {}),
        }


@dataclass(frozen=True)
class HardeningResult:
    """The hardened classifier and the before/after comparison on the target's test data."""

    target: str
    defense: Defense
    training: str  # the defense with its parameters, e.g. "adversarial-training(linf, eps=0.1, steps=7, mix=1)"
    eps: float | None  # the training ε (None for defenses without one)
    seed: int
    epochs: int
    eval_eps: tuple[float, ...]
    n_eval: int
    before: ModelScores
    after: ModelScores
    training_seconds: float
    members: int | None  # ensemble size, for rebuilding the module
    classifier: TorchClassifier = field(repr=False)
    privacy: Mapping[str, Any] | None = None  # DP-SGD: ε spent, δ, noise multiplier, accountant

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (everything but the weights)."""
        return {
            "format_version": FORMAT_VERSION,
            "target": self.target,
            "defense": self.defense.value,
            "training": self.training,
            "eps": self.eps,
            "seed": self.seed,
            "epochs": self.epochs,
            "members": self.members,
            "eval_eps": list(self.eval_eps),
            "n_eval": self.n_eval,
            "training_seconds": self.training_seconds,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            **({"privacy": dict(self.privacy)} if self.privacy is not None else {}),
        }

    def save(self, path: Path) -> Path:
        """Write the weights to ``path`` (safetensors) and the comparison to ``path`` + ``.json``, each atomically;
        returns the JSON's path. The JSON records the weights' SHA-256."""
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in self.classifier.module.state_dict().items()}
        metadata = {"modelshield.target": self.target, "modelshield.defense": self.defense.value}
        if self.members is not None:
            metadata["modelshield.members"] = str(self.members)
        write_bytes_atomic(path, save(state, metadata=metadata))
        report = path.with_name(path.name + ".json")
        data = {**self.to_dict(), "weights": path.name, "weights_sha256": sha256_file(path)}
        write_text_atomic(report, json.dumps(data, indent=2) + "\n")
        return report


def _zoo_name(target: Target) -> str:
    from modelshield.zoo import ZOO

    torch_targets = [f"zoo:{n}" for n, e in ZOO.items() if e.family == "torch"]
    name = target.name.removeprefix("zoo:")
    if not target.name.startswith("zoo:") or name not in ZOO or ZOO[name].family != "torch":
        raise InvalidParameterError(
            f"Cannot harden {target.name!r}: hardening retrains the model from its architecture, which modelshield "
            "knows only for its PyTorch reference targets.",
            remedy=f"Use one of: {', '.join(torch_targets)}; or call modelshield.defenses.training directly with "
            "a factory of your network.",
        )
    return name


def _scores(classifier: Classifier, x: Any, y: Any, eps: Sequence[float], steps: int, seed: int) -> ModelScores:
    ev = evaluate_robustness(classifier, x, y, eps=eps, steps=steps, seed=seed, check_reliability=True)
    return ModelScores(ev.clean_accuracy, ev.worst, ev.reliability)


def _membership(
    classifier: Classifier,
    target: Target,
    trainer: Trainer | None,
    n_reference: int,
    seed: int,
    cache_dir: Path | None,
) -> dict[str, Any]:
    """The membership figures of ``classifier`` (trained on ``target.train``): the best attack on the model
    itself, and RMIA pooled over reference models trained the same way (which supports the 0.1% figure)."""
    from modelshield.attacks.membership import assess_membership, recipe_leakage

    assert target.train is not None  # noqa: S101 - checked by the caller
    attacks = ("loss", "lira-online", "rmia") if trainer is not None else ("loss", "population")
    assessment = assess_membership(
        classifier,
        target.train,
        target.test,
        trainer=trainer,
        n_reference=n_reference,
        attacks=attacks,
        seed=seed,
        cache_dir=cache_dir,
    )
    best = assessment.best
    out: dict[str, Any] = {"best_attack": best.attack, **_roc_figures(best.summary)}
    if assessment.reference is not None:
        y = np.concatenate([target.train.y, target.test.y])
        pooled = recipe_leakage(assessment.reference, y, attack="rmia", seed=seed)
        out["recipe"] = {"attack": pooled.attack, **_roc_figures(pooled.summary)}
    return out


def _roc_figures(summary: RocSummary) -> dict[str, Any]:
    return {
        "auc": round(summary.auc, 4),
        "tpr_at_fpr": [p.to_dict() for p in summary.at_fpr],
        "members": summary.n_members,
        "non_members": summary.n_non_members,
    }


def harden_dp(
    target: Target,
    *,
    epsilon: float,
    delta: float | None = None,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 5e-3,
    max_grad_norm: float = 1.0,
    n_reference: int = 8,
    cache_dir: Path | None = None,
    device: str | None = "cpu",
) -> HardeningResult:
    """Retrain zoo target ``target`` with DP-SGD to (``epsilon``, ``delta``) and compare membership leakage.

    ``delta`` defaults to ``1 / (10 n)``. Both models are attacked with the loss attack, LiRA and RMIA; the
    reference models of the private model are themselves trained with DP-SGD (the attacker knows the algorithm),
    those of the original with its own recipe. Robustness is not evaluated (``eval_eps`` is empty).
    """
    from modelshield.defenses.dp import DPTrainer, dp_sgd_training
    from modelshield.zoo import architecture

    name = _zoo_name(target)
    if target.train is None:
        raise InvalidParameterError(f"Target {target.name!r} has no training data to retrain on.")
    n = len(target.train)
    delta = 1.0 / (10 * n) if delta is None else delta
    classifier = target.classifier
    factory = architecture(name, classifier.input_shape, classifier.n_classes)
    log.info("Training %s with DP-SGD (epsilon=%g, delta=%g)", target.name, epsilon, delta)
    trained = dp_sgd_training(
        factory,
        target.train,
        epsilon=epsilon,
        delta=delta,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_grad_norm=max_grad_norm,
        seed=seed,
        device=device,
    )
    # reference subsets are as large as the training set, so the same delta stays below 1 / size
    dp_trainer = DPTrainer(
        factory,
        target.train,
        epsilon=epsilon,
        delta=delta,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_grad_norm=max_grad_norm,
    )
    test = target.test
    log.info("Attacking both models' membership with %d reference models each", n_reference)
    before = ModelScores(
        classifier.accuracy(test.x, test.y),
        (),
        membership=_membership(classifier, target, target.trainer, n_reference, seed, cache_dir),
    )
    after = ModelScores(
        trained.classifier.accuracy(test.x, test.y),
        (),
        membership=_membership(trained.classifier, target, dp_trainer, n_reference, seed, cache_dir),
    )
    return HardeningResult(
        target=target.name,
        defense=Defense.DP_SGD,
        training=trained.defense,
        eps=None,
        seed=seed,
        epochs=epochs,
        eval_eps=(),
        n_eval=len(test),
        before=before,
        after=after,
        training_seconds=trained.seconds,
        members=None,
        classifier=trained.classifier,
        privacy=trained.to_dict(),
    )


def harden(
    target: Target,
    defense: Defense | str,
    *,
    eps: float = 0.1,
    seed: int = 0,
    epochs: int | None = None,
    eval_eps: Sequence[float] = (0.05, 0.1, 0.2),
    eval_n: int | None = None,
    eval_steps: int = 40,
    steps: int = 7,
    beta: float = 6.0,
    temperature: float = 20.0,
    members: int = 5,
    device: str | None = "cpu",
) -> HardeningResult:
    """Retrain zoo target ``target`` with ``defense`` and compare it with the original on ``target.test``.

    ``eps`` (L∞) and ``steps`` are the training attack's for adversarial training and TRADES; ``beta`` is TRADES',
    ``temperature`` distillation's, ``members`` the ensemble size. ``epochs`` defaults to the zoo recipe's.
    Evaluation uses ``eval_n`` test inputs (a seeded sample; default all) and PGD with ``eval_steps`` steps.
    """
    from modelshield.defenses import training
    from modelshield.zoo import ZOO, architecture

    kind = Defense.parse(defense)
    if kind is Defense.DP_SGD:
        raise InvalidParameterError(
            "DP-SGD has its own parameters (epsilon, delta).", remedy="Call harden_dp(target, epsilon=..., delta=...)."
        )
    name = _zoo_name(target)
    if target.train is None:
        raise InvalidParameterError(f"Target {target.name!r} has no training data to retrain on.")
    if eval_n is not None and eval_n < 1:
        raise InvalidParameterError(f"eval_n must be at least 1, not {eval_n}.")
    recipe = ZOO[name].recipe
    n_epochs = epochs if epochs is not None else int(recipe["epochs"])
    classifier = target.classifier
    factory = architecture(name, classifier.input_shape, classifier.n_classes)
    common: dict[str, Any] = {
        "epochs": n_epochs,
        "batch_size": int(recipe["batch"]),
        "lr": float(recipe["lr"]),
        "weight_decay": float(recipe.get("weight_decay", 0.0)),
        "seed": seed,
        "clip_values": classifier.clip_values,
        "device": device,
    }
    log.info("Hardening %s with %s (epochs=%d, seed=%d)", target.name, kind.value, n_epochs, seed)
    trained: TrainedModel
    if kind is Defense.ADVERSARIAL_TRAINING:
        trained = training.adversarial_training(factory, target.train, eps=eps, steps=steps, **common)
    elif kind is Defense.TRADES:
        trained = training.trades(factory, target.train, eps=eps, steps=steps, beta=beta, **common)
    elif kind is Defense.DISTILLATION:
        trained = training.defensive_distillation(factory, target.train, temperature=temperature, **common)
    else:
        trained = training.ensemble(factory, target.train, members=members, **common)
    test = target.test
    index = np.arange(len(test))
    if eval_n is not None and eval_n < len(test):
        index = np.sort(np.random.default_rng(seed).permutation(len(test))[:eval_n])
    x, y = test.x[index], test.y[index]
    grid = tuple(sorted(float(e) for e in eval_eps))
    log.info("Evaluating both models on %d test inputs at eps %s", len(index), grid)
    before = _scores(classifier, x, y, grid, eval_steps, seed)
    after = _scores(trained.classifier, x, y, grid, eval_steps, seed)
    return HardeningResult(
        target=target.name,
        defense=kind,
        training=trained.defense,
        eps=eps if kind in (Defense.ADVERSARIAL_TRAINING, Defense.TRADES) else None,
        seed=seed,
        epochs=n_epochs,
        eval_eps=grid,
        n_eval=len(index),
        before=before,
        after=after,
        training_seconds=trained.seconds,
        members=members if kind is Defense.ENSEMBLE else None,
        classifier=trained.classifier,
    )


def load_hardened(path: Path, target: Target, *, device: str | None = "cpu") -> TorchClassifier:
    """The hardened classifier saved at ``path`` by :meth:`HardeningResult.save`, for the target it hardened
    (which supplies the architecture, input shape, classes and valid range)."""
    from safetensors import safe_open

    from modelshield.defenses.training import EnsembleModule
    from modelshield.models.serialization import load_torch_weights
    from modelshield.models.torch_classifier import TorchClassifier
    from modelshield.zoo import architecture

    name = _zoo_name(target)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
    except (OSError, RuntimeError, ValueError) as exc:
        raise FileFormatError(f"{path} is not a readable safetensors file: {exc}.") from exc
    saved_for = metadata.get("modelshield.target")
    if saved_for is not None and saved_for != target.name:
        raise InvalidParameterError(f"{path} holds a hardened {saved_for}, not {target.name}.")
    clf = target.classifier
    factory = architecture(name, clf.input_shape, clf.n_classes)
    members = metadata.get("modelshield.members")
    net = EnsembleModule([factory() for _ in range(int(members))]) if members else factory()
    load_torch_weights(net, path)
    return TorchClassifier(
        net, n_classes=clf.n_classes, input_shape=clf.input_shape, clip_values=clf.clip_values, device=device
    )
