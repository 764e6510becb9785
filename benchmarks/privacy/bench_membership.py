"""Benchmark: membership inference with modelshield and ART on the same targets, data and reference-model count.

    /tmp/privbench/bin/python benchmarks/privacy/bench_membership.py [--targets 8] [--reference 8] [--seed 0]

(The environment: torch 2.13.0 CPU, adversarial-robustness-toolbox 1.20.1 and modelshield installed editable.)

Setting (Carlini et al. 2022): the pool is all 569 breast-cancer records. ``--targets`` T target models and
``--reference`` M reference models are trained with the zoo:cancer-mlp-overfit recipe (MLP [128, 128] with a
standardising layer, Adam lr 2e-3, 100 epochs, batch 32) by ``TorchTrainer``, each on its own random half of the
pool (284 records). Every attack scores every pool record against each target; the scores of the T targets are
pooled (T * 284 members, T * 285 non-members) before the ROC, so that low false-positive rates have data behind
them.

- modelshield: the loss attack (no references), LiRA online and offline and RMIA (online), all using the same M
  reference models for every target. "wall s" is the time to train the M reference models (once) plus the time
  to score all T targets.
- ART: ``MembershipInferenceBlackBoxRuleBased`` (no references), and ``MembershipInferenceBlackBox`` with a
  random-forest ("rf") and a neural-network ("nn") attack model trained on the shadow dataset of ART's
  ``ShadowModels`` with M shadow models. The shadow template is an ART ``PyTorchClassifier`` around the same
  architecture (``modelshield.zoo.architecture``), Adam lr 2e-3, trained by ART's own ``fit`` with 100 epochs
  and batch 32; the shadow dataset is the same pool the reference models are drawn from. Each target is wrapped
  as an ART ``BlackBoxClassifier`` whose predict function returns the target's probabilities, looked up from
  its outputs on the pool (the targets are the TorchTrainer models above, so both tools attack the very same
  outputs). "wall s" is ART's shadow-model training plus attack-model fitting plus inference on all T targets.

Both sides see probabilities: the shadow template ends in a softmax (trained with the negative log-likelihood of
those probabilities, which is the cross-entropy of the logits), because ART feeds whatever ``predict`` returns
to its attack model, and the targets answer with probabilities.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

import modelshield
from modelshield.attacks.membership.attacks import lira, loss_attack, rmia
from modelshield.attacks.membership.interface import ReferenceModels
from modelshield.attacks.metrics import RocSummary, roc_summary
from modelshield.data import load_bundled
from modelshield.zoo import architecture, trainer

RECIPE = "cancer-mlp-overfit"
EPOCHS, BATCH, LR = 100, 32, 2e-3


@dataclass
class Row:
    method: str
    references: int
    summary: RocSummary
    wall: str


def half_masks(n_models: int, n_records: int, rng: np.random.Generator) -> np.ndarray:
    masks = np.zeros((n_models, n_records), bool)
    for m in range(n_models):
        masks[m, rng.permutation(n_records)[: n_records // 2]] = True
    return masks


def pooled(scores: list[np.ndarray], members: np.ndarray) -> RocSummary:
    return roc_summary(np.concatenate(scores), np.concatenate(list(members)))


def fmt_tpr(summary: RocSummary, fpr: float) -> str:
    p = summary.tpr_at(fpr)
    flag = "" if p.supported else " (unsupported)"
    return f"{100 * p.tpr:.2f}% [{100 * p.tpr_interval[0]:.2f}, {100 * p.tpr_interval[1]:.2f}]{flag}"


class _NllOfProba(torch.nn.NLLLoss):
    """Cross-entropy for a network that outputs probabilities (the shadow template ends in a softmax). An NLLLoss,
    so that ART hands it class indices."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.log(input.clamp_min(1e-30)), target)


