"""``modelshield audit``: run checks against a reference target or a model file with its data, write reports.

$ modelshield audit --target zoo:digits-cnn --out report/
$ modelshield audit --model model.onnx --data test.csv --label diagnosis --format json
$ modelshield audit --model weights.safetensors --arch zoo:cancer-mlp --data test.csv --classes malignant,benign
$ modelshield audit --endpoint http://localhost:8080 --model-name cancer --data test.csv --output-name predict_proba
$ modelshield audit --target zoo:cancer-gbm --policy policy.toml --out report/
$ modelshield audit --model model.onnx --data test.csv --label approved --sensitive sex,age
$ modelshield audit diff old/report.json new/report.json --format json

Before any check runs, the output paths are checked, and the model is checked against the data
(:func:`modelshield.loading.align_data`): features, the class of each model output (the model's own names where it
records them, else --classes, else whole-number labels as output indices), every label value, and a run on two
rows. ``--sensitive`` columns (the fairness check's groups) are checked against the data as soon as it is read,
before the model is loaded (a reference target's, once it is built). Whatever does not fit is one line on standard
error and exit code 2. A ``--policy`` file is read and validated before that, too (:mod:`modelshield.audit.policy`);
after the audit, the policy decides the exit code and its result goes into every report.

``audit diff`` (:mod:`modelshield.audit.diff`) compares two report.json files: exit 1 on a regression beyond
noise. ``audit`` itself is a command, not a group: its command class sends ``audit diff ...`` to the diff command.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from modelshield._internal.atomic import write_text_atomic
from modelshield.audit.interface import Budget
from modelshield.cli._console import cache_dir, reference_cache_dir, stderr
from modelshield.cli.options import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    OutputFormat,
    exit_code,
    fail_on_option,
    format_option,
    parse_fail_on,
)
from modelshield.errors import FileFormatError, InvalidParameterError, ModelShieldError
from modelshield.findings import PolicyResult, Report
from modelshield.reporting.interface import printable
from modelshield.target import Target, check_sensitive

if TYPE_CHECKING:
    from modelshield.audit import Auditor
    from modelshield.audit.diff import ReportDiff
    from modelshield.audit.policy import ReleasePolicy
    from modelshield.data import Dataset
    from modelshield.models.interface import Classifier
    from modelshield.supply_chain.keys import PrivateKeySet

__all__ = ["register"]


def _parse_classes(classes: str | None) -> tuple[str, ...] | None:
    if classes is None:
        return None
    names = tuple(name.strip() for name in classes.split(","))
    if len(names) < 2 or not all(names):
        raise InvalidParameterError(
            f"--classes {classes!r} must name at least two classes, separated by commas, none of them empty.",
            remedy="Name the class of each model output, output 0 first: --classes malignant,benign",
        )
    return names


def _parse_sensitive(sensitive: str | None) -> tuple[str, ...]:
    """``--sensitive a,b`` as names; an empty name is refused (which columns exist is checked with the data)."""
    if sensitive is None:
        return ()
    names = tuple(name.strip() for name in sensitive.split(","))
    if not all(names):
        raise InvalidParameterError(
            f"--sensitive {printable(sensitive)!r} names an empty column.",
            remedy="Name the sensitive columns, separated by commas: --sensitive sex,age",
        )
    return names


def _class_count(classes: tuple[str, ...] | None, *datasets: Dataset | None) -> int:
    """The outputs of a model that does not record its classes (PyTorch): as many as ``classes`` name; else, for
    whole-number labels, the largest plus one (label ``k`` is output ``k``); else one per distinct label."""
    if classes is not None:
        return len(classes)
    names = [name for data in datasets if data is not None for name in data.label_names]
    if all(name.removeprefix("-").isdigit() for name in names):
        return max(2, max(int(name) for name in names) + 1)
    return max(data.n_classes for data in datasets if data is not None)


def _tables(
    data: Path, train_data: Path | None, label: str, sensitive: tuple[str, ...]
) -> tuple[Dataset, Dataset | None]:
    """The test data and, when given, the training data; the ``sensitive`` columns must be among the test data's
    features (checked here, before the model is loaded)."""
    from modelshield.data import load_table

    test = load_table(data, label=label)
    check_sensitive(sensitive, test)
    return test, load_table(train_data, label=label) if train_data is not None else None


def _aligned(
    classifier: Classifier, test: Dataset, train: Dataset | None, classes: tuple[str, ...] | None
) -> tuple[Dataset, Dataset | None]:
    """Both data sets checked against the model, their labels in its class order (:func:`align_data`)."""
    from modelshield.loading import align_data

    return align_data(classifier, test, classes=classes), (
        align_data(classifier, train, classes=classes) if train is not None else None
    )


def _file_target(
    model: Path,
    data: Path | None,
    train_data: Path | None,
    label: str,
    classes: tuple[str, ...] | None,
    arch: str | None,
    trust_types: list[str],
    unsafe_allow_pickle: bool,
    unsafe_ignore_scan: bool,
    sensitive: tuple[str, ...] = (),
) -> Target:
    """The model with its data, checked against each other: labels in the model's class order, features that fit,
    and a run on two rows, before any check starts."""
    from modelshield.loading import load_model
    from modelshield.models import Bounds

    if data is None:
        raise InvalidParameterError(
            "--model needs --data: the test data to evaluate the model on.",
            remedy="Add --data FILE (CSV, Parquet or NPZ) with a label column named by --label.",
        )
    test, train = _tables(data, train_data, label, sensitive)
    bounds = test.schema.bounds()
    loaded = load_model(
        model,
        architecture=arch,
        input_shape=test.schema.input_shape,
        n_classes=_class_count(classes, test, train),
        clip_values=Bounds(*bounds) if bounds is not None else None,
        trusted_types=trust_types,
        unsafe_pickle=unsafe_allow_pickle,
        unsafe_ignore_scan=unsafe_ignore_scan,
    )
    test, train = _aligned(loaded.classifier, test, train, classes)
    return Target(
        name=model.name,
        classifier=loaded.classifier,
        test=test,
        train=train,
        model_path=model,
        model_format=loaded.format.format.value,
        description=f"{model} evaluated on {data}",
        sensitive=sensitive,
    )


def _parse_headers(headers: list[str]) -> dict[str, str]:
    """``--header 'Name: value'`` options as a mapping (values are secrets: never echoed)."""
    parsed: dict[str, str] = {}
    for item in headers:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InvalidParameterError(
                f"--header {printable(name.strip()) or '(empty)'}... is not 'Name: value'.",
                remedy="Pass --header 'Authorization: Bearer $TOKEN'.",
            )
        parsed[name.strip()] = value.strip()
    return parsed


def _endpoint_target(
    endpoint: str,
    model_name: str | None,
    headers: dict[str, str],
    input_name: str | None,
    output_name: str | None,
    data: Path | None,
    train_data: Path | None,
    label: str,
    classes: tuple[str, ...] | None,
    sensitive: tuple[str, ...] = (),
) -> Target:
    """A served model with its data: the endpoint is probed and checked against the data before any check."""
    from modelshield.models import Bounds
    from modelshield.models.remote_classifier import connect

    if data is None or model_name is None:
        raise InvalidParameterError(
            "--endpoint needs --model-name (the model's name on the server) and --data (the test data).",
            remedy="Add --model-name NAME --data FILE with a label column named by --label.",
        )
    test, train = _tables(data, train_data, label, sensitive)
    bounds = test.schema.bounds()
    classifier = connect(
        endpoint,
        model_name,
        input_shape=test.schema.input_shape,
        n_classes=_class_count(classes, test, train),
        probe=test.x[:8],
        classes=classes,
        input_name=input_name,
        output_name=output_name,
        headers=headers,
        clip_values=Bounds(*bounds) if bounds is not None else None,
    )
    test, train = _aligned(classifier, test, train, classes)
    return Target(
        name=model_name,
        classifier=classifier,
        test=test,
        train=train,
        description=f"{model_name} served at {endpoint}, evaluated on {data}",
        sensitive=sensitive,
    )


def _check_outputs(out: Path | None, output: Path | None) -> None:
    """Refuse output paths that cannot be written, before the audit runs rather than after it."""
    if out is not None:
        if out.exists() and not out.is_dir():
            raise InvalidParameterError(
                f"--out {out} is a file; the reports are written into a directory.",
                remedy="Name a directory for --out (it is created if it does not exist).",
            )
        _check_directory(out, f"--out {out}")
    if output is not None:
        if output.is_dir():
            raise InvalidParameterError(
                f"--output {output} is a directory; it names the file to write the report to.",
                remedy=f"Name a file, such as --output {output / 'report.json'}.",
            )
        _check_directory(output.parent, f"--output {output}")


def _check_directory(directory: Path, option: str) -> None:
    """``directory`` is writable or can be made: its nearest existing ancestor is a writable directory."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidParameterError(
            f"{option}: {existing} is a file, not a directory.", remedy="Choose a path in a directory."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidParameterError(
            f"{option}: the directory {existing} is not writable.", remedy="Choose a directory that you can write to."
        )


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    write_text_atomic(output, text)


