"""The inference guard: what a gateway calls on every request, before the model (input) or after it (output).

    >>> import numpy as np
    >>> from modelshield.defenses.interface import Action, GuardRequest, GuardStage
    >>> request = GuardRequest("client-7", np.zeros((2, 3)), probabilities=np.array([[0.9, 0.1], [0.2, 0.8]]))
    >>> request.n, request.client_id
    (2, 'client-7')
    >>> Action.worst([Action.ALLOW, Action.BLOCK, Action.FLAG])
    <Action.BLOCK: 'block'>
    >>> [s.value for s in GuardStage]
    ['input', 'output']

An :class:`InferenceGuard` is fitted once, scikit-learn style, on the model and reference data
(:meth:`~InferenceGuard.fit` returns the guard; learned state ends in ``_``; using it before raises
:class:`~modelshield.errors.NotFittedError`), then inspects requests: :meth:`~InferenceGuard.inspect` takes a
:class:`GuardRequest` (the client, the input batch and, after the model, its probabilities) and returns a frozen
:class:`GuardDecision`: an :class:`Action` per row (allow, flag, block), a score per row (higher is more
suspicious) with the threshold it was held against, reasons in plain words, the queries the guard itself spent on
the model, and for output guards the probabilities to release.

Two stages (:class:`GuardStage`). *Input* guards see the batch before the model answers (feature squeezing, STRIP);
they may query the model themselves. *Output* guards see the model's probabilities and return what to release
(top-k, rounding, labels only, noise, reverse sigmoid), or watch a client's stream and release the probabilities
unchanged (the extraction monitor). A gateway runs each request's input guards, the model, then its output guards.

Built for a server that runs many requests at once in threads:

- Thread-safe. State learned in ``fit`` is not changed by ``inspect``; per-client state lives in a
  :class:`ClientStates` table (one lock for the table, one per client), so requests of different clients run in
  parallel and those of one client one after another.
- Bounded memory. At most ``max_clients`` clients are remembered (the least recently seen is forgotten first) and
  each keeps a bounded history; :meth:`~InferenceGuard.memory` reports both against their caps.
- No global state, deterministic under a seed. A randomised guard never draws from a shared generator: STRIP draws
  its overlays once in ``fit`` from ``seed``; noise is a function of ``(seed, the row's bytes)`` (the same question
  gets the same answer, so repeating it averages nothing away) or, when fresh noise is wanted, of ``(seed, client,
  the client's request count, the row)``. Either way the answer to a client does not depend on how its requests
  interleave with other clients' requests, which a shared generator or a global request counter would make it do.

:func:`modelshield.testing.guard_checks.check_guard` runs this contract against any guard.
"""

from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models.interface import Classifier

__all__ = [
    "Action",
    "ClientStates",
    "GuardDecision",
    "GuardMemory",
    "GuardRequest",
    "GuardStage",
    "InferenceGuard",
    "InputDetector",
    "alarm_action",
    "upper_quantile",
]

S = TypeVar("S")


class GuardStage(enum.StrEnum):
    """Where a guard sits: before the model (``input``) or after it (``output``)."""

    INPUT = "input"  # sees the input batch; may query the model itself
    OUTPUT = "output"  # sees the model's probabilities; returns the probabilities to release


