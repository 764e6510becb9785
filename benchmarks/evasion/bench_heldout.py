"""Benchmark: modelshield's robustness evaluation against ART, per sample, on architectures the zoo does not have.

    python3.11 -m venv /tmp/anchors && /tmp/anchors/bin/pip install torch==2.13.0
    /tmp/anchors/bin/pip install -e '.[torch,data]' adversarial-robustness-toolbox torchattacks multiprocess \
        'torchvision<0.29' torch==2.13.0   # keeps the CPU torch: a newer torchvision would replace it
    /tmp/anchors/bin/python benchmarks/evasion/bench_heldout.py [--samples 500] [--out FILE]
    /tmp/anchors/bin/python benchmarks/evasion/bench_heldout.py --samples 50 --quick   # a smoke run in minutes

The zoo's models are the ones modelshield was developed against; this benchmark trains two others here, from
seeded generators (no global seeding), on a split of the bundled MNIST subset that differs from the zoo's:

- ``strided-cnn``: two stride-2 convolutions (no pooling) and a 128-unit dense layer;
- ``mlp-2x``: a 784-256-128-10 ReLU MLP.

For each, at L∞ ε ∈ {0.05, 0.1, 0.2} (inputs in [0, 1]) on the first N held-out inputs:

1. Robust accuracy of modelshield's ``evaluate_robustness`` (worst case over FGSM, PGD, APGD-CE and APGD-DLR; a
   sample is robust only if every attack fails) with the settings of the audit's standard budget
   (``EVASION.settings(Budget.STANDARD)``), against ART's PGD with 5 random restarts (40 and 100 steps, step 2.5ε/
   steps) and ART's AutoAttack. ART's AutoAttack starts from the clean predictions (a misclassified input is never
   robust), runs each attack of its list on the inputs still robust and keeps an example only if it is
   misclassified and within ε; its robust accuracy is the share still robust at the end. Every adversarial array,
   from either tool, is re-checked here with one predictor and its L∞ distance to the input.
2. Per sample: the inputs that ART's best (any of its attacks) breaks and modelshield's worst case does not, and
   the reverse. The claim under test is that modelshield's worst case is at most ART's best on every input.
3. Speed at ε = 0.1: modelshield's PGD (40 steps, 5 restarts) with ``early_stop=False`` against ART's PGD with the
   same steps and restarts, and modelshield with its early stop, one torch thread, median of ``--repeat`` runs.
   ART runs all 5 restarts on every input; modelshield restarts only the inputs not fooled yet, even without the
   early stop, so "equal work" is an upper bound on modelshield's work.

ART draws its random starts from numpy's global generator; ``--art-seed`` seeds it before each ART attack so that
a run can be repeated (modelshield takes its seed as an argument). ART's AutoAttack imports ``multiprocess``, which
ART does not declare. A full run takes about 20 minutes on one busy CPU core; the ``--quick`` run about one.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from modelshield.attacks.evasion.evaluation import evaluate_robustness
from modelshield.attacks.evasion.whitebox import pgd
from modelshield.audit.checks.evasion import EVASION
from modelshield.audit.interface import Budget
from modelshield.data.bundled import load_mnist
from modelshield.models import TorchClassifier
from modelshield.models.interface import Bounds
from modelshield.models.nets import seeded_network

EPS = (0.05, 0.1, 0.2)
SPLIT_SEED = 16  # the number: a permutation of the 5,000 images that no zoo split uses
TEST_SIZE = 1000
TIMING_EPS = 0.1
AUTOATTACK = {
    "quick": "reduced: APGD-CE and APGD-DLR with 1 start each, Square 1,000 queries",
    "standard": "ART's default list: APGD-CE and APGD-DLR with 5 starts each, DeepFool, then Square with "
    "5,000 queries and 1 restart instead of ART's 5",
    "art-default": "ART's default list as is: APGD-CE and APGD-DLR with 5 starts each, DeepFool, Square with "
    "5,000 queries and 5 restarts",
}


def strided_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),  # 14x14
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),  # 7x7
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def mlp_2x() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))  # fmt: skip


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {"strided-cnn": strided_cnn, "mlp-2x": mlp_2x}


@dataclass(frozen=True)
class Trained:
    name: str
    classifier: TorchClassifier
    clean_test_accuracy: float  # on the whole held-out split
    train_seconds: float


def train(name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *, epochs: int,
          seed: int) -> Trained:  # fmt: skip
    t0 = time.perf_counter()
    net = seeded_network(ARCHITECTURES[name], seed)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            idx = order[start : start + 64]
            optimiser.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            optimiser.step()
    net.eval()
    clf = TorchClassifier(net, n_classes=10, input_shape=(1, 28, 28), clip_values=Bounds(0.0, 1.0), device="cpu")
    return Trained(name, clf, clf.accuracy(x_test, y_test), time.perf_counter() - t0)


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Report:
    """Markdown lines, printed as they come and kept for ``--out``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500, help="held-out inputs attacked (at most 1000)")
    parser.add_argument("--arch", nargs="+", choices=sorted(ARCHITECTURES), default=list(ARCHITECTURES))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="training and modelshield's attacks")
    parser.add_argument("--art-seed", type=int, default=0, help="numpy's global seed, set before each ART attack")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a reduced AutoAttack (1 restart of each "
                        "APGD, 1,000 Square queries, no DeepFool), no PGD-100, no reliability checks, "
                        "one timing run")  # fmt: skip
    parser.add_argument("--autoattack", choices=("standard", "art-default"), default="standard",
                        help="standard: ART's default list with one Square run of 5,000 queries (Croce and Hein's "
                        "budget); art-default: ART's list as is (Square restarted 5 times: about 5x slower on "
                        "CPU)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the markdown section here")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # timing is per thread; a benchmark may set it, library code does not

    from art.estimators.classification import PyTorchClassifier

    data = load_mnist()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(data.x))
    test, tr = order[:TEST_SIZE], order[TEST_SIZE:]
    x_train, y_train, x_test, y_test = data.x[tr], data.y[tr], data.x[test], data.y[test]
    x, y = x_test[: args.samples], y_test[: args.samples]
    settings = EVASION.settings(Budget.STANDARD)
    kwargs: dict[str, object] = {"steps": settings.steps, "blackbox_queries": settings.queries}
    restarts = getattr(settings, "restarts", None)
    if restarts is not None and "restarts" in inspect.signature(evaluate_robustness).parameters:
        kwargs["restarts"] = restarts

    out = Report()
    header(out, args, settings, kwargs, n_train=len(x_train), n_test=len(x_test), n=len(x))
    trained = [train(a, x_train, y_train, x_test, y_test, epochs=args.epochs, seed=args.seed) for a in args.arch]
    out("| architecture | parameters | clean accuracy (held-out 1,000) | clean accuracy (attacked) | training s |")
    out("| --- | --- | --- | --- | --- |")
    for t in trained:
        n_params = sum(p.numel() for p in t.classifier.module.parameters())
        out(f"| {t.name} | {n_params:,} | {t.clean_test_accuracy:.3f} | {t.classifier.accuracy(x, y):.3f} | "
            f"{t.train_seconds:.0f} |")  # fmt: skip
    out()
    speed_rows = []
    for t in trained:
        clf = t.classifier
        art = PyTorchClassifier(model=clf.module, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                clip_values=(0.0, 1.0), device_type="cpu")  # fmt: skip
        strength(out, t.name, clf, art, x, y, kwargs, args)
        speed_rows.append(speed(t.name, clf, art, x, y, args))
    out("### Speed: PGD at ε = 0.1, 40 steps, 5 restarts, one thread (median of "
        f"{args.repeat} run{'s' if args.repeat > 1 else ''}, seconds for {len(x)} inputs)")  # fmt: skip
    out()
    out("| architecture | modelshield, no early stop | ART | ART / modelshield | modelshield, early stop | "
        "ART / modelshield early stop | robust acc. modelshield / ART |")  # fmt: skip
    out("| --- | --- | --- | --- | --- | --- | --- |")
    for row in speed_rows:
        out(row)
    out()
    if args.out:
        args.out.write_text("\n".join(out.lines) + "\n", encoding="utf-8")
    return 0


