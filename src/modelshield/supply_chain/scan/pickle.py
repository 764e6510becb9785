"""Static analysis of pickle streams: every callable a load would import or call, without executing anything.

    >>> import io, pickle
    >>> from modelshield.supply_chain.scan.pickle import analyse_pickle
    >>> result = analyse_pickle(io.BytesIO(pickle.dumps({"w": [1.0, 2.0]})))
    >>> result.imports, result.error
    ((), None)

The walker reads opcodes itself (large byte and string arguments are skipped with ``seek``, not read), and
simulates the unpickler's stack and memo, so it resolves the module and name of ``GLOBAL``, ``INST`` and
``STACK_GLOBAL`` even when the strings come from the memo, and knows which imports ``REDUCE``, ``OBJ``, ``INST``,
``NEWOBJ`` and ``BUILD`` act on. Several pickles back to back (legacy PyTorch files) are all read. A parse error
ends the walk where the real unpickler would stop, keeps everything found before it, and is reported; the bytes
after it are searched for the names of dangerous modules, since a more lenient loader may read on.
"""

from __future__ import annotations

import io
import pickletools
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

from modelshield.supply_chain.scan.policy import DEFAULT_POLICY, Classification, Policy, Verdict

__all__ = ["ImportRef", "PickleAnalysis", "PickleLimits", "analyse_pickle"]

_MAX_NESTING = 8  # joblib object arrays inside object arrays
_SHORT = 4096  # string arguments up to this size are kept (module/attribute names); longer ones are skipped
_MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class PickleLimits:
    """Hard limits against pickle bombs; hitting one ends the walk and is reported."""

    max_opcodes: int = 20_000_000
    max_memo: int = 5_000_000
    max_pickles: int = 64


@dataclass(frozen=True)
class ImportRef:
    """One callable the pickle imports: where, how, whether it is called, and the policy's verdict."""

    module: str
    name: str
    offset: int
    opcode: str
    classification: Classification
    invoked_by: str | None = None  # REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX or BUILD, when the pickle acts on it

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class PickleAnalysis:
    """What a pickle stream would import and call, and how the walk ended."""

    imports: tuple[ImportRef, ...]
    dynamic_imports: tuple[int, ...]  # offsets of STACK_GLOBALs whose operands are computed, not constants
    pickles: int
    opcodes: int
    protocol: int
    error: str | None = None
    error_offset: int | None = None
    limit: str | None = None
    builds_on_callables: tuple[int, ...] = ()  # offsets of BUILDs that set state on an imported callable itself
    trailing_names: tuple[str, ...] = ()  # dangerous names in bytes after a parse error
    trailing_bytes: int = 0

    @property
    def worst(self) -> Verdict:
        verdicts = {i.classification.verdict for i in self.imports}
        if Verdict.DANGEROUS in verdicts or self.dynamic_imports or self.trailing_names or self.builds_on_callables:
            return Verdict.DANGEROUS
        return Verdict.UNKNOWN if Verdict.UNKNOWN in verdicts else Verdict.SAFE


class _ParseError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _LimitError(Exception):
    pass


@dataclass
class _Str:
    value: str


@dataclass
class _Global:
    ref_index: int  # index into the imports list


@dataclass
class _Obj:
    made_by: int | None  # import index of the callable that made it, when known
    args: object = None  # what it was called with (REDUCE), when known


@dataclass
class _Val:
    """A constant the pickle built: int, bool, None, or a tuple or dict of stack items."""

    value: object


_MARK = object()
_ANY = object()

_OPCODES: dict[int, pickletools.OpcodeInfo] = {ord(op.code): op for op in pickletools.opcodes}

_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_INT_OPS = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_JOBLIB_WRAPPERS = frozenset({"joblib.numpy_pickle.NumpyArrayWrapper"})


