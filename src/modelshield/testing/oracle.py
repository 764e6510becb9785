"""A ground-truth oracle: load a model file with its real loader in a throw-away process and report what it did.

    >>> import pickle
    >>> from pathlib import Path
    >>> from modelshield.testing.oracle import run_loader
    >>> _ = Path("w.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))  # doctest: +SKIP
    >>> run_loader("w.pkl", "pickle").dangerous  # doctest: +SKIP
    False

This runs untrusted files on purpose, so it is a test helper, never part of a scan. :func:`run_loaders` starts one
subprocess (``python -I``, a fresh temporary directory as its working directory and ``HOME``, an environment
without proxies or ``PYTHON*`` variables) that imports the loaders' libraries once and warms each loader up on a
benign file of its own, so that what a normal load imports is already imported. For each file it then forks a
child that installs a :func:`sys.addaudithook` hook right before the loader call and reports the dangerous events
back over a pipe. Dangerous events are:

- process creation (``os.system``, ``os.exec*``, ``os.posix_spawn``, ``os.spawn*``, ``subprocess.Popen``,
  ``os.fork``, ``pty.spawn``), sockets (``connect``, ``bind``, ``getaddrinfo`` ...), ``urllib.Request``,
  ``webbrowser.open``, ``ctypes`` library loads and raw memory access;
- file writes, creations, removals, renames and mode changes anywhere; file reads outside the model's folder and
  the interpreter's own files (``sys.prefix``, the standard library, ``site-packages``, ``/proc``, ``/sys``,
  ``/dev``);
- ``exec``/``compile``/``marshal.loads`` of code that no installed library's own code asked for (the caller is
  checked against the few library functions that generate code: ``namedtuple``, ``dataclasses``, Jinja's
  compiler), ``input`` and ``breakpoint``;
- the import of a module that was not imported after the warm-up and that is not a sub-module of a library that
  was (an attack importing ``antigravity``, ``this`` or ``http.server`` counts);
- the marker file named by ``MODELSHIELD_ORACLE_MARKER`` existing after the load (for what a hook cannot see:
  shell commands of a child process). Native code (onnxruntime's own file reads) is invisible to the hook.

A load that runs past ``timeout`` is killed and reported with ``error="timeout ..."``; it is dangerous only when
events happened before it was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

__all__ = ["LOADERS", "OracleResult", "run_loader", "run_loaders"]

#: The loaders the oracle knows, by name.
LOADERS: tuple[str, ...] = (
    "pickle",
    "torch",
    "joblib",
    "numpy",
    "keras",
    "keras-unsafe",
    "onnx",
    "gguf-template",
    "torchscript",
)

MARKER_VARIABLE = "MODELSHIELD_ORACLE_MARKER"
_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}  # what servers pass to chat templates


@dataclass(frozen=True)
class OracleResult:
    """What loading one file with one loader did."""

    path: str
    loader: str
    dangerous: bool  # a dangerous event happened, or the marker file appeared
    events: tuple[str, ...]  # the dangerous events, one plain line each
    loaded: bool  # the loader returned without raising
    error: str | None  # the loader's exception as one line, if any


def run_loader(path: str | Path, loader: str, *, timeout: float = 60.0) -> OracleResult:
    """Load ``path`` with ``loader`` (one of :data:`LOADERS`) in a sandboxed subprocess and report what happened."""
    return run_loaders([(path, loader)], timeout=timeout)[0]


def run_loaders(items: Sequence[tuple[str | Path, str]], *, timeout: float = 60.0) -> list[OracleResult]:
    """Load each ``(path, loader)`` pair in a child of one sandboxed subprocess; results in the same order.

    Raises ValueError for an unknown loader and RuntimeError when the sandbox process itself fails.
    """
    jobs = []
    for path, loader in items:
        if loader not in LOADERS:
            raise ValueError(f"Unknown loader {loader!r}; choose one of {', '.join(LOADERS)}.")
        jobs.append({"path": os.path.abspath(os.fspath(path)), "loader": loader})
    if not jobs:
        return []
    with tempfile.TemporaryDirectory(prefix="modelshield-oracle-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        (work / "scratch").mkdir()
        (work / "jobs.json").write_text(json.dumps({"jobs": jobs, "timeout": timeout}))
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work / "home"),
            "TMPDIR": str(work / "scratch"),
            "LANG": "C.UTF-8",
            "KERAS_BACKEND": "torch",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            MARKER_VARIABLE: str(work / "marker"),
        }
        budget = 300 + timeout * (len(jobs) + 4)
        proc = subprocess.run(  # noqa: S603 - our own interpreter running this very module
            [sys.executable, "-I", os.path.abspath(__file__), str(work)],
            cwd=work / "home",
            env=env,
            capture_output=True,
            timeout=budget,
            check=False,
        )
        out = work / "results.json"
        if proc.returncode != 0 or not out.exists():
            tail = proc.stderr.decode("utf-8", "replace")[-2000:]
            raise RuntimeError(f"The oracle's sandbox process failed (exit {proc.returncode}): {tail}")
        raw = json.loads(out.read_text())
    return [
        OracleResult(
            path=r["path"],
            loader=r["loader"],
            dangerous=bool(r["dangerous"]),
            events=tuple(r["events"]),
            loaded=bool(r["loaded"]),
            error=r["error"],
        )
        for r in raw
    ]


# -- the sandbox process: everything below runs only there -------------------------------------------------------

_PROCESS_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
        "os.fork",
        "os.forkpty",
        "os.vfork",
        "pty.spawn",
        "os.startfile",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
    }
)
_NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.bind",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
        "socket.sendto",
        "socket.sendmsg",
        "urllib.Request",
        "webbrowser.open",
        "ftplib.connect",
        "smtplib.connect",
        "http.client.connect",
        "imaplib.open",
        "poplib.connect",
        "telnetlib.Telnet.open",
    }
)
_NATIVE_EVENTS = frozenset(
    {"ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function"}
)
_FS_CHANGE_EVENTS = frozenset(
    {
        "os.remove",
        "os.rename",
        "os.mkdir",
        "os.rmdir",
        "os.chmod",
        "os.chown",
        "os.symlink",
        "os.link",
        "os.truncate",
        "os.utime",
        "os.chflags",
        "os.lchflags",
        "os.putenv",
        "os.unsetenv",
        "os.chdir",
        "shutil.copyfile",
        "shutil.copymode",
        "shutil.copystat",
        "shutil.copytree",
        "shutil.move",
        "shutil.rmtree",
        "shutil.make_archive",
        "shutil.unpack_archive",
        "tempfile.mkstemp",
        "tempfile.mkdtemp",
        "sqlite3.connect",
        "shelve.open",
        "dbm.open",
    }
)
_CODE_EVENTS = frozenset({"exec", "compile", "marshal.loads", "marshal.load", "code.__new__", "function.__new__"})
_OTHER_EVENTS = frozenset(
    {"builtins.input", "builtins.breakpoint", "pdb.Pdb", "sys.settrace", "sys.setprofile", "sys.addaudithook"}
)
_READ_LIST_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "glob.glob/2"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

# Library functions that generate and compile code as their normal business: (file name tail, function name).
_CODEGEN_CALLERS = frozenset(
    {
        ("collections/__init__.py", "namedtuple"),
        ("dataclasses.py", "_create_fn"),
        ("dataclasses.py", "_create_slots"),
        ("jinja2/environment.py", "_compile"),
        ("jinja2/environment.py", "from_string"),
        ("jinja2/environment.py", "from_code"),
        ("jinja2/environment.py", "compile"),
        ("jinja2/nativetypes.py", "compile"),
        ("typing.py", "_eval_type"),
        ("typing.py", "_evaluate"),
        ("typing.py", "get_type_hints"),
        ("torch/_sources.py", "make_source_context"),
        ("ast.py", "parse"),  # an AST only, never code: numpy's header parser
        # The import system compiling and running a module: the import itself is judged by the "import" event.
        ("<frozen importlib._bootstrap_external>", "_compile_bytecode"),
        ("<frozen importlib._bootstrap_external>", "source_to_code"),
        ("<frozen importlib._bootstrap_external>", "get_code"),
        ("<frozen importlib._bootstrap>", "_call_with_frames_removed"),
    }
)

_LIBRARIES = ("numpy", "joblib", "torch", "sklearn", "scipy", "pandas", "pyarrow", "onnx", "onnxruntime", "jinja2")
_DATA_MODULES = (
    "argparse",
    "collections",
    "copyreg",
    "datetime",
    "decimal",
    "fractions",
    "uuid",
    "enum",
    "array",
    "re",
    "codecs",
    "pathlib",
    "typing",
    "dataclasses",
    "functools",
    "zipfile",
    "tarfile",
    "json",
    "pickle",
)


def _allowed_read_roots() -> tuple[str, ...]:
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/proc", "/sys", "/dev"}
    roots |= {p for p in sys.path if p}
    roots |= set(site.getsitepackages())
    roots |= {v for k, v in sysconfig.get_paths().items() if v}
    roots |= {"/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/share/zoneinfo", "/etc/ld.so.cache", "/etc/localtime"}
    return tuple(sorted({os.path.realpath(r) for r in roots}))


def _installed_tops() -> frozenset[str]:
    """The top-level names of the third-party packages imported so far (their sub-modules may load lazily)."""
    tops = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if "site-packages" in file or "dist-packages" in file:
            tops.add(name.split(".")[0])
    return frozenset(tops)


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


class _Recorder:
    """The child's audit hook: collects dangerous events while ``active``."""

    def __init__(self, model_dir: str, scratch: str, read_roots: tuple[str, ...]) -> None:
        self.model_dir = os.path.realpath(model_dir)
        self.scratch = os.path.realpath(scratch)
        self.read_roots = read_roots
        self.events: list[str] = []
        self.active = False
        self.known_modules = frozenset(sys.modules)
        self.known_tops = _installed_tops()

    def add(self, line: str) -> None:
        if len(self.events) < 200 and line not in self.events:
            self.events.append(line)

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        if not self.active:
            return
        self.active = False  # nothing the hook does may re-enter it
        try:
            self._judge(event, args)
        except Exception as exc:
            self.add(f"oracle hook error on {event}: {exc!r}")
        finally:
            self.active = True

    def _path(self, raw: object) -> str | None:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "surrogateescape")
        if isinstance(raw, os.PathLike):
            raw = os.fspath(raw)
        if not isinstance(raw, str):
            return None
        return os.path.realpath(raw)

    def _judge(self, event: str, args: tuple[object, ...]) -> None:
        if event in _PROCESS_EVENTS or event.startswith(("os.exec", "os.spawn", "os.posix_spawn")):
            self.add(f"process: {event} {_short(args)}")
        elif event in _NETWORK_EVENTS or event.startswith("socket."):
            if event != "socket.__new__":  # a socket that reaches nothing is not yet an event
                self.add(f"network: {event} {_short(args)}")
        elif event in _NATIVE_EVENTS:
            self.add(f"native: {event} {_short(args)}")
        elif event == "open":
            path = self._path(args[0])
            mode = args[1] if len(args) > 1 else "r"
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & _WRITE_FLAGS)
            if path is None:
                return
            if writes and not _under(path, (self.scratch,)):  # the loader's own temporary files are normal
                self.add(f"file write: {path} mode={mode!r}")
            elif not _under(path, (self.model_dir, self.scratch, *self.read_roots)):
                self.add(f"file read outside the model folder: {path}")
        elif event in _READ_LIST_EVENTS:
            path = self._path(args[0]) if args else None
            if path is not None and not _under(path, (self.model_dir, self.scratch, *self.read_roots)):
                self.add(f"directory listing outside the model folder: {path}")
        elif event in _FS_CHANGE_EVENTS or event.startswith("shutil."):
            paths = [self._path(a) for a in args]
            if event.startswith("tempfile.") or any(p is not None and _under(p, (self.scratch,)) for p in paths):
                return  # the loader's own temporary files, under TMPDIR
            self.add(f"file system change: {event} {_short(args)}")
        elif event in _CODE_EVENTS:
            caller = _caller()
            if caller not in _CODEGEN_CALLERS:
                self.add(f"code: {event} called from {caller[0]}:{caller[1]} {_short(args)}")
        elif event in _OTHER_EVENTS:
            self.add(f"interpreter: {event} {_short(args)}")
        elif event == "import":
            name = args[0] if args and isinstance(args[0], str) else "?"
            if name in self.known_modules or name.split(".")[0] in self.known_tops or name.startswith("encodings."):
                return
            self.add(f"import: {name}")
        elif event in {"os.system", "cpython.run_command", "cpython.run_file", "cpython.run_module"}:
            self.add(f"process: {event} {_short(args)}")


