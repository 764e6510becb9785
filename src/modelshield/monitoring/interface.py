"""What monitors of live traffic see (an :class:`Observation`) and what they say (an :class:`Alert`).

    >>> import numpy as np
    >>> from modelshield.monitoring.interface import Alert, Observation, Severity
    >>> obs = Observation(time=0.0, client="acme", x=np.zeros((2, 3)), probabilities=np.full((2, 2), 0.5))
    >>> obs.n, obs.labels.tolist()
    (2, [0, 0])
    >>> alert = Alert(time=0.0, client="acme", detector="volume", technique="AML.T0024.002",
    ...               severity=Severity.HIGH, score=9.0, threshold=4.0, summary="Queries far above the baseline.")
    >>> Alert.from_dict(alert.to_dict()) == alert
    True

A :class:`TrafficDetector` watches answered requests (one :class:`Observation` each: who asked, with which key
and from where, the inputs and the model's probabilities, when) and returns :class:`Alert` objects: the client (or,
for detectors that see across clients, the actor and every client involved), the detector, a score against its
threshold, a severity, the MITRE ATLAS technique, and evidence in plain JSON. Detectors are fitted once on the
model and the owner's reference data, then observe requests from many threads; per-client state is bounded
(:class:`~modelshield.defenses.interface.ClientStates`) and, for detectors that learn baselines, can be saved as
JSON and restored after a restart (:meth:`TrafficDetector.state` / :meth:`TrafficDetector.restore`: plain data,
never pickles).

Every detector is also an :class:`~modelshield.defenses.interface.InferenceGuard` of the output stage
(:meth:`TrafficDetector.inspect`): it releases the probabilities unchanged and flags the request that raised an
alert, so :func:`modelshield.testing.guard_checks.check_guard` runs on it and anything that takes a guard takes it.
The gateway calls :meth:`~TrafficDetector.observe` directly, with the time, key and source it knows.
"""

from __future__ import annotations

import math
import time as _time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.defenses.interface import Action, GuardDecision, GuardMemory, GuardRequest, GuardStage
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.findings import ATLAS_TECHNIQUES, JSONValue, Severity
from modelshield.models.interface import Classifier

__all__ = [
    "Alert",
    "Observation",
    "Severity",
    "Technique",
    "TrafficDetector",
    "technique_name",
]


class Technique:
    """The MITRE ATLAS techniques that alerts name (ids as ATLAS writes them)."""

    EXTRACTION = "AML.T0024.002"  # Exfiltration via AI Inference API: Extract AI Model
    MEMBERSHIP = "AML.T0024.000"  # ... Infer Training Data Membership
    INVERSION = "AML.T0024.001"  # ... Invert AI Model (attribute sweeps)
    EVASION = "AML.T0043.001"  # Craft Adversarial Data: Black-Box Optimization (probing the decision boundary)
    VALID_ACCOUNTS = "AML.T0012"  # Valid Accounts: one key shared, or one actor behind many keys
    API_ACCESS = "AML.T0040"  # AI Model Inference API Access: behaviour unlike the client's own
    DRIFT = "AML.T0031"  # Erode AI Model Integrity: the inputs or answers no longer look like the reference


_EXTRA_NAMES = {
    "AML.T0012": "Valid Accounts",
    "AML.T0043.001": "Craft Adversarial Data: Black-Box Optimization",
}


def technique_name(technique: str) -> str:
    """The technique's ATLAS name ("" for an id modelshield does not know)."""
    return ATLAS_TECHNIQUES.get(technique) or _EXTRA_NAMES.get(technique, "")