class _Reader:
    """Reads opcodes and their arguments from a binary stream, skipping over large arguments."""

    def __init__(self, stream: BinaryIO, end: int) -> None:
        self.stream = stream
        self.end = end
        self._table = self._build_table()
        self._tell, self._read1 = stream.tell, stream.read

    def tell(self) -> int:
        return self.stream.tell()

    def _read(self, n: int, what: str) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise _ParseError(f"truncated stream: {what} needs {n} bytes, {len(data)} left", self.tell())
        return data

    def _line(self) -> bytes:
        """A newline-terminated argument; only its first ``_SHORT`` bytes are kept (long ones are data)."""
        kept = b""
        while True:
            chunk = self.stream.readline(_MAX_LINE)
            if not chunk:
                raise _ParseError("unterminated text argument", self.tell())
            if len(kept) < _SHORT:
                kept += chunk[: _SHORT - len(kept)]
            if chunk.endswith(b"\n"):
                return kept.removesuffix(b"\n") if len(kept) < _SHORT else kept

    def skip(self, n: int, pos: int) -> None:
        if n < 0 or self.tell() + n > self.end:
            raise _ParseError(f"array data of {n} bytes runs past the end of the stream", pos)
        self.stream.seek(n, io.SEEK_CUR)

    def _sized(self, n: int) -> bytes | None:
        if n < 0 or self.tell() + n > self.end:
            raise _ParseError(f"argument of {n} bytes runs past the end of the data", self.tell())
        if n > _SHORT:
            self.stream.seek(n, io.SEEK_CUR)
            return None
        return self._read(n, "argument")

    def next(self) -> tuple[pickletools.OpcodeInfo, object, int]:
        pos = self._tell()
        code = self._read1(1)
        if not code:
            raise _ParseError("stream ends without a STOP opcode", pos)
        entry = self._table.get(code[0])
        if entry is None:
            raise _ParseError(f"unknown opcode byte 0x{code[0]:02x}", pos)
        op, read_argument = entry
        return op, read_argument(), pos

    def _build_table(self) -> dict[int, tuple[pickletools.OpcodeInfo, Callable[[], object]]]:
        """For each opcode byte, the opcode and a function that reads its argument (chosen once, not per read)."""

        def fixed(fmt: str) -> Callable[[], object]:
            unpack, size = struct.Struct(fmt).unpack, struct.calcsize(fmt)
            return lambda: int(unpack(self._read(size, fmt))[0])

        def prefixed(fmt: str) -> Callable[[], object]:
            unpack, size = struct.Struct(fmt).unpack, struct.calcsize(fmt)
            return lambda: self._sized(int(unpack(self._read(size, fmt))[0]))

        readers: dict[str | None, Callable[[], object]] = {
            None: lambda: None,
            "uint1": fixed("<B"),
            "uint2": fixed("<H"),
            "int4": fixed("<i"),
            "uint4": fixed("<I"),
            "uint8": fixed("<Q"),
            "float8": lambda: self._read(8, "float8"),
            "stringnl_noescape_pair": lambda: (self._line(), self._line()),
        }
        for kind in (
            "decimalnl_short",
            "decimalnl_long",
            "floatnl",
            "stringnl",
            "unicodestringnl",
            "stringnl_noescape",
        ):
            readers[kind] = self._line
        for kinds, fmt in (
            (("string1", "bytes1", "unicodestring1", "long1"), "<B"),
            (("string4", "long4"), "<i"),
            (("bytes4", "unicodestring4"), "<I"),
            (("bytes8", "unicodestring8", "bytearray8"), "<Q"),
        ):
            for kind in kinds:
                readers[kind] = prefixed(fmt)
        return {code: (op, readers[op.arg.name if op.arg is not None else None]) for code, op in _OPCODES.items()}


def _text(raw: object) -> str | None:
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return None


def _int_arg(raw: object, pos: int) -> int:
    """An opcode's integer argument: binary already decoded, or the decimal text of protocol 0."""
    if isinstance(raw, int):
        return raw
    text = _text(raw)
    if text is not None:
        text = text.strip().removesuffix("L")  # protocol 0 writes longs as "123L"
    if text is None or not text.lstrip("-").isdigit():
        raise _ParseError(f"malformed integer argument {text!r}", pos)
    return int(text)


def _long(raw: object) -> int:
    return int.from_bytes(raw, "little", signed=True) if isinstance(raw, bytes) else 0


def _concrete(item: object) -> object:
    """The plain Python value of a constant stack item (ints, strings, None, tuples of them), else None."""
    if isinstance(item, _Str):
        return item.value
    if isinstance(item, _Val):
        if isinstance(item.value, tuple):
            return tuple(_concrete(v) for v in item.value)
        return item.value if not isinstance(item.value, dict) else None
    return None


