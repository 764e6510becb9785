"""Attack detectors on live traffic: extraction, evasion probing, membership/attribute probing, sybils and shared keys.

    >>> import numpy as np
    >>> from modelshield.monitoring.detectors import SybilDetector
    >>> from modelshield.monitoring.interface import Observation
    >>> sybil = SybilDetector(max_sources=3).fit(None, np.zeros((20, 2)))
    >>> alerts = [a for i in range(5) for a in sybil.observe(Observation(time=float(i), client="acme",
    ...           x=np.zeros((1, 2)), probabilities=np.array([[0.6, 0.4]]), key_id="k1", source=f"10.0.0.{i}"))]
    >>> [(a.detector, a.evidence["sources"]) for a in alerts]
    [('key-sharing', 4)]

Each detector is a :class:`~modelshield.monitoring.interface.TrafficDetector`: fitted once on the model and the
owner's reference data, then fed every answered request (:meth:`observe`), from many threads. Per-client state is
bounded (:class:`~modelshield.defenses.interface.ClientStates`); every signal alerts once per client when it fires
(alarms latch until :meth:`forget`), not once per request.

**How the sequential tests are calibrated.** Most signals turn each query into a yes/no "hit" whose rate under benign
traffic is known from the reference data (an empirical p-value below ``alpha``, or an event whose benign rate is
measured in :meth:`fit` on reference records held out from the index), and run a Bernoulli CUSUM of the
log-likelihood ratio of the benign rate ``p0`` against an attack rate ``p1``. For such a CUSUM the mean number of
benign queries between false alarms is at least ``exp(h)`` (Lorden 1971), so ``h = log(false_alarm_queries *
signals)`` gives each detector at most one false alarm per ``false_alarm_queries`` benign queries of a client
(default 10^6: at 1,000 queries per client-hour, one per 1,000 client-hours), *provided the hit rate of benign
clients is the reference's*. Fit on records from the distribution clients send (ideally held-out data, not the
training set: a model is more confident on its training data, which raises benign clients' low-margin rate).

**Class-conditional near-neighbour nulls.** A real client does not draw from the reference's class mix: one may send
mostly one or two digits, and its recent queries then lie much closer to each other than reference points lie to
random reference points, so a pooled null reads every specialist as a prober (a red-team replay with skewed benign
clients raised 16 proximity / near-duplicate / copies alerts in 829 client-hours that way). Every near-neighbour test
(``proximity``, ``spread``, evasion near-duplicates, probing ``copies``) therefore compares a query only with the
client's ``g`` most recent earlier queries *of the same predicted class* (exact repeats skipped), and takes its
p-value against the distances from held-out reference points of that class to ``g`` random index points of that
class, precomputed in :meth:`fit` for a grid of ``g`` (powers of two up to the class's index size and ``memory``;
``g`` is the largest grid size the client has). A benign client then matches the null whatever its class mix, and a
benign re-send of an image (after a client has gone through its class) is out of the compared window. Jacobian
steps, HopSkipJump's searches, Square's steps and noisy copies of one record stay within one class and stay caught.
Classes with fewer than 8 held-out or index points are not tested by these signals.

**Re-sends.** Real clients send an input again: a retry, the same document scanned once more, re-encoded, with
another scanner's noise. Such a copy is closer to the earlier query than any two distinct reference records of its
class are to each other (the *copy radius*: half the smallest distance between a held-out and an index point of the
class), and the extraction detector treats a row with exactly one earlier query of its class within that radius
like an exact repeat: not tested by ``proximity`` or ``spread`` and not fed to PRADA. A second copy of the same input
(noisy copies of one record, an attack's small steps around one point) is tested. In the red-team replay, rescanned
re-sends after a client had gone through its images raised benign clients' proximity hit rate from 5% to 7%, in
bursts, and the CUSUM fired once in about 50,000 queries of a heavy batch client.

**PRADA over long streams.** δ is calibrated on benign streams of ``calibration_length`` queries; over a longer
benign stream W keeps falling (more distances, and re-sends of earlier inputs) and a benign client crossed δ at its
~1,300th query. The detector therefore re-arms PRADA: the wrapped monitor forgets the client every ``epoch_`` =
``calibration_length`` new queries, so each epoch is a stream of the calibrated length, and δ is set (for the
default monitor) for one false alarm per ``false_alarm_queries`` benign queries: the ``epoch_ /
false_alarm_queries`` quantile of the calibration streams' lowest W, extrapolated with a normal fit of ``log(1 -
W)`` (never above the lowest W seen). The re-arm also restarts the monitor's ``ood`` CUSUM (an off-distribution
stream fires it again within a few queries).

**Severity.** A lone ``ood`` alarm from a client whose queries are not significantly more than a third
off-distribution (another scanner, a shifted population: partly off) raises no alert of its own: that is drift,
which the drift monitor reports for the model; it is held as corroboration for the client's other signals, and
alerts (high) once the client's share of off-distribution queries is significantly above a third (random,
other-data or per-feature synthetic queries). A lone ``new-key`` (volume: a new
batch client draws as much) is medium, and high once another extraction signal of the client corroborates it.
``boundary`` and ``spread`` are tested on in-distribution rows only (rows whose distance to the reference is not in
its upper ``alpha`` tail): an off-distribution input is uncertain and far from everything, which is the ``ood``
test's evidence, not uncertainty sampling or diversity selection; for a client most of whose queries are
off-distribution (random or other-data queries) every row is tested, as the same evidence then comes from a
wholesale off-distribution stream.

Detectors:

- :class:`ExtractionDetector` (``AML.T0024.002``): the PRADA and off-distribution tests of
  :class:`~modelshield.defenses.extraction_monitor.ExtractionMonitor` (its pooled proximity test is replaced by a
  class-conditional ``proximity``: queries unusually close to the client's recent queries of the same class,
  Jacobian augmentation), plus signals for natural-data thieves:
  ``boundary`` (answers with a top-two margin below the reference's ``alpha`` quantile: uncertainty-sampling
  thieves), ``spread`` (queries farther from the client's own recent queries than reference points lie from as many
  random reference points: core-set / diversity selection), ``coverage`` (predicted classes drawn from a balanced
  distribution rather than the reference's class mix, KnockoffNets' "balanced" selection; void when the reference
  mix is already balanced) and ``new-key`` (a key in its first ``young_hours`` drawing distinct answers faster than
  ``volume_factor`` times the median established client: the natural-data thief on a fresh key, which is otherwise
  a client like any other; void until enough clients are established, so a fleet that starts together is not
  compared with itself).
- :class:`EvasionProbingDetector` (``AML.T0043.001``): queries unusually close to one of the client's recent queries
  of the same class (class-conditional p-value), a CUSUM on those hits, and an alert once it fires with evidence of a
  boundary walk among the near-duplicates: at least ``min_flips`` answers whose nearest earlier query of any class
  answered another class, more low-margin answers (below the reference's ``alpha`` quantile) than chance allows
  (binomial p < ``evidence_p``), or margins shrinking significantly: HopSkipJump's binary searches and gradient
  probes, Square's near-identical steps. Near-duplicates alone (a client re-sending similar inputs) never alert.
- :class:`ProbingDetector`: ``copies`` (``AML.T0024.000``): queries with several of the client's recent queries
  within the reference's near-neighbour radius that differ from them in most features (noisy copies of one record,
  the label-only membership attack); ``sweep`` (``AML.T0024.001``): queries that differ from a recent query in exactly
  one feature (attribute inference and inversion sweeps).
- :class:`SybilDetector` (``AML.T0012``): ``key-sharing``, one key seen from more than ``max_sources`` sources in
  ``source_window`` seconds; ``sybil``, a group of at least ``min_group`` clients whose per-minute activity is
  correlated (or who appeared together and are active in the same bins) and whose combined volume is far above a
  typical client's. The alert names the group ``group:<hash>`` and lists its members.

Limits, stated plainly: a thief drawing i.i.d. from the owner's own distribution at a benign rate through one key is
indistinguishable query by query: ``new-key`` catches it on a fresh key that draws answers fast, and a new benign
batch client just as well (medium severity, for review); an established client that turns thief at its usual rate,
or a fresh key staying under ``volume_factor`` times the median rate, is caught by nothing here (the watermark then
proves the copy afterwards); near-duplicate signals alert on benign clients that send many small edits of one
input; an off-distribution-only thief (KnockoffNets with another data set) that mixes in enough in-distribution
queries to stay under half off-distribution is not alerted on until another signal corroborates it; the sybil
test sees timing and volume, not content, so one actor whose keys run steadily, independently timed, at benign rates
escapes it; an augmentation whose steps stay within the copy radius, one step per query, is skipped as re-sends by
``proximity`` and PRADA (such steps teach a copy almost nothing new, and a step from a step is a second copy);
overlapping attacks raise overlapping alerts (HopSkipJump's gradient probes are also noisy copies of one
point); PRADA re-armed per epoch cannot accumulate evidence across epochs.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from modelshield.defenses.extraction_monitor import ExtractionMonitor, MonitorDecision
from modelshield.defenses.interface import ClientStates, GuardMemory
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.findings import JSONValue, Severity
from modelshield.models.interface import Classifier
from modelshield.monitoring.interface import Alert, Observation, Technique, TrafficDetector

__all__ = [
    "EvasionProbingDetector",
    "ExtractionDetector",
    "ProbingDetector",
    "SybilDetector",
]

_EXTRACTION_SIGNALS = 5  # CUSUM signals sharing the extraction detector's false-alarm budget: ood, proximity, boundary,
# spread, coverage (PRADA has its own calibrated δ, new-key its population-relative factor)
_DAY_HOURS = 24  # the established clients' rates are their distinct queries over the last day
_TYPICAL_EVERY = 300.0  # seconds of observation time between recomputations of the established clients' median rate
_WHOLESALE_P = 1e-3
_OFF_SHARE = 1.0 / 3.0  # an off-distribution share above this (significantly) is not another scanner
_WHOLESALE_OOD = 0.5  # a lone ood alarm is high when most of the client's queries are off-distribution
_MIN_CLASS = 8  # held-out and index points a class needs for its own near-neighbour null (rarer classes: untested)
_MAX_NULL_POINTS = 1024  # per class, for the class-conditional nulls (bounded fit cost on large references)
_CLASS_REPS = 16  # random index subsets drawn per held-out point for each class-conditional null
_CHUNK = 64  # rows of one request compared with the history at once (bounded memory for large batches)


def _sq_distances(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(
        np.maximum((a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * a @ b.T, 0.0), dtype=np.float64
    )


def _flat(obs: Observation) -> NDArray[np.float32]:
    """The inputs as ``(n, features)``, also for an empty batch (``Observation.flat`` cannot reshape one)."""
    return obs.x.reshape(obs.n, math.prod(obs.x.shape[1:]))


def _margins(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Top-1 minus top-2 probability per row."""
    if not len(p):
        return np.zeros(0)
    top = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return np.asarray(top[:, 1] - top[:, 0], dtype=np.float64)


