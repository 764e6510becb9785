"""Mutation fuzzer for the scanner: real and malicious model files of every format, mutated for minutes.

    .venv/bin/python benchmarks/scan/fuzz.py --seconds 180 --seed 1 --out /tmp/crashes
    .venv/bin/python benchmarks/scan/fuzz.py --differential 5000 --out /tmp/diff   # scanner against the oracle

Seeds: the suite's real files (pickle protocols 0-5, ``torch.save`` zip and legacy, TorchScript, joblib with every
compression, ``.npy``/``.npz`` with object arrays, safetensors, ONNX, HDF5, GGUF, tar, compressed streams, a
SavedModel protobuf; see ``tests/supply_chain/scan/test_fuzz.py``), Keras ``.keras`` and ``.h5`` files written by
Keras itself (``KERAS_BACKEND=torch``), the scan corpus (``write_corpus``: malicious and benign) and
``format_samples``. Edits: bit flips, random bytes, deletions, insertions of random and of "interesting" bytes
(pickle opcodes, 0xff, digits, non-ASCII digits, newlines, magics), truncation, chunk duplication, splicing two
seeds. Each mutant goes through ``Scanner.scan_stream`` (a scan-level crash, or a ``scan.internal-error`` finding
once the scanner has a catch-all) and through every built-in scanner's ``scan`` directly, with a context that
lets nested exceptions through; anything but ``FileFormatError`` escaping a direct call is a crash. A check that
runs past ``--hang-seconds`` is a crash too.

Crashes are grouped by (exception type, innermost frame in modelshield) and each group's smallest input is
shrunk by deleting chunks while the same group still crashes. ``--out`` receives, per group, the first and the
shrunk input and the traceback. Work is spread over ``--workers`` processes (2 by default).

``--differential N`` instead generates N grammatical random pickles (the generator of
``tests/supply_chain/scan/test_differential.py``), loads them all with the ground-truth oracle
(:mod:`modelshield.testing.oracle`, one sandbox process per batch) and reports every pickle that reached a
dangerous event while the scanner rated it below high, disassembled.
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import io
import multiprocessing
import os
import random
import re
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from modelshield.errors import FileFormatError
from modelshield.findings import Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.formats import builtin_scanners
from modelshield.testing.scan_corpus import write_corpus

__all__ = ["Checker", "Crash", "build_seeds", "differential", "main", "shrink"]

_ROOT = Path(__file__).resolve().parents[2]
_TESTS = _ROOT / "tests" / "supply_chain" / "scan"


def _test_module(name: str) -> ModuleType:
    """A test module of the scan suite, loaded by path (the tests are not a package)."""
    import importlib.util

    qualified = f"_modelshield_fuzz_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, _TESTS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {_TESTS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


# -- seeds ----------------------------------------------------------------------------------------------------------


def _keras_seeds(tmp: Path) -> list[Any]:
    """A small Keras model saved by Keras itself as ``.keras`` and ``.h5`` (torch backend)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    engine = _test_module("test_fuzz")
    try:
        import keras  # type: ignore[import-untyped]
    except Exception as exc:
        print(f"no Keras seeds: {type(exc).__name__}: {exc}", file=sys.stderr)
        return []
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
    seeds = []
    for name in ("keras-real.keras", "keras-real.h5"):
        model.save(tmp / name)
        seeds.append(engine._identified(name, (tmp / name).read_bytes()))
    return seeds


def build_seeds(tmp: Path, *, keras: bool = True) -> list[Any]:
    """Every seed: real files, Keras' own files, the malicious and benign scan corpus, and the format samples."""
    engine = _test_module("test_fuzz")
    seeds: list[Any] = engine.real_seeds(tmp) + engine.sample_seeds()
    if keras:
        seeds += _keras_seeds(tmp)
    corpus = tmp / "corpus"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = write_corpus(corpus)
    for entry in entries:
        data = (corpus / entry.name).read_bytes()
        if len(data) <= 4 * 1024 * 1024:
            seeds.append(engine._identified(f"corpus/{entry.name}", data))
    return seeds


# -- checking one mutant --------------------------------------------------------------------------------------------


