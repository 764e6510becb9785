"""The output watermark: the key file, the keyed marking, the ledger (SQLite, PostgreSQL) and the ownership test.

The acceptance (issue 18): a copy stolen with 2,000 queries through the watermarked gateway is proved at p < 0.001,
and 20 models trained independently on the true labels are not (for a 10-class and a binary model).
"""

from __future__ import annotations

import itertools
import os
import secrets
import stat
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from modelshield.errors import InvalidInputError, InvalidParameterError, NotFittedError
from modelshield.models import SklearnClassifier
from modelshield.models.interface import Classifier
from modelshield.monitoring.watermark import (
    DEFAULT_RATE,
    LedgerRows,
    OutputWatermark,
    OwnershipMethod,
    OwnershipVerdict,
    WatermarkAnswer,
    WatermarkKey,
    WatermarkLedger,
    ownership_test,
    prove_ownership,
)

KEY = WatermarkKey(bytes(range(32)))
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# -- helpers --------------------------------------------------------------------------------------------------------


class _Table(Classifier):
    """A suspect that answers fixed probabilities: the input's one feature is the row's index into ``proba``."""

    def __init__(self, proba: NDArray[np.floating], *, label_only: bool = False) -> None:
        super().__init__(n_classes=proba.shape[1], input_shape=(1,))
        self._proba = np.asarray(proba, np.float32)
        self._label_only = label_only

    @property
    def label_only(self) -> bool:
        return self._label_only

    def _predict_proba(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        p = self._proba[x[:, 0].astype(np.int64)]
        return np.eye(p.shape[1], dtype=np.float32)[p.argmax(axis=1)] if self._label_only else p


class _LabelOnly(Classifier):
    """A model seen through an API that answers labels only."""

    def __init__(self, model: Classifier) -> None:
        super().__init__(n_classes=model.n_classes, input_shape=model.input_shape)
        self._model = model

    @property
    def label_only(self) -> bool:
        return True

    def _predict_proba(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.eye(self.n_classes, dtype=np.float32)[self._model.predict(x)]


class _Gateway(Classifier):
    """The victim behind the watermark, recording every answered batch in the ledger as the gateway does."""

    def __init__(self, victim: Classifier, watermark: OutputWatermark, ledger: WatermarkLedger, client: str) -> None:
        super().__init__(n_classes=victim.n_classes, input_shape=victim.input_shape, clip_values=victim.clip_values)
        self.victim, self.watermark, self.ledger, self.client = victim, watermark, ledger, client
        self.marked = 0
        self.answered = 0

    def _predict_proba(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        answer = self.watermark.apply(x, self.victim.predict_proba(x))
        self.ledger.record(self.client, float(self.answered), x, answer)
        self.marked += answer.n_marked
        self.answered += len(x)
        return answer.probabilities


def _rows(n: int, seed: int, shape: tuple[int, ...] = (5,)) -> NDArray[np.float32]:
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def _proba(n: int, k: int, seed: int) -> NDArray[np.float32]:
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=n).astype(np.float32)


# -- the key --------------------------------------------------------------------------------------------------------


def test_key_file_is_written_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "watermark.key"
    key = WatermarkKey.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert WatermarkKey.load(path) == key
    assert [p.name for p in tmp_path.iterdir()] == ["watermark.key"]  # no temporary file left behind
    with pytest.raises(InvalidParameterError, match="exists already"):
        WatermarkKey.generate(path)
    assert WatermarkKey.generate(path, overwrite=True) != key


def test_key_is_never_shown(tmp_path: Path) -> None:
    key = WatermarkKey.random()
    secret_hex = key._secret.hex()
    wm = OutputWatermark(key).fit(n_classes=3)
    for text in (repr(key), str(key), repr(wm)):
        assert secret_hex not in text and secret_hex[:16] not in text
    assert key.fingerprint in repr(key) and len(key.fingerprint) == 16


@pytest.mark.parametrize("content", ["", "zz" * 32, "ab" * 31, "ab" * 33])
def test_bad_key_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match="32 bytes"):
        WatermarkKey.load(path)
    with pytest.raises(InvalidInputError, match="Cannot read"):
        WatermarkKey.load(tmp_path / "missing.key")
    with pytest.raises(InvalidParameterError):
        WatermarkKey(b"short")


# -- the watermark --------------------------------------------------------------------------------------------------


def test_marks_about_rate_of_rows_with_a_wrong_label_and_the_same_values() -> None:
    n, k = 40_000, 10
    x, p = _rows(n, 0), _proba(n, k, 1)
    answer = OutputWatermark(KEY).fit(n_classes=k).apply(x, p)
    sd = np.sqrt(DEFAULT_RATE * (1 - DEFAULT_RATE) / n)
    assert abs(answer.marked.mean() - DEFAULT_RATE) < 4 * sd
    assert abs(answer.control.mean() - DEFAULT_RATE) < 4 * sd
    assert not np.any(answer.marked & answer.control)
    released = answer.probabilities.argmax(axis=1)
    assert np.array_equal(released[answer.marked], answer.watermark[answer.marked])
    assert np.all(answer.watermark != answer.original)
    assert np.array_equal(released[~answer.marked], p.argmax(axis=1)[~answer.marked])
    assert np.array_equal(answer.probabilities[~answer.marked], p[~answer.marked])  # unmarked rows untouched
    assert np.array_equal(np.sort(answer.probabilities, axis=1), np.sort(p, axis=1))  # the same values, swapped
    shifts = (answer.watermark - answer.original) % k
    assert set(np.unique(shifts[answer.marked]).tolist()) == set(range(1, k))  # every wrong label is used


def test_the_same_input_always_gets_the_same_answer() -> None:
    wm = OutputWatermark(KEY, rate=0.2).fit(n_classes=4)
    x, p = _rows(500, 2), _proba(500, 4, 3)
    first = wm.apply(x, p)
    alone = [wm.apply(x[i : i + 1], p[i : i + 1]) for i in range(0, 500, 7)]  # one by one, in other batches
    assert np.array_equal(np.concatenate([a.probabilities for a in alone]), first.probabilities[::7])
    zeros = np.zeros((1, 5), np.float32)
    assert wm.key.digests(zeros) == wm.key.digests(-zeros)  # -0.0 is 0.0
    other = OutputWatermark(WatermarkKey(bytes(32)), rate=0.2).fit(n_classes=4).apply(x, p)
    assert not np.array_equal(other.marked, first.marked)  # another key marks other rows
    assert np.mean(other.marked == first.marked) < 0.9


def test_binary_models_get_the_other_class() -> None:
    x, p = _rows(4000, 4), _proba(4000, 2, 5)
    answer = OutputWatermark(KEY, rate=0.1).fit(n_classes=2).apply(x, p)
    assert np.array_equal(answer.watermark, 1 - answer.original)
    assert 300 < answer.n_marked < 500


def test_threads_get_the_same_answers() -> None:
    wm = OutputWatermark(KEY, rate=0.1).fit(n_classes=3)
    x, p = _rows(2000, 6), _proba(2000, 3, 7)
    expected = wm.apply(x, p).probabilities
    results: list[bool] = []

    def work(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(2000)
        got = wm.apply(x[order], p[order]).probabilities
        results.append(bool(np.array_equal(got, expected[order])))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8


def test_bad_use_is_refused() -> None:
    with pytest.raises(NotFittedError):
        OutputWatermark(KEY).apply(_rows(2, 0), _proba(2, 3, 0))
    with pytest.raises(InvalidParameterError, match="rate"):
        OutputWatermark(KEY, rate=0.5)
    with pytest.raises(InvalidParameterError, match="rate"):
        OutputWatermark(KEY, rate=0.0)
    with pytest.raises(InvalidParameterError, match="two classes"):
        OutputWatermark(KEY).fit(n_classes=1)
    wm = OutputWatermark(KEY).fit(n_classes=3)
    with pytest.raises(InvalidInputError, match="probabilities"):
        wm.apply(_rows(3, 0), _proba(2, 3, 0))
    with pytest.raises(InvalidInputError, match="finite"):
        wm.apply(np.full((1, 5), np.nan, np.float32), _proba(1, 3, 0))
    empty = wm.apply(np.zeros((0, 5), np.float32), np.zeros((0, 3), np.float32))
    assert empty.n_marked == 0 and empty.probabilities.shape == (0, 3)


# -- the ledger -----------------------------------------------------------------------------------------------------


def _answer(marked: list[bool], control: list[bool], rank: list[int], k: int = 3) -> WatermarkAnswer:
    n = len(marked)
    original = np.zeros(n, np.int64)
    return WatermarkAnswer(
        probabilities=np.full((n, k), 1 / k, np.float32),
        marked=np.array(marked),
        control=np.array(control),
        original=original,
        watermark=original + 1,
        rank=np.array(rank, np.int64),
        key_fingerprint=KEY.fingerprint,
    )


def _check_ledger(url: str) -> None:
    with WatermarkLedger(url, max_rows_per_client=3, max_rows=4) as ledger:
        x = _rows(6, 8)
        answer = _answer(
            [True, True, False, False, True, False], [False, False, True, False, False, True], list(range(6))
        )
        assert ledger.record("alice", 1.0, x, answer) == 5
        assert ledger.record("alice", 2.0, x, answer) == 0  # the same rows again: nothing new
        assert ledger.record("alice", 3.0, x, _answer([False] * 6, [False] * 6, [0] * 6)) == 0
        rows = ledger.rows()
        assert ledger.counts() == {"marked": 3, "control": 2}
        assert rows.marked.tolist() == [True, True, False, True, False]
        assert np.array_equal(rows.x, x[[0, 1, 2, 4, 5]])  # the exact float32 inputs come back
        assert rows.watermark.tolist() == [1] * 5 and rows.original.tolist() == [0] * 5
        assert rows.clients == ("alice",) * 5 and rows.times.tolist() == [1.0] * 5
        # alice's marked rows are full (3): a smaller rank replaces the largest, a larger one is dropped
        more = _rows(2, 9)
        assert ledger.record("alice", 4.0, more, _answer([True, True], [False, False], [-1, 99])) == 1
        kept = ledger.rows("alice")
        assert kept.marked.sum() == 3 and not any(np.array_equal(r, x[4]) for r in kept.x)
        # the total cap (4 marked rows in all) keeps the smallest ranks over all clients
        assert ledger.record("bob", 5.0, _rows(3, 10), _answer([True] * 3, [False] * 3, [-5, 50, 60])) == 1
        assert ledger.counts()["marked"] == 4
        assert ledger.rows("bob").marked.sum() == 1 and ledger.rows(["bob", "carol"]).clients == ("bob",)
        # carol asks alice's row 0 (rank 0): it evicts alice's row 1 (rank 1), and the test counts the row once
        assert ledger.record("carol", 6.0, x[:1], _answer([True], [False], [0])) == 1
        both = ledger.rows(["alice", "carol"])
        assert both.marked.sum() == 2 and len({r.tobytes() for r in both.x}) == len(both.x) == 4
        assert not any(np.array_equal(r, x[1]) for r in both.x)


def test_ledger_on_sqlite(tmp_path: Path) -> None:
    _check_ledger(f"sqlite:///{tmp_path / 'wm.db'}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test; skipped when PostgreSQL is not reachable."""
    if os.environ.get("CI_NO_SERVICES"):
        pytest.skip("CI_NO_SERVICES is set: no PostgreSQL")
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"modelshield_wm_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.services
def test_ledger_on_postgresql(pg_url: str) -> None:
    _check_ledger(pg_url)


def test_ledger_keeps_caps_under_concurrent_writers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wm.db'}"
    wm = OutputWatermark(KEY, rate=0.2).fit(n_classes=3)
    ledgers = [WatermarkLedger(url, max_rows_per_client=40, max_rows=60) for _ in range(2)]  # as two processes

    def work(i: int) -> None:
        for j in range(10):
            x = _rows(30, 100 * i + j)
            ledgers[i % 2].record(f"c{i % 3}", float(j), x, wm.apply(x, _proba(30, 3, j)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = ledgers[0].rows()
    assert ledgers[0].counts() == {"marked": 60, "control": 60}
    for client in ("c0", "c1", "c2"):
        mine = [m for m, c in zip(rows.marked, rows.clients, strict=True) if c == client]
        assert sum(mine) <= 40 and len(mine) - sum(mine) <= 40
    for ledger in ledgers:
        ledger.close()


def test_ledger_refuses_bad_urls(tmp_path: Path) -> None:
    for url in ("not a url", "sqlite://", "mysql://u@h/db"):
        with pytest.raises(InvalidParameterError):
            WatermarkLedger(url)
    with pytest.raises(InvalidParameterError):
        WatermarkLedger(f"sqlite:///{tmp_path / 'wm.db'}", max_rows_per_client=10, max_rows=5)


# -- the ownership test: validity and power on synthetic suspects ---------------------------------------------------


def _synthetic(n: int, k: int, seed: int, learned: float = 0.0) -> tuple[LedgerRows, _Table]:
    """``n`` rows, half marked; a suspect that reproduces the watermark label on ``learned`` of the marked rows."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(k), size=n)
    original = proba.argmax(axis=1)
    watermark = (original + rng.integers(1, k, size=n)) % k
    marked = rng.permutation(n) < n // 2
    learn = marked & (rng.random(n) < learned)
    proba[learn, watermark[learn]] = 2.0
    proba /= proba.sum(axis=1, keepdims=True)
    x = np.arange(n, dtype=np.float32)[:, None]
    return LedgerRows(x, original, watermark, marked), _Table(proba)


@pytest.mark.parametrize("k", [2, 10])
def test_p_values_are_valid_for_independent_suspects(k: int) -> None:
    """Under H0 (the split into marked and control is random for the suspect) p < a happens at most a of the time."""
    rows, suspect = _synthetic(120, k, seed=k)
    labels = _LabelOnly(suspect)
    rng = np.random.default_rng(0)
    p_scores, p_labels = [], []
    for trial in range(200):
        split = LedgerRows(rows.x, rows.original, rows.watermark, rng.permutation(rows.marked))
        p_scores.append(ownership_test(suspect, split, alpha=0.05, permutations=499, seed=trial).p_value)
        p_labels.append(ownership_test(labels, split, alpha=0.05).p_value)
    for ps in (np.array(p_scores), np.array(p_labels)):
        assert np.mean(ps < 0.05) < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)
        assert np.mean(ps < 0.2) < 0.2 + 3 * np.sqrt(0.2 * 0.8 / 200)


@pytest.mark.parametrize("k", [2, 10])
def test_a_suspect_that_learned_part_of_the_watermark_is_proved(k: int) -> None:
    rows, suspect = _synthetic(200, k, seed=3, learned=0.3)
    scores = ownership_test(suspect, rows)
    labels = ownership_test(_LabelOnly(suspect), rows)
    assert scores.method is OwnershipMethod.SCORES_AND_LABELS and labels.method is OwnershipMethod.LABELS
    assert scores.proved and labels.proved and scores.p_value < 0.001 and labels.p_value < 0.001
    assert scores.auc is not None and scores.auc > 0.55 and labels.auc is None and labels.p_scores is None
    assert labels.matches > labels.control_matches
    assert "Ownership proved" in scores.summary
    unlearned = ownership_test(_synthetic(200, k, seed=3, learned=0.0)[1], rows)
    assert unlearned.verdict is OwnershipVerdict.NOT_PROVED and "No proof" in unlearned.summary


def test_fisher_p_value_matches_enumeration() -> None:
    """The label test's p-value equals the share of all splits with at least as many marked matches (the oracle)."""
    hit = np.array([1, 1, 1, 0, 1, 0, 0, 1, 0, 0], bool)
    marked = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0], bool)
    n = len(hit)
    original = np.zeros(n, np.int64)
    watermark = np.where(hit, 1, 2)
    proba = np.eye(3)[np.where(hit, 1, 0)]
    result = ownership_test(_Table(proba, label_only=True), LedgerRows(np.arange(n, dtype=np.float32)[:, None],
                            original, watermark, marked))  # fmt: skip
    observed = int(hit[marked].sum())
    splits = list(itertools.combinations(range(n), int(marked.sum())))
    as_extreme = sum(int(hit[list(s)].sum()) >= observed for s in splits)
    assert result.p_value == pytest.approx(as_extreme / len(splits), rel=1e-9)
    assert (result.matches, result.n_marked, result.control_matches, result.n_control) == (3, 4, 2, 6)


def test_ownership_test_refuses_what_it_cannot_test(tmp_path: Path) -> None:
    rows, suspect = _synthetic(20, 3, seed=0)
    only_marked = LedgerRows(rows.x, rows.original, rows.watermark, np.ones(20, bool))
    with pytest.raises(InvalidInputError, match="marked and control"):
        ownership_test(suspect, only_marked)
    with pytest.raises(InvalidParameterError, match="permutations"):
        ownership_test(suspect, rows, alpha=1e-6)
    with pytest.raises(InvalidInputError, match="shape"):
        ownership_test(suspect, LedgerRows(np.zeros((20, 2), np.float32), rows.original, rows.watermark, rows.marked))
    with pytest.raises(InvalidInputError, match="marked and control"):
        prove_ownership(suspect, f"sqlite:///{tmp_path / 'empty.db'}")


def test_result_to_dict_is_plain_json() -> None:
    import json

    rows, suspect = _synthetic(60, 4, seed=1, learned=0.5)
    data = ownership_test(suspect, rows).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["verdict"] in {"proved", "not-proved"} and data["method"] == "scores-and-labels"


# -- acceptance: real models, a real thief --------------------------------------------------------------------------


@dataclass
class _Theft:
    """A served victim, the thief's copy stolen through the watermarked gateway, and what the ledger kept."""

    victim: Classifier
    copy: Classifier
    ledger: WatermarkLedger
    gateway: _Gateway
    queries: NDArray[np.float32]  # the thief's 2,000 queries
    train_x: NDArray[np.float32]  # data with TRUE labels for the independent models
    train_y: NDArray[np.int64]
    accuracy_cost: float


def _steal(name: str, tmp: Path) -> _Theft:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelshield.attacks.extraction import extract_model, resample_images
    from modelshield.data import load_bundled

    rng = np.random.default_rng(0)
    data = load_bundled(name)
    perm = rng.permutation(len(data.x))
    half = len(perm) // 2
    own, rest = perm[:half], perm[half:]
    flat = data.x.reshape(len(data.x), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning
        est = make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=500, random_state=0))
        victim = SklearnClassifier(est.fit(flat[own], data.y[own]), input_shape=data.x.shape[1:])
    if name == "digits":  # the thief's natural data: its own digits and MNIST scaled down to 8x8
        mnist = resample_images(load_bundled("mnist").x, 8)
        pool = np.concatenate([data.x[rest], mnist[: 2000 - len(rest)]])
    else:  # a thief with 285 records makes more by mixing pairs of them
        a, b = rng.integers(len(rest), size=(2, 2000 - len(rest)))
        mix = rng.random((len(a), 1)).astype(np.float32)
        pool = np.concatenate([data.x[rest], mix * data.x[rest][a] + (1 - mix) * data.x[rest][b]])
    pool = pool[rng.permutation(len(pool))].astype(np.float32)
    ledger = WatermarkLedger(f"sqlite:///{tmp / f'{name}.db'}")
    watermark = OutputWatermark(KEY).fit(victim)
    gateway = _Gateway(victim, watermark, ledger, client="thief")
    stolen = extract_model(gateway, data.x[rest[:50]], data.y[rest[:50]], strategy="natural", natural_x=pool,
                           labels="hard", budgets=(2000,), seed=0)  # fmt: skip
    assert stolen.surrogate is not None and stolen.points[-1].queries == 2000
    honest = victim.predict(data.x) != watermark.apply(data.x, victim.predict_proba(data.x)).probabilities.argmax(1)
    assert stolen.query_x is not None
    return _Theft(victim, stolen.surrogate, ledger, gateway, stolen.query_x, data.x[own], data.y[own],
                  float(honest.mean()))  # fmt: skip


@pytest.fixture(scope="module")
def digits_theft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Theft]:
    theft = _steal("digits", tmp_path_factory.mktemp("wm"))
    yield theft
    theft.ledger.close()


@pytest.fixture(scope="module")
def cancer_theft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Theft]:
    theft = _steal("breast_cancer", tmp_path_factory.mktemp("wm"))
    yield theft
    theft.ledger.close()