def ours(
    x: np.ndarray, y: np.ndarray, target_lp: np.ndarray, target_masks: np.ndarray, ref_masks: np.ndarray, seed: int
) -> list[Row]:
    recipe = trainer(RECIPE)
    t0 = time.perf_counter()
    ref_lp = recipe.fit_log_proba(x, y, ref_masks, n_classes=2, seed=seed + 10_000)
    train_s = time.perf_counter() - t0
    refs = ReferenceModels(ref_masks, ref_lp, dict(recipe.spec()), train_s)
    m = refs.n_models
    print(f"modelshield: trained {m} reference models in {train_s:.2f} s", flush=True)
    attacks = {
        "modelshield loss (no references)": (lambda lp, mem: loss_attack(lp, y, mem), 0),
        "modelshield LiRA online": (lambda lp, mem: lira(lp, y, mem, refs, online=True), m),
        "modelshield LiRA offline": (lambda lp, mem: lira(lp, y, mem, refs, online=False), m),
        "modelshield RMIA (online)": (lambda lp, mem: rmia(lp, y, mem, refs, online=True, seed=seed), m),
    }
    rows = []
    for name, (attack, n_refs) in attacks.items():
        t0 = time.perf_counter()
        scores = [attack(target_lp[t], target_masks[t]).scores for t in range(len(target_lp))]
        score_s = time.perf_counter() - t0
        wall = (
            f"{score_s:.2f}" if n_refs == 0 else f"{train_s + score_s:.2f} ({train_s:.2f} train + {score_s:.2f} score)"
        )
        rows.append(Row(name, n_refs, pooled(scores, target_masks), wall))
        print(f"{name}: AUC {rows[-1].summary.auc:.3f}", flush=True)
    return rows


