"""Explanations of model decisions: TreeSHAP, permutation SHAP for black boxes, gradients, and their stability.

    >>> from modelshield.explain import TreeShap, SamplingShap, IntegratedGradients, attribution_stability

One module per method: :mod:`~modelshield.explain.tree` (exact path-dependent TreeSHAP for scikit-learn tree
ensembles), :mod:`~modelshield.explain.agnostic` (permutation sampling over ``predict_proba`` under a query
budget), :mod:`~modelshield.explain.gradients` (saliency and integrated gradients for white-box torch models) and
:mod:`~modelshield.explain.stability` (how attributions move under small input noise). Each returns a frozen
result with documented array shapes and a ``to_dict()`` summary. Importing this package imports neither torch nor
shap; :mod:`~modelshield.explain.gradients` imports torch only when it computes gradients.
"""

from __future__ import annotations

from modelshield.explain.agnostic import SamplingShap, SamplingShapResult
from modelshield.explain.gradients import GradientAttribution, GradientOutput, IntegratedGradients, Saliency
from modelshield.explain.interface import Explainer, mean_abs_importance
from modelshield.explain.stability import StabilityResult, attribution_stability
from modelshield.explain.tree import TreeShap, TreeShapResult

__all__ = [
    "Explainer",
    "GradientAttribution",
    "GradientOutput",
    "IntegratedGradients",
    "Saliency",
    "SamplingShap",
    "SamplingShapResult",
    "StabilityResult",
    "TreeShap",
    "TreeShapResult",
    "attribution_stability",
    "mean_abs_importance",
]