def source_state() -> str:
    """The commit the source tree is at, and a digest of the attack modules as run (the tree may hold edits)."""
    import hashlib
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,  # noqa: S607
                                check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown commit"
    modules = sorted((root / "src" / "modelshield" / "attacks" / "evasion").glob("*.py"))
    digest = hashlib.sha256(b"".join(m.read_bytes() for m in modules)).hexdigest()[:12]
    return f"commit {commit}, attacks/evasion/*.py sha256 {digest}"


def header(out: Report, args: argparse.Namespace, settings: object, kwargs: dict[str, object], *, n_train: int,
           n_test: int, n: int) -> None:  # fmt: skip
    out("## Held-out architectures: modelshield against ART, per sample")
    out()
    out(f"Command: `{shlex.join(['python', *sys.argv])}`  ")
    out(f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  ")
    art_version = version("adversarial-robustness-toolbox")
    out(f"Environment: Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} "
        f"thread), numpy {np.__version__}, adversarial-robustness-toolbox {art_version}, modelshield "
        f"{version('modelshield')} ({source_state()}), {platform.machine()} "
        f"{platform.processor() or platform.system()}  ")  # fmt: skip
    out(f"Data: bundled MNIST subset, permutation seed {SPLIT_SEED}: {n_train} training images, the first "
        f"{n} of {n_test} held-out images attacked; {args.epochs} epochs of Adam (lr 1e-3, batch 64), "
        f"seed {args.seed}.  ")  # fmt: skip
    out(f"modelshield: `evaluate_robustness(..., {', '.join(f'{k}={v}' for k, v in kwargs.items())}, seed="
        f"{args.seed})` (standard budget: {settings}).  ")  # fmt: skip
    out(f"ART: PGD with 5 random restarts (step 2.5ε/steps){'' if args.quick else ', 40 and 100 steps'}; "
        f"AutoAttack ({AUTOATTACK['quick' if args.quick else args.autoattack]}"
        f", eps_step 2ε); ART seed {args.art_seed}.{' QUICK RUN.' if args.quick else ''}")  # fmt: skip
    out()


def strength(out: Report, name: str, clf: TorchClassifier, art: object, x: np.ndarray, y: np.ndarray,
             kwargs: dict[str, object], args: argparse.Namespace) -> None:  # fmt: skip
    outside: list[str] = []

    def broken(adv: np.ndarray, eps: float, tool: str) -> np.ndarray:
        """Misclassified and inside the ε-ball and [0, 1] (float32 rounding aside); examples outside do not count."""
        dist = np.abs(adv.astype(np.float64) - x).reshape(len(x), -1).max(axis=1)
        flat = adv.reshape(len(x), -1)
        inside = (dist <= eps + 1e-6) & (flat.min(axis=1) >= 0.0) & (flat.max(axis=1) <= 1.0)
        wrong = np.asarray(clf.predict(adv) != y)
        if (wrong & ~inside).any():
            outside.append(f"{tool} at ε={eps:g}: {int((wrong & ~inside).sum())} misclassified examples outside the "
                           f"ball or the range (largest distance {dist.max():.7f}), not counted")  # fmt: skip
        return wrong & inside

    progress(f"{name}: modelshield's evaluate_robustness")
    t0 = time.perf_counter()
    evaluation = evaluate_robustness(clf, x, y, eps=EPS, seed=args.seed, check_reliability=not args.quick,
                                     **kwargs)  # type: ignore[arg-type]  # fmt: skip
    ms_seconds = time.perf_counter() - t0
    rows, diffs = [], []
    art_names = ["PGD-40×5", *([] if args.quick else ["PGD-100×5"]), "AutoAttack"]
    art_seconds = 0.0
    for i, eps in enumerate(EPS):
        ours = broken(evaluation.examples[eps].x_adv, eps, "modelshield")
        theirs, auto_by, s = art_attacks(art, x, y, eps, args)
        theirs = {k: broken(adv, eps, f"ART {k}") for k, adv in theirs.items()}
        art_seconds += s
        best = np.logical_or.reduce(list(theirs.values()))
        only_art, only_ours = np.flatnonzero(best & ~ours), np.flatnonzero(ours & ~best)
        per_attack = {k: f"{float(np.mean(~v)):.3f}" for k, v in theirs.items()}
        ms_attacks = " / ".join(f"{v[i]:.3f}" for v in evaluation.robust.values())
        rows.append(f"| {eps:g} | {ms_attacks} | **{evaluation.worst[i]:.3f}** | "
                    f"{' | '.join(per_attack[a] for a in art_names)} | **{float(np.mean(~best)):.3f}** | "
                    f"{len(only_art)} | {len(only_ours)} |")  # fmt: skip
        if len(only_art):
            culprits = ", ".join(f"{j} ({'+'.join(_culprit(k, auto_by[j]) for k, v in theirs.items() if v[j])})"
                                 for j in only_art)  # fmt: skip
            diffs.append(f"- ε = {eps:g}: broken by ART only: {culprits}")
        if len(only_ours):
            diffs.append(f"- ε = {eps:g}: broken by modelshield only: {', '.join(map(str, only_ours))}")
    out(f"### {name}")
    out()
    out(f"Robust accuracy on {len(x)} inputs; modelshield's attacks: {' / '.join(evaluation.robust)}. "
        f"modelshield's evaluation took {ms_seconds:.0f} s (reliability checks {'off' if args.quick else 'on'}), "
        f"ART's attacks {art_seconds:.0f} s.")  # fmt: skip
    out()
    out(f"| ε | modelshield per attack | modelshield worst case | {' | '.join('ART ' + a for a in art_names)} | "
        "ART best (per sample) | broken by ART only | broken by modelshield only |")  # fmt: skip
    out(f"| --- | --- | --- | {' | '.join('---' for _ in art_names)} | --- | --- | --- |")
    for row in rows:
        out(row)
    out()
    if not args.quick:
        verdicts = "; ".join(f"{r.id}: {r.message}" for r in evaluation.reliability) or "none failed"
        out(f"modelshield's reliability checks: {verdicts}")
        out()
    for o in outside:
        out(f"Note: {o}.")
        out()
    out("Sample indices (into the attacked inputs) where the two disagree, with the ART attacks that broke them:"
        if diffs else "Per sample, the two agree on every input at every ε.")  # fmt: skip
    out()
    for d in diffs:
        out(d)
    if diffs:
        out()


def _culprit(attack: str, auto_by: str) -> str:
    return f"AutoAttack's {auto_by}" if attack == "AutoAttack" and auto_by else attack


def art_attacks(art: object, x: np.ndarray, y: np.ndarray, eps: float,
                args: argparse.Namespace) -> tuple[dict[str, np.ndarray], np.ndarray, float]:  # fmt: skip
    """ART's adversarial arrays at ``eps`` by attack name, the attack of AutoAttack's list that broke each input
    ("" where none did), and the seconds they took together."""
    from art.attacks.evasion import AutoAttack, ProjectedGradientDescentPyTorch

    attacks: dict[str, object] = {}
    for steps in (40,) if args.quick else (40, 100):
        attacks[f"PGD-{steps}×5"] = ProjectedGradientDescentPyTorch(
            art, norm=np.inf, eps=eps, eps_step=2.5 * eps / steps, max_iter=steps, num_random_init=5,
            batch_size=512, verbose=False)  # fmt: skip
    if args.quick:
        listed = reduced_autoattack(art, eps)
    elif args.autoattack == "standard":
        listed = standard_autoattack(art, eps)
    else:
        listed = None  # ART's default list
    attacks["AutoAttack"] = AutoAttack(art, norm=np.inf, eps=eps, eps_step=2 * eps, attacks=listed, batch_size=512)
    t0 = time.perf_counter()
    adversarial = {}
    for name, attack in attacks.items():
        progress(f"ART {name} at ε={eps:g}")
        np.random.seed(args.art_seed)  # ART draws from numpy's global generator
        adversarial[name] = attack.generate(x, y)  # type: ignore[attr-defined]
    # best_attacks: per input, the index in AutoAttack's list of the attack whose example it kept (negative: none)
    auto = attacks["AutoAttack"]
    names = [_short_name(a) for a in auto.attacks]  # type: ignore[attr-defined]
    by = np.array([names[i] if i >= 0 else "" for i in auto.best_attacks])  # type: ignore[attr-defined]
    return adversarial, by, time.perf_counter() - t0


def _short_name(attack: object) -> str:
    loss = getattr(attack, "loss_type", None)
    if loss is not None:
        return {"cross_entropy": "APGD-CE", "difference_logits_ratio": "APGD-DLR"}.get(loss, f"APGD-{loss}")
    return type(attack).__name__.removesuffix("Attack") or type(attack).__name__


def standard_autoattack(art: object, eps: float) -> list[object]:
    """ART's default AutoAttack list (APGD-CE and APGD-DLR with 5 starts each, DeepFool, Square) with Square run
    once with 5,000 queries, as in Croce and Hein's standard AutoAttack, instead of ART's 5 restarts of 5,000."""
    from art.attacks.evasion import AutoProjectedGradientDescent, DeepFool, SquareAttack

    common = {"estimator": art, "norm": np.inf, "eps": eps, "eps_step": 2 * eps, "batch_size": 512}
    return [
        AutoProjectedGradientDescent(**common, max_iter=100, nb_random_init=5, loss_type="cross_entropy",
                                     verbose=False),
        AutoProjectedGradientDescent(**common, max_iter=100, nb_random_init=5, loss_type="difference_logits_ratio",
                                     verbose=False),
        DeepFool(art, max_iter=100, epsilon=1e-3, nb_grads=10, batch_size=512, verbose=False),
        SquareAttack(art, norm=np.inf, eps=eps, max_iter=5000, nb_restarts=1, p_init=0.8, batch_size=512,
                     verbose=False),
    ]  # fmt: skip


def progress(message: str) -> None:
    """A time-stamped line on stderr, so that a long run shows where it is (the report goes to stdout)."""
    print(f"[{datetime.datetime.now(datetime.UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def reduced_autoattack(art: object, eps: float) -> list[object]:
    """The quick mode's AutoAttack list: APGD-CE and APGD-DLR with one start each, and Square with 1,000 queries."""
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack

    common = {"estimator": art, "norm": np.inf, "eps": eps, "eps_step": 2 * eps, "batch_size": 512}
    return [
        AutoProjectedGradientDescent(**common, max_iter=100, nb_random_init=1, loss_type="cross_entropy",
                                     verbose=False),
        AutoProjectedGradientDescent(**common, max_iter=100, nb_random_init=1, loss_type="difference_logits_ratio",
                                     verbose=False),
        SquareAttack(art, norm=np.inf, eps=eps, max_iter=1000, nb_restarts=1, p_init=0.8, batch_size=512,
                     verbose=False),
    ]  # fmt: skip


def speed(name: str, clf: TorchClassifier, art: object, x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> str:
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    eps, steps = TIMING_EPS, 40
    step = 2.5 * eps / steps
    results: dict[str, float] = {}

    def ours(early_stop: bool) -> None:
        r = pgd(clf, x, y, eps=eps, steps=steps, step_size=step, restarts=5, seed=args.seed, early_stop=early_stop)
        results["ours"] = r.robust_accuracy

    attack = ProjectedGradientDescentPyTorch(art, norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
                                             num_random_init=5, batch_size=512, verbose=False)  # fmt: skip

    def theirs() -> None:
        np.random.seed(args.art_seed)
        results["art"] = float(np.mean(clf.predict(attack.generate(x, y)) == y))

    progress(f"{name}: timing")
    nostop = timed(lambda: ours(False), args.repeat)
    art_t = timed(theirs, args.repeat)
    stop = timed(lambda: ours(True), args.repeat)
    return (f"| {name} | {nostop:.2f} | {art_t:.2f} | {art_t / nostop:.2f} | {stop:.2f} | {art_t / stop:.2f} | "
            f"{results['ours']:.3f} / {results['art']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
