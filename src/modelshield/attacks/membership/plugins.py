"""The membership-inference attacks as :class:`~modelshield.attacks.interface.Attack` plug-ins.

    >>> from modelshield.attacks.membership.plugins import BUILTIN, LiRA
    >>> [attack.name for attack in BUILTIN]
    ['loss', 'population', 'lira-online', 'lira-offline', 'rmia', 'rmia-offline', 'label-only']
    >>> LiRA(online=False, n_reference=8).name
    'lira-offline'

Each attack is configured when built (its parameters, checked there, and how many reference models it may train)
and run with ``attack.run(target, seed=...)``: the target's training records are the members and its test records
the non-members, and the result is a :class:`~modelshield.attacks.membership.MembershipResult` whose ``metrics()``
are the field's figures (AUC, membership advantage, TPR at 0.1% and 1% FPR). ``queries`` is what the run asked of
the target's classifier (its counter), ``seconds`` the whole run, reference models included.

The reference attacks (LiRA, RMIA) need the target's training recipe (``Target.trainer``): they train
``n_reference`` models with it, each on a random subset of all the records as large as the training set. Give
``cache_dir`` to keep their outputs between runs. :func:`~modelshield.attacks.membership.assess_membership` runs
several attacks on one set of reference models, as the audit's membership check does.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelshield.attacks.interface import Attack, AttackFamily
from modelshield.attacks.membership.attacks import (
    label_only_attack,
    lira,
    loss_attack,
    population_attack,
    reference_models,
    rmia,
    target_log_proba,
)
from modelshield.attacks.membership.interface import MembershipResult, ReferenceModels
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.target import Requirement, Target

__all__ = ["BUILTIN", "RMIA", "LabelOnlyAttack", "LiRA", "LossAttack", "MembershipAttack", "PopulationAttack"]

_MEMBERS = frozenset({Requirement.TRAIN_DATA})
_REFERENCE = frozenset({Requirement.TRAIN_DATA, Requirement.TRAINER})


def _count(name: str, value: int, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidParameterError(f"{name} must be a whole number of at least {least}, not {value!r}.")
    return value


class _Records:
    """The records under test: members (``target.train``) first, then non-members (``target.test``)."""

    def __init__(self, target: Target) -> None:
        train = target.train
        if train is None:  # refused earlier by the requirement check; this keeps the types honest
            raise InvalidInputError(f"Target {target.name!r} has no training data (members).")
        self.n_members = len(train)
        self.x = np.concatenate([train.x, target.test.x]).astype(np.float32, copy=False)
        self.y = np.concatenate([train.y, target.test.y]).astype(np.int64, copy=False)
        self.is_member: NDArray[np.bool_] = np.r_[np.ones(len(train), bool), np.zeros(len(target.test), bool)]


class MembershipAttack(abc.ABC):
    """The shared part of the membership plug-ins: the target's needs, the records, the query and time accounting.

    Subclasses set ``name`` (and ``requires`` when they need more than the training data), and implement
    :meth:`_attack`.
    """

    name: str
    family = AttackFamily.MEMBERSHIP
    requires: frozenset[Requirement] = _MEMBERS

    def describe(self) -> str:
        """The name with the parameters, as results carry it."""
        return self.name

    def run(self, target: Target, *, seed: int = 0) -> MembershipResult:
        """Attack ``target``'s training records (members) against its test records (non-members)."""
        unmet = target.unmet(self.requires)
        if unmet:
            raise InvalidInputError(
                f"The {self.name} attack cannot run on {target.name!r}: {'; '.join(unmet)}.",
                remedy="Give the target what the attack needs, or choose an attack whose needs it meets.",
            )
        start = time.perf_counter()
        before = target.classifier.queries
        result = self._attack(target, _Records(target), seed)
        return replace(
            result,
            attack=self.describe(),
            queries=target.classifier.queries - before,
            seconds=time.perf_counter() - start,
        )

    @abc.abstractmethod
    def _attack(self, target: Target, records: _Records, seed: int) -> MembershipResult:
        """Score every record under test."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "name")
        return f"{type(self).__name__}({params})"


class LossAttack(MembershipAttack):
    """Yeom et al. 2018: the target's confidence in the true label (the lower the loss, the likelier a member)."""

    name = "loss"

    def _attack(self, target: Target, records: _Records, seed: int) -> MembershipResult:
        logp = target_log_proba(target.classifier, records.x)
        return loss_attack(logp, records.y, records.is_member)


class PopulationAttack(MembershipAttack):
    """Ye et al. 2022 (attack P): the confidence ranked among non-members of the same class, cross-fitted."""

    name = "population"

    def _attack(self, target: Target, records: _Records, seed: int) -> MembershipResult:
        logp = target_log_proba(target.classifier, records.x)
        return population_attack(logp, records.y, records.is_member, seed=seed)