class Action(enum.StrEnum):
    """What a guard asks the gateway to do with a row, from least to most severe."""

    ALLOW = "allow"  # answer as usual
    FLAG = "flag"  # answer, and record the request for review
    BLOCK = "block"  # do not answer

    @property
    def severity(self) -> int:
        """0 for allow, 1 for flag, 2 for block."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, actions: Iterable[Action]) -> Action:
        """The most severe of ``actions`` (allow when there are none)."""
        return max(actions, key=lambda a: a.severity, default=cls.ALLOW)


_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.BLOCK: 2}


def alarm_action(value: Action | str) -> Action:
    """``value`` as the action for a row a guard raises an alarm on: flag or block (allow would hide the alarm)."""
    try:
        action = Action(value)
    except ValueError:
        action = Action.ALLOW
    if action is Action.ALLOW:
        raise InvalidParameterError(
            f"on_alarm must be 'flag' or 'block', not {value!r}.",
            remedy="Use Action.FLAG to answer and record, or Action.BLOCK to refuse to answer.",
        )
    return action


def _frozen(array: ArrayLike, dtype: type[np.floating[Any]]) -> NDArray[Any]:
    """A read-only copy of ``array`` as ``dtype`` (one copy, never a view of the caller's array)."""
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class GuardRequest:
    """One request as a guard sees it: who asks, the input batch, and (after the model) its probabilities.

    ``x`` is a batch ``(n, *input_shape)`` of finite numbers, kept as a read-only float32 copy; ``probabilities``,
    required by output guards, is ``(n, n_classes)`` of finite non-negative numbers (read-only float64 copy).
    """

    client_id: str
    x: NDArray[Any]
    probabilities: NDArray[Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str):
            raise InvalidInputError(f"client_id must be a string, not {type(self.client_id).__name__}.")
        arr = np.asarray(self.x)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise InvalidInputError(f"The request's inputs must be numeric, not of dtype {arr.dtype}.")
        if arr.ndim < 2:
            raise InvalidInputError(
                f"The request's inputs have shape {arr.shape}; expected a batch (n, *input_shape).",
                remedy="Add the batch axis, e.g. x[np.newaxis] for a single input.",
            )
        x = _frozen(arr, np.float32)
        if not np.all(np.isfinite(x)):
            raise InvalidInputError("The request's inputs contain NaN or infinite values.")
        object.__setattr__(self, "x", x)
        if self.probabilities is not None:
            p = np.asarray(self.probabilities, dtype=np.float64)
            if p.ndim != 2 or p.shape[0] != len(x) or p.shape[1] < 2:
                raise InvalidInputError(
                    f"The request's probabilities have shape {p.shape}; expected ({len(x)}, n_classes) with at "
                    "least 2 classes, one row per input."
                )
            if not (np.all(np.isfinite(p)) and np.all(p >= 0.0)):
                raise InvalidInputError("The request's probabilities must be finite and non-negative.")
            object.__setattr__(self, "probabilities", _frozen(p, np.float64))

    @property
    def n(self) -> int:
        """The number of inputs in the batch."""
        return len(self.x)

    def require_probabilities(self, guard: str) -> NDArray[np.float64]:
        """The model's probabilities, or :class:`InvalidInputError` naming ``guard`` when the request has none."""
        if self.probabilities is None:
            raise InvalidInputError(
                f"{guard} is an output guard and needs the model's probabilities; the request has none.",
                remedy="Run the model first and pass GuardRequest(client_id, x, probabilities=...).",
            )
        return self.probabilities


@dataclass(frozen=True, eq=False)
class GuardDecision:
    """A guard's decision on one request; arrays are read-only copies.

    ``actions`` has one :class:`Action` per row and ``scores`` one score per row (higher is more suspicious); a
    guard with a ``threshold`` gives a row an action other than allow exactly when its score exceeds the threshold.
    Guards that only transform (output hardening) have no threshold, allow every row, and score each row by how
    far the released probabilities lie from the model's (L1 distance, 0..2). ``reasons`` says in plain words why
    rows are not allowed (empty exactly when all are). ``probabilities`` is what an output guard releases (rows
    in [0, 1]), None for input guards. ``queries`` counts the inputs the guard itself sent to the model for this
    decision.
    """

    guard: str
    stage: GuardStage
    client_id: str
    actions: tuple[Action, ...]
    scores: NDArray[np.float64]
    threshold: float | None
    reasons: tuple[str, ...] = ()
    probabilities: NDArray[np.float64] | None = None
    queries: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(self.actions))
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.shape != (len(self.actions),):
            raise InvalidParameterError(f"{len(self.actions)} actions but scores of shape {scores.shape}.")
        if any(not isinstance(a, Action) for a in self.actions):
            raise InvalidParameterError("Every action must be an Action.")
        object.__setattr__(self, "scores", _frozen(scores, np.float64))
        if (self.probabilities is None) != (self.stage is GuardStage.INPUT):
            raise InvalidParameterError("Output-stage decisions carry probabilities; input-stage decisions do not.")
        if self.probabilities is not None:
            p = np.asarray(self.probabilities, dtype=np.float64)
            if p.ndim != 2 or len(p) != len(self.actions):
                raise InvalidParameterError(f"{len(self.actions)} actions but probabilities of shape {p.shape}.")
            object.__setattr__(self, "probabilities", _frozen(p, np.float64))
        if self.queries < 0:
            raise InvalidParameterError(f"queries must be non-negative, not {self.queries}.")

    @property
    def action(self) -> Action:
        """The action for the whole batch: the most severe row action."""
        return Action.worst(self.actions)

    @property
    def flagged(self) -> NDArray[np.bool_]:
        """Per row, whether its action is anything but allow."""
        return np.array([a is not Action.ALLOW for a in self.actions], dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view, for audit logs."""
        return {
            "guard": self.guard,
            "stage": self.stage.value,
            "client_id": self.client_id,
            "action": self.action.value,
            "actions": [a.value for a in self.actions],
            "scores": [float(s) for s in self.scores],
            "threshold": self.threshold,
            "reasons": list(self.reasons),
            "queries": self.queries,
        }


@dataclass(frozen=True)
class GuardMemory:
    """What a guard holds per client, against its caps: clients remembered, and history entries over all of them.

    A stateless guard reports zeros throughout.
    """

    clients: int = 0
    max_clients: int = 0
    entries: int = 0
    max_entries: int = 0

    @property
    def within_caps(self) -> bool:
        return self.clients <= self.max_clients and self.entries <= self.max_entries


@runtime_checkable
class InferenceGuard(Protocol):
    """A guard the gateway calls on every request: ``fit`` once, then ``inspect`` requests from many threads.

    ``name`` describes the guard with its parameters; ``stage`` says whether it runs before or after the model.
    ``fit(classifier, reference_x, reference_y=None, *, seed=0)`` learns from the model and the owner's reference
    data (``reference_y``, true labels, is optional and ignored by guards that do not need it) and returns the guard;
    the same seed gives the same guard. ``inspect(request)`` returns a :class:`GuardDecision` and raises
    :class:`~modelshield.errors.NotFittedError` before ``fit``. ``forget(client_id)`` drops what the guard keeps
    about a client; ``memory()`` reports what it keeps. :func:`modelshield.testing.guard_checks.check_guard` runs
    the contract.
    """

    @property
    def name(self) -> str: ...

    @property
    def stage(self) -> GuardStage: ...

    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Learn from ``classifier`` and the reference data; returns ``self``."""
        ...

    def inspect(self, request: GuardRequest) -> GuardDecision:
        """Decide on one request."""
        ...

    def forget(self, client_id: str) -> None:
        """Drop everything kept about ``client_id`` (nothing for stateless guards)."""
        ...

    def memory(self) -> GuardMemory:
        """The per-client state held now, against the caps."""
        ...


# -- per-client state -------------------------------------------------------------------------------------------------


@dataclass
class _Held(Generic[S]):
    state: S
    lock: threading.Lock = field(default_factory=threading.Lock)


class ClientStates(Generic[S]):
    """Per-client state for a guard, thread-safe and bounded: at most ``max_clients`` clients, the least recently
    seen forgotten first.

        >>> states: ClientStates[list[int]] = ClientStates(list, max_clients=2)
        >>> for client in ("a", "b", "a", "c"):
        ...     with states.hold(client) as seen:
        ...         seen.append(1)
        >>> sorted(states.clients()), states.total(len)
        (['a', 'c'], 3)

    :meth:`hold` gives one client's state under that client's lock, so requests of different clients proceed in
    parallel and those of one client one at a time. A client forgotten while a request holds its state finishes that
    request on the detached state, which is then dropped.
    """

    def __init__(self, new: Callable[[], S], *, max_clients: int) -> None:
        if max_clients < 1:
            raise InvalidParameterError(f"max_clients must be at least 1, not {max_clients}.")
        self.max_clients = max_clients
        self._new = new
        self._lock = threading.Lock()
        self._held: OrderedDict[str, _Held[S]] = OrderedDict()

    @contextmanager
    def hold(self, client_id: str) -> Iterator[S]:
        """The client's state (created when new), held under its lock for the ``with`` block."""
        with self._lock:
            held = self._held.get(client_id)
            if held is None:
                held = self._held[client_id] = _Held(self._new())
                while len(self._held) > self.max_clients:
                    self._held.popitem(last=False)
            else:
                self._held.move_to_end(client_id)
        with held.lock:
            yield held.state

    def forget(self, client_id: str) -> None:
        """Drop the client's state."""
        with self._lock:
            self._held.pop(client_id, None)

    def clear(self) -> None:
        """Drop every client's state."""
        with self._lock:
            self._held.clear()

    def clients(self) -> tuple[str, ...]:
        """The clients remembered, least recently seen first."""
        with self._lock:
            return tuple(self._held)

    def peek(self, client_id: str) -> S | None:
        """The client's state without touching its recency, or None (for inspection and tests, not for updates)."""
        with self._lock:
            held = self._held.get(client_id)
        return None if held is None else held.state

    def total(self, size: Callable[[S], int]) -> int:
        """The sum of ``size(state)`` over the clients, each read under its lock."""
        with self._lock:
            helds = list(self._held.values())
        total = 0
        for held in helds:
            with held.lock:
                total += size(held.state)
        return total

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)


