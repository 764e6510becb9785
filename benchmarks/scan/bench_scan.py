"""Benchmark: modelshield's scanner against picklescan, modelscan, fickling and modelaudit, in one run.

The one command (the anchors live in their own environment, installed from PyPI, since they pin other versions
of shared libraries):

    python3.11 -m venv /tmp/anchors311 && /tmp/anchors311/bin/pip install picklescan modelscan fickling modelaudit
    .venv/bin/python benchmarks/scan/bench_scan.py --anchors-python /tmp/anchors311/bin/python \\
        --large-gb 1 --repeat 3 --out /tmp/bench_scan.json

    .venv/bin/python benchmarks/scan/bench_scan.py --large-gb 0 --no-startup   # modelshield alone, quick
    .venv/bin/python benchmarks/scan/bench_scan.py --startup-only --anchors-python /tmp/anchors311/bin/python

What it measures, printed as Markdown (and written as JSON to ``--out``):

1. Detection on three corpora, each written at run time into a temporary directory:
   ``scan`` (:func:`modelshield.testing.scan_corpus.write_corpus`, malicious and benign files),
   ``attack`` (:func:`modelshield.testing.attack_corpus.write_attack_corpus`, malicious files confirmed by the
   oracle) and ``benign`` (:func:`modelshield.testing.benign_corpus.write_benign_corpus`, real-library files).
   A corpus whose module is missing is skipped with a message. Every tool's findings are mapped onto one scale
   (see ``anchors_driver.py``): a malicious file is **caught** when the tool reports ``high`` or worse
   (modelshield: high or critical); a benign file is **flagged** at ``medium`` or worse. ``errors`` are files a
   tool crashed on or reported it could not scan. A FAMILIES table gives caught/total per family and tool.
2. Scan time per tool: in one process per tool, imports done first, each file scanned once untimed, then
   ``--repeat`` times timed; a file's time is the median of its passes, and the table sums them.
3. Start-up, as a CI gate sees it (a new process per call, wall clock, ``--startup-runs`` runs, median): the
   ``modelshield scan`` and ``picklescan -p`` commands on one small pickle, and on a directory of 200 small
   pickles. The commands take turns, after one untimed run each, and run with bytecode as an installed copy has
   it (modelshield's is compiled first, as pip does for a wheel). ``--startup-only`` measures this alone.
4. A large benign checkpoint (``torch.save`` of ``--large-gb`` GiB of tensors, written to the temporary
   directory and deleted after): modelshield's time on it against a checkpoint with the same pickle and tiny
   tensors, which shows the time is bounded by the pickle bytes, not the tensor bytes.

The machine's load average is printed beside the start-up figures: on a shared machine they vary with it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelshield._version import __version__
from modelshield.findings import Severity
from modelshield.supply_chain.scan import Scanner
from modelshield.supply_chain.scan.registry import default_registry

ANCHORS = ("picklescan", "modelscan", "fickling", "modelaudit")
DRIVER = Path(__file__).with_name("anchors_driver.py")
HIGH, MEDIUM = "high", "medium"


@dataclass(frozen=True)
class Item:
    """One corpus file: ``key`` is ``corpus/relative-path``."""

    key: str
    path: Path
    corpus: str
    family: str
    klass: str
    malicious: bool


@dataclass
class ToolRun:
    verdicts: dict[str, str]  # key -> high | medium | low | clean | error: ...
    seconds: dict[str, float]  # key -> median scan time of the timed passes


# -- corpora -------------------------------------------------------------------------------------------------------
def _optional(module: str, function: str) -> Callable[[Path], list[Any]] | None:
    try:
        found: Callable[[Path], list[Any]] = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as exc:
        print(f"> skipped: {module}.{function} is not available ({exc}).\n")
        return None
    return found


def write_corpora(root: Path) -> list[Item]:
    """Write every corpus that exists under ``root``; the files of all of them, as Items."""
    items: list[Item] = []
    write_scan = _optional("modelshield.testing.scan_corpus", "write_corpus")
    if write_scan is not None:
        for e in write_scan(root / "scan"):
            items.append(Item(f"scan/{e.name}", root / "scan" / e.name, "scan", e.family, "", e.malicious))
    write_attack = _optional("modelshield.testing.attack_corpus", "write_attack_corpus")
    if write_attack is not None:
        for e in write_attack(root / "attack"):
            items.append(Item(f"attack/{e.name}", root / "attack" / e.name, "attack", e.family, str(e.klass), True))
    write_benign = _optional("modelshield.testing.benign_corpus", "write_benign_corpus")
    if write_benign is not None:
        for e in write_benign(root / "benign"):
            items.append(Item(f"benign/{e.name}", root / "benign" / e.name, "benign", e.family, "", False))
    return items


# -- running the tools ---------------------------------------------------------------------------------------------
def _level(worst: Severity | None) -> str:
    if worst is not None and worst >= Severity.HIGH:
        return HIGH
    if worst is not None and worst >= Severity.MEDIUM:
        return MEDIUM
    return "low" if worst is not None and worst >= Severity.LOW else "clean"


def run_modelshield(items: Sequence[Item], repeat: int) -> ToolRun:
    """Measured as the anchors are: one untimed pass per file, then ``repeat`` timed passes.

    One scan run covers a corpus, as ``modelshield scan`` does for a directory: verdicts on pickle callables are
    worked out once per run (the anchors' processes keep their own caches too). Built-in scanners only: plug-ins
    that the environment happens to hold (the test venv has an example one) are not modelshield's own work.
    """
    run = Scanner(registry=default_registry(entry_points=False))
    out = ToolRun({}, {})
    for item in items:
        times = []
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            try:
                verdict = _level(run.scan_file(item.path).max_severity)
            except Exception as exc:  # a crash is a result here too
                verdict = f"error: {type(exc).__name__}"
            if i:
                times.append(time.perf_counter() - t0)
        out.verdicts[item.key], out.seconds[item.key] = verdict, statistics.median(times)
    return out


def run_anchor(python: str, tool: str, items: Sequence[Item], repeat: int, timeout: float = 3600) -> ToolRun:
    """An anchor's verdicts and scan times, from ``anchors_driver.py`` in the anchors' environment."""
    by_path = {str(item.path): item.key for item in items}
    out = ToolRun({}, {})
    try:
        done = subprocess.run(
            [python, str(DRIVER), tool, str(repeat), *by_path],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        lines = done.stdout.splitlines()
    except subprocess.TimeoutExpired as exc:
        lines = (exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or "").splitlines()
    for line in lines:
        if line.startswith("{"):
            row = json.loads(line)
            key = by_path[row["path"]]
            out.verdicts[key], out.seconds[key] = row["verdict"], statistics.median(row["seconds"])
    for key in by_path.values():
        out.verdicts.setdefault(key, "error: no result (driver crashed or timed out)")
    return out


def anchor_version(python: str, tool: str) -> str:
    done = subprocess.run([python, str(DRIVER), tool, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"not installed ({done.stderr.strip().splitlines()[-1:]})"


# -- tables ---------------------------------------------------------------------------------------------------------
def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    return "\n".join([_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)])


def _errors(run: ToolRun, members: Sequence[Item]) -> int:
    return sum(run.verdicts.get(m.key, "error").startswith("error") for m in members)


def summary(items: Sequence[Item], runs: dict[str, ToolRun]) -> tuple[str, dict[str, Any]]:
    tools = list(runs)
    rows: list[list[object]] = []
    data: dict[str, Any] = {}
    for corpus in dict.fromkeys(i.corpus for i in items):
        bad = [i for i in items if i.corpus == corpus and i.malicious]
        good = [i for i in items if i.corpus == corpus and not i.malicious]
        checks = (
            ("malicious caught (>= high)", bad, (HIGH,)),
            ("benign flagged (>= medium)", good, (HIGH, MEDIUM)),
            ("benign flagged (>= high)", good, (HIGH,)),
        )
        for label, members, hit in checks:
            if not members:
                continue
            cells = []
            for tool in tools:
                n = sum(runs[tool].verdicts.get(m.key) in hit for m in members)
                errors = _errors(runs[tool], members)
                cells.append(f"{n}/{len(members)}" + (f" ({errors} errors)" if errors else ""))
                data[f"{corpus}: {label}"] = data.get(f"{corpus}: {label}", {}) | {tool: [n, len(members), errors]}
            rows.append([f"{corpus}: {label}", *cells])
    bad = [i for i in items if i.malicious]
    good = [i for i in items if not i.malicious]
    all_caught = {t: sum(runs[t].verdicts.get(i.key) == HIGH for i in bad) for t in tools}
    all_flagged = {t: sum(runs[t].verdicts.get(i.key) in (HIGH, MEDIUM) for i in good) for t in tools}
    rows.append([f"**all malicious caught** ({len(bad)})", *(f"**{all_caught[t]}/{len(bad)}**" for t in tools)])
    rows.append([f"**all benign flagged** ({len(good)})", *(f"**{all_flagged[t]}/{len(good)}**" for t in tools)])
    common = [i.key for i in items if not any(runs[t].verdicts.get(i.key, "error").startswith("error") for t in tools)]
    rows.append(["scan time, all files (s)", *(f"{sum(runs[t].seconds.values()):.3f}" for t in tools)])
    rows.append([f"scan time, the {len(common)} files every tool reads (s)",
                 *(f"{sum(runs[t].seconds[k] for k in common):.3f}" for t in tools)])  # fmt: skip
    data["all"] = {t: {"caught": all_caught[t], "malicious": len(bad), "flagged": all_flagged[t], "benign": len(good),
                       "seconds": sum(runs[t].seconds.values()),
                       "seconds_common": sum(runs[t].seconds[k] for k in common)} for t in tools}  # fmt: skip
    return _table(["", *tools], rows), data


def families(items: Sequence[Item], runs: dict[str, ToolRun], by: str = "family") -> tuple[str, dict[str, Any]]:
    """Caught/total per family (malicious) and flagged/total (benign families, marked so), per tool."""
    tools = list(runs)
    groups: dict[tuple[str, str, bool], list[Item]] = defaultdict(list)
    for item in items:
        groups[(item.corpus, getattr(item, by) or "-", item.malicious)].append(item)
    rows, data = [], {}
    for (corpus, family, malicious), members in groups.items():
        hit = (HIGH,) if malicious else (HIGH, MEDIUM)
        counts = {t: sum(runs[t].verdicts.get(m.key) in hit for m in members) for t in tools}
        label = f"{corpus}: {family}" + ("" if malicious else " (benign: flagged)")
        rows.append([label, len(members), *(f"{counts[t]}/{len(members)}" for t in tools)])
        data[label] = {"files": len(members), **counts}
    return _table([by, "files", *tools], rows), data


# -- start-up, directories and the large checkpoint ----------------------------------------------------------------
def _walls(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Wall-clock seconds of each command, ``runs`` times, taking turns (a load that drifts hits every tool alike)
    after one untimed run each (the file cache)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(runs + 1):
        for name, command in commands.items():
            t0 = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=_ENV)
            if index:
                times[name].append(time.perf_counter() - t0)
    return times


#: The tools run as a user's installed copy runs: with the bytecode that pip writes when it installs a wheel
#: (an editable install of modelshield has none until imports write it, which PYTHONDONTWRITEBYTECODE prevents).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _compile_modelshield() -> None:
    import compileall

    import modelshield

    compileall.compile_dir(Path(modelshield.__file__).parent, quiet=1)


def _modelshield_command() -> list[str]:
    script = Path(sys.executable).with_name("modelshield")
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelshield"]


def _picklescan_command(anchors_python: str | None) -> list[str] | None:
    if anchors_python is None:
        return None
    script = Path(anchors_python).with_name("picklescan")
    return [str(script), "-p"] if script.exists() else None


def startup(root: Path, anchors_python: str | None, runs: int, n_files: int) -> tuple[str, dict[str, Any]]:
    small = root / "small.pkl"
    small.write_bytes(pickle.dumps({"a": 1}))
    many = root / "many"
    many.mkdir()
    for i in range(n_files):  # small, varied, benign pickles of plain data
        (many / f"f{i:03d}.pkl").write_bytes(pickle.dumps({"i": i, "w": [0.5] * (i % 17), "name": f"layer{i}"}))
    _compile_modelshield()
    tools = {"modelshield": [*_modelshield_command(), "scan"], "picklescan": _picklescan_command(anchors_python)}
    commands: dict[str, list[str]] = {}
    for tool, command in tools.items():
        if command is not None:
            commands[f"{tool} file"] = [*command, str(small)]
            commands[f"{tool} directory"] = [*command, str(many)]
    load = os.getloadavg()
    times = _walls(commands, runs)
    data: dict[str, Any] = {"loadavg_before": load, "loadavg_after": os.getloadavg(), "cpus": os.cpu_count()}
    data["runs"] = runs
    rows: list[list[object]] = []
    for tool in (t for t, c in tools.items() if c is not None):
        one, directory = times[f"{tool} file"], times[f"{tool} directory"]
        data[tool] = {"small_file_s": one, "directory_s": directory}
        rows.append([tool, f"{statistics.median(one):.3f}", f"{min(one):.3f}",
                     f"{statistics.median(directory):.3f}", f"{min(directory):.3f}"])  # fmt: skip
    header = ["tool", "1 small file: median (s)", "min (s)", f"{n_files}-file directory: median (s)", "min (s)"]
    text = _table(header, rows)
    text += f"\n\n{runs} runs of each command, taking turns; {os.cpu_count()} CPUs; load average "
    text += f"{load[0]:.2f} before, {data['loadavg_after'][0]:.2f} after."
    return text, data


def _checkpoint(path: Path, numel: int, layers: int = 64) -> None:
    import torch

    torch.save({f"layer{i}.weight": torch.zeros(numel) for i in range(layers)}, path)


def _pickle_bytes(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist() if info.filename.endswith(".pkl"))


def large_checkpoint(
    root: Path, gigabytes: float, repeat: int, anchors_python: str | None, anchors: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """modelshield on a large checkpoint and on its twin with tiny tensors (the same pickle): both cost the same."""
    big, twin = root / "large.benign-checkpoint.pt", root / "twin.benign-checkpoint.pt"
    _checkpoint(big, int(gigabytes * 1024**3 / 4 / 64))
    _checkpoint(twin, 1)
    rows: list[list[object]] = []
    data: dict[str, Any] = {}
    try:
        for label, path in (("large", big), ("same pickle, tiny tensors", twin)):
            item = Item(path.name, path, "large", "large", "", False)
            run = run_modelshield([item], repeat)
            cli = _walls({"cli": [*_modelshield_command(), "scan", str(path)]}, 3)["cli"]
            entry: dict[str, Any] = {
                "file_bytes": path.stat().st_size,
                "pickle_bytes": _pickle_bytes(path),
                "scan_s": run.seconds[item.key],
                "cli_s": statistics.median(cli),
                "verdict": run.verdicts[item.key],
            }
            data[label] = entry
            rows.append([label, f"{entry['file_bytes'] / 1024**3:.3f}", entry["pickle_bytes"], f"{entry['scan_s']:.4f}",
                         f"{entry['cli_s']:.3f}", entry["verdict"]])  # fmt: skip
        on_large: dict[str, Any] = {}
        for tool in anchors if anchors_python else ():
            item = Item(big.name, big, "large", "large", "", False)
            run = run_anchor(anchors_python or "", tool, [item], repeat, timeout=900)
            on_large[tool] = {"scan_s": run.seconds.get(item.key), "verdict": run.verdicts[item.key]}
        data["anchors_on_large"] = on_large
    finally:
        big.unlink(missing_ok=True)
        twin.unlink(missing_ok=True)
    header = [
        "modelshield on",
        "file (GiB)",
        "pickle bytes",
        "scan, in process (s)",
        "`modelshield scan` (s)",
        "verdict",
    ]
    text = _table(header, rows)
    if data["anchors_on_large"]:
        text += "\n\nAnchors on the large file (in process): " + "; ".join(
            f"{t} {v['scan_s']:.3f} s, {v['verdict']}" if v["scan_s"] is not None else f"{t}: {v['verdict']}"
            for t, v in data["anchors_on_large"].items()
        )
    return text, data


# -- main -------------------------------------------------------------------------------------------------------------
def _startup_only(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        text, _ = startup(Path(tmp), args.anchors_python, args.startup_runs, args.dir_files)
    print("### Start-up: a new process per call, wall clock\n\n" + text)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--anchors-python", default=None, help="python of the anchors' environment (omit: none)")
    parser.add_argument("--tools", default=",".join(ANCHORS), help="which anchors to run (comma-separated)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per file (the median is reported)")
    parser.add_argument("--large-gb", type=float, default=1.0, help="size of the large checkpoint (0: none)")
    parser.add_argument("--startup-runs", type=int, default=21, help="runs per start-up measurement (median)")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurements")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up measurements")
    parser.add_argument("--dir-files", type=int, default=200, help="files in the start-up directory")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    if args.startup_only:
        return _startup_only(args)
    anchors = [t for t in args.tools.split(",") if t] if args.anchors_python else []
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "versions": {"modelshield": __version__} | {t: anchor_version(args.anchors_python, t) for t in anchors},
    }
    print("## Model-file scanning: modelshield against " + ", ".join(anchors or ["(no anchors)"]) + "\n")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + "\n")
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        root = Path(tmp)
        items = write_corpora(root / "corpora")
        counts = {}
        for corpus in dict.fromkeys(i.corpus for i in items):
            members = [i for i in items if i.corpus == corpus]
            counts[corpus] = [sum(i.malicious for i in members), sum(not i.malicious for i in members)]
        result["corpora"] = counts
        print("Corpora: " + "; ".join(f"{c}: {m} malicious, {b} benign" for c, (m, b) in counts.items()) + "\n")
        runs = {"modelshield": run_modelshield(items, args.repeat)}
        for tool in anchors:
            t0 = time.perf_counter()
            runs[tool] = run_anchor(args.anchors_python, tool, items, args.repeat)
            print(f"> {tool}: {time.perf_counter() - t0:.0f} s for the corpora\n", file=sys.stderr)
        text, result["summary"] = summary(items, runs)
        print("### Detection and scan time\n\n" + text + "\n")
        text, result["families"] = families(items, runs)
        print("### FAMILIES (malicious: caught at >= high / total; benign: flagged at >= medium / total)\n")
        print(text + "\n")
        if any(i.klass for i in items):
            text, result["classes"] = families([i for i in items if i.klass], runs, by="klass")
            print("### Attack corpus by class of the issue (caught at >= high / total)\n\n" + text + "\n")
        missed = sorted(i.key for i in items if i.malicious and runs["modelshield"].verdicts[i.key] != HIGH)
        alarms = sorted(
            i.key for i in items if not i.malicious and runs["modelshield"].verdicts[i.key] in (HIGH, MEDIUM)
        )
        print(f"Missed by modelshield ({len(missed)}): {', '.join(missed) or 'none'}\n")
        print(f"Benign flagged by modelshield ({len(alarms)}): {', '.join(alarms) or 'none'}\n")
        result["tools"] = {t: asdict(r) for t, r in runs.items()}
        result["items"] = [asdict(i) | {"path": str(i.path.relative_to(root))} for i in items]
        shutil.rmtree(root / "corpora", ignore_errors=True)
        if not args.no_startup:
            text, result["startup"] = startup(root, args.anchors_python, args.startup_runs, args.dir_files)
            print("### Start-up: a new process per call, wall clock\n\n" + text + "\n")
        if args.large_gb > 0:
            text, result["large"] = large_checkpoint(root, args.large_gb, args.repeat, args.anchors_python, anchors)
            print(f"### A {args.large_gb:g} GiB checkpoint: bounded by its pickle bytes\n\n" + text + "\n")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"JSON written to {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "torch")  # the benign corpus writes .keras files with the torch backend
    sys.exit(main())