def _check_sources(
    target: str | None,
    model: Path | None,
    endpoint: str | None,
    classes: str | None,
    model_name: str | None,
    header: list[str] | None,
    input_name: str | None,
    output_name: str | None,
) -> None:
    """Exactly one thing to audit, and no option that belongs to another."""
    if sum(x is not None for x in (target, model, endpoint)) != 1:
        raise InvalidParameterError(
            "Give one of --target zoo:NAME, --model FILE or --endpoint URL (the last two with --data FILE).",
            remedy="Try: modelshield audit --target zoo:digits-cnn",
        )
    if classes is not None and target is not None:
        raise InvalidParameterError(
            "--classes names the outputs of --model or --endpoint; a reference target knows its classes.",
            remedy="Drop --classes.",
        )
    endpoint_only = (
        ("--model-name", model_name),
        ("--header", header),
        ("--input-name", input_name),
        ("--output-name", output_name),
    )
    given = [option for option, value in endpoint_only if value]
    if given and endpoint is None:
        raise InvalidParameterError(f"{', '.join(given)} apply to --endpoint only.", remedy="Add --endpoint URL.")


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
    classes: Annotated[
        str | None,
        typer.Option(
            help="The class of each model output, output 0 first, comma-separated (e.g. malignant,benign): needed "
            "when the labels are names and the model does not record its own."
        ),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            help="Architecture for weights-only --model files: zoo:NAME of a torch target, or your own network class "
            "as module:Class (importable from the current directory) or path/to/file.py:Class, built with no "
            "arguments. This imports and runs that code: name only code you trust."
        ),
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
    endpoint: Annotated[
        str | None,
        typer.Option(help="A served model to audit: the base URL of an Open Inference Protocol (KServe v2) server."),
    ] = None,
    model_name: Annotated[str | None, typer.Option(help="The model's name on the --endpoint server.")] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(help="HTTP header for --endpoint, 'Name: value' (repeatable), e.g. 'Authorization: Bearer ...'."),
    ] = None,
    input_name: Annotated[
        str | None, typer.Option(help="The --endpoint model's input name, when its metadata declares none.")
    ] = None,
    output_name: Annotated[
        str | None,
        typer.Option(help="The --endpoint output to request by name: class scores (e.g. predict_proba) or labels."),
    ] = None,
    sensitive: Annotated[
        str | None,
        typer.Option(
            help="Sensitive feature columns, comma-separated (e.g. sex,age): the fairness check compares the model "
            "on their groups. They must be model inputs (columns of --data)."
        ),
    ] = None,
    checks: Annotated[str | None, typer.Option(help="Comma-separated checks to run (default: all).")] = None,
    budget: Annotated[Budget, typer.Option(help="How much work each check may do.")] = Budget.QUICK,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed gives the same report.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Directory for report.json, report.html and report.sarif.")] = None,
    output_format: Annotated[
        OutputFormat, format_option(OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.SARIF, OutputFormat.HTML)
    ] = OutputFormat.TEXT,
    output: Annotated[Path | None, typer.Option(help="Write the --format output to this file.")] = None,
    fail_on: Annotated[
        str, fail_on_option("Exit 1 when a finding reaches this severity (never: always 0); unused with --policy.")
    ] = "high",
    policy: Annotated[
        Path | None,
        typer.Option(
            help="A release policy (TOML): exit 1 unless every rule holds, each failed rule named; checked before "
            "the audit starts. See 'Release policies' in docs/cli.md."
        ),
    ] = None,
    source_root: Annotated[
        Path | None,
        typer.Option(help="SARIF names the model file relative to this directory (default: the current directory)."),
    ] = None,
    evidence_pack: Annotated[
        Path | None,
        typer.Option(
            help="Write a signed evidence pack to this new folder: the reports, the model's scan, its signature "
            "result and its ML-BOM (needs --sign-key; see docs/compliance.md)."
        ),
    ] = None,
    sign_key: Annotated[
        Path | None, typer.Option(help="Private key that signs the evidence pack (from `modelshield keygen`).")
    ] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the --sign-key passphrase.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
) -> None:
    """Audit a model: run security checks and write the findings as JSON, HTML and SARIF."""
    from modelshield.audit import AuditOptions, Auditor

    _check_sources(target, model, endpoint, classes, model_name, header, input_name, output_name)
    class_names = _parse_classes(classes)
    sensitive_names = _parse_sensitive(sensitive)
    headers = _parse_headers(header or [])
    _check_outputs(out, output)
    release_policy = _load_policy(policy) if policy is not None else None
    pack_key = _pack_key(evidence_pack, sign_key, passphrase_env)
    names = tuple(n.strip() for n in checks.split(",") if n.strip()) if checks else None

    reference_cache = reference_cache_dir()
    # unknown checks fail now, before any work
    auditor = Auditor(AuditOptions(checks=names, budget=budget, seed=seed, cache_dir=reference_cache))
    show_progress = not quiet  # a bar on a terminal, a line every few seconds elsewhere (both on standard error)
    status: AbstractContextManager[object] = nullcontext()
    if show_progress and stderr.is_terminal:  # elsewhere, lines start with the checks: errors come before them
        status = stderr.status("Preparing the target...")
    with status:
        if endpoint is not None:
            resolved = _endpoint_target(
                endpoint,
                model_name,
                headers,
                input_name,
                output_name,
                data,
                train_data,
                label,
                class_names,
                sensitive_names,
            )
        elif model is not None:
            resolved = _file_target(
                model,
                data,
                train_data,
                label,
                class_names,
                arch,
                trust_type or [],
                unsafe_allow_pickle,
                unsafe_ignore_scan,
                sensitive_names,
            )
        else:
            from modelshield.zoo import load_target

            resolved = load_target(str(target), seed=seed, cache_dir=cache_dir())
        resolved = dataclasses.replace(
            resolved, signature_path=signature, public_key_path=public_key, sensitive=sensitive_names
        )
    try:
        report = _run(auditor, resolved, show_progress)
    finally:
        close = getattr(resolved.classifier, "close", None)  # a served model's HTTP connections
        if callable(close):
            close()
    if release_policy is not None:
        report = dataclasses.replace(report, policy=release_policy.evaluate(report, signer=_signer(report, public_key)))
    if out is not None:
        from modelshield.reporting import write_reports

        written = write_reports(report, out, source_root=source_root or Path.cwd())
        if not quiet and output_format is OutputFormat.TEXT:
            stderr.print(f"Reports written: {', '.join(str(p) for p in written.values())}", highlight=False)
    if evidence_pack is not None and pack_key is not None:
        from modelshield.audit.evidence import write_evidence_pack

        written_pack = write_evidence_pack(report, resolved, evidence_pack, key=pack_key)
        if not quiet and output_format is OutputFormat.TEXT:
            stderr.print(printable(f"Evidence pack written and signed: {written_pack}"), highlight=False)
    _print_report(report, output_format, output, quiet, source_root or Path.cwd())
    if report.policy is not None:
        _print_policy(report.policy, quiet=quiet)
    raise typer.Exit(_exit_code(report, fail_on))