def art_rows(
    x: np.ndarray, y: np.ndarray, target_lp: np.ndarray, target_masks: np.ndarray, n_shadow: int, seed: int
) -> list[Row]:
    from art.attacks.inference.membership_inference import (
        MembershipInferenceBlackBox,
        MembershipInferenceBlackBoxRuleBased,
        ShadowModels,
    )
    from art.estimators.classification import BlackBoxClassifier, PyTorchClassifier

    from modelshield.models.nets import Standardize

    row_of = {r.tobytes(): i for i, r in enumerate(x)}

    def wrap(t: int) -> BlackBoxClassifier:
        proba = np.exp(target_lp[t].astype(np.float64)).astype(np.float32)

        def predict(rows: np.ndarray) -> np.ndarray:
            rows = np.ascontiguousarray(rows, np.float32)
            return proba[[row_of[r.tobytes()] for r in rows]]

        return BlackBoxClassifier(predict, input_shape=x.shape[1:], nb_classes=2)

    targets = [wrap(t) for t in range(len(target_lp))]
    rows = []

    # (a) rule-based: a record is called a member when the target classifies it correctly; no references
    t0 = time.perf_counter()
    proba_scores, label_scores = [], []
    for clf in targets:
        attack = MembershipInferenceBlackBoxRuleBased(clf)
        proba_scores.append(np.asarray(attack.infer(x, y, probabilities=True))[:, 1])
        label_scores.append(np.asarray(attack.infer(x, y), np.float64).reshape(-1))
    rule_s = time.perf_counter() - t0
    rows.append(Row("ART rule-based, probabilities=True", 0, pooled(proba_scores, target_masks), f"{rule_s:.2f}"))
    rows.append(Row("ART rule-based, 0/1 decision", 0, pooled(label_scores, target_masks), f"{rule_s:.2f}"))

    # (b) shadow models: ART trains them itself through its PyTorchClassifier.fit
    class RecipeClassifier(PyTorchClassifier):  # type: ignore[misc]
        """ART's PyTorchClassifier whose fit defaults to the recipe (ShadowModels calls fit(x, y) bare)."""

        def fit(self, x: np.ndarray, y: np.ndarray, batch_size: int = BATCH, nb_epochs: int = EPOCHS, **kw: object):  # type: ignore[no-untyped-def]
            return super().fit(x, y, batch_size=batch_size, nb_epochs=nb_epochs, **kw)

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    net = architecture(RECIPE, x.shape[1:], 2)()
    for module in net.modules():
        if isinstance(module, Standardize):  # fitted once on the attacker's pool; ART's clones copy the buffers
            module.fit(torch.from_numpy(x))
    model = torch.nn.Sequential(net, torch.nn.Softmax(dim=1))
    template = RecipeClassifier(
        model=model,
        loss=_NllOfProba(),
        optimizer=torch.optim.Adam(model.parameters(), lr=LR),
        input_shape=x.shape[1:],
        nb_classes=2,
        device_type="cpu",
    )
    shadows = ShadowModels(template, num_shadow_models=n_shadow, random_state=seed)
    (mx, my, mpred), (nx, ny, npred) = shadows.generate_shadow_dataset(x, y)
    shadow_s = time.perf_counter() - t0
    print(f"ART: trained {n_shadow} shadow models in {shadow_s:.2f} s ({len(mx)} member and {len(nx)} non-member "
          f"shadow records)", flush=True)  # fmt: skip

    for kind in ("rf", "nn"):
        t0 = time.perf_counter()
        attack = MembershipInferenceBlackBox(targets[0], attack_model_type=kind)
        attack.fit(mx, my, nx, ny, pred=mpred, test_pred=npred)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = []
        for clf in targets:  # the attack model is the same for every target; only the queried outputs change
            out = np.asarray(attack.infer(x, y, pred=clf.predict(x), probabilities=True), np.float64)
            scores.append(out.reshape(len(x), -1)[:, -1])
        infer_s = time.perf_counter() - t0
        wall = f"{shadow_s + fit_s + infer_s:.2f} ({shadow_s:.2f} shadows + {fit_s:.2f} fit + {infer_s:.2f} infer)"
        rows.append(Row(f"ART black-box, {kind} attack model", n_shadow, pooled(scores, target_masks), wall))
        print(f"{rows[-1].method}: AUC {rows[-1].summary.auc:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=8, help="target models T (scores pooled over them)")
    parser.add_argument("--reference", type=int, default=8, help="reference models M (ART: shadow models)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import art
    import sklearn

    torch.set_num_threads(1)  # TorchTrainer uses one thread anyway; ART gets the same
    data = load_bundled("breast_cancer")
    x, y = np.ascontiguousarray(data.x, np.float32), np.asarray(data.y, np.int64)
    rng = np.random.default_rng(args.seed)
    masks = half_masks(args.targets + args.reference, len(x), rng)
    target_masks, ref_masks = masks[: args.targets], masks[args.targets :]

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"modelshield {modelshield.__version__}, ART {art.__version__}, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}, "
          "1 torch thread")  # fmt: skip
    t0 = time.perf_counter()
    target_lp = trainer(RECIPE).fit_log_proba(x, y, target_masks, n_classes=2, seed=args.seed)
    correct = target_lp.argmax(axis=2) == y
    print(f"{args.targets} targets trained in {time.perf_counter() - t0:.2f} s: train accuracy "
          f"{correct[target_masks].mean():.3f}, held-out accuracy {correct[~target_masks].mean():.3f}; pool "
          f"{len(x)} records, {int(target_masks.sum())} member and {int((~target_masks).sum())} non-member "
          "scores pooled\n", flush=True)  # fmt: skip

    rows = ours(x, y, target_lp, target_masks, ref_masks, args.seed)
    rows += art_rows(x, y, target_lp, target_masks, args.reference, args.seed)

    print(f"\nzoo:{RECIPE}, breast cancer, T = {args.targets} targets pooled, M = {args.reference} reference models\n")
    print("| method | reference models | AUC | TPR@0.1% FPR [95% CI] | TPR@1% FPR [95% CI] | wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r.method} | {r.references} | {r.summary.auc:.3f} | {fmt_tpr(r.summary, 0.001)} | "
              f"{fmt_tpr(r.summary, 0.01)} | {r.wall} |")  # fmt: skip
    s = rows[0].summary
    print(f"\n{s.n_members} members, {s.n_non_members} non-members; the smallest FPR these non-members can bound "
          f"(95%, no false positive) is {100 * s.min_supported_fpr:.3f}%; TPRs at a FPR below it are marked "
          "unsupported.")  # fmt: skip


if __name__ == "__main__":
    main()
