"""Per-client detection of model-extraction query streams: PRADA plus off-distribution and proximity sequential tests.

    >>> from modelshield.defenses.extraction_monitor import ExtractionMonitor
    >>> monitor = ExtractionMonitor().fit(classifier, reference_x, seed=0)  # doctest: +SKIP
    >>> decision = monitor.observe("client-7", x_batch, predicted_batch)  # doctest: +SKIP
    >>> decision.alarm, decision.signals  # doctest: +SKIP
    >>> monitor.inspect(GuardRequest("client-7", x_batch, probabilities=proba_batch)).action  # doctest: +SKIP

Three signals, each per client:

``prada`` (Juuti et al. 2019). For every query the monitor records its minimum L2 distance to the client's earlier
queries that the model assigned the same class (a "growing set" per class; a query joins it when that distance
exceeds the mean minus one standard deviation of the class's distances so far). Benign queries give a roughly
normal distance distribution; synthetic queries (random inputs, Jacobian augmentation, small steps around seeds)
do not. After ``min_queries`` distances, the Shapiro–Wilk statistic W of the client's latest ``window`` distances is
compared with δ; W < δ raises the alarm. δ is *calibrated* in :meth:`ExtractionMonitor.fit`: the reference data
are replayed as ``calibration_streams`` benign streams of ``calibration_length`` queries, and δ is the
``target_fpr`` quantile of each stream's lowest W (``delta=`` overrides it). W is recomputed after every 16th query
of a client, in calibration and in service alike, whatever the batch sizes (so that service holds W to the rhythm δ
was calibrated at). The reference data's classes are the model's predictions on it.

``ood``. PRADA misses attackers who query with natural data (KnockoffNets, Orekondy et al. 2019): their distances
look benign. Such data almost never comes from the owner's own distribution, so the second signal scores each query
by its distance to its nearest neighbour in the reference data, turns it into an empirical p-value against
reference points held out from the index (so benign clients' p-values are uniform), and runs a one-sided CUSUM on
"p < ``ood_alpha``" events, testing rate ``ood_alpha`` (benign) against ``ood_alt`` (shifted). The alarm threshold
``ood_h`` = 9.2 (≈ log 10⁴) makes a benign false alarm rare over long streams; a stream whose every query is a hit
alarms at its sixth (6·log(``ood_alt``/``ood_alpha``) = 10.8 > 9.2, five give 8.96). We chose the k-NN test over
class coverage or query volume because it needs no profile of benign clients, which an owner rarely has, and
because it catches random and other-data (KnockoffNets) streams with one mechanism.

``proximity``. Jacobian-based augmentation (Papernot et al. 2017) seeded with natural images of the owner's kind
passes the k-NN test: each synthetic query is its parent plus a small step (λ = 0.1 per pixel), still about as close
to the reference data as natural data is. PRADA does see it, but only once enough synthetic distances have entered
its window to move W: on zoo:digits-cnn behind 50–150 natural seeds, a median of 172 synthetic queries (10th
percentile 47) and 6 of 20 streams not at all within 300 queries (``benchmarks/privacy/bench_monitor_delay.py``, 20
seeds, 2026-12-03). The third signal tests each query directly: its distance to the nearest of the client's latest
``proximity_memory`` queries (whatever their class; exact repeats are skipped, they tell a thief nothing new)
becomes an empirical p-value against the distances from held-out reference points to their nearest neighbour among
``proximity_memory`` random index points, and the same CUSUM (``ood_alpha``, ``ood_alt``, ``ood_h``) runs on "p <
``ood_alpha``" events. A benign client drawing independent inputs from the owner's distribution has at most
``proximity_memory`` earlier queries to be near, so its p-values are uniform or larger; a thief who steps from its
own earlier queries is a hit at nearly every synthetic query (the same benchmark: alarm on the 5th–6th synthetic
query, median 6, at all 20 seeds; no more alarms on its 400 benign clients than without the signal). Its limits: a
step as large as the typical gap between natural inputs escapes it and must then be caught by the other signals
(with λ = 0.15 the median delay was 58 synthetic queries and 2 of 20 streams were not flagged; at λ = 0.2, in a
three-seed check, the k-NN test flagged the streams 6–55 synthetic queries in), and a benign client that sends many
small edits of the same input looks like a thief to it.

The limit of all three is stated plainly: an attacker who holds data from the owner's own distribution is
indistinguishable from a benign client query by query; only ``max_queries`` (a volume cap per client, off by
default) acts on such a stream.

Inputs are compared in standardised units for tabular data (per-feature standard deviation of the reference data)
and in raw units for images. Memory per client is bounded: at most ``max_stored`` stored queries across the
growing sets (older ones are dropped first), ``window`` distances and ``proximity_memory`` recent queries, plus a
few scalars; at most ``max_clients`` clients are tracked (the least recently seen is forgotten). All methods are
thread-safe: a client's queries are processed one batch at a time, different clients' in parallel.

As an output-stage :class:`~modelshield.defenses.interface.InferenceGuard`, :meth:`ExtractionMonitor.inspect` reads
the predicted classes from the request's probabilities, releases those unchanged, and scores each row by the
client's alarm level after it: the largest of each signal's statistic over its alarm threshold (``(1 - W) / (1 -
δ)``, each CUSUM over ``ood_h``, queries over ``max_queries``), kept at its peak because alarms latch until
:meth:`~ExtractionMonitor.forget`. A row scores above 1 exactly when an alarm has fired, and gets ``on_alarm``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.defenses.interface import (
    Action,
    ClientStates,
    GuardDecision,
    GuardMemory,
    GuardRequest,
    GuardStage,
    alarm_action,
)
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models.interface import Classifier

__all__ = [
    "AttackDetection",
    "ExtractionMonitor",
    "MonitorDecision",
    "MonitorMeasurement",
    "measure_monitor",
]


# W is recomputed every this many queries of a client, in calibration and in service alike (Shapiro–Wilk costs about
# a tenth of a millisecond: once per one-row request it would dominate a gateway's cost, and W computed at another
# rhythm than δ was calibrated at would not be held to δ's false-alarm rate).
_CALIBRATION_BATCH = 16
_ABOVE_ONE = math.nextafter(1.0, 2.0)


def _sq_distances(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Squared L2 distances between the rows of ``a`` and of ``b`` (may round slightly below 0)."""
    return np.asarray((a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * a @ b.T, dtype=np.float64)


def _level(stat: float, limit: float, fired: bool) -> float:
    """``stat / limit``, kept above 1 when the signal fired and at most 1 when it did not (so rounding cannot
    disagree with the test that fired it)."""
    ratio = stat / limit if limit > 0 else (math.inf if stat > 0 else 0.0)
    return max(ratio, _ABOVE_ONE) if fired else min(ratio, 1.0)


@dataclass(frozen=True)
class MonitorDecision:
    """The monitor's verdict on a client after one batch of queries."""

    client_id: str
    alarm: bool  # any signal fired (now or earlier: alarms latch until forget())
    signals: tuple[str, ...]  # the signals that fired: "ood", "prada", "proximity", "volume"
    queries: int  # queries seen from this client
    prada_w: float | None  # latest Shapiro–Wilk W (None until min_queries distances)
    prada_delta: float
    ood_cusum: float  # CUSUM statistic of the OOD test
    ood_rate: float  # share of the client's queries flagged as off-distribution
    first_alarm_at: int | None  # the query count at which the first alarm fired
    proximity_cusum: float  # CUSUM statistic of the proximity test
    proximity_rate: float  # share of the client's tested queries that lay unusually close to its earlier ones

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "alarm": self.alarm,
            "signals": list(self.signals),
            "queries": self.queries,
            "prada_w": self.prada_w,
            "prada_delta": self.prada_delta,
            "ood_cusum": self.ood_cusum,
            "ood_rate": self.ood_rate,
            "first_alarm_at": self.first_alarm_at,
            "proximity_cusum": self.proximity_cusum,
            "proximity_rate": self.proximity_rate,
        }