def _dtype_code(dtype: object) -> str | None:
    """The type string of a ``numpy.dtype(code, ...)`` object rebuilt by the pickle, e.g. ``"f8"``."""
    if not isinstance(dtype, _Obj):
        return None
    call = dtype.args[0] if isinstance(dtype.args, tuple) else dtype.args
    args = _concrete(call)
    return args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else None


def _dtype_itemsize(dtype: object, code: str) -> int | None:
    # dtype.__setstate__ takes (version, byteorder, subarray, names, fields, elsize, alignment, flags):
    # elsize is authoritative for strings, voids and records.
    if isinstance(dtype, _Obj) and isinstance(dtype.args, tuple) and len(dtype.args) == 2:
        state = _concrete(dtype.args[1])
        if isinstance(state, tuple) and len(state) >= 6 and isinstance(state[5], int) and state[5] > 0:
            return state[5]
    match = re.fullmatch(r"[<>|=]?([biufcmMSUV])(\d+)(\[\w+\])?", code)
    if match is None:
        return None
    kind, size = match.group(1), int(match.group(2))
    return size * 4 if kind == "U" else size


def _quoted(raw: object) -> str | None:
    """The value of a protocol-0 STRING argument (a quoted repr)."""
    text = _text(raw)
    if text is None or len(text) < 2 or text[0] not in "'\"" or text[-1] != text[0]:
        return None
    return text[1:-1]


