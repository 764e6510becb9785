"""The contract every inference guard keeps, as one function tests call on any guard.

    >>> from modelshield.defenses.output import TopK
    >>> from modelshield.testing.guard_checks import check_guard
    >>> from modelshield.testing.targets import tiny_target
    >>> target = tiny_target("tabular", white_box=False)
    >>> check_guard(TopK, target.classifier, target.train.x, target.train.y)

:func:`check_guard` builds guards from a factory (a zero-argument callable, such as a class or a registry's
:class:`~modelshield.defenses.registry.GuardFactory`) and checks, on the given model and reference data:

- the protocol: an :class:`~modelshield.defenses.interface.InferenceGuard` with a name and a stage, that raises
  :class:`~modelshield.errors.NotFittedError` before ``fit``, whose ``fit`` returns the guard itself;
- well-formed decisions: one action and one score per row, rows above the threshold (and only those) not allowed,
  no threshold and every row allowed for guards that only transform, output probabilities in [0, 1] with rows
  summing to 1 (unless the guard says ``sums_to_one = False``) and the argmax kept where the guard promises it
  (``preserves_argmax``); an empty batch gives an empty decision; a JSON-serialisable ``to_dict()``;
- query counting: the model's query counter advances by exactly the ``queries`` each decision reports;
- bad input refused with :class:`~modelshield.errors.InvalidInputError` (inputs of the wrong shape; for output
  guards, a request without probabilities or with the wrong number of classes);
- determinism: a second guard fitted with the same seed gives the same decisions on the same requests, even when
  the clients' requests arrive interleaved differently;
- thread safety: one thread per client, all inspecting at once on one guard, give every client the decisions that
  sequential calls gave it;
- bounded memory: after more clients than ``max_clients`` the guard remembers at most ``max_clients``, and after a
  long stream one client holds at most its share of ``max_entries``; ``forget`` drops a client.

Failures raise AssertionError with what was expected and what came back. Give stateful guards small caps
(``max_clients`` below ``memory_clients``, a per-client history of at most 4096 entries), so that the memory check
can exceed them quickly.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from modelshield.defenses.interface import (
    Action,
    GuardDecision,
    GuardMemory,
    GuardRequest,
    GuardStage,
    InferenceGuard,
)
from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models.interface import Classifier, FloatArray

__all__ = ["check_guard"]

_MAX_HISTORY = 4096  # the longest per-client history the memory check will stream past


def _expect(condition: object, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds (an explicit raise: ``python -O`` keeps it)."""
    if not condition:
        raise AssertionError(message)


def check_guard(
    factory: Callable[[], InferenceGuard],
    classifier: Classifier,
    reference_x: ArrayLike,
    reference_y: ArrayLike | None = None,
    *,
    seed: int = 0,
    clients: int = 6,
    batches: int = 4,
    batch_size: int = 8,
    memory_clients: int = 64,
) -> None:
    """Check the guards ``factory`` builds against ``classifier`` and its reference data (see the module docstring).

    Each of ``clients`` clients sends ``batches`` batches of up to ``batch_size`` inputs drawn from ``reference_x``,
    half of them with uniform noise added (so detectors have something to flag). ``memory_clients`` distinct
    clients are sent for the memory check; it must exceed the guard's ``max_clients``.
    """
    x = classifier.validate_input(reference_x)
    _expect(len(x) >= 2, "check_guard needs at least two reference inputs")
    if min(clients, batches, batch_size) < 1:
        raise InvalidParameterError("clients, batches and batch_size must be at least 1.")

    guard = factory()
    _expect(isinstance(guard, InferenceGuard), f"{type(guard).__name__} is not an InferenceGuard")
    _expect(isinstance(guard.stage, GuardStage), f"stage {guard.stage!r} is not a GuardStage")
    _expect(isinstance(guard.name, str) and guard.name, "a guard needs a non-empty name")
    streams = _streams(classifier, x, guard.stage, seed=seed, clients=clients, batches=batches, size=batch_size)
    try:
        guard.inspect(streams[0][0])
    except NotFittedError:
        pass
    else:
        raise AssertionError("inspect before fit did not raise NotFittedError")
    _expect(guard.fit(classifier, x, reference_y, seed=seed) is guard, "fit must return the guard itself")
    cap = guard.memory().max_clients
    if 0 < cap < clients:
        raise InvalidParameterError(
            f"The checks send {clients} clients at once; the guard remembers only {cap}, so it would forget clients "
            "between their requests and the decisions could not be compared.",
            remedy="Give the guard a max_clients of at least `clients`, or lower `clients`.",
        )
    _check_bad_input(guard, classifier, x)

    # Sequential, clients interleaved round-robin: well-formed decisions and exact query counts.
    sequential: list[list[GuardDecision]] = [[] for _ in streams]
    for step in range(max(len(s) for s in streams)):
        for c, stream in enumerate(streams):
            if step < len(stream):
                before = classifier.queries
                decision = guard.inspect(stream[step])
                spent = classifier.queries - before
                _expect(spent == decision.queries, f"the decision reports {decision.queries} queries; {spent} spent")
                _check_decision(guard, stream[step], decision, classifier.n_classes)
                sequential[c].append(decision)

    # Determinism: a second guard, same seed, clients one after another.
    again = factory().fit(classifier, x, reference_y, seed=seed)
    for c, stream in enumerate(streams):
        for request, expected in zip(stream, sequential[c], strict=True):
            _expect_same(again.inspect(request), expected, "a second guard fitted with the same seed")

    # Thread safety: one thread per client, all at once.
    _check_threads(factory().fit(classifier, x, reference_y, seed=seed), streams, sequential)

    _check_memory(factory, classifier, x, reference_y, seed=seed, clients=memory_clients, size=batch_size)