class _Rows:
    """A first-in, first-out queue of equal-length rows in one growing array: append at the end, drop the oldest,
    and the live rows as one contiguous view (an array rebuilt from a deque on every query cost more than the
    distances computed on it)."""

    __slots__ = ("count", "data", "head")

    def __init__(self, width: int) -> None:
        self.data: NDArray[np.float64] = np.empty((8, width))
        self.head = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def rows(self) -> NDArray[np.float64]:
        """The live rows, oldest first (a view)."""
        return self.data[self.head : self.head + self.count]

    def append(self, row: NDArray[np.float64]) -> None:
        end = self.head + self.count
        if end == len(self.data):  # full at the end: move the live rows to the front, growing when over half full
            live = self.rows().copy()
            if self.count > len(self.data) // 2:
                self.data = np.empty((2 * len(self.data), self.data.shape[1]))
            self.data[: self.count] = live
            self.head, end = 0, self.count
        self.data[end] = row
        self.count += 1

    def popleft(self) -> None:
        self.head += 1
        self.count -= 1


@dataclass
class _Client:
    groups: dict[int, _Rows] = field(default_factory=dict)
    order: deque[int] = field(default_factory=deque)  # class of each stored query, oldest first
    distances: deque[float] = field(default_factory=deque)
    class_stats: dict[int, list[float]] = field(default_factory=dict)  # n, sum, sum of squares
    queries: int = 0
    flagged: int = 0
    cusum: float = 0.0
    w: float | None = None
    signals: set[str] = field(default_factory=set)
    first_alarm_at: int | None = None
    peak: float = 0.0  # the highest alarm level so far (above 1 once an alarm fired)
    recent: _Rows | None = None  # latest queries, for the proximity test
    prada_seen: int = 0  # queries fed to PRADA: W is recomputed at every multiple of _CALIBRATION_BATCH
    near_tested: int = 0  # queries the proximity test scored (exact repeats are skipped)
    near_flagged: int = 0
    near_cusum: float = 0.0

    def entries(self) -> int:
        """Stored queries, distances and recent queries: the history this client holds."""
        return len(self.order) + len(self.distances) + (len(self.recent) if self.recent is not None else 0)