def _pack_key(pack: Path | None, key: Path | None, passphrase_env: str | None) -> PrivateKeySet | None:
    """The evidence pack's signing key, with the pack's folder checked, before any work; None without a pack."""
    if pack is None:
        if key is not None:
            raise InvalidParameterError("--sign-key signs an evidence pack.", remedy="Add --evidence-pack DIR.")
        return None
    if key is None:
        raise InvalidParameterError(
            "An evidence pack is signed: --evidence-pack needs --sign-key.",
            remedy="Make a key pair with `modelshield keygen --out keys/` and pass --sign-key keys/modelshield.key.",
        )
    from modelshield.audit.evidence import check_pack_destination
    from modelshield.cli._console import passphrase_from_env
    from modelshield.supply_chain.keys import load_private_key

    check_pack_destination(pack)
    return load_private_key(key, passphrase_from_env(passphrase_env))


def _print_report(report: Report, output_format: OutputFormat, output: Path | None, quiet: bool, root: Path) -> None:
    """The report in ``output_format``, to ``output`` or standard output (text: the terminal summary)."""
    if output_format is OutputFormat.JSON:
        from modelshield.reporting import render_json

        _emit(render_json(report), output)
    elif output_format is OutputFormat.SARIF:
        from modelshield.reporting import render_sarif

        _emit(render_sarif(report, source_root=root), output)
    elif output_format is OutputFormat.HTML:
        from modelshield.reporting import render_html

        _emit(render_html(report), output)
    elif not quiet:
        from modelshield.reporting import render_terminal

        render_terminal(report)


