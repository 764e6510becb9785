"""The membership-inference vocabulary: the records under test, reference models, and an attack's result.

    >>> import numpy as np
    >>> from modelshield.attacks.membership.interface import log_confidence
    >>> logp = np.log(np.array([[0.9, 0.1], [0.5, 0.5]]))
    >>> np.round(log_confidence(logp, np.array([0, 1])), 3)
    array([2.197, 0.   ])

Every attack turns model outputs into one score per record, higher meaning "more likely a member", and is judged
by :func:`modelshield.attacks.metrics.roc_summary` against the records' true membership.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from modelshield.attacks.metrics import RocSummary, roc_curve
from modelshield.errors import InvalidInputError

__all__ = ["MembershipResult", "ReferenceModels", "log_confidence"]


def log_confidence(log_proba: NDArray[np.floating], y: NDArray[np.integer]) -> NDArray[np.float64]:
    """The logit-scaled confidence in the true label, ``log p_y - log(1 - p_y)``, from log-probabilities.

    This is the statistic LiRA models as Gaussian (Carlini et al. 2022). Computed as ``log p_y`` minus the
    log-sum-exp of the other classes' log-probabilities, it keeps its precision where ``p_y`` rounds to 1.
    Works on ``(..., n, k)`` arrays with labels ``(n,)``.
    """
    logp = np.asarray(log_proba, dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    if logp.shape[-2] != labels.shape[0] or (labels.size and (labels.min() < 0 or labels.max() >= logp.shape[-1])):
        raise InvalidInputError(f"Labels of shape {labels.shape} do not index outputs of shape {logp.shape}.")
    rows = np.arange(labels.size)
    true = logp[..., rows, labels]
    others = logp.copy()
    others[..., rows, labels] = -np.inf
    peak = others.max(axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        rest = np.log(np.exp(others - peak).sum(axis=-1)) + peak[..., 0]
    out: NDArray[np.float64] = np.clip(true - rest, -1e4, 1e4)  # a one-class row would be +inf
    return out


@dataclass(frozen=True, eq=False)
class ReferenceModels:
    """Reference models' log-probabilities on a pool of records, and which records trained which model.

    ``masks[m, i]`` is True when record ``i`` was in model ``m``'s training data; ``log_proba[m, i]`` is model
    ``m``'s log-probabilities on record ``i``.
    """

    masks: NDArray[np.bool_]
    log_proba: NDArray[np.float32]
    spec: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # time to train them (0 when read from the cache)

    def __post_init__(self) -> None:
        if self.masks.ndim != 2 or self.log_proba.shape[:2] != self.masks.shape:
            raise InvalidInputError(
                f"Reference masks {self.masks.shape} and outputs {self.log_proba.shape} do not match."
            )

    @property
    def n_models(self) -> int:
        return int(self.masks.shape[0])


@dataclass(frozen=True, eq=False)
class MembershipResult:
    """One attack's membership scores on the records under test, with the field's metrics.

    An :class:`~modelshield.attacks.interface.AttackResult`: ``queries`` are the target's queries, ``seconds`` the
    attack's time (for the plug-ins of :mod:`.plugins`, reference models included).
    """

    attack: str
    scores: NDArray[np.float64]  # one per record, higher = more likely a member
    is_member: NDArray[np.bool_]
    summary: RocSummary
    reference_models: int = 0
    queries: int = 0  # queries to the target model
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def metrics(self) -> dict[str, float]:
        """The field's figures: AUC, membership advantage, best balanced accuracy, and the TPR at 0.1% and 1%
        FPR (``"tpr_at_0.1%_fpr"``, ``"tpr_at_1.0%_fpr"``)."""
        return self.summary.metrics()

    def roc(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(fpr, tpr)`` at every distinct threshold."""
        fpr, tpr, _ = roc_curve(self.scores, self.is_member)
        return fpr, tpr

    def most_exposed(self, k: int = 10) -> NDArray[np.intp]:
        """Indices (into the records under test) of the ``k`` members with the highest scores."""
        members = np.flatnonzero(self.is_member)
        order = np.argsort(-self.scores[members], kind="stable")
        out: NDArray[np.intp] = members[order[:k]]
        return out

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "attack": self.attack,
            "auc": s.auc,
            "accuracy": s.accuracy,
            "advantage": s.advantage,
            "tpr_at_fpr": [p.to_dict() for p in s.at_fpr],
            "members": s.n_members,
            "non_members": s.n_non_members,
            "reference_models": self.reference_models,
            "queries": self.queries,
            "seconds": self.seconds,
            "notes": list(self.notes),
        }
