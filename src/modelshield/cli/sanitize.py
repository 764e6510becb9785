"""``modelshield data sanitize``: remove poisoned records from a training set, with a record of what went and why.

$ modelshield data sanitize train.npz --recipe zoo:digits-cnn --out clean.npz
$ modelshield data sanitize train.npz --model suspect.safetensors --arch zoo:digits-cnn --recipe zoo:digits-cnn \\
      --parent train.manifest.json --out clean.npz

The detectors need a model trained on the data (``--model``, the suspect; or, with only ``--recipe``, one trained
here with that recipe) and the recipe itself for out-of-fold label checks. The model-based detectors read a
network's activations, so ``--model`` must be a PyTorch model (weights with ``--arch``) that fits the data; any
other model, or detectors that do not use it, are refused rather than ignored. Writes CLEAN (NPZ, CSV or Parquet by
extension), ``CLEAN.manifest.json`` (a provenance manifest linked to ``--parent`` when given) and
``CLEAN.removed.json`` (every removed record: its index, digest, label and the detectors that flagged it).
Exit 0 when nothing was removed, 1 when records were, 2 on bad input; nothing is written on bad input.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelshield.cli.options import EXIT_CLEAN, EXIT_FINDINGS, OutputFormat, text_or_json
from modelshield.errors import InputError, InvalidParameterError

if TYPE_CHECKING:
    from modelshield.data.interface import Dataset
    from modelshield.defenses.sanitize import SanitizeResult
    from modelshield.models.interface import Classifier
    from modelshield.models.retrain import Trainer

__all__ = ["sanitize_command"]

REMOVED_FORMAT = "modelshield.sanitize-removed"


def _recipe(spec: str, data: Dataset) -> Trainer:
    from modelshield.zoo.catalog import ZOO, trainer

    if spec.removeprefix("zoo:") not in ZOO:
        raise InvalidParameterError(
            f"Unknown recipe {spec!r}.", remedy=f"Use one of: {', '.join('zoo:' + n for n in ZOO)}."
        )
    return trainer(spec, input_shape=data.schema.input_shape, n_classes=data.n_classes)


#: The detectors that use --model: they read the activations of a PyTorch network or its answers.
MODEL_DETECTORS = ("activation-clustering", "reversed-trigger", "spectral-signatures", "trigger-transplant")


def _model(path: Path, arch: str | None, data: Dataset) -> Classifier:
    """The suspect model, refused unless the model-based detectors can use it: a PyTorch network that fits the data."""
    from modelshield.loading import align_data, load_model
    from modelshield.models import Bounds
    from modelshield.models.torch_classifier import TorchClassifier

    bounds = data.schema.bounds()
    loaded = load_model(
        path,
        architecture=arch,
        input_shape=data.schema.input_shape,
        n_classes=data.n_classes,
        clip_values=Bounds(*bounds) if bounds is not None else None,
    )
    if not isinstance(loaded.classifier, TorchClassifier):
        raise InvalidParameterError(
            f"{path} is not a PyTorch model ({loaded.format.detail}); the detectors that use a model "
            f"({', '.join(MODEL_DETECTORS)}) need a PyTorch network here.",
            remedy="Pass the PyTorch weights with --arch zoo:NAME, or drop --model: the other detectors run "
            "without it.",
        )
    align_data(loaded.classifier, data, classes=data.label_names)  # the network was built for the data's classes
    return loaded.classifier


def _train_suspect(trainer: Trainer, data: Dataset, seed: int) -> Classifier | None:
    """A model trained on ``data`` with the recipe, when the recipe is PyTorch (the activation detectors need one)."""
    import numpy as np

    from modelshield.models.retrain import TorchTrainer

    if not isinstance(trainer, TorchTrainer):
        return None
    from modelshield.models import Bounds
    from modelshield.models.torch_classifier import TorchClassifier

    module = trainer.fit_modules(data.x, data.y, np.ones((1, len(data)), bool), n_classes=data.n_classes, seed=seed)[0]
    bounds = data.schema.bounds()
    return TorchClassifier(
        module,
        n_classes=data.n_classes,
        input_shape=data.schema.input_shape,
        clip_values=Bounds(*bounds) if bounds is not None else None,
        device="cpu",
    )


def _removed_record(data: Dataset, result: SanitizeResult, source: str, out: Path, seed: int) -> dict[str, Any]:
    from modelshield.supply_chain.provenance import merkle_root, record_digests

    digests = record_digests(data)
    scores = {d.method: d.scores for d in result.detections}
    return {
        "format": REMOVED_FORMAT,
        "format_version": 1,
        "source": source,
        "source_digest": data.digest,
        "source_merkle_root": merkle_root(digests),
        "clean": str(out),
        "seed": seed,
        "records": len(data),
        "removed_count": len(result.reasons),
        "detectors": {d.method: {"flagged": int(d.flagged.sum()), **_jsonable(d.details)} for d in result.detections},
        "removed": [
            {
                "index": index,
                "record_digest": digests[index],
                "label": data.label_names[int(data.y[index])],
                "flagged_by": list(methods),
                "scores": {m: round(float(s[index]), 6) for m, s in scores.items()},
            }
            for index, methods in result.reasons
        ],
    }


def _jsonable(value: Any) -> Any:
    result: Any = json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    return result


def sanitize_command(  # noqa: PLR0915 - checks, runs and writes in order, one command
    dataset: Annotated[str, typer.Argument(help="bundled:NAME, or an NPZ, CSV or Parquet file.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the cleaned set (.npz, .csv or .parquet).")],
    model: Annotated[
        Path | None, typer.Option(help="The model trained on DATASET (ONNX, skops, or safetensors with --arch).")
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            help="Architecture for a weights-only --model: zoo:NAME of a torch target, or your own network class as "
            "module:Class (importable from the current directory) or path/to/file.py:Class, built with no "
            "arguments. This imports and runs that code: name only code you trust."
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(help="Training recipe, zoo:NAME: out-of-fold label checks, and the model when --model is absent."),
    ] = None,
    detectors: Annotated[
        str | None, typer.Option(help="Comma-separated detectors (default: all that the inputs allow).")
    ] = None,
    parent: Annotated[
        Path | None, typer.Option(help="Manifest of DATASET: the cleaned set's manifest links to it.")
    ] = None,
    label: Annotated[str, typer.Option(help="Label column of a CSV or Parquet file.")] = "label",
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    output_format: Annotated[OutputFormat, text_or_json(help="What to print.")] = OutputFormat.TEXT,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace output files that exist.")] = False,
) -> None:
    """Find poisoned or mislabelled records, write the cleaned set and a record of what was removed and why."""
    from modelshield._internal.atomic import write_text_atomic
    from modelshield.cli._console import load_dataset, stderr
    from modelshield.cli._progress import step_progress
    from modelshield.data import write_dataset
    from modelshield.defenses.sanitize import DETECTORS, sanitize
    from modelshield.supply_chain.provenance import build_manifest, read_manifest, verify_dataset, write_manifest

    manifest_path = out.with_name(out.name + ".manifest.json")
    removed_path = out.with_name(out.name + ".removed.json")
    if out.suffix.lower() not in (".npz", ".csv", ".parquet"):
        raise InvalidParameterError(
            f"Cannot tell which format to write {out} in.", remedy="Name it .npz, .csv or .parquet."
        )
    if not overwrite:
        existing = [str(p) for p in (out, manifest_path, removed_path) if p.exists()]
        if existing:
            raise InputError(
                f"{', '.join(existing)} already exist(s).", remedy="Choose another --out, or pass --overwrite."
            )
    methods = None
    if detectors is not None:
        methods = [m.strip() for m in detectors.split(",") if m.strip()]
        unknown = [m for m in methods if m not in DETECTORS]
        if unknown or not methods:
            raise InvalidParameterError(
                f"Unknown detector(s) {unknown or detectors!r}.", remedy=f"Use some of: {', '.join(DETECTORS)}."
            )
    if arch is not None and model is None:
        raise InvalidParameterError("--arch describes --model's architecture, and no --model was given.")
    if model is not None and methods is not None and not set(methods) & set(MODEL_DETECTORS):
        raise InvalidParameterError(
            f"--model is used only by the detectors {', '.join(MODEL_DETECTORS)}, and --detectors chose none of them.",
            remedy="Add one of those detectors, or drop --model.",
        )
    data = load_dataset(dataset, label)
    if parent is not None:
        verify_dataset(read_manifest(parent), data)  # the parent must describe exactly this dataset
    trainer = _recipe(recipe, data) if recipe is not None else None
    classifier: Classifier | None
    with step_progress("sanitize", stderr) as step:  # a bar on a terminal, a line every few seconds elsewhere
        if model is not None:
            classifier = _model(model, arch, data)
        elif trainer is not None:
            if step is not None:
                step("training a model on the data with the recipe", 0, 0)
            classifier = _train_suspect(trainer, data, seed)
        else:
            classifier = None
        result = sanitize(data, classifier=classifier, trainer=trainer, methods=methods, seed=seed, progress=step)
    record = _removed_record(data, result, dataset, out, seed)
    removed_text = json.dumps(record, indent=1) + "\n"
    transform = (
        f"modelshield data sanitize: removed {len(result.reasons)} of {len(data)} records "
        f"({', '.join(d.method for d in result.detections)}); removal record {removed_path.name} "
        f"sha256 {hashlib.sha256(removed_text.encode()).hexdigest()}"
    )
    clean = result.clean
    manifest = build_manifest(clean, source=f"{dataset} (sanitized)", parent=parent,
                              transform=transform if parent is not None else None)  # fmt: skip
    written: list[Path] = []
    fresh = {p for p in (out, removed_path, manifest_path) if not p.exists()}
    try:
        write_dataset(clean, out)
        written.append(out)
        write_text_atomic(removed_path, removed_text)
        written.append(removed_path)
        write_manifest(manifest, manifest_path, overwrite=True)
    except BaseException:
        for path in written:  # all three or none (files replaced under --overwrite are gone either way)
            if path in fresh:
                path.unlink(missing_ok=True)
        raise
    if output_format is OutputFormat.JSON:
        summary = {k: v for k, v in record.items() if k != "removed"}
        summary["removed_indices"] = [r["index"] for r in record["removed"]]
        sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    else:
        lines = [f"{dataset}: {len(data)} records; removed {len(result.reasons)}; kept {len(clean)} -> {out}"]
        for d in result.detections:
            lines.append(f"  {d.method:<22} flagged {int(d.flagged.sum())}")
        lines.append(f"Removal record: {removed_path}")
        lines.append(f"Manifest: {manifest_path}" + (f" (parent {parent})" if parent is not None else ""))
        sys.stdout.write("\n".join(lines) + "\n")
    raise typer.Exit(EXIT_FINDINGS if result.reasons else EXIT_CLEAN)