def _run(auditor: Auditor, target: Target, show_progress: bool) -> Report:
    from modelshield.cli._progress import audit_progress

    with audit_progress(stderr, enabled=show_progress) as progress:
        return auditor.run(target, progress=progress)


def _exit_code(report: Report, fail_on: str) -> int:
    if report.policy is not None:  # the policy decides (its require_complete covers an incomplete audit)
        return EXIT_CLEAN if report.policy.passed else EXIT_FINDINGS
    return EXIT_FINDINGS if not report.complete else exit_code(report.findings, parse_fail_on(fail_on))


# -- release policies ----------------------------------------------------------------------------------------------


def _load_policy(path: Path) -> ReleasePolicy:
    """The release policy at ``path``, validated; a FileFormatError (one line, exit 2) names what is wrong."""
    from modelshield.audit.policy import ReleasePolicy

    return ReleasePolicy.load(path)


def _signer(report: Report, public_key: Path | None) -> str | None:
    """The fingerprint of ``--public-key`` when the audit verified the model's signature with it, else None."""
    if public_key is None or not any(f.id == "signature.verified" for f in report.findings):
        return None
    from modelshield.supply_chain.keys import load_public_key

    try:
        return load_public_key(public_key).fingerprint
    except ModelShieldError:  # the check read it a moment ago; if it cannot now, no key vouches
        return None


