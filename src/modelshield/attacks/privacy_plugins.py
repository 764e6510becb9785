"""Model inversion, attribute inference and model extraction as :class:`~modelshield.attacks.interface.Attack`
plug-ins, run against a whole Target.

    >>> from modelshield.attacks.privacy_plugins import BUILTIN, ModelExtraction
    >>> [attack.name for attack in BUILTIN][:3]
    ['mi-face', 'attribute-inference', 'extraction-natural']
    >>> ModelExtraction("jacobian", budgets=(20, 80)).name
    'extraction-jacobian'
    >>> result = BUILTIN[2].run(target, seed=0)  # doctest: +SKIP
    >>> result.metrics()["fidelity"]  # doctest: +SKIP

Each plug-in stores (and checks) its parameters when it is built and runs with ``attack.run(target, seed=...)``;
the result's ``queries`` count every input the run sent to the target's classifier.

- :class:`ClassInversion` (``mi-face``, white-box): reconstructs every class of the training data from the model's
  gradients (:func:`~modelshield.attacks.inversion.invert_classes`), the test split as the attacker's prior and as
  the data of the independent evaluator, the training split (else the test split) as what the reconstructions are
  scored against. Result: :class:`~modelshield.attacks.inversion.InversionResult`.
- :class:`AttributeInference` (``attribute-inference``): infers one feature (the given one, else the first the
  schema marks sensitive, else the one most informative of the label) of the test records (the attacker's data and
  the non-members) and of the training records (members), against baselines without the model
  (:func:`~modelshield.attacks.attribute.infer_attribute`).
- :class:`ModelExtraction` (``extraction-natural``, ``-jacobian``, ``-random``, black-box): the test split is cut
  in two at random (seeded): one half is the attacker's own data, the other (at most ``samples`` records) measures
  the copies (:func:`~modelshield.attacks.extraction.extract_model`). Query budgets, unless given: 1/8, 1/4, 1/2 and
  all of the training-set size (at least 20 each); the natural strategy stops where the attacker's half runs out.
  The result keeps the stolen copy (``surrogate``) only with ``keep_surrogate=True``.
- :class:`EquationSolving` (``equation-solving``, black-box): recovers a logistic or softmax model's parameters
  from ``d + 1`` confidence queries (:func:`~modelshield.attacks.extraction.solve_linear_model`), centred on the
  attacker's half and checked on the other; ``metrics()["consistent"]`` is 1 when the model proved log-linear.
"""

from __future__ import annotations

import abc
import itertools
import math
import time
from dataclasses import replace
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from modelshield.attacks.attribute import AttributeInferenceResult
from modelshield.attacks.extraction import EquationSolvingResult, ExtractionResult
from modelshield.attacks.interface import Attack, AttackFamily
from modelshield.attacks.inversion import InversionResult
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models.interface import FloatArray, GradientClassifier, IntArray
from modelshield.target import Requirement, Target

__all__ = [
    "BUILTIN",
    "AttributeInference",
    "ClassInversion",
    "EquationSolving",
    "ModelExtraction",
    "attacker_split",
    "default_budgets",
]

Strategy = Literal["natural", "jacobian", "random"]
Labels = Literal["soft", "hard"]
Selection = Literal["random", "balanced"]

_FRACTIONS = (0.125, 0.25, 0.5, 1.0)  # of the training-set size
_MIN_BUDGET = 20


def _count(name: str, value: int, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidParameterError(f"{name} must be a whole number of at least {least}, not {value!r}.")
    return value


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(f"{name} must be a positive number, not {value!r}.")
    return float(value)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidParameterError(f"Unknown {name} {value!r}.", remedy=f"Use one of: {', '.join(allowed)}.")


class _PrivacyAttack(abc.ABC):
    """The shared part: refuse a target that lacks what the attack needs, before any work."""

    name: str
    family: AttackFamily
    requires: frozenset[Requirement] = frozenset()

    def _refuse_unmet(self, target: Target) -> None:
        unmet = target.unmet(self.requires)
        if unmet:
            raise InvalidInputError(
                f"The {self.name} attack cannot run on {target.name!r}: {'; '.join(unmet)}.",
                remedy="Give the target what the attack needs, or choose an attack whose needs it meets.",
            )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "name")
        return f"{type(self).__name__}({params})"


# -- inversion ---------------------------------------------------------------------------------------------------


