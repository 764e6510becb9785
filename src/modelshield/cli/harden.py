"""``modelshield harden``: retrain a reference target with a defense and compare robustness before and after.

$ modelshield harden --target zoo:digits-cnn --defense adversarial-training --out digits-at.safetensors
$ modelshield harden --target zoo:digits-cnn --defense trades --eps 0.1 --out trades.safetensors --format json
$ modelshield harden --target zoo:cancer-mlp-overfit --defense dp-sgd --epsilon 8 --out cancer-dp.safetensors
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelshield.cli._console import cache_dir, reference_cache_dir, stderr
from modelshield.cli._progress import step_progress
from modelshield.cli.options import OutputFormat, text_or_json
from modelshield.harden import Defense

if TYPE_CHECKING:
    from modelshield.harden import HardeningResult

__all__ = ["register"]


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _tpr(figures: dict[str, object], index: int) -> str:
    points = figures["tpr_at_fpr"]
    assert isinstance(points, list)  # noqa: S101 - written by harden_dp
    point = points[index]
    low, high = point["tpr_interval"]
    return f"{point['tpr']:.2%} [{low:.2%}, {high:.2%}]"


def _render_dp(result: HardeningResult, out: Path, report: Path) -> None:
    console = Console()
    privacy = dict(result.privacy or {})
    table = Table(title=f"{result.target} retrained with DP-SGD")
    for column in ("", "before", "after"):
        table.add_column(column, no_wrap=True, justify="left" if not column else "right")
    b, a = result.before, result.after
    table.add_row("clean accuracy", _pct(b.clean_accuracy), _pct(a.clean_accuracy))
    mb, ma = dict(b.membership or {}), dict(a.membership or {})
    table.add_row("best attack on the model", str(mb["best_attack"]), str(ma["best_attack"]))
    table.add_row("  TPR at 0.1% FPR", _tpr(mb, 0), _tpr(ma, 0))
    table.add_row("  TPR at 1% FPR", _tpr(mb, 1), _tpr(ma, 1))
    table.add_row("  AUC", f"{mb['auc']:.3f}", f"{ma['auc']:.3f}")
    if "recipe" in mb and "recipe" in ma:
        rb, ra = dict(mb["recipe"]), dict(ma["recipe"])
        table.add_row(f"RMIA pooled ({rb['non_members']} / {ra['non_members']} non-members)", "", "")
        table.add_row("  TPR at 0.1% FPR", _tpr(rb, 0), _tpr(ra, 0))
        table.add_row("  TPR at 1% FPR", _tpr(rb, 1), _tpr(ra, 1))
    table.add_row("ε spent (δ)", "∞", f"{privacy.get('epsilon', float('nan')):.2f} ({privacy.get('delta', 0):.1e})")
    table.add_row("training seconds", "", f"{result.training_seconds:.1f}")
    console.print(table)
    console.print(
        f"ε from Opacus' {privacy.get('accountant', '?')} accountant; TPR with 95% Clopper–Pearson intervals. "
        "Pooled: every reference model attacked with the others, each side with reference models trained its way.",
        highlight=False,
    )
    console.print(f"Weights: {out}\nComparison: {report}", highlight=False)


def _render(result: HardeningResult, out: Path, report: Path) -> None:
    if result.defense is Defense.DP_SGD:
        _render_dp(result, out, report)
        return
    console = Console()
    table = Table(title=f"{result.target} hardened by {result.training}")
    for column in ("", "before", "after", "change"):
        table.add_column(column, no_wrap=True, justify="left" if not column else "right")
    b, a = result.before, result.after
    table.add_row("clean accuracy", _pct(b.clean_accuracy), _pct(a.clean_accuracy),
                  f"{(a.clean_accuracy - b.clean_accuracy) * 100:+.1f} pts")  # fmt: skip
    for e, rb, ra in zip(result.eval_eps, b.robust_accuracy, a.robust_accuracy, strict=True):
        table.add_row(f"robust accuracy, ε={e:g}", _pct(rb), _pct(ra), f"{(ra - rb) * 100:+.1f} pts")
    table.add_row("reliability", "ok" if b.reliable else "FLAGGED", "ok" if a.reliable else "FLAGGED", "")
    table.add_row("training seconds", "", f"{result.training_seconds:.1f}", "")
    console.print(table)
    console.print(
        f"Robust accuracy: worst case over FGSM, PGD and APGD (L∞) on {result.n_eval} test inputs.", highlight=False
    )
    for label, scores in (("before", b), ("after", a)):
        for r in scores.reliability:
            console.print(f"Reliability check failed ({label}): {r.id}: {r.message}", highlight=False)
    console.print(f"Weights: {out}\nComparison: {report}", highlight=False)


def harden_command(
    target: Annotated[str, typer.Option(help="A PyTorch reference target, zoo:NAME (see `modelshield targets`).")],
    defense: Annotated[Defense, typer.Option(help="The training-time defense to apply.")],
    out: Annotated[Path, typer.Option(help="Where to write the hardened weights (safetensors); FILE.json beside.")],
    eps: Annotated[float, typer.Option(min=0.0, help="L∞ budget of adversarial training and TRADES.")] = 0.1,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split, the training and the evaluation.")] = 0,
    epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs (default: the zoo recipe's).")] = None,
    eval_n: Annotated[int | None, typer.Option(min=1, help="Evaluate on this many test inputs (default: all).")] = None,
    eval_steps: Annotated[int, typer.Option(min=1, help="PGD steps of the evaluation attacks.")] = 40,
    epsilon: Annotated[float | None, typer.Option(min=0.0, help="DP-SGD: the privacy budget ε to reach.")] = None,
    delta: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="DP-SGD: δ (default 1/(10 n)); below 1/n."),
    ] = None,
    reference_models: Annotated[
        int, typer.Option(min=2, help="DP-SGD: reference models for the membership attacks, per model.")
    ] = 8,
    output_format: Annotated[OutputFormat, text_or_json(help="What to print.")] = OutputFormat.TEXT,
) -> None:
    """Harden a reference target (adversarial training, TRADES, distillation, an ensemble, or DP-SGD) and compare it
    before and after (robust accuracy; for DP-SGD, membership leakage); write the weights and the comparison."""
    from modelshield.errors import InvalidParameterError
    from modelshield.harden import harden, harden_dp
    from modelshield.zoo import load_target

    if (epsilon is not None or delta is not None) and defense is not Defense.DP_SGD:
        raise InvalidParameterError("--epsilon and --delta belong to --defense dp-sgd.", remedy="Drop them.")
    if defense is Defense.DP_SGD and epsilon is None:
        raise InvalidParameterError("--defense dp-sgd needs --epsilon.", remedy="Try --epsilon 8.")
    resolved = load_target(target, seed=seed, cache_dir=cache_dir(), device="cpu")
    with step_progress("harden", stderr) as step:  # a bar on a terminal, a line every few seconds elsewhere
        if defense is Defense.DP_SGD:
            assert epsilon is not None  # noqa: S101 - checked above
            if step is not None:
                step("training with DP-SGD, then attacking both models", 0, 0)
            result = harden_dp(resolved, epsilon=epsilon, delta=delta, seed=seed, epochs=epochs or 30,
                               n_reference=reference_models, cache_dir=reference_cache_dir())  # fmt: skip
        else:
            if step is not None:
                step(f"training with {defense.value}, then evaluating before and after", 0, 0)
            result = harden(resolved, defense, eps=eps, seed=seed, epochs=epochs, eval_n=eval_n,
                            eval_steps=eval_steps)  # fmt: skip
    report = result.save(out)
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps({**result.to_dict(), "weights": str(out), "comparison": str(report)}, indent=2))
        return
    _render(result, out, report)


def register(app: typer.Typer) -> None:
    """Add ``modelshield harden`` to ``app``."""
    app.command("harden")(harden_command)
