"""Benchmark: modelshield's scanner against picklescan, modelscan and fickling on one corpus, in one run.

    .venv/bin/python benchmarks/scan/bench_scan.py --anchors-python /tmp/anchors/bin/python [--large-gb 1]
    .venv/bin/python benchmarks/scan/bench_scan.py --large-gb 0      # modelshield alone, no anchors

The anchors are installed from PyPI into their own environment (they pin other versions of shared libraries);
without ``--anchors-python`` only modelshield is measured:

    python3 -m venv /tmp/anchors && /tmp/anchors/bin/pip install picklescan modelscan fickling typing_extensions

Detection means: modelshield reports a finding of severity high or above; an anchor reports any issue. A false
alarm on a benign file means: modelshield medium or above; an anchor any issue. The table is printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from modelshield.findings import Severity
from modelshield.supply_chain.scan import Scanner
from modelshield.supply_chain.scan.registry import default_registry
from modelshield.testing.scan_corpus import CorpusEntry, write_corpus

ANCHORS = ("picklescan", "modelscan", "fickling")
DRIVER = Path(__file__).with_name("anchors_driver.py")


Timings = dict[str, float]  # file name -> median scan time over the timed passes, in seconds


def run_anchor(python: str, tool: str, paths: list[Path], repeat: int) -> tuple[dict[str, str], Timings]:
    """Verdicts and median scan times per file name (the tool's imports excluded)."""
    out = subprocess.run(
        [python, str(DRIVER), tool, str(repeat), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    verdicts, seconds = {}, {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            verdicts[Path(row["path"]).name] = row["verdict"]
            seconds[Path(row["path"]).name] = statistics.median(row["seconds"])
    return verdicts, seconds


def _verdict(run: Scanner, path: Path) -> str:
    worst = run.scan_file(path).max_severity
    if worst is not None and worst >= Severity.HIGH:
        return "flagged"
    return "review" if worst is not None and worst >= Severity.MEDIUM else "clean"


def run_modelshield(paths: list[Path], repeat: int) -> tuple[dict[str, str], Timings]:
    """Measured exactly as the anchors are: one untimed pass per file, then ``repeat`` timed passes.

    One scan run covers the corpus, as ``modelshield scan`` does for a directory: verdicts on pickle callables are
    worked out once per run (the anchors' processes keep their own caches too). Built-in scanners only: plug-ins
    that the environment happens to hold (the test venv has an example one) are not modelshield's own work.
    """
    run = Scanner(registry=default_registry(entry_points=False))
    verdicts, seconds = {}, {}
    for path in paths:
        verdicts[path.name] = _verdict(run, path)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            _verdict(run, path)
            times.append(time.perf_counter() - t0)
        seconds[path.name] = statistics.median(times)
    return verdicts, seconds


def large_checkpoint(directory: Path, gigabytes: float) -> Path:
    import torch

    path = directory / "large.benign-checkpoint.pt"
    n = int(gigabytes * 1024**3 / 4 / 64)
    torch.save({f"layer{i}.weight": torch.zeros(n) for i in range(64)}, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--anchors-python", default=None, help="python of the environment with the anchors (omit: modelshield only)"
    )
    parser.add_argument("--large-gb", type=float, default=1.0, help="size of the large benign checkpoint (0: none)")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per file (the median pass is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        entries: list[CorpusEntry] = write_corpus(root)
        paths = [root / e.name for e in entries]
        anchors = ANCHORS if args.anchors_python else ()
        results = {"modelshield": run_modelshield(paths, args.repeat)}
        for tool in anchors:
            results[tool] = run_anchor(args.anchors_python, tool, paths, args.repeat)
        print(
            f"Corpus: {sum(e.malicious for e in entries)} malicious, {sum(not e.malicious for e in entries)} benign.\n"
        )
        tools = ["modelshield", *anchors]
        print("| family | files | " + " | ".join(tools) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in tools) + " |")
        families: dict[str, list[CorpusEntry]] = defaultdict(list)
        for e in entries:
            families[e.family].append(e)
        for family, members in families.items():
            cells = []
            for tool in tools:
                verdicts = results[tool][0]
                if family == "benign":
                    alarms = sum(verdicts.get(e.name, "") in ("flagged", "review") for e in members)
                    crashes = sum(verdicts.get(e.name, "").startswith("error") for e in members)
                    cells.append(f"{alarms} false alarms" + (f", {crashes} errors" if crashes else ""))
                else:
                    cells.append(f"{sum(verdicts.get(e.name) == 'flagged' for e in members)}/{len(members)}")
            print(f"| {family} | {len(members)} | " + " | ".join(cells) + " |")
        caught = [sum(results[t][0].get(e.name) == "flagged" for e in entries if e.malicious) for t in tools]
        print("| **all malicious** | " + str(sum(e.malicious for e in entries)) + " | "
              + " | ".join(f"**{c}**" for c in caught) + " |")  # fmt: skip
        print(
            "| scan time, whole corpus (s) | | "
            + " | ".join(f"{sum(results[t][1].values()):.3f}" for t in tools)
            + " |"
        )
        # The same work for every tool: files that no tool crashed on or declined.
        common = [
            e.name for e in entries if not any(results[t][0].get(e.name, "error").startswith("error") for t in tools)
        ]
        print(f"| scan time, the {len(common)} files every tool reads (s) | | "
              + " | ".join(f"{sum(results[t][1][n] for n in common):.3f}" for t in tools) + " |")  # fmt: skip
        missed = {t: sorted(e.name for e in entries if e.malicious and results[t][0].get(e.name) != "flagged")
                  for t in tools}  # fmt: skip
        print("\nMissed by modelshield:", missed["modelshield"] or "none")
        if args.large_gb > 0:
            big = large_checkpoint(root, args.large_gb)
            size = big.stat().st_size / 1024**3
            print(f"\nLarge benign checkpoint: {size:.2f} GiB")
            for tool in tools:
                verdicts, timings = (
                    run_modelshield([big], args.repeat)
                    if tool == "modelshield"
                    else run_anchor(args.anchors_python, tool, [big], args.repeat)
                )
                print(f"- {tool}: {timings[big.name]:.3f} s, verdict {verdicts.get(big.name)}")


if __name__ == "__main__":
    sys.exit(main())
