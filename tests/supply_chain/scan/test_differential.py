"""Differential fuzzing: random grammatical pickles, judged by the scanner and by loading them in the oracle.

A pickle that reaches a dangerous event when :func:`pickle.load` reads it (the ground-truth oracle,
:mod:`modelshield.testing.oracle`, in a throw-away sandbox process) while the scanner rates it below high is a
failing example. The generator writes pickles opcode by opcode: constants in every encoding (protocol-0 ``STRING``
with escapes, ``UNICODE`` in raw-unicode-escape, text and binary integers, floats, bytes), containers built every
way (``MARK``/``TUPLE``/``LIST``/``DICT``, ``APPENDS``, ``SETITEMS``, ``ADDITEMS``), memo ``PUT``/``GET`` in
all widths and ``MEMOIZE``, callables imported with ``GLOBAL``, ``STACK_GLOBAL`` or ``INST`` and called with
``REDUCE``, ``INST``, ``OBJ``, ``NEWOBJ`` or ``NEWOBJ_EX``, ``BUILD`` on what a call returned, ``getattr`` chains,
with or without a ``PROTO`` header and ``FRAME``s. The callables mix data constructors with callables that are
dangerous but harmless when run here (``os.system('true')``, ``eval('1')``, a marker file in the oracle's own
temporary folder).

    >>> import random, pickletools
    >>> [op.name for op, _arg, _pos in pickletools.genops(random_pickle(random.Random(0)))][-1]
    'STOP'

The suite runs one seeded batch through one oracle process; ``benchmarks/scan/fuzz.py --differential N`` runs
a long one.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelshield.findings import Severity
from modelshield.supply_chain.scan.scanner import Scanner

# -- the generator ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Callee:
    """A callable the generator may import and call, with the arguments it is called with."""

    module: str
    name: str
    args: tuple[Any, ...]
    dangerous: bool  # what the generator means, for the report; the oracle decides


@dataclass(frozen=True)
class Ref:
    """An argument that is a callable itself (``module.name``, imported, not called)."""

    module: str
    name: str


@dataclass(frozen=True)
class Make:
    """An argument that is the result of calling a data constructor."""

    module: str
    name: str
    args: tuple[Any, ...]


_MARKER = "h5-marker"  # a relative path: the oracle runs each load in a temporary folder of its own

#: Data constructors, as benign files use them.
HARMLESS: tuple[Callee, ...] = (
    Callee("collections", "OrderedDict", (), False),
    Callee("collections", "OrderedDict", ([("a", 1), ("b", 2)],), False),
    Callee("builtins", "dict", (), False),
    Callee("builtins", "list", ((1, 2),), False),
    Callee("builtins", "set", ((1, 2),), False),
    Callee("builtins", "frozenset", ((1,),), False),
    Callee("builtins", "complex", (1.0, 2.0), False),
    Callee("builtins", "bytearray", (b"ab",), False),
    Callee("builtins", "slice", (1, 5, None), False),
    Callee("datetime", "date", (2024, 1, 2), False),
    Callee("datetime", "timedelta", (1, 2), False),
    Callee("decimal", "Decimal", ("1.5",), False),
    Callee("fractions", "Fraction", (1, 3), False),
    Callee("copyreg", "_reconstructor", (Ref("collections", "OrderedDict"), Ref("builtins", "object"), None), False),
    Callee("numpy", "dtype", ("f8", False, True), False),
    Callee(
        "numpy._core.multiarray", "scalar", (Make("numpy", "dtype", ("i8", False, True)), b"\x01" + bytes(7)), False
    ),
    Callee("numpy", "ndarray", ((0,),), False),
    Callee("torch", "Size", ((2, 3),), False),
    Callee("torch._utils", "_rebuild_parameter", (None, False, ()), False),  # fails on None: harmless either way
    Callee("os", "getcwd", (), False),
)

#: Callables that are dangerous, run with arguments that do no harm.
DANGEROUS: tuple[Callee, ...] = (
    Callee("os", "system", ("true",), True),
    Callee("posix", "system", ("true",), True),
    Callee("os", "popen", ("true",), True),
    Callee("subprocess", "check_output", (["true"],), True),
    Callee("subprocess", "getoutput", ("true",), True),
    Callee("subprocess", "run", (["true"],), True),
    Callee("builtins", "eval", ("1",), True),
    Callee("builtins", "exec", ("x = 1",), True),
    Callee("builtins", "compile", ("1", "<s>", "eval"), True),
    Callee("builtins", "__import__", ("this",), True),
    Callee("importlib", "import_module", ("this",), True),
    Callee("builtins", "open", (_MARKER, "w"), True),
    Callee("io", "open", (_MARKER, "w"), True),
    Callee("_io", "FileIO", (_MARKER, "w"), True),
    Callee("pathlib", "Path.touch", (), True),  # a method: see _emit_call
    Callee("linecache", "getline", ("/etc/hostname", 1), True),
    Callee("timeit", "timeit", ("1", "pass", None, 1), True),
    Callee("code", "compile_command", ("1",), True),
    Callee("ctypes", "CDLL", (None,), True),
    Callee("pickle", "loads", (b"cos\nsystem\n(S'true'\ntR.",), True),
    Callee("_pickle", "loads", (b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.",), True),
    Callee("functools", "partial", (Ref("os", "system"), "true"), True),  # called again with REDUCE ()
    Callee("operator", "methodcaller", ("touch",), True),
    # Callables off the usual lists: private CPython helpers that shell out, other writers, fetchers, runners.
    Callee("os", "spawnlp", (0, "true", "true"), True),
    Callee("os", "posix_spawnp", ("true", ["true"], {}), True),
    Callee("_osx_support", "_read_output", ("true",), True),
    Callee("uuid", "_get_command_stdout", ("true",), True),
    Callee("pydoc", "pipepager", ("x", "true"), True),
    Callee("imaplib", "IMAP4_stream", ("true",), True),
    Callee("ctypes.util", "find_library", ("h5-no-such-library",), True),
    Callee("runpy", "run_module", ("this",), True),
    Callee("shelve", "open", (_MARKER,), True),
    Callee("dbm", "open", (_MARKER, "c"), True),
    Callee("tempfile", "mkdtemp", (), True),
    Callee("urllib.request", "urlopen", ("http://127.0.0.1:9/",), True),
    Callee("numpy.testing._private.utils", "runstring", ("x = 1", {}), True),
    Callee("operator", "attrgetter", ("system",), True),  # attrgetter("system")(os)("true")
)


@dataclass
class _Writer:
    """Writes one pickle, choosing at random among the opcodes that encode each value."""

    rng: random.Random
    out: bytearray = field(default_factory=bytearray)
    memo: int = 0  # the next memo key (PUT keys and MEMOIZE agree: keys are 0, 1, 2 ...)
    calls: list[str] = field(default_factory=list)

    # -- scalars ----------------------------------------------------------------------------------------------
    def put(self) -> int | None:
        """Maybe memoize the top of the stack; its key, or None."""
        if self.rng.random() > 0.3:
            return None
        key, self.memo = self.memo, self.memo + 1
        how = self.rng.randrange(4)
        if how == 0:
            self.out += b"p%d\n" % key
        elif how == 1 and key < 256:
            self.out += b"q" + bytes([key])
        elif how == 2:
            self.out += b"r" + struct.pack("<I", key)
        else:
            self.out += b"\x94"
        return key

    def get(self, key: int) -> None:
        how = self.rng.randrange(3)
        if how == 0:
            self.out += b"g%d\n" % key
        elif how == 1 and key < 256:
            self.out += b"h" + bytes([key])
        else:
            self.out += b"j" + struct.pack("<I", key)

    def text(self, value: str) -> None:
        """A str in one of the string opcodes that load as str."""
        raw = value.encode()
        choices: list[Callable[[], bytes]] = [
            lambda: b"X" + struct.pack("<I", len(raw)) + raw,
            lambda: b"\x8d" + struct.pack("<Q", len(raw)) + raw,
            lambda: b"V" + value.encode("raw-unicode-escape").replace(b"\n", b"\\u000a") + b"\n",
        ]
        if len(raw) < 256:
            choices.append(lambda: b"\x8c" + bytes([len(raw)]) + raw)
        if value.isascii():  # protocol-0 and 1 byte strings load as str (ASCII) in Python 3
            choices += [
                lambda: b"S" + _py2_repr(value, self.rng) + b"\n",
                lambda: b"T" + struct.pack("<i", len(raw)) + raw,
            ]
            if len(raw) < 256:
                choices.append(lambda: b"U" + bytes([len(raw)]) + raw)
        self.out += self.rng.choice(choices)()
        self.put()

    def integer(self, value: int) -> None:
        choices: list[Callable[[], bytes]] = [
            lambda: b"I%d\n" % value,
            lambda: b"L%dL\n" % value,
            lambda: b"L%d\n" % value,
            lambda: b"\x8a" + bytes([len(enc := pickle.encode_long(value))]) + enc,
            lambda: b"\x8b" + struct.pack("<i", len(enc := pickle.encode_long(value))) + enc,
        ]
        if 0 <= value < 256:
            choices.append(lambda: b"K" + bytes([value]))
        if 0 <= value < 65536:
            choices.append(lambda: b"M" + struct.pack("<H", value))
        if -(2**31) <= value < 2**31:
            choices.append(lambda: b"J" + struct.pack("<i", value))
        self.out += self.rng.choice(choices)()

    def value(self, v: Any, depth: int = 0) -> None:
        """Push ``v``: a constant, a tuple or list of values, a :class:`Make` or a :class:`Ref`."""
        if v is None:
            self.out += b"N"
        elif v is True or v is False:
            self.out += self.rng.choice([b"\x88" if v else b"\x89", b"I01\n" if v else b"I00\n"])
        elif isinstance(v, int):
            self.integer(v)
        elif isinstance(v, float):
            self.out += self.rng.choice([b"F%r\n" % v, b"G" + struct.pack(">d", v)])
        elif isinstance(v, str):
            self.text(v)
        elif isinstance(v, bytes):
            self.out += self.rng.choice(
                [
                    b"C" + bytes([len(v)]) + v,
                    b"B" + struct.pack("<I", len(v)) + v,
                    b"\x8e" + struct.pack("<Q", len(v)) + v,
                ]
            )
            self.put()
        elif isinstance(v, Make):
            self.call(Callee(v.module, v.name, v.args, False), depth + 1)
        elif isinstance(v, Ref):
            self.global_ref(v.module, v.name)
        elif isinstance(v, tuple):
            self.tuple_of(list(v), depth)
        elif isinstance(v, list):
            self.list_of(v, depth)
        elif isinstance(v, dict):
            self.out += b"}"
            self.put()
            if v:
                self.out += b"("
                for key, item in v.items():
                    self.value(key, depth)
                    self.value(item, depth)
                self.out += b"u"
        else:
            raise TypeError(v)

    def tuple_of(self, items: list[Any], depth: int) -> None:
        if not items and self.rng.random() < 0.7:
            self.out += b")"
        elif 1 <= len(items) <= 3 and self.rng.random() < 0.6:
            for item in items:
                self.value(item, depth)
            self.out += bytes([0x84 + len(items)])
        else:
            self.out += b"("
            for item in items:
                self.value(item, depth)
            self.out += b"t"
        self.put()

    def list_of(self, items: list[Any], depth: int) -> None:
        how = self.rng.randrange(3)
        if how == 0:
            self.out += b"("
            for item in items:
                self.value(item, depth)
            self.out += b"l"
        else:
            self.out += b"]"
            self.put()
            if how == 1:
                for item in items:
                    self.value(item, depth)
                    self.out += b"a"
            else:
                self.out += b"("
                for item in items:
                    self.value(item, depth)
                self.out += b"e"
        self.put()

    # -- callables ------------------------------------------------------------------------------------------------
    def global_ref(self, module: str, name: str) -> None:
        """Push the callable ``module.name`` with GLOBAL or STACK_GLOBAL."""
        if self.rng.random() < 0.5 and "\n" not in module + name:
            self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        else:
            self.text(module)
            self.text(name)
            self.out += b"\x93"
        self.put()

    def call(self, callee: Callee, depth: int = 0) -> None:
        """Push the result of calling ``callee`` (imported and invoked one of the ways a pickle can)."""
        self.calls.append(f"{callee.module}.{callee.name}{callee.args!r}")
        if callee.name == "Path.touch":  # a method: pathlib.Path(marker), then getattr(path, "touch")()
            self.invoke_reduce(("builtins", "getattr"), [Make("pathlib", "Path", (_MARKER,)), "touch"], depth)
            self.out += b")R"
            return
        if callee.module == "operator" and callee.name == "attrgetter":  # attrgetter("system")(os)("true")
            self.invoke_reduce((callee.module, callee.name), list(callee.args), depth)
            self.value((Make("importlib", "import_module", ("os",)),), depth + 1)
            self.out += b"R"
            self.value(("true",), depth + 1)
            self.out += b"R"
            return
        if callee.module == "operator":  # methodcaller("touch")(Path(marker))
            self.invoke_reduce((callee.module, callee.name), list(callee.args), depth)
            self.value((Make("pathlib", "Path", (_MARKER,)),), depth + 1)
            self.out += b"R"
            return
        if callee.module == "functools":  # partial(f, *args)()
            self.invoke_reduce((callee.module, callee.name), list(callee.args), depth)
            self.out += b")R"
            return
        how = self.rng.choice(("reduce", "reduce", "reduce", "inst", "obj", "getattr", "newobj"))
        if how == "inst" and all("\n" not in s for s in (callee.module, callee.name)):
            self.out += b"("
            for arg in callee.args:
                self.value(arg, depth + 1)
            self.out += b"i" + callee.module.encode() + b"\n" + callee.name.encode() + b"\n"
            self.put()
        elif how == "obj":
            self.out += b"("
            self.global_ref(callee.module, callee.name)
            for arg in callee.args:
                self.value(arg, depth + 1)
            self.out += b"o"
            self.put()
        elif how == "getattr":  # getattr(import_module(module), name)(*args)
            module = Make("importlib", "import_module", (callee.module,))
            self.invoke_reduce(("builtins", "getattr"), [module, callee.name], depth)
            self.value(tuple(callee.args), depth + 1)
            self.out += b"R"
            self.put()
        elif how == "newobj":  # classes only get past cls.__new__; for a function this fails before any call
            self.global_ref(callee.module, callee.name)
            self.value(tuple(callee.args), depth + 1)
            if self.rng.random() < 0.5:
                self.out += b"\x81"
            else:
                self.out += b"}"
                self.out += b"\x92"
            self.put()
        else:
            self.invoke_reduce((callee.module, callee.name), list(callee.args), depth)
        if self.rng.random() < 0.15:  # BUILD on what the call returned
            self.out += b"}"
            self.text("attr")
            self.integer(1)
            self.out += b"s"
            self.out += b"b"

    def invoke_reduce(self, target: tuple[str, str], args: list[Any], depth: int) -> None:
        self.global_ref(*target)
        self.value(tuple(args), depth + 1)
        self.out += b"R"
        self.put()


def _py2_repr(value: str, rng: random.Random) -> bytes:
    """A protocol-0 STRING argument: quoted, with escapes the loader decodes (``\\x41``, ``\\101``, ``\\n``)."""
    out = []
    for ch in value:
        r = rng.random()
        if ch in "'\\" or not ch.isprintable() or r < 0.1:
            out.append(f"\\x{ord(ch):02x}")
        elif r < 0.15:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return ("'" + "".join(out) + "'").encode("ascii")


_CONSTANTS: tuple[Any, ...] = (0, 1, -1, 255, 256, 65535, 2**31, -(2**31) - 1, 2**70, 1.5, -0.0, "w", "layer.0",
                               "caf\u00e9", "\u0663", "a\nb", b"\x00\xff", None, True, False)  # fmt: skip


@dataclass(frozen=True)
class Generated:
    """A generated pickle and the calls it was written to make."""

    data: bytes
    calls: tuple[str, ...]


def generate(rng: random.Random) -> Generated:
    """One random grammatical pickle: a PROTO header or none, some constants, containers and calls, then STOP."""
    w = _Writer(rng)
    proto = rng.choice((None, None, 0, 1, 2, 3, 4, 5))
    if proto is not None:
        w.out += b"\x80" + bytes([proto])
    start = len(w.out)
    items = rng.randint(1, 5)
    w.out += b"("  # everything lands in one tuple
    memoized: list[int] = []
    for _ in range(items):
        kind = rng.random()
        if kind < 0.25:
            w.value(rng.choice(_CONSTANTS))
        elif kind < 0.4:
            w.value([rng.choice(_CONSTANTS) for _ in range(rng.randint(0, 3))])
        elif kind < 0.65:
            w.call(rng.choice(HARMLESS))
        elif kind < 0.9:
            w.call(rng.choice(DANGEROUS))
        elif memoized:
            w.get(rng.choice(memoized))
        else:
            w.out += b"}"  # an empty dict, filled by SETITEMS
            key = w.put()
            if key is not None:
                memoized.append(key)
            w.out += b"("
            w.text("k")
            w.value(rng.choice(_CONSTANTS))
            w.out += b"u"
        if rng.random() < 0.2:  # a memo entry for later GETs
            w.out += b"\x94"
            memoized.append(w.memo)
            w.memo += 1
    w.out += b"t."
    body = bytes(w.out[start:])
    if proto is not None and proto >= 4 and rng.random() < 0.6:
        body = b"\x95" + struct.pack("<Q", len(body)) + body  # one frame around everything
    data = bytes(w.out[:start]) + body
    if rng.random() < 0.1:
        data += rng.choice((b"\n", b"garbage", b"\x00" * 4))  # a loader stops at STOP
    return Generated(data, tuple(w.calls))


def random_pickle(rng: random.Random) -> bytes:
    """The bytes of :func:`generate`."""
    return generate(rng).data


def pickles() -> st.SearchStrategy[bytes]:
    """A hypothesis strategy of random grammatical pickles."""
    return st.randoms(use_true_random=False).map(random_pickle)


# -- judging ------------------------------------------------------------------------------------------------------


def scanner_severity(data: bytes) -> Severity | None:
    """The worst severity the scanner gives ``data`` as a file of its own (None: no findings)."""
    findings = Scanner().scan_stream(io.BytesIO(data), len(data), location="generated.pkl")
    return max((f.severity for f in findings), default=None)


def describe(data: bytes, severity: Severity | None, result: Any) -> str:
    """A failing example: the oracle's events, the scanner's verdict, and the pickle disassembled."""
    out = io.StringIO()
    try:
        pickletools.dis(data, out=out)
    except Exception as exc:
        out.write(f"(disassembly stops: {exc})\n")
    events = "; ".join(result.events[:4])
    return f"scanner: {severity.value if severity else 'clean'}; oracle: {events}\nbytes: {data!r}\n{out.getvalue()}"


# -- the tests ----------------------------------------------------------------------------------------------------

_BATCH = 40
_SEED = 14


@settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pickles())
def test_generated_pickles_are_grammatical_and_scan_without_crashing(data: bytes) -> None:
    ops = list(pickletools.genops(data))  # raises on any opcode or argument that is not well formed
    assert ops[-1][0].name == "STOP"
    findings = Scanner().scan_stream(io.BytesIO(data), len(data), location="generated.pkl")
    assert [f for f in findings if f.id in {"scan.internal-error", "pickle.parse-error"}] == []


def test_generator_reaches_every_callee_and_opcode_family() -> None:
    rng = random.Random(_SEED)
    batch = [generate(rng) for _ in range(400)]
    called = {c.split("(")[0] for g in batch for c in g.calls}
    expected = {f"{c.module}.{c.name}" for c in (*HARMLESS, *DANGEROUS)}
    assert expected - called == set()
    names = {op.name for g in batch for op, _arg, _pos in pickletools.genops(g.data)}
    wanted = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD", "STRING"}
    wanted |= {"UNICODE", "SHORT_BINSTRING", "BINSTRING", "BINUNICODE8", "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
    wanted |= {"GET", "BINGET", "LONG_BINGET", "FRAME", "PROTO", "SETITEMS", "APPENDS", "LONG1", "LONG4", "INT"}
    assert wanted - names == set()


def test_no_pickle_that_runs_a_dangerous_call_is_rated_below_high(tmp_path: Path) -> None:
    oracle = pytest.importorskip("modelshield.testing.oracle")
    rng = random.Random(_SEED)
    batch = [random_pickle(rng) for _ in range(_BATCH)]
    paths = []
    for i, data in enumerate(batch):
        path = tmp_path / f"g{i:03d}.pkl"
        path.write_bytes(data)
        paths.append(path)
    results = oracle.run_loaders([(p, "pickle") for p in paths], timeout=20)
    assert sum(r.dangerous for r in results) >= _BATCH // 4  # the batch must exercise the property
    missed = []
    for data, result in zip(batch, results, strict=True):
        severity = scanner_severity(data)
        if result.dangerous and (severity is None or severity < Severity.HIGH):
            missed.append(describe(data, severity, result))
    assert missed == [], f"{len(missed)} dangerous pickles rated below high:\n\n" + "\n\n".join(missed[:3])