def _json(value: Any) -> JSONValue:
    """``value`` as plain JSON data (numpy scalars and arrays, tuples, non-finite floats as strings)."""
    if isinstance(value, np.ndarray):
        return _json(value.tolist())
    if isinstance(value, np.generic):
        return _json(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    raise InvalidParameterError(f"Evidence must be plain data, not {type(value).__name__}.")


@dataclass(frozen=True)
class Alert:
    """One detector's alarm about one actor.

    ``client`` is the actor: a client name, or for cross-client detectors a name for the group (``clients`` then
    lists every client involved). ``score`` exceeded ``threshold`` (higher is more suspicious). ``summary`` says in
    plain words what was seen; ``evidence`` holds the figures behind it. ``model_version`` is the digest of the
    model that answered.
    """

    time: float
    client: str
    detector: str
    technique: str
    severity: Severity
    score: float
    threshold: float
    summary: str
    evidence: Mapping[str, JSONValue] = field(default_factory=dict)
    model_version: str = ""
    clients: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        if not (math.isfinite(self.score) and math.isfinite(self.threshold)):
            raise InvalidParameterError(f"An alert's score and threshold must be finite ({self.detector}).")
        object.__setattr__(self, "evidence", MappingProxyType(dict(_json(dict(self.evidence)))))  # type: ignore[arg-type]
        object.__setattr__(self, "clients", tuple(self.clients) or (self.client,))

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two alerts the same for deduplication: the actor, the detector and the technique."""
        return (self.client, self.detector, self.technique)

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "time": self.time,
            "client": self.client,
            "clients": list(self.clients),
            "detector": self.detector,
            "technique": self.technique,
            "technique_name": technique_name(self.technique),
            "severity": self.severity.value,
            "score": self.score,
            "threshold": self.threshold,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "model_version": self.model_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            time=float(data["time"]),
            client=str(data["client"]),
            detector=str(data["detector"]),
            technique=str(data["technique"]),
            severity=Severity(data["severity"]),
            score=float(data["score"]),
            threshold=float(data["threshold"]),
            summary=str(data["summary"]),
            evidence=dict(data.get("evidence") or {}),
            model_version=str(data.get("model_version", "")),
            clients=tuple(str(c) for c in data.get("clients") or ()),
        )


@dataclass(frozen=True, eq=False)
class Observation:
    """One answered request as monitors see it.

    ``x`` is the input batch ``(n, d...)`` (read-only float32), ``probabilities`` the model's answer ``(n, k)``
    (read-only float64, before any output hardening), ``time`` seconds since the epoch (the gateway's clock),
    ``key_id`` the credential used and ``source`` where the request came from (the peer address).
    """

    time: float
    client: str
    x: NDArray[np.float32]
    probabilities: NDArray[np.float64]
    key_id: str = ""
    source: str = ""
    model_version: str = ""
    labels: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        x = np.array(self.x, dtype=np.float32)
        p = np.array(self.probabilities, dtype=np.float64)
        if x.ndim < 2 or p.ndim != 2 or len(x) != len(p) or p.shape[1] < 2:
            raise InvalidInputError(
                f"An observation needs a batch of inputs and one row of probabilities per input, not {x.shape} and "
                f"{p.shape}."
            )
        if not math.isfinite(self.time):
            raise InvalidInputError("An observation's time must be finite.")
        for arr in (x, p):
            arr.setflags(write=False)
        labels = p.argmax(axis=1).astype(np.int64)
        labels.setflags(write=False)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "probabilities", p)
        object.__setattr__(self, "labels", labels)

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def flat(self) -> NDArray[np.float32]:
        """The inputs as ``(n, features)``."""
        return self.x.reshape(len(self.x), int(np.prod(self.x.shape[1:])))


class TrafficDetector(ABC):
    """A monitor of answered requests that raises :class:`Alert` objects; also an output-stage inference guard.

    Subclasses set :attr:`technique` and :attr:`severity`, and implement :meth:`fit`, :meth:`observe`,
    :meth:`forget` and :meth:`memory`; detectors that learn per-client baselines also :meth:`state` and
    :meth:`restore`. ``clock`` (seconds since the epoch) times requests seen through :meth:`inspect`.
    """

    technique: str = Technique.API_ACCESS
    severity: Severity = Severity.MEDIUM

    def __init__(self) -> None:
        self._fitted = False
        self.clock = _time.time

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def stage(self) -> GuardStage:
        return GuardStage.OUTPUT

    @abstractmethod
    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Learn what normal looks like from the model and the owner's reference data; returns ``self``."""

    @abstractmethod
    def observe(self, observation: Observation) -> list[Alert]:
        """Take in one answered request; the alerts it raises (usually none)."""

    @abstractmethod
    def forget(self, client_id: str) -> None:
        """Drop everything kept about ``client_id``."""

    @abstractmethod
    def memory(self) -> GuardMemory:
        """The per-client state held now, against the caps."""

    def state(self) -> dict[str, JSONValue]:
        """What survives a restart, as plain JSON data (nothing for detectors without learned baselines)."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook, nothing to restore by default
        """Take back what :meth:`state` returned (after :meth:`fit`)."""

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{self.name} is not fitted; call fit(classifier, reference_x) first.")

    def inspect(self, request: GuardRequest) -> GuardDecision:
        """The guard protocol: observe the request (as of ``clock()``), release its probabilities unchanged and
        flag every row when it raised an alert."""
        self._require_fitted()
        p = request.require_probabilities(self.name)
        alerts = self.observe(Observation(time=self.clock(), client=request.client_id, x=request.x, probabilities=p))
        mine = [a for a in alerts if request.client_id in a.clients]
        score = max((a.score for a in mine), default=0.0)
        threshold = min((a.threshold for a in mine), default=None)
        action = Action.FLAG if mine else Action.ALLOW
        return GuardDecision(
            guard=self.name,
            stage=GuardStage.OUTPUT,
            client_id=request.client_id,
            actions=(action,) * request.n,
            scores=np.full(request.n, score),
            threshold=threshold if mine else None,
            reasons=tuple(a.summary for a in mine),
            probabilities=p,
        )