def _short(args: tuple[object, ...]) -> str:
    text = " ".join(repr(a) for a in args)
    text = " ".join(text.split())
    return text[:160]


def _caller() -> tuple[str, str]:
    """(file tail, function) of the innermost Python frame outside this module."""
    frame: FrameType | None = sys._getframe(1)
    here = os.path.abspath(__file__)
    while frame is not None and os.path.abspath(frame.f_code.co_filename) == here:
        frame = frame.f_back
    if frame is None:
        return ("?", "?")
    name = frame.f_code.co_filename.replace("\\", "/")
    parts = name.split("/")
    tail = (
        "/".join(parts[-2:])
        if len(parts) > 1 and parts[-1] in {"__init__.py", "environment.py", "nativetypes.py"}
        else parts[-1]
    )
    if "/torch/" in name and parts[-1] == "_sources.py":
        tail = "torch/_sources.py"
    return (tail, frame.f_code.co_name)


# -- loaders ---------------------------------------------------------------------------------------------------


def _load(path: str, loader: str) -> str | None:
    """Run ``loader`` on ``path``; a note on what the loader did, if any."""
    if loader == "pickle":
        import pickle

        with open(path, "rb") as fh:
            pickle.load(fh)  # noqa: S301 - that is the point
        return None
    if loader == "torch":
        import torch

        torch.load(path, weights_only=False, map_location="cpu")
        return None
    if loader == "joblib":
        import joblib

        joblib.load(path)
        return None
    if loader == "numpy":
        import numpy as np

        result = np.load(path, allow_pickle=True)
        if isinstance(result, np.lib.npyio.NpzFile):
            with result:
                for key in result.files:
                    _ = result[key]
        return None
    if loader in {"keras", "keras-unsafe"}:
        import keras  # type: ignore[import-untyped]

        keras.saving.load_model(path, safe_mode=loader == "keras")
        return None
    if loader == "onnx":
        import onnx

        model = onnx.load(path)
        import onnxruntime

        del model
        onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return None
    if loader == "gguf-template":
        import jinja2
        from gguf import GGUFReader

        reader = GGUFReader(path)
        field = reader.fields.get("tokenizer.chat_template")
        if field is None:
            return "no tokenizer.chat_template"
        template = bytes(field.parts[field.data[0]]).decode("utf-8")
        env = jinja2.Environment()  # noqa: S701 - deliberately unsandboxed, as vulnerable servers were
        env.from_string(template).render(
            messages=[{"role": "user", "content": "hi"}],
            add_generation_prompt=True,
            **_SPECIAL_TOKENS,
        )
        return None
    if loader == "torchscript":
        import torch

        torch.jit.load(path, map_location="cpu")  # type: ignore[no-untyped-call]
        return None
    raise ValueError(loader)


