"""Membership inference: does the model reveal which records it was trained on?

    >>> from modelshield.attacks.membership import assess_membership, lira, rmia  # doctest: +SKIP

See :mod:`.attacks` for the attacks and :mod:`modelshield.attacks.metrics` for how they are measured (TPR at
low FPR with exact confidence intervals).
"""

from __future__ import annotations

from modelshield.attacks.membership.attacks import (
    ATTACKS,
    MembershipAssessment,
    assess_membership,
    label_only_attack,
    lira,
    loss_attack,
    population_attack,
    recipe_leakage,
    reference_models,
    rmia,
    target_log_proba,
)
from modelshield.attacks.membership.interface import MembershipResult, ReferenceModels, log_confidence

__all__ = [
    "ATTACKS",
    "MembershipAssessment",
    "MembershipResult",
    "ReferenceModels",
    "assess_membership",
    "label_only_attack",
    "lira",
    "log_confidence",
    "loss_attack",
    "population_attack",
    "recipe_leakage",
    "reference_models",
    "rmia",
    "target_log_proba",
]