def _print_policy(result: PolicyResult, *, quiet: bool = False) -> None:
    """The policy's verdict on standard error: every failed rule with its measured value (also under --quiet)."""
    name = printable(result.policy)
    if result.passed:
        if not quiet:
            sys.stderr.write(f"policy {name}: passed ({len(result.rules)} rules)\n")
        return
    failed = result.failed
    sys.stderr.write(f"policy {name}: FAILED, {len(failed)} of {len(result.rules)} rules\n")
    for rule in failed:
        measured = "not measured" if rule.measured is None else str(rule.measured)
        sys.stderr.write(
            printable(f"  - {rule.rule}: measured {measured}, required {rule.bound}. {rule.message}") + "\n"
        )


# -- audit diff ------------------------------------------------------------------------------------------------------


def _read_report(path: Path, which: str) -> Report:
    """A report.json, or a FileFormatError saying why it is not one."""
    import json

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise FileFormatError(
            f"Cannot read the {which} report {path}: {reason}.", remedy="Pass the report.json of `modelshield audit`."
        ) from None
    try:
        return Report.from_json(text)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else type(exc).__name__
        raise FileFormatError(
            f"The {which} file {path} is not a modelshield audit report ({detail}).",
            remedy="Pass the report.json that `modelshield audit --out DIR` or `--format json` writes.",
        ) from None


