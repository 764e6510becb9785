"""Model extraction: surrogates beat the constant-guess baseline, queries come from the counter, equation solving
recovers logistic and softmax models exactly, over HTTP too."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from modelshield.attacks.extraction import (
    ExtractionResult,
    _build_surrogate,
    extract_model,
    majority_agreement,
    resample_images,
    solve_linear_model,
    transferability,
)
from modelshield.data import DatasetSplit, load_breast_cancer, load_bundled, load_digits, train_test_split
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.models import Bounds, RemoteClassifier, SklearnClassifier
from modelshield.testing import serve_classifier

FAST = {"min_steps": 60, "max_steps": 120, "epochs": 10, "batch_size": 32}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The caller's choice, made once: tiny surrogates train fastest on one thread (the library leaves it alone)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cancer() -> DatasetSplit:
    return train_test_split(load_breast_cancer(), test_size=0.4, seed=0)


@pytest.fixture(scope="module")
def cancer_lr(cancer: DatasetSplit) -> SklearnClassifier:
    model = LogisticRegression(max_iter=10_000).fit(cancer.train.flat(), cancer.train.y)
    low, high = cancer.train.schema.bounds() or (None, None)
    assert low is not None and high is not None
    return SklearnClassifier(model, clip_values=Bounds(low, high))


def test_natural_extraction_beats_the_constant_guess_and_counts_queries(
    cancer: DatasetSplit, cancer_lr: SklearnClassifier
) -> None:
    # The attacker holds the training records (without labels); fidelity is measured on the test records.
    result = extract_model(cancer_lr, cancer.test.x, cancer.test.y, strategy="natural", natural_x=cancer.train.x,
                           budgets=(40, 160), seed=1, **FAST)  # fmt: skip
    assert [p.queries for p in result.points] == [40, 160]  # from the victim's own counter
    assert result.attack_queries == 160 and result.query_x is not None and len(result.query_x) == 160
    assert result.queries == 160 + len(cancer.test)  # the held-out predictions are queries too
    assert result.attack == "natural(selection=random), soft labels"
    metrics = result.metrics()
    assert metrics["fidelity"] == result.fidelity and metrics["attack_queries"] == 160.0
    assert metrics["baseline_fidelity"] == result.baseline_fidelity
    victim_pred = cancer_lr.predict(cancer.test.x)
    assert result.baseline_fidelity == pytest.approx(majority_agreement(victim_pred))
    assert result.fidelity >= 0.9
    assert result.fidelity >= result.baseline_fidelity + 0.2  # null: a constant guess agrees ~60%
    assert result.victim_accuracy == pytest.approx(float(np.mean(victim_pred == cancer.test.y)))
    assert result.surrogate is not None
    agree = np.mean(result.surrogate.predict(cancer.test.x) == victim_pred)
    assert agree == pytest.approx(result.fidelity)
    d = result.to_dict()
    assert d["points"][-1]["queries"] == 160 and "surrogate" not in d


def test_hard_labels_random_and_jacobian_strategies(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> None:
    hard = extract_model(cancer_lr, cancer.test.x, cancer.test.y, strategy="natural", natural_x=cancer.train.x,
                         budgets=(150,), labels="hard", **FAST)  # fmt: skip
    assert hard.labels == "hard" and hard.fidelity > hard.baseline_fidelity + 0.1
    jac = extract_model(cancer_lr, cancer.test.x, cancer.test.y, strategy="jacobian",
                        natural_x=cancer.train.x[:20], budgets=(20, 80), **FAST)  # fmt: skip
    assert [p.queries for p in jac.points] == [20, 80]
    assert jac.fidelity > jac.baseline_fidelity + 0.1
    assert jac.query_x is not None and cancer_lr.clip_values is not None
    assert cancer_lr.clip_values.contains(jac.query_x, atol=1e-4)  # augmentation stays in the valid range
    rnd = extract_model(cancer_lr, cancer.test.x, cancer.test.y, strategy="random", budgets=(50,), **FAST)
    assert rnd.attack_queries == 50 and rnd.query_x is not None
    assert cancer_lr.clip_values.contains(rnd.query_x)


def test_extraction_is_deterministic(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> None:
    runs = [extract_model(cancer_lr, cancer.test.x, cancer.test.y, strategy="natural", natural_x=cancer.train.x,
                          budgets=(60,), selection="balanced", seed=5, **FAST) for _ in range(2)]  # fmt: skip
    assert runs[0].points[0].fidelity == runs[1].points[0].fidelity
    assert np.array_equal(runs[0].query_x, runs[1].query_x)  # type: ignore[arg-type]


def _run_jacobian(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> ExtractionResult:
    victim = SklearnClassifier(cancer_lr.estimator, clip_values=cancer_lr.clip_values)  # its own query counter
    return extract_model(victim, cancer.test.x, cancer.test.y, strategy="jacobian", natural_x=cancer.train.x[:20],
                         budgets=(20, 60), seed=7, **FAST)  # fmt: skip


def _same(a: ExtractionResult, b: ExtractionResult, x: np.ndarray) -> None:
    assert [(p.queries, p.fidelity, p.surrogate_accuracy) for p in a.points] == [
        (p.queries, p.fidelity, p.surrogate_accuracy) for p in b.points
    ]
    assert np.array_equal(a.query_x, b.query_x)  # type: ignore[arg-type]
    assert a.surrogate is not None and b.surrogate is not None
    assert np.array_equal(a.surrogate.predict_proba(x), b.surrogate.predict_proba(x))


def test_extraction_leaves_torch_global_state_alone(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> None:
    """No draw from, or reseeding of, torch's global generator; the same seed gives the same copy whatever it holds."""
    state = torch.random.get_rng_state()
    first = _run_jacobian(cancer, cancer_lr)
    assert first.surrogate is not None
    transferability(first.surrogate, cancer_lr, cancer.test.x[:40], cancer.test.y[:40], eps=0.5,
                    scale=cancer.test.x.std(axis=0), steps=5)  # fmt: skip
    assert torch.equal(state, torch.random.get_rng_state())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # the caller's global seed must not matter
        second = _run_jacobian(cancer, cancer_lr)
    _same(first, second, cancer.test.x)