class ClassInversion(_PrivacyAttack):
    """MI-Face class reconstruction from gradients, scored against a model-free baseline (Fredrikson et al. 2015)."""

    name = "mi-face"
    family = AttackFamily.INVERSION
    requires = frozenset({Requirement.WHITE_BOX})

    def __init__(
        self,
        *,
        restarts: int = 2,
        steps: int = 100,
        step_size: float = 0.05,
        l2_weight: float = 1.0,
        tv_weight: float = 0.0,
        noise: float = 0.1,
        permutations: int = 2000,
        alpha: float = 0.05,
    ) -> None:
        self.restarts = _count("restarts", restarts)
        self.steps = _count("steps", steps)
        self.step_size = _positive("step_size", step_size)
        for name, value in (("l2_weight", l2_weight), ("tv_weight", tv_weight), ("noise", noise)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value >= 0)
            ):
                raise InvalidParameterError(f"{name} must be a finite non-negative number, not {value!r}.")
        self.l2_weight, self.tv_weight, self.noise = float(l2_weight), float(tv_weight), float(noise)
        self.permutations = _count("permutations", permutations, least=99)
        if not 0 < alpha < 1:
            raise InvalidParameterError(f"alpha must lie in (0, 1), not {alpha!r}.", remedy="Use 0.05.")
        self.alpha = float(alpha)

    def run(self, target: Target, *, seed: int = 0) -> InversionResult:
        """Reconstruct every class of the training data (else the test data) and score the reconstructions."""
        from modelshield.attacks.inversion import invert_classes

        self._refuse_unmet(target)
        classifier = target.classifier
        if not isinstance(classifier, GradientClassifier):
            raise InvalidInputError(f"The {self.name} attack needs gradients; {type(classifier).__name__} has none.")
        t0 = time.perf_counter()
        reference = target.train if target.train is not None else target.test
        result = invert_classes(classifier, reference=reference, auxiliary=target.test, restarts=self.restarts,
                                steps=self.steps, step_size=self.step_size, l2_weight=self.l2_weight,
                                tv_weight=self.tv_weight, noise=self.noise, permutations=self.permutations,
                                alpha=self.alpha, seed=seed)  # fmt: skip
        return replace(result, seconds=time.perf_counter() - t0)


class AttributeInference(_PrivacyAttack):
    """Inference of one feature from the rest of the record and the model's answer, against baselines without the
    model (Fredrikson et al. 2014; Jayaraman & Evans 2022)."""

    name = "attribute-inference"
    family = AttackFamily.INVERSION

    def __init__(
        self,
        *,
        feature: int | str | None = None,
        output: Literal["proba", "label"] = "proba",
        label_known: bool = False,
        n_bins: int = 4,
        max_categories: int = 10,
        learner: Literal["forest", "logistic"] = "forest",
        folds: int = 5,
        bootstrap: int = 2000,
        confidence: float = 0.95,
    ) -> None:
        from modelshield.attacks.attribute import _check_parameters

        _check_parameters(output, n_bins, max_categories, folds, bootstrap, confidence)
        _choice("learner", learner, ("forest", "logistic"))
        if feature is not None and (isinstance(feature, bool) or not isinstance(feature, int | str)):
            raise InvalidParameterError(f"feature must be a name, an index or None, not {feature!r}.")
        self.feature = feature
        self.output = output
        self.label_known = bool(label_known)
        self.n_bins, self.max_categories, self.learner = n_bins, max_categories, learner
        self.folds, self.bootstrap, self.confidence = folds, bootstrap, float(confidence)

    def run(self, target: Target, *, seed: int = 0) -> AttributeInferenceResult:
        """Infer the feature of the test records (the attacker's data) and of the training records (members)."""
        from modelshield.attacks.attribute import infer_attribute, most_informative_feature, sensitive_features

        self._refuse_unmet(target)
        feature = self.feature
        if feature is None:
            marked = sensitive_features(target.test.schema)
            feature = marked[0] if marked else most_informative_feature(target.test, seed=seed)
        t0 = time.perf_counter()
        result = infer_attribute(target.classifier, feature=feature, auxiliary=target.test, members=target.train,
                                 output=self.output, label_known=self.label_known, n_bins=self.n_bins,
                                 max_categories=self.max_categories, learner=self.learner, folds=self.folds,
                                 bootstrap=self.bootstrap, confidence=self.confidence, seed=seed)  # fmt: skip
        return replace(result, seconds=time.perf_counter() - t0)


# -- extraction --------------------------------------------------------------------------------------------------


def attacker_split(target: Target, *, samples: int, seed: int) -> tuple[FloatArray, FloatArray, IntArray]:
    """The test split cut in two at random (seeded): the attacker's own inputs, and at most ``samples`` held-out
    inputs with their labels to measure what it stole."""
    order = np.random.default_rng(seed).permutation(len(target.test))
    half = len(order) // 2
    held: NDArray[np.intp] = order[half:][:samples]
    return target.test.x[order[:half]], target.test.x[held], target.test.y[held]


def default_budgets(n_train: int, factor: float = 1.0) -> tuple[int, ...]:
    """Query budgets 1/8, 1/4, 1/2 and 1 of ``factor`` times the training-set size, each at least 20 and the
    largest at least 80."""
    top = max(_MIN_BUDGET * 4, math.ceil(n_train * factor))
    return tuple(sorted({max(_MIN_BUDGET, round(top * f)) for f in _FRACTIONS}))


