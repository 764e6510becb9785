"""Training-data poisoning: triggers, label flipping and backdoor attacks, and susceptibility curves.

    >>> from modelshield.attacks.poisoning import Backdoor, patch_trigger, poison, susceptibility  # doctest: +SKIP

See :mod:`.attacks` for the attacks, :mod:`.triggers` for triggers and :mod:`.susceptibility` for the curve of
attack success against poison fraction. Importing this package imports no torch.
"""

from modelshield.attacks.poisoning.attacks import (
    Backdoor,
    CleanLabelBackdoor,
    LabelFlip,
    PoisonAttack,
    PoisonedData,
    SuccessInputs,
    poison,
)
from modelshield.attacks.poisoning.susceptibility import CurvePoint, SusceptibilityCurve, susceptibility
from modelshield.attacks.poisoning.triggers import (
    BlendTrigger,
    FeatureTrigger,
    PatchTrigger,
    Trigger,
    blend_trigger,
    feature_trigger,
    patch_trigger,
    standard_trigger,
    trigger_footprint,
)

__all__ = [
    "Backdoor",
    "BlendTrigger",
    "CleanLabelBackdoor",
    "CurvePoint",
    "FeatureTrigger",
    "LabelFlip",
    "PatchTrigger",
    "PoisonAttack",
    "PoisonedData",
    "SuccessInputs",
    "SusceptibilityCurve",
    "Trigger",
    "blend_trigger",
    "feature_trigger",
    "patch_trigger",
    "poison",
    "standard_trigger",
    "susceptibility",
    "trigger_footprint",
]