def _check_rate(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise InvalidParameterError(f"{name} must lie in (0, 1), not {value}.")


@dataclass
class _Cusum:
    """A Bernoulli CUSUM of log-likelihood ratios (benign rate p0 against attack rate p1)."""

    value: float = 0.0
    tested: int = 0
    hits: int = 0
    fired_at: int | None = None  # the client's query count at the first alarm
    reported: bool = False

    def run(self, hits: NDArray[np.bool_], up: float, down: float, h: float, start: int) -> None:
        for i, hit in enumerate(hits.tolist()):
            self.value = max(0.0, self.value + (up if hit else down))
            if self.value > h and self.fired_at is None:
                self.fired_at = start + i + 1
        self.tested += len(hits)
        self.hits += int(hits.sum())


def _llr(p0: float, p1: float) -> tuple[float, float]:
    return math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0))


class _Ring:
    """The latest ``size`` rows of a client (standardised), with their labels and margins; oldest overwritten."""

    __slots__ = ("count", "labels", "margins", "pos", "rows", "size")

    def __init__(self, size: int, width: int) -> None:
        self.size = size
        self.rows = np.zeros((0, width))
        self.labels = np.zeros(0, np.int64)
        self.margins = np.zeros(0)
        self.pos = 0
        self.count = 0

    def __len__(self) -> int:
        return min(self.count, self.size)

    def add(self, rows: NDArray[np.float64], labels: NDArray[np.int64], margins: NDArray[np.float64]) -> None:
        rows, labels, margins = rows[-self.size :], labels[-self.size :], margins[-self.size :]
        k = len(rows)
        if not k:
            return
        need = min(self.size, self.count + k)
        if need > len(self.rows):  # grow on demand (quiet clients keep little), never past ``size``
            cap = min(self.size, max(need, 2 * len(self.rows), 16))
            extra = cap - len(self.rows)
            self.rows = np.concatenate([self.rows, np.zeros((extra, self.rows.shape[1]), self.rows.dtype)])
            self.labels = np.concatenate([self.labels, np.zeros(extra, np.int64)])
            self.margins = np.concatenate([self.margins, np.zeros(extra)])
        if self.count + k <= len(self.rows) and self.count < self.size:  # still filling: append in place
            idx = self.count + np.arange(k)
        else:  # full (len(self.rows) == size): overwrite the oldest
            idx = (self.pos + np.arange(k)) % self.size
        self.rows[idx], self.labels[idx], self.margins[idx] = rows, labels, margins
        self.pos = int(idx[-1] + 1) % self.size
        self.count += k

    def live(self) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
        n = len(self)
        return self.rows[:n], self.labels[:n], self.margins[:n]

    def ordered(self) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
        """The live rows, labels and margins, oldest first."""
        if self.count <= self.size:
            return self.live()
        order = (self.pos + np.arange(self.size)) % self.size
        return self.rows[order], self.labels[order], self.margins[order]


@dataclass(frozen=True)
class _ClassNear:
    """Per row of a chunk, against the client's earlier queries of the *same predicted class* (the ``g`` most recent
    of them, ``g`` from the reference's grid of memory sizes; exact repeats skipped): the distance to the nearest
    (nan when untested: no earlier query of the class, a class too rare in the reference, or an exact repeat), ``g``,
    how many of those ``g`` lie within ``radius``, and the share of features that differ from the nearest. Also the
    label and distance of the nearest earlier query of *any* class (for class flips)."""

    distance: NDArray[np.float64]
    group: NDArray[np.int64]
    within: NDArray[np.int64]
    changed: NDArray[np.float64]
    any_label: NDArray[np.int64]
    any_distance: NDArray[np.float64]
    any_margin: NDArray[np.float64]


def _class_neighbours(
    ring: _Ring,
    space: _Space,
    z: NDArray[np.float64],
    labels: NDArray[np.int64],
    margins: NDArray[np.float64],
    radius: NDArray[np.float64] | None = None,
) -> _ClassNear:
    """Compare a chunk with the ring (and each row with the chunk's earlier rows), class by class; adds the chunk."""
    hist, hl, hm = ring.ordered()
    rows = np.concatenate([hist, z]) if len(hist) else z
    all_l = np.concatenate([hl, labels]) if len(hist) else labels
    all_m = np.concatenate([hm, margins]) if len(hist) else margins
    n, before = len(z), len(hist)
    r = np.arange(n)
    sq = _sq_distances(z, rows)
    visible = np.arange(len(rows))[None, :] < (before + r)[:, None]
    exact = visible & (sq <= 1e-18)
    cand = visible & ~exact
    sq_any = np.where(cand, sq, np.inf)
    nearest_any = sq_any.argmin(axis=1) if len(rows) else np.zeros(n, np.int64)
    any_d = np.sqrt(sq_any[r, nearest_any]) if len(rows) else np.full(n, np.inf)
    same = cand & (all_l[None, :] == labels[:, None])
    m = np.minimum(same.sum(axis=1), space.memory)
    g = space.g_table[labels, m]
    rank = np.cumsum(same[:, ::-1], axis=1)[:, ::-1]  # same-class candidates at or after each column
    keep = same & (rank <= g[:, None])
    sq_k = np.where(keep, sq, np.inf)
    nk = sq_k.argmin(axis=1) if len(rows) else np.zeros(n, np.int64)
    tested = (g > 0) & ~exact.any(axis=1)
    dist = np.where(tested, np.sqrt(sq_k[r, nk]) if len(rows) else np.inf, np.nan)
    if radius is not None:
        within = (keep & (sq <= (radius[labels, m] ** 2)[:, None])).sum(axis=1).astype(np.int64)
    else:
        within = np.zeros(n, np.int64)
    changed = (np.abs(rows[nk] - z) > 1e-9).mean(axis=1) if len(rows) else np.zeros(n)
    any_label = np.where(np.isfinite(any_d), all_l[nearest_any], -1) if len(rows) else np.full(n, -1)
    any_margin = all_m[nearest_any] if len(rows) else np.zeros(n)
    ring.add(z, labels, margins)
    return _ClassNear(dist, np.where(tested, g, 0), within, changed, any_label, any_d, any_margin)