def diff_command(
    old: Annotated[Path, typer.Argument(help="The earlier report.json.")],
    new: Annotated[Path, typer.Argument(help="The later report.json.")],
    output_format: Annotated[OutputFormat, format_option(OutputFormat.TEXT, OutputFormat.JSON)] = OutputFormat.TEXT,
    output: Annotated[Path | None, typer.Option(help="Write the --format output to this file.")] = None,
) -> None:
    """Regressions between two audit reports: findings new or worse in severity, metrics worse beyond the noise
    their intervals show (metrics without intervals are shown, not judged), findings gone. Exit 1 on a regression,
    0 without, 2 on a file that is not a report."""
    from modelshield.audit.diff import diff_reports

    if output is not None:
        _check_outputs(None, output)
    diff = diff_reports(_read_report(old, "old"), _read_report(new, "new"))
    if output_format is OutputFormat.JSON:
        import json

        _emit(json.dumps(diff.to_dict(), indent=2, allow_nan=False), output)
    else:
        _emit("\n".join(_diff_lines(diff)), output)
    raise typer.Exit(EXIT_FINDINGS if diff.regressed else EXIT_CLEAN)


def _cell(text: str, width: int) -> str:
    return printable(text).ljust(width)


def _diff_lines(diff: ReportDiff) -> list[str]:
    """The diff as a table for people; report strings are untrusted, so each goes through ``printable``."""

    def sev(value: object) -> str:
        return str(getattr(value, "value", "-"))

    lines = [
        f"old: {diff.old.target.name} ({diff.old.started_at}, budget {diff.old.budget})",
        f"new: {diff.new.target.name} ({diff.new.started_at}, budget {diff.new.budget})",
    ]
    lines += [f"note: {n}" for n in diff.notes]
    shown = [f for f in diff.findings if f.change != "same"]
    lines.append("")
    lines.append(f"findings ({len(shown)} changed, {len(diff.findings) - len(shown)} unchanged)")
    if shown:
        lines.append(f"  {'change':<8}{'severity':<20}{'finding'}")
        for f in shown:
            where = f" at {f.location}" if f.location else ""
            mark = "!" if f.regression else " "
            note = f" ({f.note})" if f.note else ""
            lines.append(
                printable(
                    f"{mark} {f.change:<8}{sev(f.old_severity) + ' -> ' + sev(f.new_severity):<20}{f.id}{where}{note}"
                )
            )
    lines.append("")
    lines.append(f"metrics ({len(diff.metrics)} changed)")
    if diff.metrics:
        lines.append(f"  {'old':>10} {'new':>10}  {'verdict':<28}metric")
        for m in diff.metrics:
            if not m.worse:
                verdict = "better"
            elif not m.judged:
                verdict = "worse, not judged for noise"
            elif m.beyond_noise:
                verdict = "worse beyond noise"
            else:
                verdict = "worse, within noise"
            mark = "!" if m.regression else " "
            lines.append(printable(f"{mark} {m.old:>10.4g} {m.new:>10.4g}  {verdict:<28}{m.finding} {m.metric}"))
    lines.append("")
    count = len(diff.regressions)
    lines.append(f"{count} regression(s) beyond noise" if count else "no regression beyond noise")
    return [printable(line) for line in lines]


class _AuditCommand(TyperCommand):
    """``audit``, which also answers ``audit diff OLD NEW``: a command whose arguments start with ``diff`` is
    handed to the diff command (``audit`` takes no arguments of its own, so nothing else can start with it).

    A click group would do the same, but the command reference (docs/gen_cli_reference.py) lists the options of
    commands only, not of groups, and ``audit``'s options are its main surface.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        if args[:1] == ["diff"]:
            return _diff_click_command().make_context(f"{info_name or 'audit'} diff", args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


def _diff_click_command() -> Any:
    """``diff_command`` as a click command, built as the root app builds every command."""
    staging = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    staging.command("diff")(diff_command)
    return typer.main.get_command(staging)


def register(app: typer.Typer) -> None:
    app.command(
        "audit",
        cls=_AuditCommand,
        epilog="Compare two reports: modelshield audit diff OLD.json NEW.json [--format text|json] [--output FILE] "
        "(exit 1 on a regression beyond noise).",
    )(audit_command)