def _independent(i: int, x: NDArray[np.float32], y: NDArray[np.int64]) -> Classifier:
    """The i-th of 20 models trained on the TRUE labels: five families, each with its own seed, data and size."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1000 + i)
    pick = rng.choice(len(x), size=int(0.8 * len(x)), replace=False)
    flat = x.reshape(len(x), -1)[pick]
    models: list[Any] = [
        make_pipeline(StandardScaler(), MLPClassifier((32 + 8 * i,), max_iter=300, random_state=i)),
        make_pipeline(StandardScaler(), LogisticRegression(C=0.05 * (i + 1), max_iter=1000)),
        RandomForestClassifier(40, random_state=i),
        ExtraTreesClassifier(40, random_state=i),
        KNeighborsClassifier(3 + i // 5),
        GaussianNB(var_smoothing=10.0 ** -(3 + i // 5)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = models[i % len(models)].fit(flat, y[pick])
    return SklearnClassifier(model, input_shape=x.shape[1:])


def _check_theft(theft: _Theft, n_independent: int) -> None:
    counts = theft.ledger.counts()
    assert 25 <= counts["marked"] <= 80 and 25 <= counts["control"] <= 80  # ~2.5 % of 2,050 answers each
    assert abs(theft.accuracy_cost - DEFAULT_RATE) < 0.02  # an honest client loses about `rate` of its accuracy
    proof = prove_ownership(theft.copy, theft.ledger)
    assert proof.proved and proof.p_value < 0.001 and proof.clients == ("thief",), proof.summary
    assert proof.method is OwnershipMethod.SCORES_AND_LABELS
    independent = [
        prove_ownership(_independent(i, theft.train_x, theft.train_y), theft.ledger) for i in range(n_independent)
    ]
    assert all(not r.proved for r in independent), [r.p_value for r in independent]
    assert min(r.p_value for r in independent) >= 0.001


def test_stolen_binary_copy_is_proved_and_independent_models_are_not(cancer_theft: _Theft) -> None:
    _check_theft(cancer_theft, n_independent=6)


@pytest.mark.slow
def test_acceptance_digits_twenty_independent_models(digits_theft: _Theft) -> None:
    _check_theft(digits_theft, n_independent=20)


@pytest.mark.slow
def test_acceptance_binary_twenty_independent_models(cancer_theft: _Theft) -> None:
    _check_theft(cancer_theft, n_independent=20)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["digits", "cancer"])
def test_label_only_copy_trained_to_fit_is_proved(which: str, request: pytest.FixtureRequest) -> None:
    """A copy served with labels only, by a thief who trains it until it fits our answers."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    theft: _Theft = request.getfixturevalue(f"{which}_theft")
    before = theft.ledger.counts()
    answers = theft.gateway.predict(theft.queries)  # the same queries get the same answers (nothing new recorded)
    assert theft.ledger.counts() == before
    pool = theft.queries
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copy = make_pipeline(StandardScaler(), MLPClassifier((128,), max_iter=1000, random_state=1))
        copy.fit(pool.reshape(len(pool), -1), answers)
    result = ownership_test(_LabelOnly(SklearnClassifier(copy, input_shape=theft.victim.input_shape)), theft.ledger)
    assert result.method is OwnershipMethod.LABELS and result.p_value < 0.001, result.summary


def test_large_evidence_is_subsampled_per_kind() -> None:
    rows, suspect = _synthetic(400, 5, seed=2, learned=0.4)
    full = ownership_test(suspect, rows)
    capped = ownership_test(suspect, rows, max_rows_per_kind=50)
    assert (full.n_marked, full.n_control) == (200, 200) and (capped.n_marked, capped.n_control) == (50, 50)
    assert capped.proved and capped.p_value > full.p_labels  # less evidence, still a proof
    with pytest.raises(InvalidParameterError, match="max_rows_per_kind"):
        ownership_test(suspect, rows, max_rows_per_kind=0)


def test_ledger_refuses_a_batch_that_does_not_match_its_answer(tmp_path: Path) -> None:
    with WatermarkLedger(f"sqlite:///{tmp_path / 'wm.db'}") as ledger:
        with pytest.raises(InvalidInputError, match="inputs for an answer"):
            ledger.record("alice", 0.0, _rows(3, 0), _answer([True, False], [False, True], [0, 1]))
        with pytest.raises(InvalidInputError, match="client"):
            ledger.record("", 0.0, _rows(2, 0), _answer([True, False], [False, True], [0, 1]))
        assert ledger.counts() == {"marked": 0, "control": 0}
