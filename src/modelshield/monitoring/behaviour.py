"""Behaviour analytics (UEBA): each client's traffic, window by window, against its own baseline and against clients
in general.

    >>> import numpy as np
    >>> from modelshield.monitoring.behaviour import BehaviourAnalytics
    >>> from modelshield.monitoring.interface import Observation
    >>> from modelshield.testing.targets import tiny_target
    >>> target = tiny_target("tabular", white_box=False)
    >>> ueba = BehaviourAnalytics(clients=8, days=3).fit(target.classifier, target.train.x)
    >>> x = target.train.x[:4]
    >>> ueba.observe(Observation(time=0.0, client="acme", x=x, probabilities=target.classifier.predict_proba(x)))
    []
    >>> ueba.memory().clients
    1

Requests are aggregated per client into windows of ``window_seconds`` (an hour by default) by
:attr:`Observation.time`, the gateway's clock (never the wall clock, so simulated days replay exactly). The
per-request path only updates counters and sums; when a client's window closes (at its next request or refusal),
the window's features are computed and scored:

- **volume**: what the client asked for (answered rows, plus refused requests at its usual batch size, so that a
  client the response suspended for a day neither teaches its baseline a low level nor looks like a surge when it
  is answered again), variance-stabilised, against the client's own hour-of-day profile (24 bins, shrunk towards
  its overall level while a bin has little history), as a one-sided z score; a volume far above the client's usual
  one for that hour alerts even before the window closes;
- **content**, per row and averaged over the window: the input's distance to the reference data (Mahalanobis in a
  PCA-whitened space, with the residual), whether it lies beyond the reference's 99th percentile, the entropy of
  the model's answer, and the surprise ``-log q(label)`` of the predicted class under the classes the model gives
  the reference data (the mean surprise is the cross-entropy of the window's class histogram against the reference
  predictions); each against the client's own running mean, with a variance that knows how many rows the window
  had; and the rate of refused requests (:meth:`BehaviourAnalytics.observe_rejection`; refusals that carry out
  the gateway's own response, ``enforced=True``, count as volume only: a suspension is not a second finding);
- **cumulative volume**: a CUSUM of the hourly volume z scores, for thieves who stay in distribution and only ask
  two or three times as much as they used to, hour after hour; while it is raised the volume baseline does not
  learn, so a slow thief cannot teach it the new level;
- **population**: River's HalfSpaceTrees on every client's window vectors (volume, batch size, hour of day as
  sine and cosine, the content features, refusals), pre-trained on simulated benign clients, scores a window
  against what clients in general do (windows mostly refused are not scored: they show the gateway's response,
  not the client). It is reported in every alert's evidence, and alerts on its own only for a client still in
  warm-up (a new key has no baseline of its own yet), only after ``3`` consecutive windows each above both the
  calibrated threshold and the 99th percentile of the recent window scores of the client's elders (clients first
  seen at least 6 windows before it; a rank among live clients' windows scored by the same model, i.e. since
  HalfSpaceTrees last pivoted its window: real clients unlike the simulation, in class mix, batch size or input
  noise, then do not all look unusual; and a fleet that starts together, every key new, is not judged against
  itself), once per client, and with ``low`` severity: it says a client is unfamiliar, not that it is hostile.

No client is alerted on its own baseline before ``warmup_windows`` windows (two days by default). One alert per
window at most, scored as a multiple of the threshold of the component that raised it (``score`` against
``threshold = 1``; severity ``high`` above twice it, else ``medium``, and ``low`` for the population); a
component that alerted stays quiet for ``cooldown_windows`` windows, and the CUSUM restarts.

**Thresholds** are calibrated in :meth:`~BehaviourAnalytics.fit`, never on the traffic they judge: the detector
simulates ``clients`` benign clients for ``days`` days from the reference data (each with its own rate, diurnal
pattern, night-time activity, batch sizes, mix of classes and day-to-day level), runs them through the very same
scoring, and sets each component's threshold ``margin`` times above the highest score any simulated benign
window reached after warm-up (and never below a floor: 6 z for a window, 12 for the CUSUM). With the defaults this
is above every one of about 8,000 simulated benign client-hours, i.e. a false alarm rate per window well below
1/1,000 on traffic like the simulation; traffic unlike it (a benign client far burstier than any simulated one)
may alert more, and the floors bound how far the thresholds can fall.

State survives a restart without pickles: :meth:`~BehaviourAnalytics.state` gives plain JSON (each client's
counters and baselines, least recently seen first, and the last population windows, from which HalfSpaceTrees is
rebuilt by replay); :meth:`~BehaviourAnalytics.restore` checks every value's type, shape and range and refuses
malformed state with :class:`~modelshield.errors.InvalidInputError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield._extras import require
from modelshield.defenses.interface import ClientStates, GuardMemory
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.findings import JSONValue, Severity
from modelshield.models.interface import Classifier
from modelshield.monitoring.interface import Alert, Observation, Technique, TrafficDetector

__all__ = ["BehaviourAnalytics"]

logger = logging.getLogger(__name__)

_HOURS = 24
_CONTENT = ("distance", "outliers", "entropy", "surprise")
_F = len(_CONTENT)
_TWO_SIDED = np.array([False, False, True, True])
_COMPONENTS = ("volume", "content", "rejections", "cusum", "population")
_POP_FEATURES = 10
_STATE_VERSION = 3
_MAX_GAP = 7 * _HOURS  # empty windows replayed at most when a client comes back after a long silence
_KAPPA = 0.5  # prior weight (in windows) of the client's overall level in an hour bin's expectation
_CUSUM_K = 1.0  # the CUSUM's allowance, in z
_QUIET = 2.0 * math.sqrt(0.375) + 0.5  # the volume of an hour that usually has (next to) no requests
_CLIP_Z = 4.0  # z scores enter the CUSUM and the baselines' updates clipped to this
_DAY_RATE = 0.15  # how fast an hour bin follows its client (per day)
_SLOW_RATE = 1.0 / 72  # how fast overall levels and variances follow (per window)
_REJECT_FLOOR = 0.05
_POP_PERSIST = 3  # consecutive unusual windows before the population model alerts on a client in warm-up
_POP_RANK = 0.99  # ... each above this quantile of the population's own recent window scores
_POP_MIN_SCORES = 32  # recent population scores needed before a rank means anything
_POP_ELDER = 6  # windows a client must have been seen before another to count among its elders (see _population_score)


# -- per-client state ---------------------------------------------------------------------------------------------


@dataclass
class _Client:
    """One client's counters and baselines: a fixed number of floats (:func:`_entries`)."""

    window: int = -1  # the current window's index (time // window_seconds); -1 before the first request
    windows: int = 0  # windows closed since the first request, empty ones included
    active: int = 0  # windows closed with at least one answered row
    requests: int = 0
    rows: int = 0
    rejections: int = 0
    enforced: int = 0  # requests refused this window by an action the gateway's response took against the client
    sums: NDArray[np.float64] = field(default_factory=lambda: np.zeros(_F))
    squares: NDArray[np.float64] = field(default_factory=lambda: np.zeros(_F))
    hour_mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(_HOURS))
    hour_n: NDArray[np.float64] = field(default_factory=lambda: np.zeros(_HOURS))
    hour_var: NDArray[np.float64] = field(default_factory=lambda: np.zeros(_HOURS))
    level: float = 0.0
    vol_var: float = 1.0
    batch_mean: float = 0.0
    c_mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(_F))
    c_within: NDArray[np.float64] = field(default_factory=lambda: np.zeros(_F))
    c_between: NDArray[np.float64] = field(default_factory=lambda: np.zeros(_F))
    reject_mean: float = 0.0
    cusum: float = 0.0
    last_alert: NDArray[np.float64] = field(default_factory=lambda: np.full(len(_COMPONENTS), -1e9))
    row_limit: float = math.inf  # rows in the current window above which volume alerts at once
    alerted_window: int = -1  # the window that already raised its alert
    pop_streak: int = 0  # consecutive windows (with traffic) the population model found unusual

    _ARRAYS: ClassVar[dict[str, int]] = {
        "sums": _F,
        "squares": _F,
        "hour_mean": _HOURS,
        "hour_n": _HOURS,
        "hour_var": _HOURS,
        "c_mean": _F,
        "c_within": _F,
        "c_between": _F,
        "last_alert": len(_COMPONENTS),
    }
    _INTS: ClassVar[tuple[str, ...]] = (
        "window",
        "windows",
        "active",
        "requests",
        "rows",
        "rejections",
        "enforced",
        "alerted_window",
        "pop_streak",
    )
    _FLOATS: ClassVar[tuple[str, ...]] = ("level", "vol_var", "batch_mean", "reject_mean", "cusum", "row_limit")

    def to_json(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {name: int(getattr(self, name)) for name in self._INTS}
        for name in self._FLOATS:
            value = float(getattr(self, name))
            out[name] = value if math.isfinite(value) else None
        for name in self._ARRAYS:
            out[name] = [float(v) for v in getattr(self, name)]
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> _Client:
        if not isinstance(data, Mapping) or set(data) != {*cls._INTS, *cls._FLOATS, *cls._ARRAYS}:
            raise _bad_state(f"{where} is not a client record with the expected fields")
        client = cls()
        for name in cls._INTS:
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool) or not -(2**53) <= value <= 2**53:
                raise _bad_state(f"{where}.{name} is not an integer in range")
            if name not in {"window", "alerted_window"} and value < 0:
                raise _bad_state(f"{where}.{name} is negative")
            setattr(client, name, value)
        for name in cls._FLOATS:
            value = data[name]
            if value is None and name == "row_limit":
                client.row_limit = math.inf
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise _bad_state(f"{where}.{name} is not a finite number")
            setattr(client, name, float(value))
        for name, size in cls._ARRAYS.items():
            value = data[name]
            if (
                not isinstance(value, list)
                or len(value) != size
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            ):
                raise _bad_state(f"{where}.{name} is not a list of {size} numbers")
            arr = np.asarray(value, dtype=np.float64)
            if not np.isfinite(arr).all():
                raise _bad_state(f"{where}.{name} holds a non-finite number")
            setattr(client, name, arr)
        if client.vol_var <= 0 or (client.c_within < 0).any() or (client.c_between < 0).any() or client.cusum < 0:
            raise _bad_state(f"{where} holds a negative variance or CUSUM")
        if (client.hour_n < 0).any() or (client.hour_var < 0).any() or not 0.0 <= client.reject_mean <= 1.0:
            raise _bad_state(f"{where} holds a count or a rate out of range")
        return client


