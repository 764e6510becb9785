"""``modelshield audit``: run checks against a reference target or a model file with its data, write reports.

$ modelshield audit --target zoo:digits-cnn --out report/
$ modelshield audit --model model.onnx --data test.csv --label diagnosis --format json
"""

from __future__ import annotations

import dataclasses
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelshield._internal.atomic import write_text_atomic
from modelshield.audit.interface import Budget
from modelshield.cli._console import cache_dir, reference_cache_dir, stderr
from modelshield.cli.options import EXIT_FINDINGS, OutputFormat, exit_code, fail_on_option, format_option, parse_fail_on
from modelshield.errors import InvalidParameterError
from modelshield.findings import Report
from modelshield.target import Target

if TYPE_CHECKING:
    from modelshield.audit import Auditor

__all__ = ["register"]


def _file_target(
    model: Path,
    data: Path | None,
    train_data: Path | None,
    label: str,
    arch: str | None,
    trust_types: list[str],
    unsafe_allow_pickle: bool,
    unsafe_ignore_scan: bool,
) -> Target:
    from modelshield.data import load_table
    from modelshield.loading import load_model
    from modelshield.models import Bounds

    if data is None:
        raise InvalidParameterError(
            "--model needs --data: the test data to evaluate the model on.",
            remedy="Add --data FILE (CSV, Parquet or NPZ) with a label column named by --label.",
        )
    test = load_table(data, label=label)
    train = load_table(train_data, label=label) if train_data is not None else None
    architecture = None
    if arch is not None:
        from modelshield.zoo import architecture as zoo_architecture

        architecture = zoo_architecture(arch, test.schema.input_shape, test.n_classes)
    bounds = test.schema.bounds()
    loaded = load_model(
        model,
        architecture=architecture,
        input_shape=test.schema.input_shape,
        n_classes=test.n_classes,
        clip_values=Bounds(*bounds) if bounds is not None else None,
        trusted_types=trust_types,
        unsafe_pickle=unsafe_allow_pickle,
        unsafe_ignore_scan=unsafe_ignore_scan,
    )
    return Target(
        name=model.name,
        classifier=loaded.classifier,
        test=test,
        train=train,
        model_path=model,
        model_format=loaded.format.format.value,
        description=f"{model} evaluated on {data}",
    )


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    write_text_atomic(output, text)


def audit_command(
    target: Annotated[
        str | None, typer.Option(help="A reference target, zoo:NAME (see `modelshield targets`).")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="A model file: ONNX, skops, or safetensors with --arch.")] = None,
    data: Annotated[Path | None, typer.Option(help="Test data for --model: CSV, Parquet or NPZ.")] = None,
    train_data: Annotated[
        Path | None, typer.Option(help="Training data (members) for --model, for privacy checks.")
    ] = None,
    label: Annotated[str, typer.Option(help="Label column of --data and --train-data.")] = "label",
    arch: Annotated[
        str | None,
        typer.Option(help="Architecture for weights-only --model files: zoo:NAME of a torch target."),
    ] = None,
    trust_type: Annotated[
        list[str] | None, typer.Option(help="A skops type to trust when loading --model (repeatable).")
    ] = None,
    unsafe_allow_pickle: Annotated[
        bool,
        typer.Option(help="Load pickle-based model files. This runs code from the file: trusted files only."),
    ] = False,
    unsafe_ignore_scan: Annotated[
        bool,
        typer.Option(
            help="With --unsafe-allow-pickle, load the file even when the scan finds code that runs on load "
            "(critical). Never for a file you did not write yourself."
        ),
    ] = False,
    signature: Annotated[
        Path | None, typer.Option(help="The model's signature (default: MODEL.sig beside the model file).")
    ] = None,
    public_key: Annotated[Path | None, typer.Option(help="Public key of the model's signer.")] = None,
    checks: Annotated[str | None, typer.Option(help="Comma-separated checks to run (default: all).")] = None,
    budget: Annotated[Budget, typer.Option(help="How much work each check may do.")] = Budget.QUICK,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed gives the same report.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Directory for report.json, report.html and report.sarif.")] = None,
    output_format: Annotated[
        OutputFormat, format_option(OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.SARIF, OutputFormat.HTML)
    ] = OutputFormat.TEXT,
    output: Annotated[Path | None, typer.Option(help="Write the --format output to this file.")] = None,
    fail_on: Annotated[str, fail_on_option()] = "high",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
) -> None:
    """Audit a model: run security checks and write the findings as JSON, HTML and SARIF."""
    from modelshield.audit import AuditOptions, Auditor

    if (target is None) == (model is None):
        raise InvalidParameterError(
            "Give either --target zoo:NAME or --model FILE (with --data FILE), not both and not neither.",
            remedy="Try: modelshield audit --target zoo:digits-cnn",
        )
    names = tuple(n.strip() for n in checks.split(",") if n.strip()) if checks else None

    reference_cache = reference_cache_dir()
    # unknown checks fail now, before any work
    auditor = Auditor(AuditOptions(checks=names, budget=budget, seed=seed, cache_dir=reference_cache))
    show_progress = not quiet and output_format is OutputFormat.TEXT and stderr.is_terminal
    status: AbstractContextManager[object] = (
        stderr.status("Preparing the target...") if show_progress else nullcontext()
    )
    with status:
        if model is not None:
            resolved = _file_target(
                model, data, train_data, label, arch, trust_type or [], unsafe_allow_pickle, unsafe_ignore_scan
            )
        else:
            from modelshield.zoo import load_target

            resolved = load_target(str(target), seed=seed, cache_dir=cache_dir())
        resolved = dataclasses.replace(resolved, signature_path=signature, public_key_path=public_key)
    report = _run(auditor, resolved, show_progress)
    if out is not None:
        from modelshield.reporting import write_reports

        written = write_reports(report, out)
        if not quiet and output_format is OutputFormat.TEXT:
            stderr.print(f"Reports written: {', '.join(str(p) for p in written.values())}", highlight=False)
    if output_format is OutputFormat.JSON:
        from modelshield.reporting import render_json

        _emit(render_json(report), output)
    elif output_format is OutputFormat.SARIF:
        from modelshield.reporting import render_sarif

        _emit(render_sarif(report), output)
    elif output_format is OutputFormat.HTML:
        from modelshield.reporting import render_html

        _emit(render_html(report), output)
    elif not quiet:
        from modelshield.reporting import render_terminal

        render_terminal(report)
    raise typer.Exit(_exit_code(report, fail_on))


def _run(auditor: Auditor, target: Target, show_progress: bool) -> Report:
    from rich.progress import Progress

    if not show_progress:
        return auditor.run(target)
    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("Auditing", total=len(auditor.checks))

        def progress(name: str, done: int, total: int) -> None:
            bar.update(task, completed=done, description=f"Check: {name}" if name else "Done")

        return auditor.run(target, progress=progress)


def _exit_code(report: Report, fail_on: str) -> int:
    return EXIT_FINDINGS if not report.complete else exit_code(report.findings, parse_fail_on(fail_on))


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