def test_extraction_sets_no_process_wide_state(
    cancer: DatasetSplit, cancer_lr: SklearnClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refusal(name: str) -> object:
        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"library code called torch's process-wide {name}")

        return refuse  # one function per name: torch keeps a table of its functions by identity

    for name in ("manual_seed", "seed", "set_num_threads", "set_rng_state"):
        monkeypatch.setattr(torch, name, refusal(name))
    monkeypatch.setattr(torch.random, "fork_rng", refusal("fork_rng"))
    result = _run_jacobian(cancer, cancer_lr)
    assert result.surrogate is not None
    transferability(result.surrogate, cancer_lr, cancer.test.x[:40], cancer.test.y[:40], eps=0.5,
                    scale=cancer.test.x.std(axis=0), steps=5)  # fmt: skip


class _ThreadsSeen(SklearnClassifier):
    """Records torch's thread count whenever the attack queries it."""

    seen: list[int]

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(torch.get_num_threads())
        return super()._predict_proba(x)  # type: ignore[no-any-return]


def test_extraction_does_not_change_the_thread_count(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> None:
    victim = _ThreadsSeen(cancer_lr.estimator, clip_values=cancer_lr.clip_values)
    victim.seen = []
    torch.set_num_threads(2)  # the module runs on one; the attack must keep whatever the caller chose
    try:
        extract_model(victim, cancer.test.x, cancer.test.y, strategy="natural", natural_x=cancer.train.x,
                      budgets=(30,), **FAST)  # fmt: skip
        assert victim.seen and set(victim.seen) == {2} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_concurrent_runs_match_sequential_runs(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> None:
    """Two runs at once in two threads, while a third thread draws from (and reseeds) torch's global generator,
    give exactly what one run alone gives."""
    alone = _run_jacobian(cancer, cancer_lr)
    stop = threading.Event()

    def noise() -> None:
        while not stop.is_set():
            torch.manual_seed(int(torch.randint(0, 1000, (1,))))
            torch.rand(64)

    with torch.random.fork_rng(devices=[]):  # the noise thread's global draws are undone afterwards
        noisy = threading.Thread(target=noise)
        noisy.start()
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [pool.submit(_run_jacobian, cancer, cancer_lr) for _ in range(2)]
                together = [f.result() for f in futures]
        finally:
            stop.set()
            noisy.join()
    for result in together:
        _same(alone, result, cancer.test.x)


@pytest.mark.parametrize(("shape", "n_classes"), [((30,), 2), ((1, 8, 8), 10)])
def test_surrogates_are_initialised_from_the_seed_alone(shape: tuple[int, ...], n_classes: int) -> None:
    x = np.random.default_rng(0).random((20, *shape)).astype(np.float32)
    state = torch.random.get_rng_state()
    one, two, other = (_build_surrogate(shape, n_classes, x, seed) for seed in (3, 3, 4))
    assert torch.equal(state, torch.random.get_rng_state())
    for (name, a), b, c in zip(one.state_dict().items(), two.state_dict().values(), other.state_dict().values(),
                               strict=True):  # fmt: skip
        assert a.device.type == "cpu" and torch.isfinite(a).all(), name
        assert torch.equal(a, b), name
        if name.endswith("weight"):
            assert not torch.equal(a, c), name  # another seed, other weights


def test_transferability_reports_noise_baseline(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> None:
    result = extract_model(cancer_lr, cancer.test.x, cancer.test.y, strategy="natural", natural_x=cancer.train.x,
                           budgets=(200,), **FAST)  # fmt: skip
    assert result.surrogate is not None
    std = cancer.test.x.std(axis=0)
    before = cancer_lr.queries
    t = transferability(result.surrogate, cancer_lr, cancer.test.x, cancer.test.y, eps=0.5, scale=std, steps=10)
    assert t.n > 0 and t.queries == cancer_lr.queries - before
    for rate in (t.surrogate_success_rate, t.transfer_rate, t.noise_rate):
        assert 0.0 <= rate <= 1.0
    assert t.surrogate_success_rate > 0.3  # PGD breaks the copy at half a standard deviation
    assert t.transfer_rate > t.noise_rate  # and the copy's examples beat random noise on the victim
    assert result.with_transfer(t).to_dict()["transfer"]["lift"] == pytest.approx(t.lift)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "copycat"}, "Unknown strategy"),
        ({"budgets": (100, 50)}, "strictly increasing"),
        ({"budgets": ()}, "strictly increasing"),
        ({"budgets": (10**7,)}, "exceeds the limit"),
        ({"strategy": "natural", "budgets": (10_000,)}, "at least 10000 inputs"),
        ({"labels": "top1"}, "labels"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_parameters_raise_with_a_remedy(
    cancer: DatasetSplit, cancer_lr: SklearnClassifier, kwargs: dict[str, object], match: str
) -> None:
    args: dict[str, object] = {"natural_x": cancer.train.x, "budgets": (10,), **kwargs}
    with pytest.raises(InvalidParameterError, match=match) as err:
        extract_model(cancer_lr, cancer.test.x, cancer.test.y, **args)  # type: ignore[arg-type]
    assert err.value.remedy


def test_bad_inputs_raise(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> None:
    with pytest.raises(InvalidInputError):
        extract_model(cancer_lr, cancer.test.x, cancer.test.y[:5], budgets=(10,), natural_x=cancer.train.x)
    with pytest.raises(InvalidInputError):
        extract_model(cancer_lr, cancer.test.x[:, :5], cancer.test.y, budgets=(10,))
    unbounded = SklearnClassifier(cancer_lr.estimator)
    with pytest.raises(InvalidParameterError, match="value range"):
        extract_model(unbounded, cancer.test.x, cancer.test.y, strategy="random", budgets=(10,))


# -- equation solving ------------------------------------------------------------------------------------------------


def test_equation_solving_recovers_a_binary_logistic_regression(
    cancer: DatasetSplit, cancer_lr: SklearnClassifier
) -> None:
    model = cancer_lr.estimator
    result = solve_linear_model(cancer_lr, x_ref=cancer.train.x, x_test=cancer.test.x)
    d = cancer.train.n_features
    assert result.system_queries == d + 1 and result.attack_queries <= 64 + 6 * (d + 1) + 8
    assert result.evaluation_queries == len(cancer.test) and result.queries == result.attack_queries + len(cancer.test)
    assert result.metrics()["consistent"] == 1.0 and result.metrics()["fidelity"] == result.fidelity
    assert result.consistent
    error = result.parameter_error(model.coef_, model.intercept_)
    scale = float(np.abs(np.r_[model.coef_.ravel(), model.intercept_]).max())
    # The estimator's own float32 arithmetic on raw features (areas in the thousands) limits the precision.
    assert error <= 1e-2 * scale
    assert result.fidelity is not None and result.fidelity >= 0.99
    assert result.to_dict()["system_queries"] == d + 1


def test_equation_solving_recovers_a_softmax_regression() -> None:
    split = train_test_split(load_digits(), test_size=0.3, seed=0)
    model = LogisticRegression(max_iter=3000).fit(split.train.flat(), split.train.y)
    victim = SklearnClassifier(model, input_shape=(1, 8, 8), clip_values=Bounds(0.0, 1.0))
    result = solve_linear_model(victim, x_ref=split.train.x, x_test=split.test.x)
    assert result.coef.shape == (10, 64) and result.system_queries == 65
    assert result.consistent
    assert result.parameter_error(model.coef_, model.intercept_) <= 1e-3 * float(np.abs(model.coef_).max())
    assert result.fidelity is not None and result.fidelity >= 0.99


def test_equation_solving_flags_non_linear_models(cancer: DatasetSplit) -> None:
    gbm = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(cancer.train.flat(), cancer.train.y)
    result = solve_linear_model(SklearnClassifier(gbm), x_ref=cancer.train.x, x_test=cancer.test.x)
    assert not result.consistent and result.metrics()["consistent"] == 0.0


def test_equation_solving_over_http(cancer: DatasetSplit, cancer_lr: SklearnClassifier) -> None:
    model = cancer_lr.estimator
    with serve_classifier(cancer_lr, model_name="cancer") as server, RemoteClassifier(server.url, "cancer") as remote:
        result = solve_linear_model(remote, x_ref=cancer.train.x, x_test=cancer.test.x)
        stolen = extract_model(remote, cancer.test.x, cancer.test.y, strategy="natural", natural_x=cancer.train.x,
                               budgets=(100,), **FAST)  # fmt: skip
        assert remote.queries == result.queries + stolen.queries
    assert result.consistent
    scale = float(np.abs(np.r_[model.coef_.ravel(), model.intercept_]).max())
    assert result.parameter_error(model.coef_, model.intercept_) <= 1e-2 * scale
    assert stolen.attack_queries == 100 and stolen.fidelity >= stolen.baseline_fidelity + 0.2


def test_equation_solving_parameters_are_checked(cancer_lr: SklearnClassifier) -> None:
    with pytest.raises(InvalidParameterError):
        solve_linear_model(cancer_lr, step=0.0)
    with pytest.raises(InvalidParameterError, match="somewhere to query"):
        solve_linear_model(SklearnClassifier(cancer_lr.estimator))


def test_resample_images_keeps_the_mean() -> None:
    x = load_bundled("digits").x[:20]
    small = resample_images(x, 4)
    assert small.shape == (20, 1, 4, 4)
    assert np.allclose(small.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=1e-5)
    with pytest.raises(InvalidInputError):
        resample_images(x[:, 0], 4)


def test_importing_does_not_import_torch() -> None:
    code = (
        "import sys, modelshield.attacks, modelshield.defenses, modelshield.attacks.extraction, "
        "modelshield.defenses.extraction_monitor, modelshield.audit.checks.extraction; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_digits_cnn_stolen_with_mnist_images(tmp_path_factory: pytest.TempPathFactory) -> None:
    from modelshield.zoo import load_target

    target = load_target("zoo:digits-cnn", cache_dir=tmp_path_factory.mktemp("zoo"))
    pool = resample_images(load_bundled("mnist").x[:, :, 4:24, 4:24], 8)  # another data set: MNIST, 8x8
    result = extract_model(target.classifier, target.test.x, target.test.y, strategy="natural", natural_x=pool,
                           budgets=(250, 2000))  # fmt: skip
    assert result.fidelity >= 0.85 > result.baseline_fidelity + 0.5
    assert result.points[0].fidelity < result.points[-1].fidelity