# -- input detectors --------------------------------------------------------------------------------------------------


def upper_quantile(scores: NDArray[np.float64], fpr: float) -> float:
    """The ``1 - fpr`` quantile of ``scores``, taken upward, so that at most a share ``fpr`` lies strictly above."""
    return float(np.quantile(scores, 1.0 - fpr, method="higher"))


class InputDetector(ABC):
    """Base of the input-stage detectors that score each input and flag those above a threshold set in ``fit``.

    ``fpr`` is the share of the reference inputs allowed above the threshold (the false-positive rate aimed at);
    ``on_alarm`` the action for a flagged row (:attr:`Action.FLAG` or :attr:`Action.BLOCK`). Subclasses implement
    :meth:`fit` (setting ``classifier_`` and ``threshold_``), :meth:`score` and :meth:`queries_per_input`; the
    fitted state is never changed by :meth:`inspect`, so one detector serves any number of threads.
    """

    classifier_: Classifier
    threshold_: float
    clean_scores_: NDArray[np.float64]

    def __init__(self, *, fpr: float, on_alarm: Action | str = Action.FLAG) -> None:
        if not 0.0 < fpr < 1.0:
            raise InvalidParameterError(f"fpr must lie strictly between 0 and 1, not {fpr}.")
        self.fpr = fpr
        self.on_alarm = alarm_action(on_alarm)

    @property
    @abstractmethod
    def name(self) -> str:
        """A short description with the parameters."""

    @property
    def stage(self) -> GuardStage:
        return GuardStage.INPUT

    @abstractmethod
    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Learn the threshold from clean reference inputs; returns ``self``."""

    @abstractmethod
    def score(self, x: ArrayLike) -> NDArray[np.float64]:
        """Per input, how suspicious it is (higher is more)."""

    @abstractmethod
    def queries_per_input(self) -> int:
        """The model queries :meth:`score` spends per input."""

    def _fitted(self) -> Classifier:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet.", remedy="Call fit(classifier, reference_x) first."
            )
        return self.classifier_

    def inspect(self, request: GuardRequest) -> GuardDecision:
        """Score the request's inputs; rows above the threshold get ``on_alarm``."""
        classifier = self._fitted()
        threshold = self.threshold_
        x = classifier.validate_input(request.x)
        scores = self.score(x)
        flagged = scores > threshold
        actions = tuple(self.on_alarm if f else Action.ALLOW for f in flagged.tolist())
        reasons: tuple[str, ...] = ()
        if flagged.any():
            said = (
                f"{int(flagged.sum())} of {len(x)} inputs scored above {self.name}'s threshold {threshold:.4g} "
                f"(highest {float(scores.max()):.4g}), set so that {self.fpr:.1%} of clean reference inputs would."
            )
            reasons = (said,)
        return GuardDecision(
            guard=self.name,
            stage=GuardStage.INPUT,
            client_id=request.client_id,
            actions=actions,
            scores=scores,
            threshold=threshold,
            reasons=reasons,
            queries=len(x) * self.queries_per_input(),
        )

    def forget(self, client_id: str) -> None:
        """Nothing to forget: detectors keep no per-client state."""
        return None

    def memory(self) -> GuardMemory:
        return GuardMemory()