def _preload(loaders: set[str], work: Path) -> None:
    """Import what the loaders need and warm each one up on a benign file, so normal lazy imports are done."""
    import importlib

    for name in _DATA_MODULES:
        importlib.import_module(name)
    for name in (*_LIBRARIES, "gguf", "lz4.frame", "h5py", "sklearn.ensemble", "sklearn.linear_model"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112 - a library that is not installed is not preloaded
            continue
    warm = work / "warm"
    warm.mkdir(exist_ok=True)
    for loader in sorted(loaders):
        try:
            for path in _warm_files(loader, warm):
                _load(str(path), loader)
        except Exception:  # noqa: S112 - warming up is best effort
            continue


def _warm_files(loader: str, warm: Path) -> list[Path]:
    import pickle

    if loader == "pickle":
        path = warm / "w.pkl"
        path.write_bytes(pickle.dumps({"a": [1, 2.0, "x", b"y", (None,)], "b": {1, 2}}))
        return [path]
    if loader in {"torch", "torchscript"}:
        import torch

        net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
        if loader == "torchscript":
            path = warm / "w.ts"
            torch.jit.save(torch.jit.script(net), str(path))
            return [path]
        p1, p2 = warm / "w.pt", warm / "m.pt"
        torch.save({"sd": net.state_dict(), "opt": torch.optim.SGD(net.parameters(), lr=0.1).state_dict()}, p1)
        torch.save(net, p2)
        return [p1, p2]
    if loader == "joblib":
        import joblib
        import numpy as np

        paths = []
        for i, compress in enumerate((0, 3, ("lz4", 3), ("xz", 3))):
            path = warm / f"w{i}.joblib"
            try:
                joblib.dump({"a": np.arange(3.0), "o": np.array([{"k": 1}], dtype=object)}, path, compress=compress)
                paths.append(path)
            except Exception:  # noqa: S112
                continue
        return paths
    if loader == "numpy":
        import numpy as np

        p1, p2 = warm / "w.npy", warm / "w.npz"
        np.save(p1, np.arange(3.0))
        np.savez_compressed(p2, a=np.arange(3.0), o=np.array([1, "x"], dtype=object))
        return [p1, p2]
    if loader in {"keras", "keras-unsafe"}:
        import keras

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        path = warm / "w.keras"
        model.save(path)
        return [path]
    if loader == "onnx":
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        path = warm / "w.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        return [path]
    if loader == "gguf-template":
        import gguf

        path = warm / "w.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return [path]
    return []


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


#: Address space a loading child may add to what it maps when forked: the real unpickler grows its memo to any index
#: a stream names, so a hostile or fuzzed file could otherwise take the machine's memory (and the OOM killer the
#: test run); capped, the load ends in MemoryError.
CHILD_EXTRA_MEMORY = 4 << 30


def _cap_memory(extra: int) -> None:
    """Limit this (forked, throw-away) process's address space to what it maps now plus ``extra`` bytes."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm", encoding="ascii") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = mapped + extra if hard == resource.RLIM_INFINITY else min(mapped + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _child(job: dict[str, str], write_fd: int, scratch: str, read_roots: tuple[str, ...], marker: str) -> None:
    path, loader = job["path"], job["loader"]
    _cap_memory(CHILD_EXTRA_MEMORY)
    os.environ[MARKER_VARIABLE] = marker
    recorder = _Recorder(os.path.dirname(path), scratch, read_roots)
    sys.addaudithook(recorder)
    loaded, error = False, None
    recorder.active = True
    try:
        _load(path, loader)
        loaded = True
    except BaseException as exc:
        recorder.active = False
        error = _one_line(exc)
    recorder.active = False
    message = json.dumps({"events": recorder.events, "loaded": loaded, "error": error}).encode()
    view = memoryview(message)
    while view:
        n = os.write(write_fd, view)
        view = view[n:]
    os.close(write_fd)
    os._exit(0)


def _run_job(  # noqa: PLR0915 - fork, wait with a deadline, collect: one sequence
    job: dict[str, str], timeout: float, work: Path, read_roots: tuple[str, ...], index: int
) -> dict[str, object]:
    import select
    import signal
    import time

    marker = str(work / f"marker-{index}")
    before = set(os.listdir(work / "home"))
    scratch = str(work / "scratch")
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        try:
            _child(job, write_fd, scratch, read_roots, marker)
        finally:
            os._exit(3)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    try:
        report = json.loads(b"".join(chunks).decode()) if chunks else None
    except ValueError:
        report = None
    events: list[str] = list(report["events"]) if isinstance(report, dict) else []
    if timed_out:
        error: str | None = f"timeout after {timeout:g} s"
        loaded = False
    elif report is None:
        error, loaded = f"the loading process died (wait status {status})", False
    else:
        error, loaded = report["error"], bool(report["loaded"])
    if os.path.exists(marker):
        events.append(f"marker file created: {marker}")
    home = work / "home"
    for name in sorted(set(os.listdir(home)) - before):  # files made by native code, relative to the cwd
        events.append(f"file created in the working directory: {name}")
        _remove(home / name)
    return {
        "path": job["path"],
        "loader": job["loader"],
        "dangerous": bool(events),
        "events": events,
        "loaded": loaded,
        "error": error,
    }


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _serve(work: Path) -> None:
    spec = json.loads((work / "jobs.json").read_text())
    jobs: list[dict[str, str]] = spec["jobs"]
    timeout = float(spec["timeout"])
    _preload({j["loader"] for j in jobs}, work)
    read_roots = _allowed_read_roots()
    results = [_run_job(job, timeout, work, read_roots, i) for i, job in enumerate(jobs)]
    (work / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    _serve(Path(sys.argv[1]))