@dataclass
class _Walk:
    policy: Policy
    limits: PickleLimits
    imports: list[ImportRef] = field(default_factory=list)
    dynamic: list[int] = field(default_factory=list)
    builds: list[int] = field(default_factory=list)
    nesting: int = 0
    opcodes: int = 0
    protocol: int = 0

    def _made_by(self, obj: _Obj) -> str | None:
        return self.imports[obj.made_by].qualname if obj.made_by is not None else None

    def _skip_joblib_array(self, reader: _Reader, state: object, pos: int) -> None:
        """Step over the array data that joblib writes right after a NumpyArrayWrapper's BUILD.

        Numeric arrays are raw bytes (after an alignment padding byte); object arrays are a nested pickle, which
        is analysed like any other. When the size cannot be worked out, nothing is skipped and the walk reports
        what it then meets.
        """
        fields = state.value if isinstance(state, _Val) and isinstance(state.value, dict) else {}
        shape = _concrete(fields.get("shape"))
        dtype = fields.get("dtype")
        code = _dtype_code(dtype)
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape) or code is None:
            return
        if code.startswith(("O", "|O")):
            if self.nesting >= _MAX_NESTING:
                raise _LimitError(f"object arrays nested more than {_MAX_NESTING} deep")
            self.nesting += 1
            try:
                self.run_one(reader)  # the nested pickle of an object array
            finally:
                self.nesting -= 1
            return
        itemsize = _dtype_itemsize(dtype, code)
        if itemsize is None:
            return
        if _concrete(fields.get("numpy_array_alignment_bytes")) is not None:
            padding = reader.stream.read(1)
            if padding:
                reader.skip(padding[0], pos)
        count = 1
        for d in shape:
            count *= d
        reader.skip(count * itemsize, pos)

    def run_one(self, reader: _Reader) -> None:  # noqa: PLR0915 - one branch per opcode family
        stack: list[object] = []
        memo: dict[int, object] = {}

        def pop(pos: int) -> object:
            if not stack or stack[-1] is _MARK:
                raise _ParseError("stack underflow", pos)
            return stack.pop()

        def pop_mark(pos: int) -> list[object]:
            items: list[object] = []
            while stack:
                item = stack.pop()
                if item is _MARK:
                    items.reverse()
                    return items
                items.append(item)
            raise _ParseError("no MARK on the stack", pos)

        def add_import(module: str, name: str, pos: int, opcode: str) -> int:
            self.imports.append(ImportRef(module, name, pos, opcode, self.policy.classify(module, name)))
            return len(self.imports) - 1

        def invoke(item: object, how: str, args: object = None) -> _Obj:
            if isinstance(item, _Global):
                ref = self.imports[item.ref_index]
                if ref.invoked_by is None:
                    self.imports[item.ref_index] = ImportRef(
                        ref.module, ref.name, ref.offset, ref.opcode, ref.classification, how
                    )
                return _Obj(item.ref_index, args)
            return _Obj(None, args)

        next_opcode = reader.next
        budget = self.limits.max_opcodes - self.opcodes
        while True:
            op, arg, pos = next_opcode()
            name = op.name
            self.opcodes += 1
            budget -= 1
            if budget < 0:
                raise _LimitError(f"more than {self.limits.max_opcodes:,} opcodes")
            if name == "STOP":
                pop(pos)
                return
            if name == "PROTO":
                self.protocol = max(self.protocol, _int_arg(arg, pos))
            elif name == "FRAME":
                pass
            elif name == "MARK":
                stack.append(_MARK)
            elif name in _STRING_OPS:
                value = _quoted(arg) if name == "STRING" else _text(arg)
                stack.append(_Str(value) if value is not None else _ANY)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                if not stack:
                    raise _ParseError("memo store from an empty stack", pos)
                key = len(memo) if name == "MEMOIZE" else arg if type(arg) is int else _int_arg(arg, pos)
                memo[key] = stack[-1]
                if len(memo) > self.limits.max_memo:
                    raise _LimitError(f"more than {self.limits.max_memo:,} memo entries")
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                key = arg if type(arg) is int else _int_arg(arg, pos)
                if key not in memo:
                    raise _ParseError(f"memo key {key} read before it is written", pos)
                stack.append(memo[key])
            elif name in {"GLOBAL", "INST"}:
                module_raw, attr_raw = cast(tuple[bytes, bytes], arg)
                index = add_import(_text(module_raw) or "", _text(attr_raw) or "", pos, name)
                if name == "INST":
                    pop_mark(pos)
                    stack.append(invoke(_Global(index), "INST"))
                else:
                    stack.append(_Global(index))
            elif name == "STACK_GLOBAL":
                attr, module = pop(pos), pop(pos)
                if isinstance(module, _Str) and isinstance(attr, _Str):
                    stack.append(_Global(add_import(module.value, attr.value, pos, name)))
                else:
                    self.dynamic.append(pos)
                    stack.append(_ANY)
            elif name in {"REDUCE", "NEWOBJ"}:
                args = pop(pos)
                stack.append(invoke(pop(pos), name, args))
            elif name == "NEWOBJ_EX":
                pop(pos)
                pop(pos)
                stack.append(invoke(pop(pos), name))
            elif name == "OBJ":
                items = pop_mark(pos)
                if not items:
                    raise _ParseError("OBJ without a class", pos)
                stack.append(invoke(items[0], name))
            elif name == "BUILD":
                state = pop(pos)
                target = pop(pos)
                if isinstance(target, _Global):  # setting state on an imported class or function itself
                    invoke(target, name)
                    self.builds.append(pos)
                elif isinstance(target, _Obj):
                    target.args = (target.args, state)
                    if self._made_by(target) in _JOBLIB_WRAPPERS:
                        self._skip_joblib_array(reader, state, pos)
                stack.append(target)
            elif name in _INT_OPS:
                stack.append(_Val(_long(arg) if name in {"LONG1", "LONG4"} else _int_arg(arg, pos)))
            elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
                stack.append(_Val({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name]))
            elif name in ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE"):
                count = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}.get(name)
                items = pop_mark(pos) if count is None else [pop(pos) for _ in range(count)][::-1]
                stack.append(_Val(tuple(items)))
            elif name == "EMPTY_DICT":
                stack.append(_Val({}))
            elif name in ("SETITEM", "SETITEMS"):
                pairs = pop_mark(pos) if name == "SETITEMS" else [pop(pos), pop(pos)][::-1]
                if len(pairs) % 2 or not stack:
                    raise _ParseError(f"{name} with an odd number of items or no dict", pos)
                target = stack[-1]
                if isinstance(target, _Val) and isinstance(target.value, dict):
                    for k, v in zip(pairs[::2], pairs[1::2], strict=True):
                        if isinstance(k, _Str):
                            target.value[k.value] = v
            elif name in ("EXT1", "EXT2", "EXT4"):
                stack.append(_Global(add_import("copyreg", f"_extension_registry_{arg}", pos, name)))
            elif name == "DUP":
                if not stack:
                    raise _ParseError("DUP on an empty stack", pos)
                stack.append(stack[-1])
            elif name == "POP":
                if stack and stack[-1] is _MARK:
                    stack.pop()
                else:
                    pop(pos)
            elif name == "POP_MARK":
                pop_mark(pos)
            else:
                before = op.stack_before
                if pickletools.markobject in before:
                    pop_mark(pos)
                    before = before[: before.index(pickletools.markobject)]
                for _ in before:
                    pop(pos)
                stack.extend(_ANY for _ in op.stack_after)