def _streams(
    classifier: Classifier, x: FloatArray, stage: GuardStage, *, seed: int, clients: int, batches: int, size: int
) -> list[list[GuardRequest]]:
    """Per client, its requests: batches of 1 to ``size`` reference inputs, every other one noisy; the first
    client's last batch is empty."""
    rng = np.random.default_rng(seed)
    low, high = float(x.min()), float(x.max())
    spread = (high - low) or 1.0
    streams: list[list[GuardRequest]] = []
    for c in range(clients):
        stream = []
        for b in range(batches):
            n = int(rng.integers(1, size + 1)) if b else 1
            batch = np.asarray(x[rng.choice(len(x), size=n)], dtype=np.float64)
            if b % 2:  # noisy, kept in the valid range
                batch = np.clip(batch + rng.uniform(-0.5, 0.5, size=batch.shape) * spread, low, high)
                if classifier.clip_values is not None:
                    batch = np.asarray(classifier.clip_values.clip(batch), dtype=np.float64)
            stream.append(_request(classifier, f"client-{c}", batch, stage))
        streams.append(stream)
    streams[0].append(_request(classifier, "client-0", x[:0], stage))
    return streams


def _request(classifier: Classifier, client: str, batch: ArrayLike, stage: GuardStage) -> GuardRequest:
    arr = np.asarray(batch, dtype=np.float32)
    proba = classifier.predict_proba(arr) if stage is GuardStage.OUTPUT else None
    return GuardRequest(client, arr, probabilities=proba)


def _check_decision(guard: InferenceGuard, request: GuardRequest, decision: GuardDecision, n_classes: int) -> None:
    n = request.n
    where = f"{guard.name} on a batch of {n} for {request.client_id}"
    _expect(decision.guard == guard.name, f"{where}: decision names guard {decision.guard!r}")
    _expect(decision.stage is guard.stage, f"{where}: decision of stage {decision.stage}, guard of {guard.stage}")
    _expect(decision.client_id == request.client_id, f"{where}: decision for client {decision.client_id!r}")
    _expect(len(decision.actions) == n, f"{where}: {len(decision.actions)} actions")
    _expect(all(isinstance(a, Action) for a in decision.actions), f"{where}: an action is not an Action")
    _expect(decision.scores.shape == (n,), f"{where}: scores of shape {decision.scores.shape}")
    _expect(not np.isnan(decision.scores).any(), f"{where}: a score is NaN")
    _expect(decision.queries >= 0, f"{where}: negative queries")
    flagged = decision.flagged
    if decision.threshold is None:
        _expect(not flagged.any(), f"{where}: rows acted on without a threshold")
    else:
        _expect(math.isfinite(decision.threshold), f"{where}: threshold {decision.threshold}")
        above = decision.scores > decision.threshold
        _expect(
            np.array_equal(flagged, above),
            f"{where}: rows not allowed {np.flatnonzero(flagged)} differ from rows above the threshold "
            f"{np.flatnonzero(above)}",
        )
    _expect(bool(decision.reasons) == bool(flagged.any()), f"{where}: reasons {decision.reasons} for {flagged}")
    _expect(all(isinstance(r, str) and r for r in decision.reasons), f"{where}: a reason is not plain text")
    if guard.stage is GuardStage.INPUT:
        _expect(decision.probabilities is None, f"{where}: an input guard released probabilities")
    else:
        released, given = decision.probabilities, request.probabilities
        _expect(released is not None and given is not None, f"{where}: an output guard released no probabilities")
        if released is None or given is None:
            return
        _expect(released.shape == (n, n_classes), f"{where}: probabilities of shape {released.shape}")
        _expect(bool(np.all(released >= 0.0) and np.all(released <= 1.0 + 1e-9)), f"{where}: outside [0, 1]")
        sums = released.sum(axis=1)
        if bool(getattr(guard, "sums_to_one", True)):
            _expect(np.allclose(sums, 1.0, atol=1e-5), f"{where}: rows sum to {sums}, not 1")
        else:
            _expect(bool(np.all(sums <= 1.0 + 1e-5)), f"{where}: rows sum to {sums}, above 1")
        if bool(getattr(guard, "preserves_argmax", False)) and n:
            _expect(
                np.array_equal(released.argmax(axis=1), given.argmax(axis=1)),
                f"{where}: the guard promises to keep the argmax and changed it",
            )
    json.dumps(decision.to_dict())