def _entries() -> int:
    """The floats one client's state holds."""
    return len(_Client._INTS) + len(_Client._FLOATS) + sum(_Client._ARRAYS.values())


def _bad_state(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"The behaviour analytics state cannot be restored: {what}.",
        remedy="Restore only what state() of a BehaviourAnalytics with the same settings and reference data "
        "returned, unchanged; or start without restoring (baselines are learned again).",
    )


# -- a window's figures -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """What one closed window of one client was: counts, and per content feature the sum and sum of squares."""

    index: int
    requests: int
    rows: int
    rejections: int
    sums: NDArray[np.float64]
    squares: NDArray[np.float64]
    enforced: int = 0


@dataclass(frozen=True)
class _Scores:
    volume: float
    content: float
    rejections: float
    cusum: float
    population: float
    unusual: bool
    warm: bool
    detail: dict[str, float]


# -- the detector -------------------------------------------------------------------------------------------------


class BehaviourAnalytics(TrafficDetector):
    """Per-client behaviour baselines over time windows, scored online (see the module docstring).

    ``window_seconds`` must divide a day. ``max_clients`` bounds the clients remembered (least recently seen
    forgotten first). ``warmup_windows`` windows of history come before a client is judged against itself.
    ``clients``, ``days`` and ``margin`` size the benign simulation that calibrates the thresholds in :meth:`fit`.
    """

    technique = Technique.API_ACCESS
    severity = Severity.MEDIUM

    def __init__(
        self,
        *,
        window_seconds: int = 3600,
        max_clients: int = 10_000,
        warmup_windows: int = 48,
        cooldown_windows: int = 6,
        clients: int = 48,
        days: int = 7,
        margin: float = 1.25,
        population_window: int = 256,
    ) -> None:
        super().__init__()
        if not 60 <= window_seconds <= 86_400 or 86_400 % window_seconds:
            raise InvalidParameterError(
                f"window_seconds must divide a day and be at least 60, not {window_seconds}.",
                remedy="Use 600, 900, 1800 or 3600 seconds.",
            )
        if max_clients < 1 or warmup_windows < 1 or cooldown_windows < 0:
            raise InvalidParameterError(
                f"max_clients ({max_clients}) and warmup_windows ({warmup_windows}) must be at least 1, "
                f"cooldown_windows ({cooldown_windows}) at least 0.",
                remedy="Pass positive counts.",
            )
        if clients < 2 or days < 2 or not 1.0 <= margin <= 10.0 or population_window < 16:
            raise InvalidParameterError(
                f"The calibration needs clients >= 2 ({clients}), days >= 2 ({days}), 1 <= margin <= 10 ({margin}) "
                f"and population_window >= 16 ({population_window}).",
                remedy="Keep the defaults unless the simulation is too slow, then lower clients or days.",
            )
        self.window_seconds = int(window_seconds)
        self.max_clients = int(max_clients)
        self.warmup_windows = int(warmup_windows)
        self.cooldown_windows = int(cooldown_windows)
        self.clients = int(clients)
        self.days = int(days)
        self.margin = float(margin)
        self.population_window = int(population_window)
        self._states: ClientStates[_Client] = ClientStates(_Client, max_clients=self.max_clients)
        self._pop_lock = threading.Lock()

    # -- fitting ----------------------------------------------------------------------------------------------------

    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Learn the reference geometry and answers, simulate benign clients, calibrate the thresholds."""
        x = classifier.validate_input(reference_x)
        if len(x) < 20:
            raise InvalidInputError(
                f"Behaviour analytics needs at least 20 reference inputs, not {len(x)}.",
                remedy="Pass more of the owner's reference data.",
            )
        rng = np.random.default_rng(seed)
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        order = rng.permutation(len(flat))
        half = len(flat) // 2
        fit_part, held_out = flat[order[:half]], flat[order[half:]]
        self.dim_ = flat.shape[1]
        self.n_classes_ = int(classifier.n_classes)
        self.mean_ = fit_part.mean(axis=0)
        self.scale_ = fit_part.std(axis=0) + 1e-6
        z = (fit_part - self.mean_) / self.scale_
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        eig = s**2 / max(len(z) - 1, 1)
        k = int(min(32, len(eig), max(1, len(z) - 1)))
        floor = max(float(eig.max()) * 1e-4, 1e-6)
        self.components_ = vt[:k].T.copy()
        self.eigen_ = np.maximum(eig[:k], floor)
        rest = self.dim_ - k
        self.residual_var_ = max(float(eig[k:].sum()) / rest, floor) if rest > 0 else 0.0
        proba = classifier.predict_proba(flat.reshape((len(flat), *x.shape[1:])).astype(np.float32))
        labels = proba.argmax(axis=1)
        counts = np.bincount(labels, minlength=self.n_classes_).astype(np.float64)
        self.class_prior_ = (counts + 1.0) / (counts.sum() + self.n_classes_)
        self.outlier_distance_ = 0.0
        distance = self._distance(held_out)
        self.outlier_distance_ = float(np.quantile(distance, 0.99))
        rows = self._row_features(held_out, np.asarray(proba[order[half:]], dtype=np.float64))
        self.row_std_ = rows.std(axis=0) + 1e-3
        self.row_mean_ = rows.mean(axis=0)
        self.thresholds_ = {"volume": 6.0, "content": 6.0, "rejections": 6.0, "cusum": 12.0, "population": 1.0}
        self.seed_ = int(seed)
        self._states.clear()
        self._pop_reset()
        self._fitted = True
        self._calibrate(rows, held_out_labels=labels[order[half:]], rng=rng)
        self._pop_scores.clear()  # the population's rank is among live clients' windows, not the simulated ones
        self.digest_ = self._digest()
        return self

    def _distance(self, flat: NDArray[np.float64]) -> NDArray[np.float64]:
        z = (flat - self.mean_) / self.scale_
        proj = z @ self.components_
        d2 = (proj**2 / self.eigen_).sum(axis=1)
        if self.residual_var_ > 0:
            d2 = d2 + np.maximum((z**2).sum(axis=1) - (proj**2).sum(axis=1), 0.0) / self.residual_var_
        result: NDArray[np.float64] = 0.5 * np.log1p(d2 / self.dim_)
        return result

    def _row_features(self, flat: NDArray[np.float64], proba: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per row: distance, beyond the reference's 99th percentile (0/1), normalised entropy, class surprise."""
        distance = self._distance(flat)
        p = np.clip(proba, 1e-12, 1.0)
        log_k = math.log(self.n_classes_)
        entropy = -(p * np.log(p)).sum(axis=1) / log_k
        surprise = -np.log(self.class_prior_[proba.argmax(axis=1)]) / log_k
        return np.column_stack([distance, distance > self.outlier_distance_, entropy, surprise]).astype(np.float64)

    def _digest(self) -> str:
        """A fingerprint of the settings and the fitted reference, so state is restored only into its like."""
        h = hashlib.sha256()
        h.update(json.dumps(self._settings(), sort_keys=True).encode())
        for arr in (self.mean_, self.scale_, self.components_, self.eigen_, self.class_prior_, self.row_std_):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        h.update(json.dumps(self.thresholds_, sort_keys=True).encode())
        return h.hexdigest()

    def _settings(self) -> dict[str, JSONValue]:
        return {
            "window_seconds": self.window_seconds,
            "warmup_windows": self.warmup_windows,
            "cooldown_windows": self.cooldown_windows,
            "population_window": self.population_window,
            "seed": self.seed_,
        }

    # -- the population model ---------------------------------------------------------------------------------------

    def _pop_reset(self) -> None:
        anomaly = require("river.anomaly", extra="data", feature="Behaviour analytics (the population model)")
        self._pop = anomaly.HalfSpaceTrees(
            n_trees=10,
            height=8,
            window_size=self.population_window,
            limits=dict.fromkeys(range(_POP_FEATURES), (0.0, 1.0)),
            seed=self.seed_,
        )
        self._pop_buffer: deque[tuple[float, ...]] = deque()
        self._pop_seen = 0
        # recent window scores: (client, score, the client's first window)
        self._pop_scores: deque[tuple[str, float, int]] = deque(maxlen=self.population_window)

    def _pop_learn(self, vector: tuple[float, ...]) -> None:
        """Learn one window (under the population lock); keep what replays the model exactly."""
        self._pop.learn_one(dict(enumerate(vector)))
        self._pop_seen += 1
        if self._pop_seen % self.population_window == 0:  # HalfSpaceTrees pivoted its mass: scores change scale
            self._pop_scores.clear()
        self._pop_buffer.append(vector)
        keep = self.population_window + self._pop_seen % self.population_window
        while len(self._pop_buffer) > keep:
            self._pop_buffer.popleft()

    def _pop_vector(self, w: _Window) -> tuple[float, ...]:
        hour = self._hour(w.index)
        angle = 2 * math.pi * (hour + 0.5) / _HOURS
        n = max(w.rows, 1)
        mean = w.sums / n
        z = np.clip((mean - self.row_mean_) / self.row_std_, -4.0, 4.0)
        total = w.requests + w.rejections
        vector = (
            min(math.log1p(w.rows) / 10.0, 1.0),
            min(math.log1p(w.requests) / 8.0, 1.0),
            min(math.log1p(w.rows / max(w.requests, 1)) / 7.0, 1.0),
            0.5 + 0.5 * math.sin(angle),
            0.5 + 0.5 * math.cos(angle),
            float(0.5 + z[0] / 8.0),
            float(np.clip(mean[1], 0.0, 1.0)),
            float(np.clip(mean[2], 0.0, 1.0)),
            float(0.5 + z[3] / 8.0),
            w.rejections / total if total else 0.0,
        )
        return tuple(round(v, 12) for v in vector)

    # -- scoring ----------------------------------------------------------------------------------------------------

    def _hour(self, index: int) -> int:
        return int((index * self.window_seconds) % 86_400) // 3600

    def _expected_volume(self, state: _Client, hour: int) -> tuple[float, float]:
        n = float(state.hour_n[hour])
        expected = (n * float(state.hour_mean[hour]) + _KAPPA * state.level) / (n + _KAPPA)
        m = max(n - 1.0, 0.0)  # the residuals this hour's own variance has seen
        var = (m * float(state.hour_var[hour]) + 2.0 * state.vol_var) / (m + 2.0)
        return expected, math.sqrt(max(var, 1.0))

    @staticmethod
    def _volume(state: _Client, rows: int, requests: int, rejections: int) -> float:
        """The window's volume, variance-stabilised: ``2 sqrt(rows / usual batch + refused + 3/8)`` (Anscombe's
        transform of the requests a client of the usual batch size would have sent; about unit variance under
        Poisson). Refused requests count: the volume is what the client asked for, so a client the gateway refused
        for a while (rightly or not) does not teach its baseline a low level, nor look like a surge afterwards."""
        batch = state.batch_mean if state.batch_mean > 0 else (rows / requests if requests else 1.0)
        return 2.0 * math.sqrt(rows / max(batch, 1.0) + rejections + 0.375)

    def _set_row_limit(self, state: _Client) -> None:
        """Rows in the current window above which the volume z passes its threshold (inf in warm-up)."""
        if state.windows < self.warmup_windows or state.batch_mean <= 0:
            state.row_limit = math.inf
            return
        expected, sd = self._expected_volume(state, self._hour(state.window))
        top = expected + self.thresholds_["volume"] * sd
        state.row_limit = max(state.batch_mean, 1.0) * ((top / 2.0) ** 2 - 0.375)

    def _score_window(self, state: _Client, w: _Window, *, learn_population: bool, client: str = "") -> _Scores:
        """Score the closed window ``w`` against the client's baseline, then let the baseline learn it."""
        warm = state.windows >= self.warmup_windows
        hour = self._hour(w.index)
        value = self._volume(state, w.rows, w.requests, w.rejections + w.enforced)
        expected, sd = self._expected_volume(state, hour)
        z_volume = (value - expected) / sd
        detail: dict[str, float] = {"rows": float(w.rows), "requests": float(w.requests), "volume_z": z_volume}
        z_content = self._content_z(state, w, detail)
        total = w.requests + w.rejections
        z_reject = 0.0
        if total:
            rate = w.rejections / total
            m = state.reject_mean
            z_reject = (rate - m) / math.sqrt(max(m * (1 - m), 0.01) / total + _REJECT_FLOOR**2)
            detail["rejection_rate"] = rate

        population, unusual = self._population_score(state, w, client, learn_population=learn_population)
        detail["population"] = population
        detail["population_streak"] = float(state.pop_streak)

        cusum = state.cusum
        if warm and (w.rows > 0 or expected > _QUIET):  # quiet hours, quiet then too, leave the CUSUM be
            cusum = max(0.0, cusum + min(z_volume, _CLIP_Z) - _CUSUM_K)
        state.cusum = cusum

        # learn: volume and batch size (not while the CUSUM is raised), content and refusals (clipped)
        if cusum <= 0.5 * self.thresholds_["cusum"]:
            clipped = expected + max(-_CLIP_Z, min(_CLIP_Z, z_volume)) * sd if warm else value
            rate = max(1.0 / (state.windows + 1.0), _SLOW_RATE)
            if state.hour_n[hour] >= 1:  # the first sample of an hour only says where that hour is
                square = (clipped - expected) ** 2
                state.vol_var += rate * (square - state.vol_var)
                state.hour_var[hour] += max(1.0 / state.hour_n[hour], _DAY_RATE) * (square - state.hour_var[hour])
            rate_hour = max(1.0 / (state.hour_n[hour] + 1.0), _DAY_RATE)
            state.hour_mean[hour] += rate_hour * (clipped - state.hour_mean[hour])
            state.hour_n[hour] = min(state.hour_n[hour] + 1.0, 1000.0)
            state.level += rate * (clipped - state.level)
            if w.requests > 0:
                batch = w.rows / w.requests
                if state.batch_mean <= 0:
                    state.batch_mean = batch
                else:
                    batch = min(max(batch, state.batch_mean / 4), state.batch_mean * 4)
                    state.batch_mean += max(1.0 / (state.active + 1.0), 1.0 / 48) * (batch - state.batch_mean)
        if not warm or z_content <= 3.0:  # a window far off the content baseline does not teach it
            self._learn_content(state, w, total)
        state.windows += 1
        return _Scores(z_volume, z_content, z_reject, cusum, population, unusual, warm, detail)

    def _population_score(
        self, state: _Client, w: _Window, client: str, *, learn_population: bool
    ) -> tuple[float, bool]:
        """The population model's score of ``w``, and whether it is unusual: above the calibrated threshold and
        above the ``_POP_RANK`` quantile of the recent windows of the client's elders (a rank among live clients, so
        a population unlike the simulation does not make every client unusual). Elders are clients first seen at
        least ``_POP_ELDER`` windows before this one: "unlike what clients in general do" needs clients that were
        there before, so a fleet that starts together (every key new) is not judged against itself. Counts the
        client's streak."""
        if w.rows == 0 or w.rejections + w.enforced > w.requests:  # mostly refused: not about the client's own ways
            return 0.0, False
        vector = self._pop_vector(w)
        unusual = False
        first = w.index - state.windows
        with self._pop_lock:
            population = float(self._pop.score_one(dict(enumerate(vector))))
            recent = self._pop_scores
            elders = [score for who, score, since in recent if who != client and since <= first - _POP_ELDER]
            if len(elders) >= _POP_MIN_SCORES:
                unusual = population > float(np.quantile(elders, _POP_RANK))
            if learn_population:
                self._pop_learn(vector)
                recent.append((client, population, first))
        unusual = unusual and population > self.thresholds_["population"]
        state.pop_streak = state.pop_streak + 1 if unusual else 0
        return population, unusual

    def _content_z(self, state: _Client, w: _Window, detail: dict[str, float]) -> float:
        """The largest content z of the window (one-sided for distance and outliers); fills ``detail``."""
        if w.rows == 0:
            return 0.0
        mean = w.sums / w.rows
        var = np.maximum(state.c_within, 0.25 * self.row_std_**2) / w.rows + state.c_between
        var = var + (0.1 * self.row_std_) ** 2
        z = (mean - state.c_mean) / np.sqrt(var)
        signed = np.where(_TWO_SIDED, np.abs(z), z)
        for name, value_f, z_f in zip(_CONTENT, mean, z, strict=True):
            detail[name] = float(value_f)
            detail[f"{name}_z"] = float(z_f)
        return float(signed.max()) if state.active >= 1 else 0.0

    def _learn_content(self, state: _Client, w: _Window, total: int) -> None:
        if w.rows > 0:
            mean = w.sums / w.rows
            within = np.maximum(w.squares / w.rows - mean**2, 0.0)
            rate = max(1.0 / (state.active + 1.0), 1.0 / 48)
            if state.active == 0:
                state.c_mean = mean.copy()
                state.c_within = within
            else:
                spread = np.sqrt(np.maximum(state.c_within, 0.25 * self.row_std_**2) / w.rows + state.c_between)
                spread = spread + 0.1 * self.row_std_
                moved = np.clip(mean, state.c_mean - _CLIP_Z * spread, state.c_mean + _CLIP_Z * spread)
                excess = np.maximum((moved - state.c_mean) ** 2 - state.c_within / w.rows, 0.0)
                state.c_mean = state.c_mean + rate * (moved - state.c_mean)
                state.c_within = state.c_within + rate * (within - state.c_within)
                state.c_between = state.c_between + rate * (excess - state.c_between)
            state.active += 1
        if total:
            rate = max(1.0 / (state.windows + 1.0), _SLOW_RATE)
            state.reject_mean += rate * (min(w.rejections / total, state.reject_mean + 0.2) - state.reject_mean)

    def _judge(self, client: str, state: _Client, scores: _Scores, time: float, model_version: str) -> Alert | None:
        """The window's alert, if a component passed its threshold and is not cooling down."""
        t = self.thresholds_
        if scores.warm:
            ratios = {
                "volume": scores.volume / t["volume"],
                "content": scores.content / t["content"],
                "rejections": scores.rejections / t["rejections"],
                "cusum": scores.cusum / t["cusum"],
                "population": 0.0,
            }
        else:
            ratios = dict.fromkeys(_COMPONENTS, 0.0)
            ratios["population"] = scores.population / t["population"]
        now = state.windows
        live = {
            c: r
            for c, r in ratios.items()
            if r > 1.0
            and now - state.last_alert[_COMPONENTS.index(c)] > self.cooldown_windows
            and (c != "population" or (state.pop_streak >= _POP_PERSIST and state.last_alert[_COMPONENTS.index(c)] < 0))
        }
        if not live:
            return None
        component = max(live, key=lambda c: live[c])
        for c in live:
            state.last_alert[_COMPONENTS.index(c)] = now
        if "cusum" in live:
            state.cusum = 0.0
        if "population" in live:
            state.pop_streak = 0
        return self._alert(client, component, live[component], scores.detail, time, model_version, ratios)

    def _alert(
        self,
        client: str,
        component: str,
        ratio: float,
        detail: Mapping[str, float],
        time: float,
        model_version: str,
        ratios: Mapping[str, float],
    ) -> Alert:
        volume = component in ("volume", "cusum")
        summary = {
            "volume": "Requested far more rows in one window than this client usually does at this hour.",
            "content": "Inputs or answers unlike this client's usual ones (distance to the reference data, "
            "entropy or class mix).",
            "rejections": "Far more refused requests than this client usually has.",
            "cusum": "Sustained volume above this client's own baseline, window after window.",
            "population": "A new client whose traffic has stayed unlike what clients in general do, window after "
            "window (unfamiliar, not necessarily hostile).",
        }[component]
        evidence: dict[str, JSONValue] = {
            "component": component,
            "window_seconds": self.window_seconds,
            "ratios": {c: round(float(r), 4) for c, r in ratios.items()},
            "thresholds": dict(self.thresholds_),
            **{k: round(float(v), 6) for k, v in detail.items()},
        }
        return Alert(
            time=time,
            client=client,
            detector="behaviour",
            technique=Technique.EXTRACTION if volume else Technique.API_ACCESS,
            severity=Severity.LOW if component == "population" else Severity.HIGH if ratio > 2.0 else Severity.MEDIUM,
            score=float(ratio),
            threshold=1.0,
            summary=summary,
            evidence=evidence,
            model_version=model_version,
        )

    def _roll(self, client: str, state: _Client, index: int, time: float, model_version: str) -> list[Alert]:
        """Close the client's windows before ``index`` (empty ones included) and open ``index``."""
        alerts: list[Alert] = []
        if state.window < 0:
            state.window = index
            self._set_row_limit(state)
            return alerts
        if index <= state.window:
            return alerts
        closed = _Window(
            state.window, state.requests, state.rows, state.rejections, state.sums, state.squares, state.enforced
        )
        scores = self._score_window(state, closed, learn_population=True, client=client)
        alert = self._judge(client, state, scores, time, model_version)
        if alert is not None and state.alerted_window != state.window:
            alerts.append(alert)
        empty_from = max(state.window + 1, index - _MAX_GAP)
        for gap in range(empty_from, index):
            w = _Window(gap, 0, 0, 0, np.zeros(_F), np.zeros(_F))
            self._score_window(state, w, learn_population=False)
        state.window = index
        state.requests = state.rows = state.rejections = state.enforced = 0
        state.sums = np.zeros(_F)
        state.squares = np.zeros(_F)
        self._set_row_limit(state)
        return alerts

    # -- the traffic path -------------------------------------------------------------------------------------------

    def observe(self, observation: Observation) -> list[Alert]:
        """Count one answered request in its client's window; alerts when a window closes (or volume runs away)."""
        self._require_fitted()
        flat = observation.x.reshape(observation.n, math.prod(observation.x.shape[1:]))  # .flat fails on 0 rows
        if flat.shape[1] != self.dim_ or observation.probabilities.shape[1] != self.n_classes_:
            raise InvalidInputError(
                f"Behaviour analytics was fitted on inputs of {self.dim_} features and {self.n_classes_} classes, "
                f"not {flat.shape[1]} and {observation.probabilities.shape[1]}.",
                remedy="Send observations of the model the detector was fitted on.",
            )
        rows = self._row_features(flat.astype(np.float64), np.asarray(observation.probabilities, dtype=np.float64))
        sums = rows.sum(axis=0)
        squares = (rows**2).sum(axis=0)
        index = math.floor(observation.time / self.window_seconds)
        with self._states.hold(observation.client) as state:
            alerts = self._roll(observation.client, state, index, observation.time, observation.model_version)
            state.requests += 1
            state.rows += observation.n
            state.sums = state.sums + sums
            state.squares = state.squares + squares
            asked = state.rows + (state.rejections + state.enforced) * max(state.batch_mean, 1.0)
            if asked > state.row_limit and state.alerted_window != state.window:
                alerts.extend(self._early_volume_alert(observation, state))
        return alerts

    def _early_volume_alert(self, observation: Observation, state: _Client) -> list[Alert]:
        now = state.windows
        slot = _COMPONENTS.index("volume")
        if now - state.last_alert[slot] <= self.cooldown_windows:
            return []
        expected, sd = self._expected_volume(state, self._hour(state.window))
        z = (self._volume(state, state.rows, state.requests, state.rejections + state.enforced) - expected) / sd
        state.last_alert[slot] = now
        state.alerted_window = state.window
        ratio = z / self.thresholds_["volume"]
        detail = {"rows": float(state.rows), "requests": float(state.requests), "volume_z": z}
        return [
            self._alert(
                observation.client,
                "volume",
                ratio,
                detail,
                observation.time,
                observation.model_version,
                {"volume": ratio},
            )
        ]

    def observe_rejection(self, client: str, time: float, status: int, *, enforced: bool = False) -> list[Alert]:
        """Count one refused request (``status``: the HTTP status it got) in the client's window.

        ``enforced``: the refusal carries out an action the gateway's response already took against this client
        (a suspension, a throttle): it counts as asked-for volume, not as a refusal the client earned, so a
        suspension that an alert caused does not raise a second alert about refusals."""
        self._require_fitted()
        if not math.isfinite(time) or not 100 <= int(status) <= 599:
            raise InvalidInputError(
                f"A refusal needs a finite time and an HTTP status, not {time!r} and {status!r}.",
                remedy="Pass the gateway's clock and the status code the request was refused with.",
            )
        index = math.floor(time / self.window_seconds)
        with self._states.hold(client) as state:
            alerts = self._roll(client, state, index, time, "")
            if enforced:
                state.enforced += 1
            else:
                state.rejections += 1
        return alerts

    def forget(self, client_id: str) -> None:
        self._states.forget(client_id)

    def memory(self) -> GuardMemory:
        n = len(self._states)
        per = _entries()
        return GuardMemory(clients=n, max_clients=self.max_clients, entries=n * per, max_entries=self.max_clients * per)

    # -- calibration ------------------------------------------------------------------------------------------------

    def _calibrate(
        self, rows: NDArray[np.float64], *, held_out_labels: NDArray[np.int64], rng: np.random.Generator
    ) -> None:
        """Simulate benign clients from the reference rows; thresholds above their highest scores (see module)."""
        windows = _simulate_benign(rows, held_out_labels, self.n_classes_, self.clients, self.days, rng, self)
        peaks: dict[str, list[float]] = {c: [0.0] for c in _COMPONENTS}
        for client_windows in windows:
            state = _Client()
            for w in client_windows:
                scores = self._score_window(state, w, learn_population=True)
                if scores.warm:
                    peaks["volume"].append(scores.volume)
                    peaks["content"].append(scores.content)
                    peaks["rejections"].append(scores.rejections)
                    peaks["cusum"].append(scores.cusum)
                else:
                    peaks["population"].append(scores.population)
        floors = {"volume": 6.0, "content": 6.0, "rejections": 6.0, "cusum": 12.0}
        for c, floor in floors.items():
            self.thresholds_[c] = max(floor, self.margin * max(peaks[c]))
        worst = max(peaks["population"])
        self.thresholds_["population"] = min(worst + (1.0 - worst) * 0.5, 0.999)
        self.calibration_ = {c: float(max(v)) for c, v in peaks.items()}
        self.calibration_windows_ = sum(len(cw) for cw in windows)

    # -- state ------------------------------------------------------------------------------------------------------

    def state(self) -> dict[str, JSONValue]:
        """Plain JSON: the settings' fingerprint, every client (least recently seen first), the population's
        windows to replay."""
        self._require_fitted()
        clients: list[JSONValue] = []
        for client in self._states.clients():
            record = self._states.peek(client)
            if record is not None:
                clients.append([client, record.to_json()])
        with self._pop_lock:
            buffer: list[JSONValue] = [list(v) for v in self._pop_buffer]
            seen = self._pop_seen
            scores: list[JSONValue] = [[who, float(v), int(since)] for who, v, since in self._pop_scores]
        return {
            "version": _STATE_VERSION,
            "digest": self.digest_,
            "clients": clients,
            "population": {"seen": seen, "windows": buffer, "scores": scores},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`state` returned, after :meth:`fit` on the same reference; refuses anything else."""
        self._require_fitted()
        if not isinstance(state, Mapping) or set(state) != {"version", "digest", "clients", "population"}:
            raise _bad_state("it is not a mapping of version, digest, clients and population")
        if state["version"] != _STATE_VERSION:
            raise _bad_state(f"version {state['version']!r} is not {_STATE_VERSION}")
        if state["digest"] != self.digest_:
            raise _bad_state("it was saved by a detector with other settings or other reference data")
        clients = state["clients"]
        if not isinstance(clients, list) or len(clients) > self.max_clients:
            raise _bad_state(f"clients is not a list of at most {self.max_clients} records")
        records: list[tuple[str, _Client]] = []
        for i, item in enumerate(clients):
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
                raise _bad_state(f"clients[{i}] is not a [name, record] pair")
            records.append((item[0], _Client.from_json(item[1], f"clients[{i}]")))
        if len({name for name, _ in records}) != len(records):
            raise _bad_state("a client appears twice")
        population = state["population"]
        if not isinstance(population, Mapping) or set(population) != {"seen", "windows", "scores"}:
            raise _bad_state("population is not a mapping of seen, windows and scores")
        recent = population["scores"]
        if (
            not isinstance(recent, list)
            or len(recent) > self.population_window
            or not all(
                isinstance(v, list)
                and len(v) == 3
                and isinstance(v[0], str)
                and isinstance(v[1], int | float)
                and not isinstance(v[1], bool)
                and 0.0 <= v[1] <= 1.0
                and isinstance(v[2], int)
                and not isinstance(v[2], bool)
                and -(2**53) <= v[2] <= 2**53
                for v in recent
            )
        ):
            raise _bad_state(
                f"population.scores is not a list of at most {self.population_window} [client, score in [0, 1], "
                "first window] triples"
            )
        seen, buffer = population["seen"], population["windows"]
        if not isinstance(seen, int) or isinstance(seen, bool) or seen < 0 or not isinstance(buffer, list):
            raise _bad_state("population.seen is not a count or population.windows not a list")
        expected = min(seen, self.population_window + seen % self.population_window)
        if len(buffer) != expected:
            raise _bad_state(f"population.windows holds {len(buffer)} windows, not {expected}")
        vectors: list[tuple[float, ...]] = []
        for v in buffer:
            if (
                not isinstance(v, list)
                or len(v) != _POP_FEATURES
                or not all(isinstance(f, int | float) and not isinstance(f, bool) and math.isfinite(f) for f in v)
            ):
                raise _bad_state("a population window is not a list of finite numbers")
            vectors.append(tuple(float(f) for f in v))
        # everything checked: replace
        with self._pop_lock:
            self._pop_reset()
            for v in vectors:
                self._pop_learn(v)
            self._pop_seen = seen
            self._pop_scores.extend((str(v[0]), float(v[1]), int(v[2])) for v in recent)
        self._states.clear()
        for name, record in records:
            with self._states.hold(name) as held:
                for attr in (*_Client._INTS, *_Client._FLOATS, *_Client._ARRAYS):
                    setattr(held, attr, getattr(record, attr))


# -- the benign simulation that calibrates the thresholds ---------------------------------------------------------


def _simulate_benign(
    rows: NDArray[np.float64],
    labels: NDArray[np.int64],
    n_classes: int,
    clients: int,
    days: int,
    rng: np.random.Generator,
    detector: BehaviourAnalytics,
) -> list[list[_Window]]:
    """Window sequences of ``clients`` benign clients over ``days`` days: each its own peak rate, active hours,
    night-time share, batch sizes, class mix, refusal rate and day-to-day level; Poisson requests."""
    per_day = 86_400 // detector.window_seconds
    scale = detector.window_seconds / 3600
    by_class = [np.flatnonzero(labels == c) for c in range(n_classes)]
    by_class = [idx if len(idx) else np.arange(len(rows)) for idx in by_class]
    out: list[list[_Window]] = []
    for _ in range(clients):
        peak = math.exp(rng.uniform(math.log(0.5), math.log(80.0))) * scale
        centre = rng.uniform(0, 24)
        width = rng.uniform(2.0, 8.0)
        night = rng.uniform(0.0, 0.25)
        batch_mean = math.exp(rng.uniform(0.0, math.log(32.0)))
        mix = rng.dirichlet(np.full(n_classes, 0.5))
        reject = rng.uniform(0.0, 0.05)
        start = int(rng.integers(0, per_day))
        seq: list[_Window] = []
        for day in range(days):
            level = math.exp(rng.normal(0.0, 0.2))
            for slot in range(per_day):
                index = day * per_day + slot + start
                hour = ((index % per_day) + 0.5) / per_day * 24
                gap = min(abs(hour - centre), 24 - abs(hour - centre))
                rate = peak * level * (night + (1 - night) * math.exp(-0.5 * (gap / width * 2) ** 2))
                requests = int(rng.poisson(rate))
                batches = 1 + rng.poisson(batch_mean - 1, size=requests) if requests else np.zeros(0, dtype=np.int64)
                n = int(batches.sum())
                refused = int(rng.binomial(requests, reject)) if requests else 0
                if n:
                    m = min(n, 64)
                    cls = rng.choice(n_classes, size=m, p=mix)
                    pick = np.array([by_class[c][rng.integers(len(by_class[c]))] for c in cls])
                    sample = rows[pick]
                    sums = sample.sum(axis=0) * (n / m)
                    squares = (sample**2).sum(axis=0) * (n / m)
                else:
                    sums = squares = np.zeros(_F)
                seq.append(_Window(index, requests - refused, n, refused, sums, squares))
        out.append(seq)
    return out