# Names that mark a dangerous payload in raw bytes (after a parse error, where opcodes cannot be trusted).
_TRAILING = re.compile(
    rb"(?:(?<![A-Za-z0-9_])|(?<=[^A-Za-z0-9_]c))(os|posix|nt|subprocess|builtins|__builtin__|runpy|pty|commands|webbrowser|socket|"
    rb"ctypes|marshal|pickle|_pickle|importlib|pdb|bdb|timeit|cProfile|pydoc|pkgutil)\s*[\n\x00-\x20]?[.\x8c\n]?"
    rb"\s*(system|popen|exec|eval|spawn\w*|run\w*|call|check_output|Popen|getoutput|open|loads|load|__import__|"
    rb"import_module|locate|resolve_name|set_trace|runctx|runcall)(?![A-Za-z0-9_])"
)


def _scan_trailing(stream: BinaryIO, start: int, end: int, budget: int = 64 * 1024 * 1024) -> tuple[str, ...]:
    stream.seek(start)
    data = stream.read(min(end - start, budget))
    found = {m.group(0).decode("latin-1") for m in _TRAILING.finditer(data)}
    return tuple(sorted(" ".join(f.split()) for f in found))


_PICKLE_START = re.compile(rb"\x80[\x00-\x05]")


def _iter_pickles(reader: _Reader, limits: PickleLimits) -> Iterator[int]:
    """Offsets at which pickles start: the first, then each further one that begins like a pickle."""
    yield reader.tell()
    for _ in range(limits.max_pickles - 1):
        pos = reader.tell()
        head = reader.stream.read(2)
        reader.stream.seek(pos)
        if not _PICKLE_START.fullmatch(head):
            return
        yield pos


def analyse_pickle(
    stream: BinaryIO, *, policy: Policy = DEFAULT_POLICY, limits: PickleLimits | None = None, size: int | None = None
) -> PickleAnalysis:
    """Analyse the pickle(s) at the stream's current position; ``size`` bounds the readable bytes."""
    limits = limits or PickleLimits()
    start = stream.tell()
    if size is None:
        stream.seek(0, io.SEEK_END)
        end = stream.tell()
        stream.seek(start)
    else:
        end = start + size
    reader = _Reader(stream, end)
    walk = _Walk(policy, limits)
    error: str | None = None
    error_offset: int | None = None
    limit: str | None = None
    pickles = 0
    trailing: tuple[str, ...] = ()
    for offset in _iter_pickles(reader, limits):
        opcodes_before = walk.opcodes
        try:
            walk.run_one(reader)
            pickles += 1
        except _ParseError as exc:
            if pickles and walk.opcodes - opcodes_before <= 1:
                # Data after the last pickle that merely starts like one (legacy torch storages): not a pickle.
                reader.stream.seek(offset)
                break
            error, error_offset = str(exc), exc.offset - start
            trailing = _scan_trailing(stream, exc.offset, end)
            break
        except _LimitError as exc:
            limit = str(exc)
            break
        if reader.tell() >= end:
            break
    return PickleAnalysis(
        imports=tuple(walk.imports),
        dynamic_imports=tuple(walk.dynamic),
        builds_on_callables=tuple(walk.builds),
        pickles=pickles,
        opcodes=walk.opcodes,
        protocol=walk.protocol,
        error=error,
        error_offset=error_offset,
        limit=limit,
        trailing_names=trailing,
        trailing_bytes=max(0, end - reader.tell()) if error is None else 0,
    )