class _ReferenceAttack(MembershipAttack):
    """An attack that trains reference models with the target's recipe."""

    requires = _REFERENCE

    def __init__(self, *, online: bool, n_reference: int, cache_dir: Path | None) -> None:
        self.online = bool(online)
        self.n_reference = _count("n_reference", n_reference, least=2)
        self.cache_dir = cache_dir

    def _reference(self, target: Target, records: _Records, seed: int) -> ReferenceModels:
        trainer = target.trainer
        if trainer is None:  # refused earlier by the requirement check; this keeps the types honest
            raise InvalidInputError(f"Target {target.name!r} has no training recipe for reference models.")
        return reference_models(
            trainer,
            records.x,
            records.y,
            n_models=self.n_reference,
            train_size=records.n_members,
            n_classes=target.classifier.n_classes,
            seed=seed,
            cache_dir=self.cache_dir,
        )


class LiRA(_ReferenceAttack):
    """Carlini et al. 2022's likelihood-ratio attack, online (models with and without the record) or offline.

    ``fixed_variance`` None: one global variance per side below 64 reference models, per record from 64 on.
    """

    def __init__(
        self,
        *,
        online: bool = True,
        n_reference: int = 16,
        fixed_variance: bool | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        super().__init__(online=online, n_reference=n_reference, cache_dir=cache_dir)
        self.fixed_variance = fixed_variance
        self.name = "lira-online" if self.online else "lira-offline"

    def describe(self) -> str:
        return f"{self.name}(reference_models={self.n_reference})"

    def _attack(self, target: Target, records: _Records, seed: int) -> MembershipResult:
        reference = self._reference(target, records, seed)
        logp = target_log_proba(target.classifier, records.x)
        return lira(logp, records.y, records.is_member, reference, online=self.online,
                    fixed_variance=self.fixed_variance)  # fmt: skip


class RMIA(_ReferenceAttack):
    """Zarifzadeh et al. 2024's robust membership inference attack, online or offline."""

    def __init__(
        self, *, online: bool = True, n_reference: int = 16, gamma: float = 1.0, cache_dir: Path | None = None
    ) -> None:
        super().__init__(online=online, n_reference=n_reference, cache_dir=cache_dir)
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not (math.isfinite(gamma) and gamma > 0):
            raise InvalidParameterError(f"gamma must be a positive number, not {gamma!r}.", remedy="Use 1.0.")
        self.gamma = float(gamma)
        self.name = "rmia" if self.online else "rmia-offline"

    def describe(self) -> str:
        return f"{self.name}(reference_models={self.n_reference}, gamma={self.gamma:g})"

    def _attack(self, target: Target, records: _Records, seed: int) -> MembershipResult:
        reference = self._reference(target, records, seed)
        logp = target_log_proba(target.classifier, records.x)
        return rmia(logp, records.y, records.is_member, reference, online=self.online, gamma=self.gamma, seed=seed)


class LabelOnlyAttack(MembershipAttack):
    """Choquette-Choo et al. 2021: robustness of the predicted label to Gaussian noise; needs labels only.

    ``copies`` noisy copies of each record at each of ``noise_scales`` (in standard deviations of each feature):
    ``1 + copies * len(noise_scales)`` queries per record.
    """

    name = "label-only"

    def __init__(self, *, copies: int = 16, noise_scales: Sequence[float] = (0.1, 0.25, 0.5, 1.0)) -> None:
        self.copies = _count("copies", copies)
        scales = tuple(float(v) for v in noise_scales)
        if not scales or not all(math.isfinite(v) and v > 0 for v in scales):
            raise InvalidParameterError(
                f"noise_scales must be positive numbers, not {tuple(noise_scales)!r}.",
                remedy="Use (0.1, 0.25, 0.5, 1.0).",
            )
        self.noise_scales = scales

    def describe(self) -> str:
        return f"label-only(copies={self.copies}, noise_scales={self.noise_scales})"

    def _attack(self, target: Target, records: _Records, seed: int) -> MembershipResult:
        return label_only_attack(target.classifier, records.x, records.y, records.is_member,
                                 noise_scales=self.noise_scales, copies=self.copies, seed=seed)  # fmt: skip


#: The built-in attacks this module contributes to :func:`modelshield.attacks.registry.builtin_attacks`.
BUILTIN: tuple[Attack[Any], ...] = (
    LossAttack(),
    PopulationAttack(),
    LiRA(online=True),
    LiRA(online=False),
    RMIA(online=True),
    RMIA(online=False),
    LabelOnlyAttack(),
)
