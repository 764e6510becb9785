"""Benchmark: robustness figures of masked models, as the audit reports them, against the model they mask.

    .venv/bin/python benchmarks/evasion/bench_masking.py [--samples 500] [--budget standard] [--out FILE]

Gradient masking makes a model look robust to gradient attacks without being robust. This benchmark trains a
network the zoo does not have (a strided CNN, or the 784-256-128-10 MLP, on a split of the bundled MNIST subset
that no zoo target uses; seeded generators, no global seeding), wraps it four ways and runs the audit's evasion
check on each, exactly as ``modelshield audit`` does:

- ``plain``: the network itself (the reference: what the masked copies really are);
- ``quantised``: inputs rounded to 5 grey levels before the network (zero gradients almost everywhere);
- ``distilled``: returns ``softmax(100 * logits)`` (float32 probabilities of exactly 0 and 1);
- ``noisy``: Gaussian noise (σ = 0.1) added to the input at every call (randomness);
- ``onnx``: the plain network exported to ONNX and loaded from the file (attacked through its PyTorch conversion).

Every masked copy is at most as robust as the plain network (the masking changes gradients, not the function, or,
for noise, adds randomness), so an honest evaluation reports each at or below the plain figure, up to sampling
noise. Printed: the robust accuracy per ε, the severity, the adaptive attacks used and the reliability findings.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_heldout import SPLIT_SEED, train  # the held-out networks, split and training of that benchmark

from modelshield.audit import AuditOptions, Auditor
from modelshield.audit.interface import Budget
from modelshield.data.bundled import load_mnist
from modelshield.data.interface import Dataset
from modelshield.models import TorchClassifier
from modelshield.models.interface import Bounds
from modelshield.models.onnx_classifier import OnnxClassifier
from modelshield.target import Target


class Quantised(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(v * 4) / 4)  # type: ignore[no-any-return]


class Distilled(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.softmax(100 * self.inner(v), dim=1)


class Noisy(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.inner(v + 0.1 * torch.randn_like(v))  # type: ignore[no-any-return]


def onnx_copy(net: nn.Module, folder: Path) -> OnnxClassifier:
    path = folder / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})  # fmt: skip
    return OnnxClassifier(path, input_shape=(1, 28, 28), clip_values=Bounds(0.0, 1.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=500, help="test inputs attacked (default 500)")
    parser.add_argument("--budget", choices=[b.value for b in Budget], default="standard")
    parser.add_argument("--arch", choices=["strided-cnn", "mlp-2x"], default="strided-cnn")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a benchmark script, not library code
    data = load_mnist()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(data))
    test_rows, train_rows = order[:1000], order[1000:]
    x, y = data.x[train_rows].astype(np.float32), data.y[train_rows].astype(np.int64)
    trained = train(args.arch, x, y, data.x[test_rows], data.y[test_rows], epochs=args.epochs, seed=0)
    net = trained.classifier.module
    test = dataclasses.replace(data, x=data.x[test_rows], y=data.y[test_rows])
    assert isinstance(test, Dataset)
    bounds = Bounds(0.0, 1.0)
    lines = [
        f"## Masked models, audited ({args.arch}, {args.budget} budget)",
        "",
        (
            f"Command: `python benchmarks/evasion/bench_masking.py --samples {args.samples} --budget {args.budget} "
            f"--arch {args.arch}`  "
        ),
        (
            f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}, "
            f"torch {version('torch')} (1 thread), onnx2torch {version('onnx2torch')}, 2 shared cores.  "
        ),
        (
            f"Network: {args.arch}, {args.epochs} epochs on {len(train_rows)} bundled MNIST images (permutation "
            f"seed {SPLIT_SEED}); the audit attacks {args.samples} of the 1,000 held-out ones."
        ),
        "",
        (
            "| model | clean | ε = 0.01 | 0.03 | 0.05 (reference) | 0.1 | 0.2 | severity | adaptive attacks | "
            "reliability findings | seconds |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory() as folder:
        models = {
            "plain": TorchClassifier(net, n_classes=10, input_shape=(1, 28, 28), clip_values=bounds, device="cpu"),
            "quantised": TorchClassifier(Quantised(net), n_classes=10, input_shape=(1, 28, 28), clip_values=bounds,
                                         device="cpu"),
            "distilled": TorchClassifier(Distilled(net), n_classes=10, input_shape=(1, 28, 28), clip_values=bounds,
                                         device="cpu"),
            "noisy": TorchClassifier(Noisy(net), n_classes=10, input_shape=(1, 28, 28), clip_values=bounds,
                                     device="cpu"),
            "onnx": onnx_copy(net, Path(folder)),
        }  # fmt: skip
        options = AuditOptions(checks=("evasion",), budget=Budget(args.budget))
        for name, clf in models.items():
            t0 = time.perf_counter()
            sample = dataclasses.replace(test, x=test.x[: args.samples], y=test.y[: args.samples])
            report = Auditor(options).run(Target(f"{args.arch}-{name}", clf, sample, model_format="in-memory"))
            seconds = time.perf_counter() - t0
            finding = next(f for f in report.findings if f.id == "evasion.robust-accuracy")
            unreliable = [str(f.evidence["check"]) for f in report.findings if f.id == "evasion.unreliable-evaluation"]
            robust = finding.metrics["robust_accuracy"]
            assert isinstance(robust, dict)
            adaptive = finding.metrics.get("adaptive_attacks") or []
            assert isinstance(adaptive, list)
            cells = " | ".join(f"{float(robust[e]):.3f}" for e in ("0.01", "0.03", "0.05", "0.1", "0.2"))  # type: ignore[arg-type]
            lines.append(
                f"| {name} | {float(finding.metrics['clean_accuracy']):.3f} | {cells} | {finding.severity.value} | "  # type: ignore[arg-type]
                f"{'; '.join(str(a) for a in adaptive) or '–'} | {', '.join(unreliable) or '–'} | {seconds:.0f} |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