class _Hang(BaseException):
    """Raised by the alarm when a check runs too long (a BaseException, so that no scanner swallows it)."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Hang("the check ran past the time limit")


GroupKey = tuple[str, str]  # (exception type, innermost modelshield frame)


def _innermost(tb: traceback.StackSummary) -> str:
    inside = [
        f for f in tb if f"{os.sep}modelshield{os.sep}" in f.filename and f"{os.sep}tests{os.sep}" not in f.filename
    ]
    frame = inside[-1] if inside else (tb[-1] if len(tb) else None)
    if frame is None:
        return "?"
    return f"{frame.filename.split(f'{os.sep}modelshield{os.sep}')[-1]}:{frame.lineno} in {frame.name}"


@dataclass
class Crash:
    """A group of crashes: how many, where first seen, and the smallest input."""

    key: GroupKey
    where: str
    seed: str
    data: bytes
    first: bytes
    text: str
    count: int = 1
    minimal: bytes | None = None


_CAUGHT: list[BaseException] = []


def _record_internal_errors() -> None:
    """Keep the exceptions that ``Scanner.dispatch``'s catch-all reports, with their tracebacks (they are turned
    into ``scan.internal-error`` findings, which name the exception but not where it was raised)."""
    from modelshield.supply_chain.scan import scanner as module

    original = getattr(module, "_internal_error", None)
    if original is None or getattr(original, "_fuzz_wrapped", False):
        return

    def wrapped(name: str, exc: BaseException | None, location: str) -> Any:
        if exc is not None:
            _CAUGHT.append(exc)
        return original(name, exc, location)

    wrapped._fuzz_wrapped = True  # type: ignore[attr-defined]
    setattr(module, "_internal_error", wrapped)  # noqa: B010 - a private function, replaced on purpose


@dataclass
class Checker:
    """Runs one mutant through ``scan_stream`` and through every built-in scanner directly."""

    hang_seconds: float
    run: Any = field(init=False)
    scanners: list[Any] = field(init=False)

    def __post_init__(self) -> None:
        _record_internal_errors()
        self.run = _test_module("test_fuzz").builtin_run()
        self.scanners = builtin_scanners()

    def check(self, data: bytes, fmt: ModelFormat, only: str | None = None) -> list[tuple[GroupKey, str, str]]:
        """The crashes of ``data`` (a seed of ``fmt``): (group, where, traceback) each; ``only`` limits the paths."""
        out: list[tuple[GroupKey, str, str]] = []
        engine = _test_module("test_fuzz")
        paths: list[tuple[str, Callable[[], object]]] = []
        if only in (None, "scan_stream"):
            paths.append(("scan_stream", lambda: self.run.scan_stream(io.BytesIO(data), len(data), location="fuzz")))
        for scanner in self.scanners:
            where = f"direct:{scanner.name}"
            if only in (None, where):
                served = fmt if fmt in scanner.formats else min(scanner.formats)
                paths.append((where, functools.partial(engine.raw_scan, self.run, scanner, data, served)))
        for where, call in paths:
            signal.setitimer(signal.ITIMER_REAL, self.hang_seconds)
            try:
                result = call()
            except FileFormatError:
                if where == "scan_stream":
                    out.append((("FileFormatError", "scan_stream"), where, traceback.format_exc()))
                continue
            except (Exception, _Hang) as exc:
                summary = traceback.extract_tb(exc.__traceback__)
                out.append(((type(exc).__name__, _innermost(summary)), where, traceback.format_exc()))
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if where == "scan_stream" and isinstance(result, list):
                for caught in _CAUGHT:  # what the scanner's catch-all turned into scan.internal-error findings
                    summary = traceback.extract_tb(caught.__traceback__)
                    text = "".join(traceback.format_exception(caught))
                    out.append(((f"caught {type(caught).__name__}", _innermost(summary)), where, text))
                if not _CAUGHT:
                    for finding in result:
                        if finding.id == "scan.internal-error":
                            detail = str(finding.evidence.get("error", finding.description))[:80]
                            out.append((("scan.internal-error", detail), where, finding.description))
            _CAUGHT.clear()
        return out


def _worker(index: int, seeds: list[Any], seconds: float, seed: int, hang: float, inflight: Path, queue: Any) -> None:
    """Fuzz for ``seconds``; the current mutant is kept in ``inflight`` (and its seed's name beside it), and a
    check stuck in native code past ``3 * hang`` dumps the Python stack there and ends the process."""
    signal.signal(signal.SIGALRM, _on_alarm)
    warnings.simplefilter("ignore")
    engine = _test_module("test_fuzz")
    checker = Checker(hang)
    rng = random.Random(f"{seed}-{index}")  # noqa: S311 - reproducible fuzzing, not cryptography
    groups: dict[GroupKey, Crash] = {}
    mutants = 0
    deadline = time.monotonic() + seconds
    stack = (inflight.with_suffix(".stack")).open("w")
    while time.monotonic() < deadline:
        base = rng.choice(seeds)
        data = engine.mutate(rng, base.data, rng.choice(seeds).data)
        mutants += 1
        inflight.write_bytes(data)
        inflight.with_suffix(".seed").write_text(base.name)
        faulthandler.dump_traceback_later(3 * hang, exit=True, file=stack)
        found = checker.check(data, base.format)
        faulthandler.cancel_dump_traceback_later()
        for key, where, text in found:
            crash = groups.get(key)
            if crash is None:
                groups[key] = Crash(key, where, base.name, data, data, text)
            else:
                crash.count += 1
                if len(data) < len(crash.data):
                    crash.data, crash.where, crash.seed = data, where, base.name
    queue.put((index, mutants, list(groups.values())))


def _native_hang(inflight: Path) -> Crash:
    """The crash of a worker that a stuck check ended: its in-flight mutant and the stack faulthandler dumped."""
    stack = inflight.with_suffix(".stack").read_text(errors="replace")
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', stack)
    inside = [f for f in frames if f"{os.sep}modelshield{os.sep}" in f[0] and f"{os.sep}tests{os.sep}" not in f[0]]
    # faulthandler lists the innermost frame first
    top = inside[0] if inside else (frames[0] if frames else ("?", "0", "?"))
    frame = f"{top[0].split(f'{os.sep}modelshield{os.sep}')[-1]}:{top[1]} in {top[2]}"
    data = inflight.read_bytes()
    seed = inflight.with_suffix(".seed").read_text()
    kind = "NativeHang" if "Timeout" in stack or frames else "WorkerDied"  # a hang dumps a stack; a crash not
    return Crash((kind, frame), "scan_stream", seed, data, data, stack or "(no stack: the worker died)")


# -- shrinking --------------------------------------------------------------------------------------------------


def shrink(data: bytes, still_crashes: Callable[[bytes], bool], *, budget_s: float = 20.0) -> bytes:
    """Delete chunks, halving their size, for as long as ``still_crashes`` holds (within ``budget_s``)."""
    deadline = time.monotonic() + budget_s
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, changed = 0, False
        while i < len(data) and time.monotonic() < deadline:
            candidate = data[:i] + data[i + chunk :]
            if candidate and still_crashes(candidate):
                data, changed = candidate, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return data


# -- differential mode ----------------------------------------------------------------------------------------------


def differential(count: int, seed: int, out: Path | None, batch: int = 500) -> int:
    """Generate ``count`` pickles, compare the scanner with the oracle; the number of disagreements."""
    from modelshield.testing.oracle import run_loaders

    diff = _test_module("test_differential")
    rng = random.Random(seed)  # noqa: S311 - reproducible generation
    failures = dangerous = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelshield-diff-") as tmp:
        for start in range(0, count, batch):
            pickles = [diff.random_pickle(rng) for _ in range(min(batch, count - start))]
            paths = []
            for i, data in enumerate(pickles):
                path = Path(tmp) / f"p{start + i}.pkl"
                path.write_bytes(data)
                paths.append(path)
            results = run_loaders([(p, "pickle") for p in paths], timeout=20)
            for data, path, result in zip(pickles, paths, results, strict=True):
                severity = diff.scanner_severity(data)
                dangerous += result.dangerous
                if result.dangerous and (severity is None or severity < Severity.HIGH):
                    failures += 1
                    text = diff.describe(data, severity, result)
                    print(text)
                    if out is not None:
                        out.mkdir(parents=True, exist_ok=True)
                        (out / f"diff-{failures:03d}.pkl").write_bytes(data)
                        (out / f"diff-{failures:03d}.txt").write_text(text)
                path.unlink()
    elapsed = time.monotonic() - t0
    print(
        f"differential: {count} pickles in {elapsed:.0f} s, {dangerous} dangerous by the oracle, "
        f"{failures} rated below high by the scanner"
    )
    return failures


# -- main ---------------------------------------------------------------------------------------------------------


def _write_group(out: Path, number: int, crash: Crash) -> None:
    folder = out / f"group-{number:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "first.bin").write_bytes(crash.first)
    (folder / "smallest.bin").write_bytes(crash.data)
    if crash.minimal is not None:
        (folder / "minimal.bin").write_bytes(crash.minimal)
    (folder / "traceback.txt").write_text(
        f"group: {crash.key[0]} at {crash.key[1]}\nwhere: {crash.where}\nseed: {crash.seed}\ncount: {crash.count}\n"
        f"minimal: {crash.minimal!r}\n\n{crash.text}"
    )


def _run_workers(seeds: list[Any], args: argparse.Namespace) -> list[tuple[int, int, list[Crash]]]:
    """Fuzz on ``args.workers`` processes for ``args.seconds``; a worker that a stuck check ends is replaced."""
    context = multiprocessing.get_context("fork")
    queue: Any = context.Queue()
    scratch = Path(tempfile.mkdtemp(prefix="modelshield-fuzz-inflight-"))
    end = time.monotonic() + args.seconds
    hangs: list[Crash] = []
    running: dict[int, Any] = {}

    def start(index: int) -> None:
        target = scratch / f"worker-{index}.bin"
        remaining = end - time.monotonic()
        process = context.Process(
            target=_worker, args=(index, seeds, remaining, args.seed, args.hang_seconds, target, queue)
        )
        process.start()
        running[index] = process

    for i in range(args.workers):
        start(i)
    results = []
    next_index = args.workers
    while running:
        try:
            result = queue.get(timeout=1.0)
        except Exception:  # noqa: S110 - queue.Empty: look for workers a stuck check ended
            pass
        else:
            results.append(result)
            running.pop(result[0]).join()
            continue
        for index, process in list(running.items()):
            if process.exitcode is not None and queue.empty():
                running.pop(index)
                hangs.append(_native_hang(scratch / f"worker-{index}.bin"))
                print(f"worker {index} stuck in native code: {hangs[-1].key[1]}", file=sys.stderr)
                if end - time.monotonic() > 5:
                    start(next_index)
                    next_index += 1
    results.append((-1, len(hangs), hangs))
    return results


def _shrink_and_print(ordered: list[Crash], seeds: list[Any], args: argparse.Namespace) -> None:
    """Shrink each group's smallest input (not hangs: they would stop this process), print, and save them."""
    signal.signal(signal.SIGALRM, _on_alarm)
    checker = Checker(args.hang_seconds)
    fmt_of = {s.name: s.format for s in seeds}
    for crash in ordered:
        fmt = fmt_of[crash.seed]

        def same(candidate: bytes, crash: Crash = crash, fmt: ModelFormat = fmt) -> bool:
            return any(key == crash.key for key, _w, _t in checker.check(candidate, fmt, only=crash.where))

        if crash.key[0] in {"NativeHang", "WorkerDied"}:  # would hang or kill this process: not shrunk here
            continue
        crash.minimal = shrink(crash.data, same, budget_s=args.shrink_seconds) if same(crash.data) else None
    print(f"{len(ordered)} crash groups")
    for number, crash in enumerate(ordered, 1):
        last = crash.text.strip().splitlines()[-1]
        print(f"\n[{number}] {crash.key[0]} at {crash.key[1]}  x{crash.count}  ({crash.where}, seed {crash.seed})")
        print(f"    {last[:200]}")
        shown = crash.minimal if crash.minimal is not None else crash.data
        print(f"    reproducer ({len(shown)} bytes): {shown[:160]!r}")
        if args.out is not None:
            _write_group(args.out, number, crash)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="folder for crashing inputs and their tracebacks")
    parser.add_argument("--hang-seconds", type=float, default=10.0)
    parser.add_argument("--no-keras", action="store_true", help="skip the seeds Keras itself writes (slow import)")
    parser.add_argument("--shrink-seconds", type=float, default=20.0, help="per crash group")
    parser.add_argument("--formats", default="", help="fuzz only seeds of these formats (comma-separated values)")
    parser.add_argument("--differential", type=int, default=0, metavar="N", help="compare N pickles with the oracle")
    args = parser.parse_args(argv)
    if args.differential:
        return 1 if differential(args.differential, args.seed, args.out) else 0

    with tempfile.TemporaryDirectory(prefix="modelshield-fuzz-") as tmp:
        t0 = time.monotonic()
        seeds = build_seeds(Path(tmp), keras=not args.no_keras)
    if args.formats:
        wanted = set(args.formats.split(","))
        seeds = [s for s in seeds if s.format.value in wanted]
    formats = sorted({s.format.value for s in seeds})
    print(f"{len(seeds)} seeds of {len(formats)} formats in {time.monotonic() - t0:.1f} s: {', '.join(formats)}")
    unseeded = sorted({f.value for s in builtin_scanners() for f in s.formats} - set(formats))
    if unseeded:
        print(f"formats without a seed: {', '.join(unseeded)}")

    t0 = time.monotonic()
    results = _run_workers(seeds, args)
    elapsed = time.monotonic() - t0
    mutants = sum(r[1] for r in results)
    groups: dict[GroupKey, Crash] = {}
    for _index, _count, crashes in results:
        for crash in crashes:
            mine = groups.get(crash.key)
            if mine is None:
                groups[crash.key] = crash
            else:
                mine.count += crash.count
                if len(crash.data) < len(mine.data):
                    mine.data, mine.where, mine.seed = crash.data, crash.where, crash.seed
    print(f"{mutants:,} mutants in {elapsed:.0f} s on {args.workers} workers: {mutants / elapsed:,.0f} mutants/s")

    ordered = sorted(groups.values(), key=lambda c: -c.count)
    _shrink_and_print(ordered, seeds, args)
    return 1 if ordered else 0


if __name__ == "__main__":
    sys.exit(main())