class ModelExtraction(_PrivacyAttack):
    """Black-box model theft by one query strategy: a surrogate trained on the model's answers, its fidelity
    against queries (:func:`~modelshield.attacks.extraction.extract_model`)."""

    family = AttackFamily.EXTRACTION

    def __init__(
        self,
        strategy: Strategy = "natural",
        *,
        budgets: tuple[int, ...] | None = None,
        labels: Labels = "soft",
        selection: Selection = "random",
        jacobian_lambda: float = 0.1,
        tau: int = 3,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 2e-3,
        min_steps: int = 300,
        max_steps: int = 1500,
        samples: int = 1000,
        keep_surrogate: bool = False,
    ) -> None:
        for what, value, allowed in (("strategy", strategy, Strategy), ("labels", labels, Labels),
                                     ("selection", selection, Selection)):  # fmt: skip
            _choice(what, value, get_args(allowed))
        self.strategy: Strategy = strategy
        if budgets is not None:
            values = tuple(_count("a query budget", b) for b in budgets)
            if not values or any(b2 <= b1 for b1, b2 in itertools.pairwise(values)):
                raise InvalidParameterError(
                    f"budgets must be positive and strictly increasing, got {budgets!r}.",
                    remedy="Pass budgets such as (100, 250, 500, 1000), or None for shares of the training set.",
                )
            budgets = values
        self.budgets = budgets
        self.labels: Labels = labels
        self.selection: Selection = selection
        self.jacobian_lambda = _positive("jacobian_lambda", jacobian_lambda)
        self.tau = _count("tau", tau)
        self.epochs, self.batch_size = _count("epochs", epochs), _count("batch_size", batch_size)
        self.lr = _positive("lr", lr)
        self.min_steps, self.max_steps = _count("min_steps", min_steps), _count("max_steps", max_steps)
        self.samples = _count("samples", samples)
        self.keep_surrogate = bool(keep_surrogate)
        self.name = f"extraction-{self.strategy}"

    def run(self, target: Target, *, seed: int = 0) -> ExtractionResult:
        """Steal the target's model with the attacker's half of the test split; measure on the other half."""
        from modelshield.attacks.extraction import extract_model

        self._refuse_unmet(target)
        attacker_x, x_eval, y_eval = attacker_split(target, samples=self.samples, seed=seed)
        n_train = len(target.train) if target.train is not None else len(target.test)
        plan = self.budgets if self.budgets is not None else default_budgets(n_train)
        if self.strategy == "natural":
            plan = tuple(b for b in plan if b <= len(attacker_x))
            if not plan:
                raise InvalidInputError(
                    f"The natural strategy has {len(attacker_x)} attacker inputs (half the test split of "
                    f"{target.name!r}), fewer than the smallest budget.",
                    remedy="Give the target a larger test split, or smaller budgets.",
                )
        kwargs: dict[str, Any] = {}
        if self.strategy == "jacobian":
            kwargs["jacobian_seed"] = min(plan[0], len(attacker_x)) or None
        result = extract_model(target.classifier, x_eval, y_eval, strategy=self.strategy, budgets=plan,
                               natural_x=attacker_x, labels=self.labels, selection=self.selection,
                               jacobian_lambda=self.jacobian_lambda, tau=self.tau, epochs=self.epochs,
                               batch_size=self.batch_size, lr=self.lr, min_steps=self.min_steps,
                               max_steps=self.max_steps, seed=seed, keep_queries=False, **kwargs)  # fmt: skip
        return result if self.keep_surrogate else replace(result, surrogate=None)


class EquationSolving(_PrivacyAttack):
    """Tramèr et al. 2016: a log-linear model's exact parameters from ``d + 1`` confidence-score queries."""

    name = "equation-solving"
    family = AttackFamily.EXTRACTION

    def __init__(self, *, step: float = 1.0, samples: int = 1000) -> None:
        self.step = _positive("step", step)
        self.samples = _count("samples", samples)

    def run(self, target: Target, *, seed: int = 0) -> EquationSolvingResult:
        """Solve for the parameters around the attacker's half of the test split; measure on the other half."""
        from modelshield.attacks.extraction import solve_linear_model

        self._refuse_unmet(target)
        attacker_x, x_eval, _ = attacker_split(target, samples=self.samples, seed=seed)
        return solve_linear_model(target.classifier, x_ref=attacker_x if len(attacker_x) else None, x_test=x_eval,
                                  step=self.step, seed=seed)  # fmt: skip


#: The built-in attacks this module contributes to :func:`modelshield.attacks.registry.builtin_attacks`.
BUILTIN: tuple[Attack[Any], ...] = (
    ClassInversion(),
    AttributeInference(),
    ModelExtraction("natural"),
    ModelExtraction("jacobian"),
    ModelExtraction("random"),
    EquationSolving(),
)