def _check_bad_input(guard: InferenceGuard, classifier: Classifier, x: FloatArray) -> None:
    flat = x[:2].reshape(2, -1)
    wrong = flat[:, :-1] if flat.shape[1] > 1 else np.concatenate([flat, flat], axis=1)
    bad = [GuardRequest("bad", wrong, probabilities=np.full((2, classifier.n_classes), 1 / classifier.n_classes))]
    if guard.stage is GuardStage.OUTPUT:
        bad.append(GuardRequest("bad", x[:2]))
        bad.append(GuardRequest("bad", x[:2], probabilities=np.full((2, classifier.n_classes + 1), 0.1)))
    for request in bad:
        try:
            guard.inspect(request)
        except InvalidInputError:
            pass
        else:
            shape = None if request.probabilities is None else request.probabilities.shape
            raise AssertionError(
                f"{guard.name} accepted a bad request: inputs {request.x.shape}, probabilities {shape}"
            )
    guard.forget("bad")


def _expect_same(got: GuardDecision, expected: GuardDecision, what: str) -> None:
    where = f"{what}, client {expected.client_id}"
    _expect(got.actions == expected.actions, f"{where}: actions {got.actions} != {expected.actions}")
    _expect(np.array_equal(got.scores, expected.scores, equal_nan=True), f"{where}: scores differ")
    _expect(got.threshold == expected.threshold, f"{where}: threshold {got.threshold} != {expected.threshold}")
    _expect(got.reasons == expected.reasons, f"{where}: reasons differ")
    _expect(got.queries == expected.queries, f"{where}: queries {got.queries} != {expected.queries}")
    same_p = (got.probabilities is None and expected.probabilities is None) or (
        got.probabilities is not None
        and expected.probabilities is not None
        and np.array_equal(got.probabilities, expected.probabilities)
    )
    _expect(same_p, f"{where}: released probabilities differ")


def _check_threads(
    guard: InferenceGuard, streams: Sequence[Sequence[GuardRequest]], expected: Sequence[Sequence[GuardDecision]]
) -> None:
    start = threading.Barrier(len(streams))
    got: list[list[GuardDecision]] = [[] for _ in streams]
    errors: list[BaseException] = []

    def run(c: int) -> None:
        try:
            start.wait()
            got[c].extend(guard.inspect(request) for request in streams[c])
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(len(streams))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError(f"inspect raised in a thread: {errors[0]!r}") from errors[0]
    for c in range(len(streams)):
        _expect(len(got[c]) == len(expected[c]), f"client {c}: {len(got[c])} decisions")
        for decision, reference in zip(got[c], expected[c], strict=True):
            _expect_same(decision, reference, "concurrent inspection")


def _check_memory(
    factory: Callable[[], InferenceGuard],
    classifier: Classifier,
    x: FloatArray,
    reference_y: ArrayLike | None,
    *,
    seed: int,
    clients: int,
    size: int,
) -> None:
    guard = factory().fit(classifier, x, reference_y, seed=seed)
    stage = guard.stage
    empty = guard.memory()
    _expect(empty.clients == 0 and empty.entries == 0, f"{guard.name}: state held before any request: {empty}")
    cap = empty.max_clients
    if cap >= clients:
        raise InvalidParameterError(
            f"The memory check sends {clients} clients; the guard remembers up to {cap}, so it cannot be exceeded.",
            remedy="Build the guard with a smaller max_clients for the check, or raise memory_clients.",
        )
    for c in range(clients):
        guard.inspect(_request(classifier, f"visitor-{c}", x[c % len(x) : c % len(x) + 1], stage))
        memory = guard.memory()
        _expect(memory.clients <= cap, f"{guard.name}: {memory.clients} clients held, cap {cap}")
        _expect(memory.entries <= memory.max_entries, f"{guard.name}: {memory.entries} entries held: {memory}")
    memory = guard.memory()
    if cap == 0:
        _expect(memory == GuardMemory(), f"{guard.name} reports no client cap but holds state: {memory}")
        return
    _expect(memory.clients == cap, f"{guard.name}: {memory.clients} clients held after {clients}, cap {cap}")
    guard.forget(f"visitor-{clients - 1}")
    _expect(guard.memory().clients == cap - 1, f"{guard.name}: forget did not drop the client")

    per_client = memory.max_entries // cap
    if per_client == 0:
        return
    if per_client > _MAX_HISTORY:
        raise InvalidParameterError(
            f"The memory check streams past one client's history of up to {per_client} entries; at most "
            f"{_MAX_HISTORY} are supported.",
            remedy="Build the guard with a smaller per-client history for the check.",
        )
    lone = factory().fit(classifier, x, reference_y, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(math.ceil((2 * per_client + 16) / size)):
        lone.inspect(_request(classifier, "talker", x[rng.choice(len(x), size=size)], stage))
        memory = lone.memory()
        _expect(memory.entries <= per_client, f"{lone.name}: one client holds {memory.entries} entries")
    _expect(memory.entries > 0, f"{lone.name} reports a per-client history but keeps none")
