"""``modelshield harden``: retrain a reference target with a defense and compare robustness before and after.

$ modelshield harden --target zoo:digits-cnn --defense adversarial-training --out digits-at.safetensors
$ modelshield harden --target zoo:digits-cnn --defense trades --eps 0.1 --out trades.safetensors --format json
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelshield.cli.app import stderr
from modelshield.defenses.harden import Defense

if TYPE_CHECKING:
    from modelshield.defenses.harden import HardeningResult

__all__ = ["register"]


class HardenFormat(enum.StrEnum):
    text = "text"
    json = "json"


def _cache_dir() -> Path | None:
    value = os.environ.get("MODELSHIELD_CACHE_DIR")
    return Path(value) if value else None


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _render(result: HardeningResult, out: Path, report: Path) -> None:
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
    output_format: Annotated[HardenFormat, typer.Option("--format", help="What to print.")] = HardenFormat.text,
) -> None:
    """Harden a reference target (adversarial training, TRADES, distillation or an ensemble) and compare its clean
    and robust accuracy before and after; write the weights and the comparison."""
    from modelshield.defenses.harden import harden
    from modelshield.zoo import load_target

    show_progress = output_format is HardenFormat.text and stderr.is_terminal
    resolved = load_target(target, seed=seed, cache_dir=_cache_dir(), device="cpu")
    if show_progress:
        with stderr.status(f"Training with {defense.value} and evaluating before and after..."):
            result = harden(resolved, defense, eps=eps, seed=seed, epochs=epochs, eval_n=eval_n,
                            eval_steps=eval_steps)  # fmt: skip
    else:
        result = harden(resolved, defense, eps=eps, seed=seed, epochs=epochs, eval_n=eval_n, eval_steps=eval_steps)
    report = result.save(out)
    if output_format is HardenFormat.json:
        typer.echo(json.dumps({**result.to_dict(), "weights": str(out), "comparison": str(report)}, indent=2))
        return
    _render(result, out, report)


def register(app: typer.Typer) -> None:
    """Add ``modelshield harden`` to ``app``."""
    app.command("harden")(harden_command)