class ExtractionMonitor:
    """Watches each client's query stream for model extraction (see the module docstring).

    ``on_alarm`` is the action :meth:`inspect` gives the rows from the first alarm on (flag, or block).

    Learned attributes (after :meth:`fit`): ``delta_`` (PRADA threshold), ``center_``, ``scale_``, ``index_``
    (reference points for the OOD test), ``null_distances_`` (sorted held-out nearest-neighbour distances),
    ``proximity_null_`` (sorted held-out distances to the nearest of ``proximity_memory_`` index points: the
    proximity test's null), ``calibration_w_`` (each calibration stream's lowest W), ``n_classes_``,
    ``input_shape_``.
    """

    #: The monitor releases the model's probabilities unchanged.
    preserves_argmax = True

    def __init__(
        self,
        *,
        delta: float | None = None,
        target_fpr: float = 0.01,
        min_queries: int = 50,
        window: int = 1000,
        max_stored: int = 2000,
        max_clients: int = 10_000,
        ood: bool = True,
        ood_alpha: float = 0.05,
        ood_alt: float = 0.3,
        ood_h: float = 9.2,
        max_index: int = 5000,
        proximity: bool = True,
        proximity_memory: int = 256,
        max_queries: int | None = None,
        calibration_streams: int = 50,
        calibration_length: int = 300,
        on_alarm: Action | str = Action.FLAG,
    ) -> None:
        if delta is not None and not 0.0 < delta < 1.0:
            raise InvalidParameterError(f"delta must lie in (0, 1), not {delta}.", remedy="Leave it None to calibrate.")
        if not 0.0 < target_fpr < 1.0:
            raise InvalidParameterError(f"target_fpr must lie in (0, 1), not {target_fpr}.")
        if not 3 <= min_queries <= window <= 5000:
            raise InvalidParameterError(
                f"Need 3 <= min_queries <= window <= 5000, got min_queries={min_queries}, window={window}.",
                remedy="Shapiro–Wilk needs at least 3 values and is accurate up to 5000.",
            )
        if max_stored < 1 or max_clients < 1:
            raise InvalidParameterError(
                f"max_stored and max_clients must be positive, not {max_stored}, {max_clients}."
            )
        if not 0.0 < ood_alpha < ood_alt < 1.0:
            raise InvalidParameterError(f"Need 0 < ood_alpha < ood_alt < 1, got {ood_alpha} and {ood_alt}.")
        if not ood_h > 0 or max_index < 2:
            raise InvalidParameterError(f"ood_h must be positive and max_index at least 2, got {ood_h}, {max_index}.")
        if proximity_memory < 1:
            raise InvalidParameterError(f"proximity_memory must be positive, not {proximity_memory}.")
        if max_queries is not None and max_queries < 1:
            raise InvalidParameterError(f"max_queries must be positive or None, not {max_queries}.")
        if calibration_streams < 1 or calibration_length < min_queries:
            raise InvalidParameterError(
                f"Need calibration_streams >= 1 and calibration_length >= min_queries, got {calibration_streams} "
                f"and {calibration_length}."
            )
        self.delta = delta
        self.target_fpr = target_fpr
        self.min_queries = min_queries
        self.window = window
        self.max_stored = max_stored
        self.max_clients = max_clients
        self.ood = ood
        self.ood_alpha = ood_alpha
        self.ood_alt = ood_alt
        self.ood_h = ood_h
        self.max_index = max_index
        self.proximity = proximity
        self.proximity_memory = proximity_memory
        self.max_queries = max_queries
        self.calibration_streams = calibration_streams
        self.calibration_length = calibration_length
        self.on_alarm = alarm_action(on_alarm)
        self._clients: ClientStates[_Client] = ClientStates(_Client, max_clients=max_clients)

    @property
    def name(self) -> str:
        volume = f", max_queries={self.max_queries}" if self.max_queries is not None else ""
        near = ", proximity" if self.proximity else ""
        return f"extraction-monitor(prada{', ood' if self.ood else ''}{near}{volume})"

    @property
    def stage(self) -> GuardStage:
        return GuardStage.OUTPUT

    # -- fitting ---------------------------------------------------------------------------------------------------
    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Learn the reference distribution and calibrate δ on benign streams replayed from it; returns ``self``.

        ``reference_x``: the owner's data (training or held-out records), whose classes are ``classifier``'s
        predictions on it (``reference_y`` is accepted for the guard protocol and unused: the monitor sees predicted
        classes at inspection, so it calibrates on them). ``seed`` picks the index and the calibration streams.
        Forgets every client.
        """
        x = np.asarray(reference_x)
        if x.dtype == object or not np.issubdtype(x.dtype, np.number) or x.ndim < 2:
            raise InvalidInputError(f"reference_x must be a numeric batch (n, ...), got shape {x.shape}.")
        if tuple(x.shape[1:]) != classifier.input_shape:
            raise InvalidInputError(
                f"reference_x has inputs of shape {x.shape[1:]}; the model takes {classifier.input_shape}."
            )
        flat = x.reshape(len(x), -1).astype(np.float64)
        labels = classifier.predict(x) if len(x) else np.zeros(0, np.int64)
        if len(flat) < 20 or not np.all(np.isfinite(flat)):
            raise InvalidInputError(
                f"fit needs at least 20 finite reference records, got {len(flat)}.",
                remedy="Pass the owner's training or held-out data.",
            )
        self.input_shape_ = tuple(x.shape[1:])
        if x.ndim > 2:  # images: raw pixel units, as PRADA measures them
            self.center_, self.scale_ = np.zeros(flat.shape[1]), np.ones(flat.shape[1])
        else:
            std = flat.std(axis=0)
            floor = max(float(np.median(std[std > 0])) if np.any(std > 0) else 1.0, 1e-12) * 1e-3
            self.center_, self.scale_ = flat.mean(axis=0), np.maximum(std, floor)
        z = (flat - self.center_) / self.scale_
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(z))
        half = len(z) // 2
        index, held = order[half:][: self.max_index], order[:half]
        self.index_ = z[index]
        self.index_sq_ = (self.index_**2).sum(axis=1)
        self.null_distances_ = np.sort(self._nn_distance(z[held]))
        # proximity null: held-out points against random subsets of the index as large as a client's memory
        self.proximity_memory_ = min(self.proximity_memory, len(self.index_))
        near, near_rng = np.empty(len(held)), np.random.default_rng([seed, 1])  # own stream: δ's calibration as before
        for i in range(0, len(held), 64):
            sub = self.index_[near_rng.choice(len(self.index_), self.proximity_memory_, replace=False)]
            near[i : i + 64] = np.sqrt(np.maximum(_sq_distances(z[held[i : i + 64]], sub).min(axis=1), 0.0))
        self.proximity_null_ = np.sort(near)
        if self.delta is not None:
            self.delta_ = float(self.delta)
            self.calibration_w_ = np.empty(0)
        else:
            lowest = []
            for _ in range(self.calibration_streams):
                pick = rng.choice(len(z), size=min(self.calibration_length, len(z)), replace=False)
                state = _Client()
                ws = [w for w in self._prada_stream(state, z[pick], labels[pick], at_end=True) if w is not None]
                if ws:
                    lowest.append(min(ws))
            if not lowest:
                raise InvalidInputError(
                    f"Calibration streams produced no PRADA statistic: {len(z)} reference records are too few for "
                    f"min_queries={self.min_queries}.",
                    remedy="Pass more reference data, or lower min_queries.",
                )
            self.calibration_w_ = np.sort(np.asarray(lowest))
            self.delta_ = float(np.quantile(self.calibration_w_, self.target_fpr, method="lower"))
        self.n_classes_ = classifier.n_classes
        self._clients.clear()
        return self

    def _labels(self, predicted: ArrayLike, n: int) -> NDArray[np.int64]:
        labels = np.asarray(predicted)
        if labels.shape != (n,) or not (np.issubdtype(labels.dtype, np.integer) or n == 0):
            raise InvalidInputError(f"Expected {n} integer predicted classes, got an array of shape {labels.shape}.")
        if n and (labels.min() < 0 or labels.max() >= self.n_classes_):
            raise InvalidInputError(f"Predicted classes must lie in 0..{self.n_classes_ - 1}.")
        return labels.astype(np.int64)

    def _fitted(self) -> None:
        if not hasattr(self, "delta_"):
            raise NotFittedError(
                "This ExtractionMonitor is not fitted yet.", remedy="Call fit(classifier, reference_x) first."
            )

    def _proximity(self, state: _Client, z: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each query's distance to the nearest of the client's latest ``proximity_memory_`` queries before it
        (``inf`` for a first query, ``nan`` for an exact repeat); updates the client's recent queries."""
        m = self.proximity_memory_
        if state.recent is None:
            state.recent = _Rows(z.shape[1])
        before = len(state.recent)
        history = np.concatenate([state.recent.rows(), z]) if before else z
        out = np.full(len(z), np.inf)
        if len(history) > 1:
            sq = _sq_distances(z, history)
            position = before + np.arange(len(z))[:, None]
            column = np.arange(len(history))[None, :]
            visible = (column < position) & (column >= position - m)
            sq = np.where(visible, np.maximum(sq, 0.0), np.inf)
            nearest = sq.argmin(axis=1)
            out = np.sqrt(sq[np.arange(len(z)), nearest])
            exact = np.isfinite(out) & (history[nearest] == z).all(axis=1)
            out[exact] = np.nan
        for q in z[-m:]:
            state.recent.append(q)
        while len(state.recent) > m:
            state.recent.popleft()
        return out

    def _nn_distance(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty(len(z))
        for i in range(0, len(z), 512):
            block = z[i : i + 512]
            sq = (block**2).sum(axis=1)[:, None] + self.index_sq_[None, :] - 2.0 * block @ self.index_.T
            out[i : i + 512] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
        return out

    # -- PRADA -----------------------------------------------------------------------------------------------------
    def _prada_stream(
        self, state: _Client, z: NDArray[np.float64], labels: NDArray[np.int64], *, at_end: bool = False
    ) -> list[float | None]:
        """Feed queries one by one; return the latest W after each (None before ``min_queries`` distances). W is
        recomputed after every ``_CALIBRATION_BATCH``-th query of the client (and, with ``at_end``, after the last)."""
        from scipy.stats import shapiro

        out: list[float | None] = []
        for i, (q, c) in enumerate(zip(z, labels.tolist(), strict=True)):
            group = state.groups.get(c)
            if group is None:
                group = state.groups[c] = _Rows(len(q))
            if len(group):
                dmin = float(np.sqrt(((group.rows() - q) ** 2).sum(axis=1).min()))
                state.distances.append(dmin)
                if len(state.distances) > self.window:
                    state.distances.popleft()
                stats = state.class_stats.setdefault(c, [0.0, 0.0, 0.0])
                stats[0] += 1
                stats[1] += dmin
                stats[2] += dmin * dmin
                mean = stats[1] / stats[0]
                std = math.sqrt(max(stats[2] / stats[0] - mean * mean, 0.0))
                join = dmin > mean - std
            else:
                join = True
            if join:
                group.append(q)
                state.order.append(c)
                if len(state.order) > self.max_stored:  # drop the oldest stored query
                    old = state.order.popleft()
                    state.groups[old].popleft()
            state.prada_seen += 1
            due = state.prada_seen % _CALIBRATION_BATCH == 0 or (at_end and i == len(z) - 1)
            if due and len(state.distances) >= self.min_queries:
                d = np.asarray(state.distances)
                state.w = float(shapiro(d).statistic) if np.ptp(d) > 0 else None
            out.append(state.w)
        return out

    # -- observing -------------------------------------------------------------------------------------------------
    def _standardised(self, x_batch: ArrayLike) -> NDArray[np.float64]:
        x = np.asarray(x_batch)
        if x.shape == self.input_shape_:
            x = x[np.newaxis]
        if x.ndim != len(self.input_shape_) + 1 or tuple(x.shape[1:]) != self.input_shape_:
            raise InvalidInputError(
                f"Queries of shape {x.shape} do not match the reference inputs {self.input_shape_}."
            )
        if x.dtype == object or not np.issubdtype(x.dtype, np.number):
            raise InvalidInputError(f"Queries must be numeric, got dtype {x.dtype}.")
        flat = x.reshape(len(x), math.prod(self.input_shape_)).astype(np.float64)  # also for an empty batch
        if not np.all(np.isfinite(flat)):
            raise InvalidInputError("Queries contain NaN or infinite values.")
        return np.asarray((flat - self.center_) / self.scale_, dtype=np.float64)

    def _update(self, state: _Client, z: NDArray[np.float64], labels: NDArray[np.int64]) -> NDArray[np.float64]:
        """Feed one batch of a client's standardised queries to its state (held under its lock); return the client's
        alarm level after each query (see the module docstring)."""
        start = state.queries
        ws = self._prada_stream(state, z, labels)
        prada = [w is not None and w < self.delta_ for w in ws]
        for i, fired in enumerate(prada):
            if fired:
                self._fire(state, "prada", start + i + 1)
        up = math.log(self.ood_alt / self.ood_alpha)
        down = math.log((1 - self.ood_alt) / (1 - self.ood_alpha))
        cusums, ood = np.zeros(len(z)), np.zeros(len(z), dtype=bool)
        if self.ood and len(z):
            # empirical p-value: share of held-out reference distances at least as large
            dist = self._nn_distance(z)
            n_null = len(self.null_distances_)
            p = (n_null - np.searchsorted(self.null_distances_, dist, side="left") + 1) / (n_null + 1)
            hit = p < self.ood_alpha
            for i, h in enumerate(hit.tolist()):
                state.cusum = max(0.0, state.cusum + (up if h else down))
                cusums[i], ood[i] = state.cusum, state.cusum > self.ood_h
                if ood[i]:
                    self._fire(state, "ood", start + i + 1)
            state.flagged += int(hit.sum())
        near_cusums, near = np.zeros(len(z)), np.zeros(len(z), dtype=bool)
        if self.proximity and len(z):
            # empirical p-value: share of held-out reference distances at most as large (small is suspicious)
            gap = self._proximity(state, z)
            n_null = len(self.proximity_null_)
            tested = ~np.isnan(gap)
            p = (np.searchsorted(self.proximity_null_, np.where(tested, gap, np.inf), side="right") + 1) / (n_null + 1)
            for i, (t, h) in enumerate(zip(tested.tolist(), (p < self.ood_alpha).tolist(), strict=True)):
                if t:  # an exact repeat leaves the statistic where it was
                    state.near_cusum = max(0.0, state.near_cusum + (up if h else down))
                    state.near_tested += 1
                    state.near_flagged += int(h)
                near_cusums[i], near[i] = state.near_cusum, state.near_cusum > self.ood_h
                if near[i]:
                    self._fire(state, "proximity", start + i + 1)
        state.queries += len(z)
        if self.max_queries is not None and state.queries > self.max_queries:
            self._fire(state, "volume", self.max_queries + 1)
        levels = np.empty(len(z))
        for i, w in enumerate(ws):
            level = _level(1.0 - w, 1.0 - self.delta_, prada[i]) if w is not None else 0.0
            if self.ood:
                level = max(level, _level(float(cusums[i]), self.ood_h, bool(ood[i])))
            if self.proximity:
                level = max(level, _level(float(near_cusums[i]), self.ood_h, bool(near[i])))
            if self.max_queries is not None:
                level = max(level, _level(start + i + 1, self.max_queries, start + i + 1 > self.max_queries))
            state.peak = max(state.peak, level)
            levels[i] = state.peak
        return levels

    def _decision(self, client_id: str, state: _Client) -> MonitorDecision:
        return MonitorDecision(
            client_id=client_id,
            alarm=bool(state.signals),
            signals=tuple(sorted(state.signals)),
            queries=state.queries,
            prada_w=state.w,
            prada_delta=self.delta_,
            ood_cusum=state.cusum,
            ood_rate=state.flagged / state.queries if state.queries else 0.0,
            first_alarm_at=state.first_alarm_at,
            proximity_cusum=state.near_cusum,
            proximity_rate=state.near_flagged / state.near_tested if state.near_tested else 0.0,
        )

    def observe(self, client_id: str, x_batch: ArrayLike, predicted: ArrayLike) -> MonitorDecision:
        """Record a batch of one client's queries (with the model's predicted classes) and decide on the client."""
        self._fitted()
        z = self._standardised(x_batch)
        labels = self._labels(predicted, len(z))
        with self._clients.hold(str(client_id)) as state:
            self._update(state, z, labels)
            return self._decision(str(client_id), state)

    def inspect(self, request: GuardRequest) -> GuardDecision:
        """Record the request's queries with the classes its probabilities predict; rows from the client's first
        alarm on get ``on_alarm``. The probabilities are released unchanged."""
        self._fitted()
        proba = request.require_probabilities(self.name)
        if proba.shape[1] != self.n_classes_:
            raise InvalidInputError(
                f"The request has probabilities over {proba.shape[1]} classes; the model has {self.n_classes_}."
            )
        z = self._standardised(request.x)
        labels = np.argmax(proba, axis=1).astype(np.int64)
        with self._clients.hold(request.client_id) as state:
            levels = self._update(state, z, labels)
            verdict = self._decision(request.client_id, state)
        flagged = levels > 1.0
        return GuardDecision(
            guard=self.name,
            stage=GuardStage.OUTPUT,
            client_id=request.client_id,
            actions=tuple(self.on_alarm if f else Action.ALLOW for f in flagged.tolist()),
            scores=levels,
            threshold=1.0,
            reasons=self._reasons(verdict) if flagged.any() else (),
            probabilities=proba,
        )

    def _reasons(self, verdict: MonitorDecision) -> tuple[str, ...]:
        said = {
            "prada": f"PRADA: the distances between this client's queries do not look like natural data (latest "
            f"Shapiro-Wilk W {verdict.prada_w if verdict.prada_w is not None else float('nan'):.3f}, alarm below "
            f"{verdict.prada_delta:.3f}).",
            "ood": f"Off-distribution: {verdict.ood_rate:.0%} of this client's {verdict.queries} queries lie far from "
            f"the owner's data (CUSUM {verdict.ood_cusum:.1f}, alarm above {self.ood_h:g}).",
            "proximity": f"Proximity: {verdict.proximity_rate:.0%} of this client's queries lie closer to its own "
            f"earlier queries than natural inputs lie to each other (CUSUM {verdict.proximity_cusum:.1f}, alarm "
            f"above {self.ood_h:g}).",
            "volume": f"Volume: {verdict.queries} queries exceed the cap of {self.max_queries}.",
        }
        first = f"Model extraction suspected since query {verdict.first_alarm_at} of this client (alarms latch)."
        return (first, *(said[s] for s in verdict.signals))

    @staticmethod
    def _fire(state: _Client, signal: str, at: int) -> None:
        state.signals.add(signal)
        if state.first_alarm_at is None or at < state.first_alarm_at:
            state.first_alarm_at = at

    def forget(self, client_id: str) -> None:
        """Drop everything stored about a client (e.g. after acting on an alarm)."""
        self._clients.forget(str(client_id))

    @property
    def n_clients(self) -> int:
        """The clients tracked now."""
        return len(self._clients)

    def memory(self) -> GuardMemory:
        """Clients tracked, and their stored queries, distances and recent queries, against ``max_clients`` and
        ``max_stored + window + proximity_memory`` per client."""
        return GuardMemory(
            clients=len(self._clients),
            max_clients=self.max_clients,
            entries=self._clients.total(_Client.entries),
            max_entries=self.max_clients * (self.max_stored + self.window + self.proximity_memory),
        )


# -- measurement -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackDetection:
    """How one kind of stream fared: share detected, and after how many queries.

    The counts start at the stream's first query. A stream that begins with natural queries (a Jacobian thief's
    seed phase) is detected that many queries later than its first synthetic query: subtract its onset for the
    delay (``benchmarks/privacy/bench_monitor_delay.py`` does).
    """

    name: str
    streams: int
    detected: int
    queries_to_detection: tuple[int, ...]  # per detected stream: the first alarm's query index, counted from query 1
    by_signal: Mapping[str, int]  # streams on which each signal fired

    @property
    def detection_rate(self) -> float:
        return self.detected / self.streams if self.streams else float("nan")

    @property
    def median_queries_to_detection(self) -> float | None:
        return float(np.median(self.queries_to_detection)) if self.queries_to_detection else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "streams": self.streams,
            "detected": self.detected,
            "detection_rate": self.detection_rate,
            "median_queries_to_detection": self.median_queries_to_detection,
            "queries_to_detection": list(self.queries_to_detection),
            "by_signal": dict(self.by_signal),
        }