class _Space:
    """The reference geometry: standardisation (per-feature for tabular data, raw units for images), an index of
    reference points, and the null distribution of the distance from a reference point to the nearest of ``memory``
    other reference points."""

    def __init__(self, classifier: Classifier, reference_x: ArrayLike, *, memory: int, seed: int) -> None:
        x = np.asarray(reference_x)
        if x.dtype == object or not np.issubdtype(x.dtype, np.number) or x.ndim < 2:
            raise InvalidInputError(f"reference_x must be a numeric batch (n, ...), got shape {x.shape}.")
        if tuple(x.shape[1:]) != tuple(classifier.input_shape):
            raise InvalidInputError(
                f"reference_x has inputs of shape {x.shape[1:]}; the model takes {classifier.input_shape}.",
                remedy="Pass the owner's data in the model's input shape.",
            )
        flat = x.reshape(len(x), -1).astype(np.float64)
        if len(flat) < 40 or not np.all(np.isfinite(flat)):
            raise InvalidInputError(
                f"fit needs at least 40 finite reference records, got {len(flat)}.",
                remedy="Pass the owner's training or held-out data.",
            )
        self.input_shape = tuple(x.shape[1:])
        if x.ndim > 2:
            self.center, self.scale = np.zeros(flat.shape[1]), np.ones(flat.shape[1])
        else:
            std = flat.std(axis=0)
            floor = max(float(np.median(std[std > 0])) if np.any(std > 0) else 1.0, 1e-12) * 1e-3
            self.center, self.scale = flat.mean(axis=0), np.maximum(std, floor)
        z = (flat - self.center) / self.scale
        proba = np.asarray(classifier.predict_proba(x.astype(np.float32)), dtype=np.float64)
        self.n_classes = int(proba.shape[1])
        rng = np.random.default_rng([seed, 0x4D4F4E])
        order = rng.permutation(len(z))
        half = len(z) // 2
        self.index, self.held = z[order[half:]], z[order[:half]]
        self.held_raw = flat[order[:half]]
        self.index_raw = flat[order[half:]]
        self.memory = min(memory, len(self.index))
        near = np.empty(len(self.held))
        self.subsets: list[NDArray[np.intp]] = []
        for i in range(0, len(self.held), 32):
            sub = rng.choice(len(self.index), self.memory, replace=False)
            self.subsets.append(sub)
            near[i : i + 32] = np.sqrt(_sq_distances(self.held[i : i + 32], self.index[sub]).min(axis=1))
        self.null = np.sort(near)
        self.index_sq = (self.index**2).sum(axis=1)
        self.ref_null = np.sort(self.ref_distance(self.held))
        self.held_margins = np.sort(_margins(proba[order[:half]]))
        labels = proba.argmax(axis=1)
        self.prior = np.bincount(labels, minlength=self.n_classes) / len(labels)
        self._class_nulls(labels[order[:half]], labels[order[half:]], rng)

    def _class_nulls(self, held_l: NDArray[np.int64], index_l: NDArray[np.int64], rng: np.random.Generator) -> None:
        """Class-conditional nulls: for each class ``c`` and each memory size ``g`` of a grid (powers of two up to
        the class's index size and ``memory``), the sorted distances from held-out points predicted ``c`` to the
        nearest of ``g`` random index points predicted ``c`` (``_CLASS_REPS`` draws per held point). ``g_table[c,
        m]`` is the largest grid size at most ``m`` (0: untested, for classes with fewer than ``_MIN_CLASS``
        held-out or index points). A client that sends mostly one class is compared with its own recent queries of
        that class, against reference points of that class: its skewed mix no longer looks like proximity."""
        k = self.n_classes
        self.g_table = np.zeros((k, self.memory + 1), np.int64)
        self.copy_radius = np.zeros(k)  # per class: half the distance between its two closest distinct records
        self.class_null: dict[tuple[int, int], NDArray[np.float64]] = {}
        self.class_points: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}  # c -> (held, index)
        for c in range(k):
            held_c, idx_c = self.held[held_l == c], self.index[index_l == c]
            if len(held_c) < _MIN_CLASS or len(idx_c) < _MIN_CLASS:
                continue
            if len(held_c) > _MAX_NULL_POINTS:
                held_c = held_c[rng.choice(len(held_c), _MAX_NULL_POINTS, replace=False)]
            if len(idx_c) > _MAX_NULL_POINTS:
                idx_c = idx_c[rng.choice(len(idx_c), _MAX_NULL_POINTS, replace=False)]
            self.class_points[c] = (held_c, idx_c)
            kmax = min(self.memory, len(idx_c))
            grid = sorted({2**e for e in range(kmax.bit_length()) if 2**e <= kmax} | {kmax})
            sq = _sq_distances(held_c, idx_c)
            for gsize in grid:
                draws = []
                for _ in range(_CLASS_REPS):
                    pick = np.argsort(rng.random(sq.shape), axis=1)[:, :gsize]
                    draws.append(np.sqrt(np.take_along_axis(sq, pick, axis=1).min(axis=1)))
                self.class_null[(c, gsize)] = np.sort(np.concatenate(draws))
                self.g_table[c, gsize:] = gsize
            self.copy_radius[c] = 0.5 * float(np.sqrt(sq.min(axis=1)).min())
        self.copy_grid = np.repeat(self.copy_radius[:, None], self.memory + 1, axis=1)  # as _class_neighbours takes it

    def ref_distance(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        """Distance from each row to its nearest index point (the off-distribution test's statistic)."""
        out = np.empty(len(z))
        for i in range(0, len(z), 256):
            block = z[i : i + 256]
            sq = (block**2).sum(axis=1)[:, None] + self.index_sq[None, :] - 2.0 * block @ self.index.T
            out[i : i + 256] = np.sqrt(np.maximum(sq.min(axis=1), 0.0)) if len(self.index) else np.inf
        return out

    def in_distribution(self, z: NDArray[np.float64], alpha: float) -> NDArray[np.bool_]:
        """Rows whose distance to the reference is not in its upper ``alpha`` tail (held-out points: ``1 - alpha``
        of them)."""
        d = self.ref_distance(z)
        n = len(self.ref_null)
        p = (n - np.searchsorted(self.ref_null, d, side="left") + 1) / (n + 1)
        return np.asarray(p >= alpha, dtype=bool)

    def p_near_class(
        self, dist: NDArray[np.float64], labels: NDArray[np.int64], g: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Class-conditional empirical p-value of "this close or closer" (1 for untested rows: nan or g = 0)."""
        return self._p_class(dist, labels, g, far=False)

    def p_far_class(
        self, dist: NDArray[np.float64], labels: NDArray[np.int64], g: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Class-conditional empirical p-value of "this far or farther" (1 for untested rows)."""
        return self._p_class(dist, labels, g, far=True)

    def _p_class(
        self, dist: NDArray[np.float64], labels: NDArray[np.int64], g: NDArray[np.int64], *, far: bool
    ) -> NDArray[np.float64]:
        out = np.ones(len(dist))
        for c, gsize in {(int(a), int(b)) for a, b in zip(labels.tolist(), g.tolist(), strict=True) if b > 0}:
            rows = (labels == c) & (g == gsize) & np.isfinite(dist)
            null = self.class_null[(c, gsize)]
            if far:
                out[rows] = (len(null) - np.searchsorted(null, dist[rows], side="left") + 1) / (len(null) + 1)
            else:
                out[rows] = (np.searchsorted(null, dist[rows], side="right") + 1) / (len(null) + 1)
        return out

    def class_quantile(self, q: float) -> NDArray[np.float64]:
        """``radius[c, m]``: the ``q`` quantile of the class-conditional null at ``g_table[c, m]`` (0 if untested)."""
        out = np.zeros(self.g_table.shape)
        for (c, gsize), null in self.class_null.items():
            out[c, self.g_table[c] == gsize] = float(np.quantile(null, q))
        return out

    def standardise(self, obs: Observation) -> NDArray[np.float64]:
        if tuple(obs.x.shape[1:]) != self.input_shape:
            raise InvalidInputError(
                f"Queries of shape {obs.x.shape} do not match the reference inputs {self.input_shape}."
            )
        if obs.probabilities.shape[1] != self.n_classes:
            raise InvalidInputError(
                f"The request has probabilities over {obs.probabilities.shape[1]} classes; the model has "
                f"{self.n_classes}."
            )
        flat = _flat(obs).astype(np.float64)
        if not np.all(np.isfinite(flat)):
            raise InvalidInputError("Queries contain NaN or infinite values.")
        return np.asarray((flat - self.center) / self.scale, dtype=np.float64)


def _h(false_alarm_queries: float, signals: int) -> float:
    return math.log(false_alarm_queries * max(signals, 1))


def _check_common(max_clients: int, memory: int, false_alarm_queries: float, alpha: float, alt: float) -> None:
    if max_clients < 1 or memory < 2:
        raise InvalidParameterError(f"Need max_clients >= 1 and memory >= 2, got {max_clients} and {memory}.")
    if not false_alarm_queries >= 10:
        raise InvalidParameterError(
            f"false_alarm_queries must be at least 10, not {false_alarm_queries}.",
            remedy="It is the mean number of benign queries per false alarm; 1e6 is the default.",
        )
    _check_rate("alpha", alpha)
    _check_rate("alt", alt)
    if not alpha < alt:
        raise InvalidParameterError(f"Need alpha < alt (benign rate below the attack rate), got {alpha} and {alt}.")


# -- extraction ------------------------------------------------------------------------------------------------------


@dataclass
class _ExtractionClient:
    ring: _Ring | None = None
    queries: int = 0
    boundary: _Cusum = field(default_factory=_Cusum)
    spread: _Cusum = field(default_factory=_Cusum)
    proximity: _Cusum = field(default_factory=_Cusum)
    coverage: _Cusum = field(default_factory=_Cusum)
    outside: int = 0  # queries off-distribution (nearest reference distance in its upper alpha tail)
    epoch: int = 0  # new queries fed to the monitor since it last forgot this client (PRADA's re-arm)
    labels: deque[int] = field(default_factory=deque)
    hashes: OrderedDict[int, None] = field(default_factory=OrderedDict)
    first_seen: float = math.inf
    distinct: int = 0  # distinct queries since first seen
    hours: deque[list[float]] = field(default_factory=deque)  # [hour, distinct queries] over the last day
    volume_reported: bool = False
    monitor_reported: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)  # signals that fired without an alert of their own (corroboration)

    def entries(self) -> int:
        return (len(self.ring) if self.ring else 0) + len(self.labels) + len(self.hashes) + len(self.hours)


class ExtractionDetector(TrafficDetector):
    """Model extraction: :class:`ExtractionMonitor`'s PRADA / off-distribution / proximity tests plus the natural-data
    signals ``boundary``, ``spread``, ``coverage`` and ``new-key`` (see the module docstring).

    ``monitor`` is the wrapped monitor (a default one when None; it is fitted by :meth:`fit`). ``memory`` recent
    queries per client feed ``spread``; ``coverage_window`` recent labels feed ``coverage``. ``new-key``: a client
    first seen less than ``young_hours`` ago whose distinct queries (not repeats of its last ``memory``) since then
    exceed ``volume_factor`` times what the median established client (first seen at least ``young_hours`` ago and
    active in the last day; at least ``min_established`` of them, else the signal is void) sends per hour, times
    the young client's age in hours (at least one); ``volume_factor=None`` turns it off.
    """

    technique = Technique.EXTRACTION
    severity = Severity.HIGH

    def __init__(
        self,
        *,
        monitor: ExtractionMonitor | None = None,
        max_clients: int = 10_000,
        memory: int = 256,
        false_alarm_queries: float = 1e6,
        alpha: float = 0.05,
        alt: float = 0.5,
        coverage_window: int = 200,
        young_hours: float = 24.0,
        volume_factor: float | None = 5.0,
        min_established: int = 5,
    ) -> None:
        super().__init__()
        _check_common(max_clients, memory, false_alarm_queries, alpha, alt)
        if coverage_window < 10:
            raise InvalidParameterError(f"coverage_window must be at least 10, not {coverage_window}.")
        if not (young_hours > 0 and min_established >= 1 and (volume_factor is None or volume_factor >= 1)):
            raise InvalidParameterError(
                "Need young_hours > 0, min_established >= 1 and volume_factor >= 1 (or None); got "
                f"{young_hours}, {min_established} and {volume_factor}."
            )
        # PRADA's δ calibrated on window-length streams at 1 in 100: the monitor's defaults (1% of 300-query streams)
        # flag a third of benign clients by their 700th query; its W over a long benign stream keeps falling.
        self._own_monitor = monitor is None
        self.monitor = (
            monitor
            if monitor is not None
            else ExtractionMonitor(
                max_clients=max_clients,
                target_fpr=0.01,
                calibration_streams=100,
                calibration_length=1000,
                proximity=False,  # replaced by this detector's class-conditional proximity test
                ood_h=_h(false_alarm_queries, _EXTRACTION_SIGNALS),  # its CUSUMs held to the same budget as ours
            )
        )
        self.max_clients = max_clients
        self.memory_size = memory
        self.false_alarm_queries = false_alarm_queries
        self.alpha = alpha
        self.alt = alt
        self.coverage_window = coverage_window
        self.young_hours = young_hours
        self.volume_factor = volume_factor
        self.min_established = min_established
        self._typical_lock = threading.Lock()
        self._typical: tuple[float, float | None] = (-math.inf, None)  # (computed at, established median per hour)
        self._clients: ClientStates[_ExtractionClient] = ClientStates(_ExtractionClient, max_clients=max_clients)

    @property
    def name(self) -> str:
        return "extraction"

    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Fit the wrapped monitor and the reference geometry (index, null distances, low-margin cut, class mix)."""
        self.space_ = _Space(classifier, reference_x, memory=self.memory_size, seed=seed)
        self.monitor.fit(classifier, reference_x, reference_y, seed=seed)
        self.epoch_ = max(int(self.monitor.calibration_length), int(self.monitor.min_queries))
        if self._own_monitor:
            self.monitor.delta_ = self._prada_delta()
        self.h_ = _h(self.false_alarm_queries, _EXTRACTION_SIGNALS)
        self.margin_cut_ = float(np.quantile(self.space_.held_margins, self.alpha))
        prior = np.maximum(self.space_.prior, 1e-3)
        self.prior_ = prior / prior.sum()
        # coverage: per-label log-likelihood ratio of a balanced class mix against the reference's
        self.coverage_llr_ = np.log((1.0 / len(prior)) / self.prior_)
        # a balanced thief drifts the CUSUM up by KL(uniform || reference mix) per query: a test that cannot reach h
        # within 1,000 such queries is void (a reference mix that is already nearly balanced, as for digits)
        self.coverage_kl_ = float(np.mean(self.coverage_llr_))
        self.coverage_active_ = bool(self.coverage_kl_ * 1000 > self.h_)
        self._clients.clear()
        with self._typical_lock:
            self._typical = (-math.inf, None)
        self._fitted = True
        return self

    def _prada_delta(self) -> float:
        """PRADA's δ for one false alarm per ``false_alarm_queries`` benign queries: the monitor is re-armed (forgets
        the client) every ``epoch_`` new queries, the length of its calibration streams, so an epoch is held to
        ``q = epoch_ / false_alarm_queries``. That is below what 100 calibration streams resolve empirically, so the
        tail is extrapolated: ``log(1 - W)`` of each stream's lowest W is close to normal, and δ is its ``1 - q``
        quantile under a normal fit (never above the lowest W seen in calibration)."""
        from statistics import NormalDist

        w = np.asarray(self.monitor.calibration_w_, dtype=np.float64)
        if len(w) < 10:
            return float(self.monitor.delta_)
        y = np.log(np.maximum(1.0 - w, 1e-12))
        q = min(self.epoch_ / self.false_alarm_queries, 0.5)
        tail = float(y.mean() + NormalDist().inv_cdf(1.0 - q) * y.std(ddof=1))
        return float(min(1.0 - math.exp(tail), float(w.min())))

    def _alert(
        self,
        obs: Observation,
        detector: str,
        score: float,
        threshold: float,
        summary: str,
        evidence: Mapping[str, Any],
        severity: Severity | None = None,
    ) -> Alert:
        return Alert(
            time=obs.time,
            client=obs.client,
            detector=f"extraction.{detector}",
            technique=self.technique,
            severity=severity or self.severity,
            score=score,
            threshold=threshold,
            summary=summary,
            evidence=dict(evidence),
            model_version=obs.model_version,
        )

    def observe(self, observation: Observation) -> list[Alert]:
        self._require_fitted()
        obs = observation
        z = self.space_.standardise(obs)
        labels, margins = obs.labels, _margins(obs.probabilities)
        alerts: list[Alert] = []
        up, down = _llr(self.alpha, self.alt)
        typical = self._typical_rate(obs.time) if self.volume_factor is not None else None
        with self._clients.hold(obs.client) as st:
            start = st.queries
            # exact repeats of the client's recent queries tell a thief nothing new: the monitor sees new rows only
            # (a benign client's repeats would otherwise pile zero distances into PRADA's window), and no re-sends
            # (one copy of an earlier query, below)
            new = self._new_rows(st, obs)
            inside = self.space_.in_distribution(z, self.alpha)
            st.outside += int((~inside).sum())
            wholesale = self._wholesale(st, len(z))
            # boundary and spread are tested on in-distribution rows only: an off-distribution input (another
            # scanner's noise) is both uncertain and far from everything, which is the ood test's evidence, not
            # uncertainty sampling or diversity selection
            if st.outside >= _WHOLESALE_OOD * (st.queries + len(z)):  # wholesale off-distribution: test every row
                inside[:] = True
            st.boundary.run((margins < self.margin_cut_)[inside], up, down, self.h_, start)
            resent = self._near_tests(st, z[new], labels[new], margins[new], inside[new], start)
            fresh = np.flatnonzero(new)[~resent]
            alerts.extend(self._feed_monitor(obs, st, obs.x[fresh], labels[fresh], wholesale))
            # coverage
            if self.coverage_active_:
                for lab in labels.tolist():
                    st.labels.append(lab)
                    if len(st.labels) > self.coverage_window:
                        st.labels.popleft()
                cov = self.coverage_llr_[labels]
                for i, v in enumerate(cov.tolist()):
                    st.coverage.value = max(0.0, st.coverage.value + float(v))
                    if st.coverage.value > self.h_ and st.coverage.fired_at is None and self._balanced(st):
                        st.coverage.fired_at = start + i + 1
                st.coverage.tested += len(labels)
            # distinct queries: since first seen, and per hour over the last day (the population's rates)
            st.first_seen = min(st.first_seen, obs.time)
            st.distinct += int(new.sum())
            hour = math.floor(obs.time / 3600.0)
            if st.hours and st.hours[-1][0] == hour:
                st.hours[-1][1] += int(new.sum())
            else:
                st.hours.append([float(hour), float(new.sum())])
            while st.hours and st.hours[0][0] <= hour - _DAY_HOURS:
                st.hours.popleft()
            st.queries += len(z)
            alerts.extend(self._signal_alerts(obs, st, typical))
        return alerts

    def _near_tests(
        self,
        st: _ExtractionClient,
        zn: NDArray[np.float64],
        ln: NDArray[np.int64],
        mn: NDArray[np.float64],
        inn: NDArray[np.bool_],
        start: int,
    ) -> NDArray[np.bool_]:
        """``proximity`` and ``spread``: the client's new rows against its recent distinct queries of the same class
        (repeats would thin the ring and make every natural query look far). Which rows were re-sends."""
        if st.ring is None:
            st.ring = _Ring(self.space_.memory, zn.shape[1])
        up, down = _llr(self.alpha, self.alt)
        resent = np.zeros(len(zn), dtype=bool)
        for b in range(0, len(zn), _CHUNK):
            lb = ln[b : b + _CHUNK]
            nb = _class_neighbours(
                st.ring, self.space_, zn[b : b + _CHUNK], lb, mn[b : b + _CHUNK], self.space_.copy_grid
            )
            # a re-sent input (the same document scanned again, re-encoded, with sensor noise) is a copy of one
            # earlier query, closer to it than any two distinct records of its class are to each other: like an
            # exact repeat it is neither a step from that query nor evidence of diversity, and is not tested; a
            # second copy of the same input (noisy copies of one record, an attack's small steps) is tested
            resent[b : b + _CHUNK] = nb.within == 1
            tested = (nb.group > 0) & ~resent[b : b + _CHUNK]
            if tested.any():
                dist, lt, gt = nb.distance[tested], lb[tested], nb.group[tested]
                st.proximity.run(self.space_.p_near_class(dist, lt, gt) < self.alpha, up, down, self.h_, start + b)
                far = self.space_.p_far_class(dist, lt, gt) < self.alpha
                st.spread.run(far[inn[b : b + _CHUNK][tested]], up, down, self.h_, start + b)
        return resent

    def _typical_rate(self, now: float) -> float | None:
        """The median established client's distinct queries per hour over the last day (recomputed at most every
        five minutes of observation time); None with fewer than ``min_established`` established clients."""
        with self._typical_lock:
            at, value = self._typical
            if now - at < _TYPICAL_EVERY:
                return value
            self._typical = (now, value)  # other threads keep the old value while this one recomputes
        hour = math.floor(now / 3600.0)
        young = self.young_hours * 3600.0
        rates = []
        for client in self._clients.clients():
            st = self._clients.peek(client)  # peek: the scan must not refresh every client's recency
            if st is None or now - st.first_seen < young:
                continue
            total = sum(n for h, n in tuple(st.hours) if h > hour - _DAY_HOURS)
            if total > 0:
                rates.append(total / _DAY_HOURS)
        value = float(np.median(rates)) if len(rates) >= self.min_established else None
        with self._typical_lock:
            self._typical = (now, value)
        return value

    def _new_rows(self, st: _ExtractionClient, obs: Observation) -> NDArray[np.bool_]:
        """Which rows are not exact repeats of the client's last ``memory`` distinct queries (records them)."""
        new = np.zeros(obs.n, dtype=bool)
        for i, row in enumerate(_flat(obs)):
            key = hash(row.tobytes())
            if key in st.hashes:
                st.hashes.move_to_end(key)
            else:
                new[i] = True
                st.hashes[key] = None
                if len(st.hashes) > self.memory_size:
                    st.hashes.popitem(last=False)
        return new

    @staticmethod
    def _wholesale(st: _ExtractionClient, pending: int) -> bool:
        """The client's queries so far (``pending`` of them not yet counted) lie off the owner's data more often than
        another scanner's do: the share of off-distribution queries is above ``_OFF_SHARE`` (a third) at a one-sided
        binomial p below 0.001. Measured: a noisy scanner is off 10-27 % of the time on digits-cnn; random, MNIST and
        per-feature synthetic tabular queries 56-100 %. 16 of 16 passes; 12 of 21 (a scanner's unlucky start)
        does not."""
        n, k = st.queries + pending, st.outside
        if n == 0 or k <= n * _OFF_SHARE:
            return False
        from scipy.stats import binom

        return float(binom.sf(k - 1, n, _OFF_SHARE)) < _WHOLESALE_P

    def _feed_monitor(
        self, obs: Observation, st: _ExtractionClient, xn: NDArray[Any], yn: NDArray[np.int64], wholesale: bool
    ) -> list[Alert]:
        """Feed the client's new rows to the wrapped monitor, which forgets the client every ``epoch_`` new rows (PRADA
        re-armed: see :meth:`_prada_delta`); alerts for its signals that fired for the first time."""
        alerts, done = [], 0
        while done < len(xn):
            take = min(len(xn) - done, self.epoch_ - st.epoch)
            decision = self.monitor.observe(obs.client, xn[done : done + take], yn[done : done + take])
            for signal in decision.signals:
                if signal in st.monitor_reported or signal == "proximity":  # ours replaces the monitor's proximity
                    continue
                if signal == "ood" and not wholesale and not self._others(st, signal):
                    # a client partly off the owner's data (another scanner, a shifted population) is drift, not
                    # theft: held as corroboration, raised when it turns wholesale (the next epoch) or another
                    # signal fires; judged on all of the client's queries, not on the monitor's current epoch,
                    # whose first few queries can be mostly off by chance
                    st.held.add(signal)
                    continue
                st.monitor_reported.add(signal)
                alerts.append(self._monitor_alert(obs, signal, decision, st))
            done += take
            st.epoch += take
            if st.epoch >= self.epoch_:
                self.monitor.forget(obs.client)
                st.epoch = 0
        return alerts

    def _monitor_alert(self, obs: Observation, signal: str, decision: MonitorDecision, st: _ExtractionClient) -> Alert:
        """An alert for one of the wrapped monitor's signals, with its statistic against its threshold. A lone
        ``ood`` signal gets here only once most of the client's queries are off-distribution (:meth:`_wholesale`;
        another scanner: on digits-cnn 10-27% of a noisy scanner's inputs, against 100% of random or MNIST
        queries)."""
        mon = self.monitor
        if signal == "prada":
            w = decision.prada_w if decision.prada_w is not None else decision.prada_delta
            score, threshold = 1.0 - w, 1.0 - decision.prada_delta
        elif signal == "ood":
            score, threshold = decision.ood_cusum, mon.ood_h
        elif signal == "proximity":
            score, threshold = decision.proximity_cusum, mon.ood_h
        else:
            score, threshold = float(decision.queries), float(mon.max_queries or 0)
        said = {
            "prada": "the distances between its queries do not look like natural data (PRADA)",
            "ood": "its queries lie far from the owner's data",
            "proximity": "its queries step from its own earlier queries (synthetic augmentation)",
            "volume": "its queries exceed the volume cap",
        }[signal]
        summary = (
            f"Model extraction suspected from {obs.client}: {said}; first alarm at query "
            f"{decision.first_alarm_at} of {decision.queries}."
        )
        evidence = decision.to_dict()
        evidence["corroborated_by"] = sorted(self._others(st, signal))
        return self._alert(obs, signal, max(score, threshold + 1e-9), threshold, summary, evidence)

    @staticmethod
    def _others(st: _ExtractionClient, signal: str) -> set[str]:
        """The client's extraction signals that fired, other than ``signal`` (corroboration)."""
        fired = {
            name
            for name, c in (
                ("boundary", st.boundary),
                ("spread", st.spread),
                ("proximity", st.proximity),
                ("coverage", st.coverage),
            )
            if c.fired_at is not None
        }
        return (st.monitor_reported | st.held | fired | ({"new-key"} if st.volume_reported else set())) - {signal}

    def _balanced(self, st: _ExtractionClient) -> bool:
        """The client's recent class mix is closer to balanced than to the reference's (a specialist that asks about
        one rare class drives the CUSUM too, but its mix is far from balanced)."""
        hist = np.bincount(np.asarray(st.labels, np.int64), minlength=len(self.prior_)) / max(len(st.labels), 1)
        uniform = np.full(len(hist), 1.0 / len(hist))
        return bool(np.abs(hist - uniform).sum() < np.abs(hist - self.prior_).sum())

    def _signal_alerts(self, obs: Observation, st: _ExtractionClient, typical: float | None) -> list[Alert]:
        out = []
        for signal, cusum, what in (
            (
                "boundary",
                st.boundary,
                f"answers with a top-two margin below {self.margin_cut_:.3f} (its {self.alpha:.0%} quantile)",
            ),
            (
                "proximity",
                st.proximity,
                (
                    "queries closer to its own recent queries of the same class than natural inputs of that class "
                    "lie to each other (synthetic steps from its own queries)"
                ),
            ),
            (
                "spread",
                st.spread,
                "queries farther from its own recent queries than natural inputs lie from each other (diversity)",
            ),
            ("coverage", st.coverage, "predicted classes spread evenly over the classes, unlike the reference's mix"),
        ):
            if cusum.fired_at is not None and not cusum.reported:
                cusum.reported = True
                rate = cusum.hits / cusum.tested if cusum.tested else 0.0
                summary = (
                    f"Possible model extraction by {obs.client}: {what}"
                    + (f"; {rate:.0%} of {cusum.tested} tested queries were hits" if signal != "coverage" else "")
                    + f" (CUSUM above {self.h_:.1f} at query {cusum.fired_at})."
                )
                evidence = {
                    "signal": signal,
                    "cusum": cusum.value,
                    "hits": cusum.hits,
                    "tested": cusum.tested,
                    "fired_at_query": cusum.fired_at,
                    "queries": st.queries + 0,
                    "benign_rate": self.alpha,
                }
                if signal == "coverage":
                    hist = np.bincount(np.asarray(st.labels, np.int64), minlength=len(self.prior_))
                    evidence.update(class_histogram=hist, reference_mix=self.prior_, benign_rate=None)
                out.append(self._alert(obs, signal, max(cusum.value, self.h_ + 1e-9), self.h_, summary, evidence))
        age_h = (obs.time - st.first_seen) / 3600.0
        if (
            self.volume_factor is not None
            and typical is not None
            and not st.volume_reported
            and age_h < self.young_hours
            and st.distinct > self.volume_factor * typical * max(age_h, 1.0)
        ):
            st.volume_reported = True
            expected = typical * max(age_h, 1.0)
            out.append(
                self._alert(
                    obs,
                    "new-key",
                    st.distinct / expected,
                    self.volume_factor,
                    f"Possible model extraction by {obs.client}: a key first seen {age_h:.1f} hours ago has drawn "
                    f"{st.distinct} distinct answers, {st.distinct / expected:.1f} times what the median established "
                    f"client draws in that time ({typical:.0f} per hour).",
                    {
                        "signal": "new-key",
                        "distinct": st.distinct,
                        "age_hours": age_h,
                        "typical_per_hour": typical,
                        "factor": self.volume_factor,
                        "corroborated_by": sorted(self._others(st, "new-key")),
                    },
                    # volume is not intent: a new batch client draws as much; high once another signal agrees
                    Severity.MEDIUM if not self._others(st, "new-key") else self.severity,
                )
            )
        return out

    def forget(self, client_id: str) -> None:
        self._clients.forget(str(client_id))
        self.monitor.forget(str(client_id))

    def state(self) -> dict[str, JSONValue]:
        """The long-lived part: each client's first-seen time, distinct queries since then and per hour over the last
        day, and whether its ``new-key`` alarm was raised. The short windows of the sequential tests refill within
        minutes."""
        clients: dict[str, JSONValue] = {}
        for client in self._clients.clients():
            st = self._clients.peek(client)
            if st is not None and math.isfinite(st.first_seen):
                bins: list[JSONValue] = [[b[0], b[1]] for b in tuple(st.hours)]
                clients[client] = {
                    "first_seen": st.first_seen,
                    "distinct": st.distinct,
                    "hours": bins,
                    "reported": st.volume_reported,
                }
        return {"volume": clients}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back what :meth:`state` returned (after :meth:`fit`)."""
        self._require_fitted()
        try:
            items = dict(state.get("volume") or {}).items()
            parsed = [
                (
                    str(c),
                    float(v["first_seen"]),
                    int(v["distinct"]),
                    [[float(h), float(n)] for h, n in v["hours"]],
                    bool(v.get("reported", False)),
                )
                for c, v in items
            ]
            if any(not math.isfinite(p[1]) or p[2] < 0 for p in parsed):
                raise ValueError("first_seen must be finite and distinct non-negative")
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InvalidInputError(
                "The saved state of the extraction detector is malformed.",
                remedy="Pass what ExtractionDetector.state() returned.",
            ) from exc
        with self._typical_lock:
            self._typical = (-math.inf, None)
        for client, first_seen, distinct, hours, reported in parsed:
            with self._clients.hold(client) as st:
                st.first_seen, st.distinct = first_seen, distinct
                st.hours = deque(hours[-(_DAY_HOURS + 1) :])
                st.volume_reported = reported

    def memory(self) -> GuardMemory:
        inner = self.monitor.memory()
        per = self.memory_size * 2 + self.coverage_window + _DAY_HOURS + 1
        return GuardMemory(
            clients=max(len(self._clients), inner.clients),
            max_clients=min(self.max_clients, inner.max_clients),
            entries=self._clients.total(_ExtractionClient.entries) + inner.entries,
            max_entries=min(self.max_clients, inner.max_clients) * per + inner.max_entries,
        )


# -- evasion probing -------------------------------------------------------------------------------------------------


@dataclass
class _NearClient:
    ring: _Ring | None = None
    queries: int = 0
    near: _Cusum = field(default_factory=_Cusum)
    flips: int = 0
    low: int = 0
    hit_margins: deque[float] = field(default_factory=deque)

    def entries(self) -> int:
        return (len(self.ring) if self.ring else 0) + len(self.hit_margins)


class EvasionProbingDetector(TrafficDetector):
    """Evasion probing: runs of near-duplicate queries that walk the decision boundary (see the module docstring).

    Each query's distance to the nearest of the client's last ``memory`` queries (exact repeats skipped) becomes an
    empirical p-value against reference points; a hit is ``p < alpha``; a CUSUM (``alpha`` against ``alt``) fires
    at ``h = log(false_alarm_queries)``, and the alert is raised once the near-duplicates also show a boundary walk:
    an answer that flips class from its neighbour's, a margin below the reference's ``alpha`` quantile, or margins
    shrinking over the latest ``trend`` hits; or, without that evidence, once the CUSUM reaches ``2 h`` (Square
    against an input it cannot move: near-identical queries whose answers barely change).
    """

    technique = Technique.EVASION
    severity = Severity.HIGH

    def __init__(
        self,
        *,
        max_clients: int = 10_000,
        memory: int = 256,
        false_alarm_queries: float = 1e6,
        alpha: float = 0.05,
        alt: float = 0.5,
        trend: int = 32,
        min_flips: int = 2,
        evidence_p: float = 1e-3,
    ) -> None:
        super().__init__()
        _check_common(max_clients, memory, false_alarm_queries, alpha, alt)
        if trend < 4 or min_flips < 1:
            raise InvalidParameterError(f"Need trend >= 4 and min_flips >= 1, not {trend} and {min_flips}.")
        _check_rate("evidence_p", evidence_p)
        self.min_flips = min_flips
        self.evidence_p = evidence_p
        self.max_clients = max_clients
        self.memory_size = memory
        self.false_alarm_queries = false_alarm_queries
        self.alpha = alpha
        self.alt = alt
        self.trend = trend
        self._clients: ClientStates[_NearClient] = ClientStates(_NearClient, max_clients=max_clients)

    @property
    def name(self) -> str:
        return "evasion-probing"

    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Learn the reference nearest-neighbour distances and margins."""
        self.space_ = _Space(classifier, reference_x, memory=self.memory_size, seed=seed)
        self.h_ = _h(self.false_alarm_queries, 1)
        self.margin_cut_ = float(np.quantile(self.space_.held_margins, self.alpha))
        self._clients.clear()
        self._fitted = True
        return self

    def observe(self, observation: Observation) -> list[Alert]:
        self._require_fitted()
        obs = observation
        z = self.space_.standardise(obs)
        labels, margins = obs.labels, _margins(obs.probabilities)
        up, down = _llr(self.alpha, self.alt)
        with self._clients.hold(obs.client) as st:
            if st.ring is None:
                st.ring = _Ring(self.space_.memory, z.shape[1])
            for b in range(0, len(z), _CHUNK):
                lb, mb = labels[b : b + _CHUNK], margins[b : b + _CHUNK]
                nb = _class_neighbours(st.ring, self.space_, z[b : b + _CHUNK], lb, mb)
                tested = nb.group > 0
                hit = tested & (self.space_.p_near_class(nb.distance, lb, nb.group) < self.alpha)
                st.near.run(hit[tested], up, down, self.h_, st.queries + b)
                # a flip: the nearest earlier query of any class answers another class and lies no farther than twice
                # the same-class near-duplicate (a binary search across the boundary)
                flip = hit & (nb.any_label >= 0) & (nb.any_label != lb) & (nb.any_distance <= 2.0 * nb.distance)
                st.flips += int(flip.sum())
                st.low += int((hit & (mb < self.margin_cut_)).sum())
                for m in mb[hit].tolist():
                    st.hit_margins.append(m)
                    if len(st.hit_margins) > self.trend:
                        st.hit_margins.popleft()
            st.queries += len(z)
            if st.near.fired_at is None or st.near.reported:
                return []
            shrinking = self._shrinking(st)
            low_p = self._low_margin_p(st)
            flips = st.flips >= self.min_flips
            if not (flips or low_p < self.evidence_p or shrinking):
                return []  # near-duplicates alone are not a boundary walk (a client re-sending similar inputs)
            st.near.reported = True
            c = st.near
            summary = (
                f"Evasion probing suspected from {obs.client}: {c.hits} of {c.tested} queries were near-duplicates of "
                f"its recent queries of the same class, with {st.flips} class flips and {st.low} low-margin answers "
                f"among them (chance p = {low_p:.2g}){' and margins shrinking' if shrinking else ''}: a "
                f"decision-boundary walk (CUSUM above {self.h_:.1f} at query {c.fired_at})."
            )
            evidence: dict[str, JSONValue] = {
                "near_duplicates": c.hits,
                "tested": c.tested,
                "flips": st.flips,
                "low_margin": st.low,
                "low_margin_p": low_p,
                "margins_shrinking": shrinking,
                "fired_at_query": c.fired_at,
                "cusum": c.value,
                "recent_hit_margins": [float(v) for v in list(st.hit_margins)[-8:]],
                "margin_cut": self.margin_cut_,
            }
            return [
                Alert(
                    time=obs.time,
                    client=obs.client,
                    detector="evasion-probing",
                    technique=self.technique,
                    severity=self.severity,
                    score=max(c.value, self.h_ + 1e-9),
                    threshold=self.h_,
                    summary=summary,
                    evidence=evidence,
                    model_version=obs.model_version,
                )
            ]

    def _shrinking(self, st: _NearClient) -> bool:
        """The margins of the latest near-duplicates fall: a least-squares slope below zero at ``t < -3`` that drops
        by more than 0.05 over the run (a walk towards the boundary, not noise)."""
        m = np.asarray(st.hit_margins)
        n = len(m)
        if n < max(4, self.trend // 2):
            return False
        t = np.arange(n, dtype=np.float64)
        slope, icpt = np.polyfit(t, m, 1)
        resid = m - (slope * t + icpt)
        se = math.sqrt(float((resid**2).sum()) / (n - 2) / float(((t - t.mean()) ** 2).sum()))
        return bool(slope * (n - 1) < -0.05 and (se == 0.0 or slope / se < -3.0))

    def _low_margin_p(self, st: _NearClient) -> float:
        """Chance of at least ``st.low`` low-margin answers among ``st.near.hits`` near-duplicates if each were low
        at the reference's rate ``alpha`` (binomial tail)."""
        if st.low == 0:
            return 1.0
        from scipy.stats import binom

        return float(binom.sf(st.low - 1, st.near.hits, self.alpha))

    def forget(self, client_id: str) -> None:
        self._clients.forget(str(client_id))

    def memory(self) -> GuardMemory:
        return GuardMemory(
            clients=len(self._clients),
            max_clients=self.max_clients,
            entries=self._clients.total(_NearClient.entries),
            max_entries=self.max_clients * (self.memory_size + self.trend),
        )


# -- membership and attribute probing --------------------------------------------------------------------------------


@dataclass
class _ProbeClient:
    ring: _Ring | None = None
    raw: _Ring | None = None  # raw units, for the one-feature test
    queries: int = 0
    copies: _Cusum = field(default_factory=_Cusum)
    sweep: _Cusum = field(default_factory=_Cusum)
    features: dict[int, int] = field(default_factory=dict)

    def entries(self) -> int:
        return (len(self.ring) if self.ring else 0) + (len(self.raw) if self.raw else 0) + len(self.features)


class ProbingDetector(TrafficDetector):
    """Membership probing (many perturbed copies of one record) and attribute sweeps (queries that differ from a recent
    one in exactly one feature); see the module docstring.

    A ``copies`` hit is a query with at least ``cloud`` of the client's last ``memory`` queries within the reference's
    ``alpha``-quantile nearest-neighbour radius, differing from its nearest in at least ``dense`` of the features. A
    ``sweep`` hit is a query that differs in exactly one feature from one of the client's last ``sweep_memory``
    queries. Each event's benign rate is measured in :meth:`fit` on held-out reference records (floored at
    ``min_rate``); a signal whose benign rate exceeds ``alt / 2`` is void (the data are too coarse for it).
    """

    technique = Technique.MEMBERSHIP
    severity = Severity.MEDIUM

    def __init__(
        self,
        *,
        max_clients: int = 10_000,
        memory: int = 256,
        sweep_memory: int = 32,
        false_alarm_queries: float = 1e6,
        alpha: float = 0.05,
        alt: float = 0.5,
        cloud: int = 3,
        dense: float = 0.25,
        min_rate: float = 1e-3,
    ) -> None:
        super().__init__()
        _check_common(max_clients, memory, false_alarm_queries, alpha, alt)
        if cloud < 1 or sweep_memory < 1:
            raise InvalidParameterError(f"cloud and sweep_memory must be positive, not {cloud} and {sweep_memory}.")
        _check_rate("dense", dense)
        _check_rate("min_rate", min_rate)
        self.max_clients = max_clients
        self.memory_size = memory
        self.sweep_memory = sweep_memory
        self.false_alarm_queries = false_alarm_queries
        self.alpha = alpha
        self.alt = alt
        self.cloud = cloud
        self.dense = dense
        self.min_rate = min_rate
        self._clients: ClientStates[_ProbeClient] = ClientStates(_ProbeClient, max_clients=max_clients)

    @property
    def name(self) -> str:
        return "probing"

    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Learn the near-neighbour radius and the benign rates of both events on held-out reference records."""
        sp = self.space_ = _Space(classifier, reference_x, memory=self.memory_size, seed=seed)
        self.h_ = _h(self.false_alarm_queries, 2)
        self.radius_ = sp.class_quantile(self.alpha)  # [class, memory]: the class-conditional near radius
        sweep_hits = 0
        rng = np.random.default_rng([seed, 0x5357])
        # copies: the benign rate of "cloud or more of the g most recent same-class queries within the radius",
        # measured per memory size g of the grid on held-out points against random index points of their class;
        # the largest over g is the rate tested (conservative for every g)
        per_g: dict[int, list[int]] = {}
        for c, (held_c, idx_c) in sp.class_points.items():
            sq = _sq_distances(held_c, idx_c)
            for gsize in sorted({int(v) for v in sp.g_table[c] if v > 0}):
                rad = float(self.radius_[c, gsize])
                counts = per_g.setdefault(gsize, [0, 0])
                for _ in range(_CLASS_REPS):
                    pick = np.argsort(rng.random(sq.shape), axis=1)[:, :gsize]
                    near = (np.take_along_axis(sq, pick, axis=1) <= rad * rad).sum(axis=1)
                    counts[0] += int((near >= self.cloud).sum())
                    counts[1] += len(near)
        copies_rate = max((h / n for h, n in per_g.values() if n), default=0.0)
        for i, _sub in enumerate(sp.subsets):
            raw = sp.held_raw[i * 32 : (i + 1) * 32]
            pick_raw = sp.index_raw[
                rng.choice(len(sp.index_raw), min(self.sweep_memory, len(sp.index_raw)), replace=False)
            ]
            diff = (raw[:, None, :] != pick_raw[None, :, :]).sum(axis=2)
            sweep_hits += int((diff == 1).any(axis=1).sum())
        n = max(len(sp.held), 1)
        self.copies_rate_ = max(copies_rate, self.min_rate)
        self.sweep_rate_ = max(sweep_hits / n, self.min_rate)
        self.copies_active_ = self.copies_rate_ < self.alt / 2
        self.sweep_active_ = self.sweep_rate_ < self.alt / 2
        self._clients.clear()
        self._fitted = True
        return self

    def observe(self, observation: Observation) -> list[Alert]:
        self._require_fitted()
        obs = observation
        z = self.space_.standardise(obs)
        raw = _flat(obs).astype(np.float64)
        labels, margins = obs.labels, _margins(obs.probabilities)
        cu, cd = _llr(self.copies_rate_, self.alt) if self.copies_active_ else (0.0, 0.0)
        su, sd = _llr(self.sweep_rate_, self.alt) if self.sweep_active_ else (0.0, 0.0)
        with self._clients.hold(obs.client) as st:
            if st.ring is None or st.raw is None:
                st.ring = _Ring(self.space_.memory, z.shape[1])
                st.raw = _Ring(self.sweep_memory, raw.shape[1])
            for b in range(0, len(z), _CHUNK):
                lb, mb = labels[b : b + _CHUNK], margins[b : b + _CHUNK]
                at = st.queries + b
                if self.copies_active_:
                    nb = _class_neighbours(st.ring, self.space_, z[b : b + _CHUNK], lb, mb, self.radius_)
                    tested = nb.group > 0
                    hit = (nb.within >= self.cloud) & (nb.changed >= self.dense)
                    st.copies.run(hit[tested], cu, cd, self.h_, at)
                if self.sweep_active_:
                    chunk = raw[b : b + _CHUNK]
                    hist = st.raw.live()[0]
                    rows = np.concatenate([hist, chunk]) if len(hist) else chunk
                    diff = (chunk[:, None, :] != rows[None, :, :]).sum(axis=2)
                    visible = np.arange(len(rows))[None, :] < (len(hist) + np.arange(len(chunk)))[:, None]
                    visible &= (
                        np.arange(len(rows))[None, :]
                        >= (len(hist) + np.arange(len(chunk)))[:, None] - self.sweep_memory
                    )
                    one = visible & (diff == 1)
                    hit = one.any(axis=1)
                    for i in np.flatnonzero(hit).tolist():
                        j = int(np.argmax(one[i]))
                        f = int(np.flatnonzero(chunk[i] != rows[j])[0])
                        if f in st.features or len(st.features) < 64:
                            st.features[f] = st.features.get(f, 0) + 1
                    st.sweep.run(hit, su, sd, self.h_, at)
                    st.raw.add(chunk, lb, mb)
            st.queries += len(z)
            return self._alerts(obs, st)

    def _alerts(self, obs: Observation, st: _ProbeClient) -> list[Alert]:
        out = []
        if st.copies.fired_at is not None and not st.copies.reported:
            st.copies.reported = True
            c = st.copies
            out.append(
                Alert(
                    time=obs.time,
                    client=obs.client,
                    detector="probing.copies",
                    technique=Technique.MEMBERSHIP,
                    severity=self.severity,
                    score=max(c.value, self.h_ + 1e-9),
                    threshold=self.h_,
                    summary=f"Membership probing suspected from {obs.client}: {c.hits} of {c.tested} queries were "
                    f"perturbed copies of a recent query ({self.cloud}+ neighbours within the natural near-neighbour "
                    f"radius; CUSUM "
                    f"above {self.h_:.1f} at query {c.fired_at}).",
                    evidence={
                        "hits": c.hits,
                        "tested": c.tested,
                        "benign_rate": self.copies_rate_,
                        "radius": float(np.max(self.radius_)),
                        "fired_at_query": c.fired_at,
                        "cusum": c.value,
                    },
                    model_version=obs.model_version,
                )
            )
        if st.sweep.fired_at is not None and not st.sweep.reported:
            st.sweep.reported = True
            c = st.sweep
            top = sorted(st.features.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            out.append(
                Alert(
                    time=obs.time,
                    client=obs.client,
                    detector="probing.sweep",
                    technique=Technique.INVERSION,
                    severity=self.severity,
                    score=max(c.value, self.h_ + 1e-9),
                    threshold=self.h_,
                    summary=f"Attribute probing suspected from {obs.client}: {c.hits} of {c.tested} queries differed "
                    f"from a recent query in exactly one feature (most often feature {top[0][0] if top else '?'}; "
                    f"CUSUM above "
                    f"{self.h_:.1f} at query {c.fired_at}).",
                    evidence={
                        "hits": c.hits,
                        "tested": c.tested,
                        "benign_rate": self.sweep_rate_,
                        "features_swept": {str(k): v for k, v in top},
                        "fired_at_query": c.fired_at,
                        "cusum": c.value,
                    },
                    model_version=obs.model_version,
                )
            )
        return out

    def forget(self, client_id: str) -> None:
        self._clients.forget(str(client_id))

    def memory(self) -> GuardMemory:
        return GuardMemory(
            clients=len(self._clients),
            max_clients=self.max_clients,
            entries=self._clients.total(_ProbeClient.entries),
            max_entries=self.max_clients * (self.memory_size + self.sweep_memory + 64),
        )


# -- sybils and shared keys ------------------------------------------------------------------------------------------


@dataclass
class _Activity:
    first_seen: float = math.inf
    bins: OrderedDict[int, int] = field(default_factory=OrderedDict)  # time bin -> queries
    sources: OrderedDict[str, float] = field(default_factory=OrderedDict)  # per key: source -> last seen
    sharing_reported: bool = False

    def entries(self) -> int:
        return len(self.bins) + len(self.sources)


class SybilDetector(TrafficDetector):
    """One key used from many sources, and one actor spread over many keys (see the module docstring).

    ``key-sharing``: more than ``max_sources`` distinct sources for one key within ``source_window`` seconds.
    ``sybil``: every ``bin_seconds`` (of observation time) the per-bin query counts of the last ``bins`` bins are
    compared across the clients active in at least ``min_active_bins`` of them (at most ``max_candidates``, the
    busiest); two clients are linked when their counts correlate above ``rho`` over at least ``min_active_bins``
    bins where both were active, or when they were first seen within ``onset_seconds`` of each other (after the
    detector's first ``bins`` bins: clients present at start-up all look new together) and are active in nearly the
    same blocks of ``onset_block`` seconds since the later one appeared (Jaccard above ``jaccard``; blocks, not bins,
    so that keys taking turns count as active together). Counts are linearly detrended per client first, so a shared
    slow trend (the working day ramping up) is not read as coordination. A connected group of at least
    ``min_group`` clients whose combined queries exceed ``volume_factor`` times the median client's raises one alert
    per group. Independent benign clients have uncorrelated per-minute counts; the limit is one actor whose keys run
    steadily and were not started together.
    """

    technique = Technique.VALID_ACCOUNTS
    severity = Severity.HIGH

    def __init__(
        self,
        *,
        max_clients: int = 10_000,
        max_sources: int = 10,
        source_window: float = 3600.0,
        bin_seconds: float = 60.0,
        bins: int = 120,
        min_active_bins: int = 10,
        max_candidates: int = 256,
        rho: float = 0.7,
        jaccard: float = 0.8,
        onset_seconds: float = 120.0,
        onset_block: float = 600.0,
        min_group: int = 5,
        volume_factor: float = 4.0,
    ) -> None:
        super().__init__()
        if max_clients < 1 or max_sources < 1 or bins < 4 or min_active_bins < 2 or max_candidates < 2 or min_group < 2:
            raise InvalidParameterError(
                "Need max_clients, max_sources >= 1, bins >= 4, min_active_bins >= 2, max_candidates >= 2 and "
                f"min_group >= 2; got {max_clients}, {max_sources}, {bins}, {min_active_bins}, {max_candidates}, "
                f"{min_group}."
            )
        if not (
            source_window > 0 and bin_seconds > 0 and onset_seconds >= 0 and onset_block > 0 and volume_factor >= 1
        ):
            raise InvalidParameterError(
                "source_window, bin_seconds and onset_block must be positive, onset_seconds >= 0 and "
                "volume_factor >= 1."
            )
        _check_rate("rho", rho)
        _check_rate("jaccard", jaccard)
        self.max_clients = max_clients
        self.max_sources = max_sources
        self.source_window = source_window
        self.bin_seconds = bin_seconds
        self.bins = bins
        self.min_active_bins = min_active_bins
        self.max_candidates = max_candidates
        self.rho = rho
        self.jaccard = jaccard
        self.onset_seconds = onset_seconds
        self.onset_block = onset_block
        self.min_group = min_group
        self.volume_factor = volume_factor
        self._clients: ClientStates[_Activity] = ClientStates(_Activity, max_clients=max_clients)
        self._keys: ClientStates[_Activity] = ClientStates(_Activity, max_clients=max_clients)
        self._group_lock = threading.Lock()
        self._analysed = -(2**62)
        self._started = math.inf
        self._groups: OrderedDict[str, frozenset[str]] = OrderedDict()  # reported groups: name -> members

    @property
    def name(self) -> str:
        return "sybil"

    def fit(
        self, classifier: Classifier, reference_x: ArrayLike, reference_y: ArrayLike | None = None, *, seed: int = 0
    ) -> Self:
        """Nothing to learn from the data (timing and sources only) but the input shape and the number of classes,
        to refuse malformed requests; forgets every client."""
        x = np.asarray(reference_x)
        if x.ndim < 2:
            raise InvalidInputError(f"reference_x must be a batch (n, ...), got shape {x.shape}.")
        self.input_shape_ = tuple(x.shape[1:])
        self.n_classes_: int | None = classifier.n_classes if classifier is not None else None
        self._clients.clear()
        self._keys.clear()
        with self._group_lock:
            self._groups.clear()
            self._analysed = -(2**62)
            self._started = math.inf
        self._fitted = True
        return self

    def observe(self, observation: Observation) -> list[Alert]:
        self._require_fitted()
        obs = observation
        if tuple(obs.x.shape[1:]) != self.input_shape_ or (
            self.n_classes_ is not None and obs.probabilities.shape[1] != self.n_classes_
        ):
            raise InvalidInputError(
                f"A request of inputs {obs.x.shape} and probabilities {obs.probabilities.shape} does not match the "
                f"model's inputs {self.input_shape_} and {self.n_classes_} classes."
            )
        alerts: list[Alert] = []
        now_bin = math.floor(obs.time / self.bin_seconds)
        with self._clients.hold(obs.client) as st:
            st.first_seen = min(st.first_seen, obs.time)
            st.bins[now_bin] = st.bins.get(now_bin, 0) + obs.n
            while st.bins and next(iter(st.bins)) <= now_bin - self.bins:
                st.bins.popitem(last=False)
            while len(st.bins) > self.bins:
                st.bins.popitem(last=False)
        if obs.key_id and obs.source:
            with self._keys.hold(obs.key_id) as key:
                key.sources[obs.source] = obs.time
                key.sources.move_to_end(obs.source)
                while key.sources and next(iter(key.sources.values())) < obs.time - self.source_window:
                    key.sources.popitem(last=False)
                while len(key.sources) > self.max_sources + 1:
                    key.sources.popitem(last=False)
                count = len(key.sources)
                if count > self.max_sources and not key.sharing_reported:
                    key.sharing_reported = True
                    alerts.append(
                        Alert(
                            time=obs.time,
                            client=obs.client,
                            detector="key-sharing",
                            technique=Technique.VALID_ACCOUNTS,
                            severity=Severity.HIGH,
                            score=float(count),
                            threshold=float(self.max_sources),
                            summary=f"Key {obs.key_id} was used from more than {self.max_sources} sources within "
                            f"{self.source_window / 60:g} minutes: a shared or stolen key.",
                            evidence={
                                "key_id": obs.key_id,
                                "sources": count,
                                "recent_sources": [str(v) for v in list(key.sources)[-5:]],
                                "window_seconds": self.source_window,
                            },
                            model_version=obs.model_version,
                        )
                    )
                elif count <= self.max_sources // 2:
                    key.sharing_reported = False
        with self._group_lock:
            self._started = min(self._started, obs.time)
            due = now_bin > self._analysed
            if due:
                self._analysed = now_bin
        if due:
            alerts.extend(self._analyse(obs, now_bin))
        return alerts

    def _snapshot(self, now_bin: int) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64]]:
        """The candidates' names, first-seen times and per-bin counts over the closed bins of the window."""
        first = now_bin - self.bins
        rows: list[tuple[str, float, NDArray[np.float64]]] = []
        for client in self._clients.clients():
            st = self._clients.peek(client)  # peek: the analysis must not refresh every client's recency
            if st is None:
                continue
            items = tuple(st.bins.items())  # one C-level copy under the GIL
            counts = np.zeros(self.bins)
            for b, c in items:
                if first <= b < now_bin:
                    counts[b - first] = c
            if (counts > 0).sum() >= self.min_active_bins:
                rows.append((client, st.first_seen, counts))
        rows.sort(key=lambda r: (-float(r[2].sum()), r[0]))
        rows = rows[: self.max_candidates]
        if not rows:
            return [], np.zeros(0), np.zeros((0, self.bins))
        return [r[0] for r in rows], np.array([r[1] for r in rows]), np.stack([r[2] for r in rows])

    def _links(
        self, onset: NDArray[np.float64], m: NDArray[np.float64], now_bin: int
    ) -> tuple[NDArray[np.bool_], NDArray[Any]]:
        """Which candidates are linked, and their pairwise correlations (see the class docstring)."""
        # per-client linear detrend: a shared slow trend (the working day ramping up) is not coordination
        t = np.arange(self.bins) - (self.bins - 1) / 2.0
        slope = (m @ t) / float(t @ t)
        centred = m - m.mean(axis=1, keepdims=True) - slope[:, None] * t[None, :]
        norm = np.sqrt((centred**2).sum(axis=1))
        safe = np.where(norm > 0, norm, 1.0)
        corr = (centred @ centred.T) / np.outer(safe, safe)
        corr[norm == 0, :] = 0.0
        corr[:, norm == 0] = 0.0
        active = (m > 0).astype(np.float64)
        inter = active @ active.T
        # clients present when the detector started all "appeared together": the onset link needs later arrivals
        late = onset > self._started + self.bins * self.bin_seconds
        together = (np.abs(onset[:, None] - onset[None, :]) <= self.onset_seconds) & late[:, None] & late[None, :]
        # keys that appeared together are compared on blocks of ``onset_block`` seconds since the later of the two
        # appeared: keys of one actor taking turns (round-robin) are active in different minutes but in every block
        width = max(1, round(self.onset_block / self.bin_seconds))
        starts = np.arange(0, self.bins, width)
        blocks = np.add.reduceat(m, starts, axis=1) > 0  # (n, B)
        onset_block = (
            np.floor(onset / self.bin_seconds) - (now_bin - self.bins)
        ) // width  # the block each client appeared in
        since = (
            np.arange(len(starts))[None, None, :] >= np.maximum(onset_block[:, None], onset_block[None, :])[..., None]
        )
        both = (blocks[:, None, :] & blocks[None, :, :] & since).sum(axis=2)
        either = ((blocks[:, None, :] | blocks[None, :, :]) & since).sum(axis=2)
        jac = both / np.maximum(either, 1)
        # a correlation counts only over enough shared activity (two sparse clients correlate by chance)
        linked = ((corr >= self.rho) & (inter >= self.min_active_bins)) | (together & (jac >= self.jaccard))
        np.fill_diagonal(linked, False)
        return linked, corr

    @staticmethod
    def _components(linked: NDArray[np.bool_]) -> list[list[int]]:
        parent = list(range(len(linked)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j in zip(*np.nonzero(np.triu(linked)), strict=True):
            parent[root(int(i))] = root(int(j))
        groups: dict[int, list[int]] = {}
        for i in range(len(linked)):
            groups.setdefault(root(i), []).append(i)
        return list(groups.values())

    def _analyse(self, obs: Observation, now_bin: int) -> list[Alert]:
        """Link clients by timing and report new groups (runs at most once per bin, on the closed bins)."""
        names, onset, m = self._snapshot(now_bin)
        if len(names) < self.min_group:
            return []
        linked, corr = self._links(onset, m, now_bin)
        volume = m.sum(axis=1)
        typical = max(float(np.median(volume)), 1.0)
        out = []
        for members in self._components(linked):
            total = float(volume[members].sum())
            if len(members) < self.min_group or total < self.volume_factor * typical:
                continue
            clients = sorted(names[i] for i in members)
            with self._group_lock:
                # a group keeps its name as it grows (keys reach min_active_bins one by one): reported again under
                # the same name only when it gained members, so its alerts join one incident
                digest = next((g for g, known in self._groups.items() if len(known & set(clients)) > 0), None)
                if digest is None:
                    digest = hashlib.sha256("\n".join(clients).encode()).hexdigest()[:12]
                elif set(clients) <= self._groups[digest]:
                    continue
                self._groups[digest] = self._groups.get(digest, frozenset()) | frozenset(clients)
                self._groups.move_to_end(digest)
                clients = sorted(self._groups[digest])
                while len(self._groups) > self.max_clients:
                    self._groups.popitem(last=False)
            pairs = len(members) * (len(members) - 1)
            mean_corr = float((corr[np.ix_(members, members)].sum() - len(members)) / pairs)
            minutes = self.bins * self.bin_seconds / 60
            summary = (
                f"One actor suspected behind {len(clients)} clients: their per-minute activity moves together (mean "
                f"correlation {mean_corr:.2f}) and together they sent {total:.0f} queries in the last {minutes:g} "
                f"minutes, {total / typical:.1f} times a typical client's."
            )
            evidence: dict[str, JSONValue] = {
                "members": list(clients),
                "queries": total,
                "typical_client_queries": typical,
                "mean_correlation": mean_corr,
                "window_minutes": minutes,
            }
            out.append(
                Alert(
                    time=obs.time,
                    client=f"group:{digest}",
                    detector="sybil",
                    technique=Technique.VALID_ACCOUNTS,
                    severity=self.severity,
                    score=total / typical,
                    threshold=self.volume_factor,
                    summary=summary,
                    evidence=evidence,
                    model_version=obs.model_version,
                    clients=tuple(clients),
                )
            )
        return out

    def forget(self, client_id: str) -> None:
        self._clients.forget(str(client_id))

    def memory(self) -> GuardMemory:
        return GuardMemory(
            clients=len(self._clients),
            max_clients=self.max_clients,
            entries=self._clients.total(_Activity.entries) + self._keys.total(_Activity.entries),
            max_entries=self.max_clients * (self.bins + self.max_sources + 1),
        )

    def state(self) -> dict[str, JSONValue]:
        """Nothing survives a restart: the timing windows refill within ``bins * bin_seconds``."""
        return {}