@dataclass(frozen=True)
class MonitorMeasurement:
    """Detection of attack streams and false alarms on benign streams, by one fitted monitor."""

    benign: AttackDetection  # "detected" benign streams are false alarms
    attacks: tuple[AttackDetection, ...]
    delta: float
    batch_size: int

    @property
    def false_alarm_rate(self) -> float:
        return self.benign.detection_rate

    def attack(self, name: str) -> AttackDetection:
        for a in self.attacks:
            if a.name == name:
                return a
        raise KeyError(f"No attack stream named {name!r}; measured: {[a.name for a in self.attacks]}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "false_alarm_rate": self.false_alarm_rate,
            "benign": self.benign.to_dict(),
            "attacks": [a.to_dict() for a in self.attacks],
            "delta": self.delta,
            "batch_size": self.batch_size,
        }


Stream = tuple[ArrayLike, ArrayLike]  # queries in order, the model's predicted class for each


def _replay(monitor: ExtractionMonitor, name: str, streams: Iterable[Stream], batch_size: int) -> AttackDetection:
    detected, streams_n, at = 0, 0, []
    by_signal: dict[str, int] = {}
    for i, (xs, ps) in enumerate(streams):
        x, p = np.asarray(xs), np.asarray(ps)
        client = f"{name}#{i}"
        decision = None
        for start in range(0, len(x), batch_size):
            decision = monitor.observe(client, x[start : start + batch_size], p[start : start + batch_size])
        monitor.forget(client)
        streams_n += 1
        if decision is not None and decision.alarm:
            detected += 1
            at.append(int(decision.first_alarm_at or decision.queries))
            for s in decision.signals:
                by_signal[s] = by_signal.get(s, 0) + 1
    return AttackDetection(name, streams_n, detected, tuple(at), by_signal)


def measure_monitor(
    monitor: ExtractionMonitor,
    benign: Sequence[Stream],
    attacks: Mapping[str, Sequence[Stream]],
    *,
    batch_size: int = 16,
) -> MonitorMeasurement:
    """Replay each stream as its own client, ``batch_size`` queries per call, and count alarms.

    ``benign``: streams of ordinary clients (e.g. random draws from held-out test data, never the data the
    monitor was fitted on); ``attacks``: named lists of attack streams (e.g. the ``query_x`` of
    :func:`modelshield.attacks.extraction.extract_model` with the victim's predictions).
    """
    monitor._fitted()
    if batch_size < 1:
        raise InvalidParameterError(f"batch_size must be positive, not {batch_size}.")
    if not benign:
        raise InvalidParameterError("measure_monitor needs benign streams, to measure false alarms.")
    return MonitorMeasurement(
        benign=_replay(monitor, "benign", benign, batch_size),
        attacks=tuple(_replay(monitor, name, streams, batch_size) for name, streams in attacks.items()),
        delta=monitor.delta_,
        batch_size=batch_size,
    )
