"""Static analysis of pickle streams: every callable a load would import or call, without executing anything.

    >>> import io, pickle
    >>> from modelshield.supply_chain.scan.pickle import analyse_pickle
    >>> result = analyse_pickle(io.BytesIO(pickle.dumps({"w": [1.0, 2.0]})))
    >>> result.imports, result.error
    ((), None)

The walker reads opcodes itself from memory or a memory map (large byte and string arguments are stepped over,
not copied), and
simulates the unpickler's stack and memo, so it resolves the module and name of ``GLOBAL``, ``INST`` and
``STACK_GLOBAL`` even when the strings come from the memo, and knows which imports ``REDUCE``, ``OBJ``, ``INST``,
``NEWOBJ`` and ``BUILD`` act on. Several pickles back to back (legacy PyTorch files) are all read. A parse error
ends the walk where the real unpickler would stop, keeps everything found before it, and is reported; the bytes
after it are searched for the names of dangerous modules, since a more lenient loader may read on.
"""

from __future__ import annotations

import codecs
import io
import mmap
import pickletools
import re
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, cast, overload

from modelshield.supply_chain.scan.policy import DEFAULT_POLICY, MALFORMED, Classification, Classifier, Verdict

__all__ = ["ImportRef", "PickleAnalysis", "PickleLimits", "analyse_pickle", "analyse_pickle_buffer"]

_MAX_NESTING = 8  # joblib object arrays inside object arrays
_SHORT = 4096  # string arguments up to this size are kept (module/attribute names); longer ones are skipped


@dataclass(frozen=True)
class PickleLimits:
    """Hard limits against pickle bombs; hitting one ends the walk and is reported."""

    max_opcodes: int = 20_000_000
    max_memo: int = 5_000_000
    max_pickles: int = 64


_DEFAULT_LIMITS = PickleLimits()


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
    calls_on_objects: tuple[int, ...] = ()  # offsets of calls whose callable is an object built at load time
    trailing_names: tuple[str, ...] = ()  # dangerous names in bytes after a parse error
    trailing_bytes: int = 0
    bytes_after_error: int = 0  # bytes that follow the point where the walk stopped on an error
    side_files: tuple[tuple[int, str | None], ...] = ()  # old joblib arrays: (offset, file joblib.load opens)
    file_arguments: tuple[tuple[int, str], ...] = ()  # (offset, argument naming a file a callable would open)

    @property
    def worst(self) -> Verdict:
        verdicts = {i.classification.verdict for i in self.imports}
        if (
            Verdict.DANGEROUS in verdicts
            or self.dynamic_imports
            or self.trailing_names
            or self.builds_on_callables
            or self.calls_on_objects
        ):
            return Verdict.DANGEROUS
        return Verdict.UNKNOWN if Verdict.UNKNOWN in verdicts else Verdict.SAFE


class _ParseError(Exception):
    def __init__(self, message: str, offset: int, *, reading: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.reading = reading  # the opcode or its argument could not be read (as opposed to acted on)


class _LimitError(Exception):
    pass


# Stack items. Constants the pickle builds are pushed as plain Python values (str, int, bool, None); containers of
# them as _Val; anything else (floats, bytes, lists, sets, results of calls) as _ANY or _Obj.
class _Global:
    __slots__ = ("ref_index",)

    def __init__(self, ref_index: int) -> None:
        self.ref_index = ref_index  # index into the imports list


class _Obj:
    __slots__ = ("args", "made_by")

    def __init__(self, made_by: int | None, args: object = None) -> None:
        self.made_by = made_by  # import index of the callable that made it, when known
        self.args = args  # what it was called with (REDUCE), then (args, state) after BUILD


class _Val:
    """A tuple or dict the pickle built, of stack items."""

    __slots__ = ("value",)

    def __init__(self, value: tuple[object, ...] | dict[str, object]) -> None:
        self.value = value


_MARK = object()
_ANY = object()
_MISSING = object()

_OPCODES: dict[int, pickletools.OpcodeInfo] = {ord(op.code): op for op in pickletools.opcodes}
# Stack effect of the opcodes whose values never matter to the analysis: (pops to a MARK, items popped under the
# MARK, items pushed). APPENDS, for one, pops to its MARK, then the list under it, and pushes the list back.
_EFFECT: dict[int, tuple[bool, int, int]] = {
    code: (
        pickletools.markobject in op.stack_before,
        op.stack_before.index(pickletools.markobject)
        if pickletools.markobject in op.stack_before
        else len(op.stack_before),
        len(op.stack_after),
    )
    for code, op in _OPCODES.items()
}

# The opcodes handled by their stack effect alone.
_OPAQUE = frozenset(
    code
    for code, op in _OPCODES.items()
    if op.name
    not in {
        "PROTO", "GLOBAL", "INST", "OBJ", "NEWOBJ_EX", "PUT", "GET", "INT", "LONG", "LONG1", "LONG4", "STRING",
        "UNICODE", "SHORT_BINSTRING", "BINSTRING", "BINUNICODE8", "EXT1", "EXT2", "EXT4", "DUP", "POP", "POP_MARK",
        # handled inline by the walk
        "BINGET", "MEMOIZE", "BINPUT", "SHORT_BINUNICODE", "BINUNICODE", "MARK", "BININT1", "BININT2", "BININT",
        "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE", "EMPTY_TUPLE", "EMPTY_DICT", "SETITEMS", "SETITEM", "REDUCE",
        "NEWOBJ", "BUILD", "STACK_GLOBAL", "NONE", "NEWTRUE", "NEWFALSE", "LONG_BINPUT", "LONG_BINGET", "STOP",
        "FRAME",
    }
)  # fmt: skip
_JOBLIB_WRAPPERS = frozenset({("joblib.numpy_pickle", "NumpyArrayWrapper")})  # array data follows inline
# Old joblib (< 0.10) kept arrays in side files that the wrapper's BUILD state names and joblib.load opens.
_JOBLIB_SIDE_FILES = frozenset(
    (module, name)
    for module in ("joblib.numpy_pickle", "joblib.numpy_pickle_compat")
    for name in ("NDArrayWrapper", "ZNDArrayWrapper")
)
# Reconstructors that build an instance of the class they are given (the object is then that class's).
_INSTANCE_OF_ARGUMENT = frozenset(
    {("copyreg", "_reconstructor"), ("copyreg", "__newobj__"), ("copyreg", "__newobj_ex__")}
)
# Reconstructors that call callables passed as arguments, and which arguments: what they call is judged as called.
_CALLS_ARGUMENTS: dict[tuple[str, str], tuple[int, ...]] = {
    ("copyreg", "_reconstructor"): (0, 1),
    ("copyreg", "__newobj__"): (0,),
    ("copyreg", "__newobj_ex__"): (0,),
    ("collections", "defaultdict"): (0,),
    ("torch._tensor", "_rebuild_from_type_v2"): (0, 1),
    ("torch._utils", "_rebuild_wrapper_subclass"): (0,),
    ("numpy.random._pickle", "__generator_ctor"): (1,),  # argument 0 may be a generator instance, used as is
    ("numpy.random._pickle", "__randomstate_ctor"): (1,),
    ("numpy.random._pickle", "__bit_generator_ctor"): (0,),
}
_U2 = struct.Struct("<H").unpack_from
_I4 = struct.Struct("<i").unpack_from
_U4 = struct.Struct("<I").unpack_from
_U8 = struct.Struct("<Q").unpack_from
_FIXED = {1: "B", 2: "<H", 4: "<I", 8: "<Q"}


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# A dateutil time-zone name that is an absolute path or climbs out of the zone database (``dateutil//etc/passwd``,
# ``datetime64[ns, dateutil/../x]``).
_FILE_NAMING = re.compile(r"dateutil/(?:/|\\|(?:[^,\]]*[/\\])?\.\.(?:[/\\,\]]|$))")
_C_SPACE = b" \t\n\v\f\r"
_STRTOL = re.compile(rb"[ \t\n\v\f\r]*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def _int_text(raw: bytes, pos: int, *, base: int) -> int:
    """The text argument of protocol 0 ``INT``, ``LONG`` (``base`` 0) and ``PUT``, ``GET`` (``base`` 10), read as
    CPython's unpickler reads it.

    ``INT`` is C's ``strtol(s, &end, 0)`` (leading white space, a sign, ``0x`` hex, a leading ``0`` for octal) when
    that consumes the whole line, else ``PyLong_FromString(s, NULL, 0)`` (Python literal syntax: underscores,
    ``0o``/``0b``, surrounding white space); ``LONG`` is ``PyLong_FromString`` after dropping one trailing ``L``;
    ``PUT`` and ``GET`` are ``PyLong_FromString(s, NULL, 10)``. Only ASCII digits count. Anything else stops the
    loader, and the walk."""
    if base == 0 and raw in (b"00", b"01"):  # protocol 0's False and True
        return int(raw)
    if base == 0:
        match = _STRTOL.match(raw)
        if match is not None and match.end() == len(raw):
            text = match.group(0).strip(_C_SPACE)
            sign = -1 if text.startswith(b"-") else 1
            digits = text.lstrip(b"+-")
            radix = 16 if digits[:2].lower() == b"0x" else 8 if len(digits) > 1 and digits[:1] == b"0" else 10
            return sign * int(digits[2:] if radix == 16 else digits, radix)
    text = raw.removesuffix(b"L") if base == 0 else raw
    if text.isascii():
        try:
            return int(text.strip(_C_SPACE).decode("ascii"), base)
        except ValueError:
            pass
    raise _ParseError(f"malformed integer argument {_text(raw)!r}", pos)


def _concrete(item: object) -> object:
    """The plain Python value of a constant stack item (ints, strings, None, tuples of them), else None."""
    if isinstance(item, _Val):
        if isinstance(item.value, tuple):
            return tuple(_concrete(v) for v in item.value)
        return None
    return item if item is None or isinstance(item, str | int) else None


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


def _quoted(raw: bytes) -> str | None:
    """The value of a protocol-0 ``STRING`` argument as the unpickler reads it: one pair of matching quotes, then
    Python's string escapes (``codecs.escape_decode``), so ``'o\\x73'`` is ``os``. None when a loader refuses it."""
    if len(raw) < 2 or raw[:1] not in (b"'", b'"') or raw[-1:] != raw[:1]:
        return None
    try:
        decoded: bytes = codecs.escape_decode(raw[1:-1])[0]
    except ValueError:
        return None
    return decoded.decode("latin-1")


def _unicode(raw: bytes) -> str | None:
    """The value of a protocol-0 ``UNICODE`` argument: ``raw-unicode-escape``, so ``\\u006fs`` is ``os``."""
    try:
        return raw.decode("raw-unicode-escape")
    except UnicodeDecodeError:
        return None


class _Buffer(Protocol):
    """What the walker reads: ``bytes`` or an ``mmap`` (indexing gives ints, slicing bytes, ``find`` works)."""

    @overload
    def __getitem__(self, index: int, /) -> int: ...
    @overload
    def __getitem__(self, index: slice, /) -> bytes: ...
    def __len__(self) -> int: ...
    def find(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...


@dataclass
class _Walk:
    """The opcode walk over ``data[base:end]``: a simulated stack and memo, and what the pickle imports and calls.

    The loop reads opcodes straight from the buffer (no stream calls) and handles the common opcodes inline, most
    frequent first; the rare ones go through one generic branch driven by :mod:`pickletools`' opcode table.
    """

    data: _Buffer
    base: int
    end: int
    policy: Classifier  # a Policy, or a scan run's VerdictCache over one
    limits: PickleLimits
    imports: list[ImportRef] = field(default_factory=list)
    dynamic: list[int] = field(default_factory=list)
    builds: list[int] = field(default_factory=list)
    object_calls: list[int] = field(default_factory=list)
    side_files: list[tuple[int, str | None]] = field(default_factory=list)
    paths: list[tuple[int, str]] = field(default_factory=list)  # arguments that name files a callable resolves
    follow_joblib: bool = True  # skip joblib's inline array data as joblib.load does (False: as pickle.load does)
    arrays_skipped: int = 0
    nesting: int = 0
    opcodes: int = 0
    protocol: int = 0

    def _made_by(self, obj: _Obj) -> tuple[str, str] | None:
        """The (normalised) module and name of the class or callable that made ``obj``, when known."""
        if obj.made_by is None:
            return None
        verdict = self.imports[obj.made_by].classification
        return verdict.module, verdict.name

    def _truncated(self, what: str, pos: int) -> _ParseError:
        return _ParseError(f"truncated stream: {what} runs past the end of the data", pos, reading=True)

    def _line(self, i: int, pos: int) -> tuple[bytes, int]:
        """A newline-terminated argument at ``i`` of the opcode at ``pos``: its first ``_SHORT`` bytes, and the
        position after it. An unterminated one is reported at its opcode, so that the search for a payload after
        the error reads the whole of it."""
        j = self.data.find(b"\n", i, self.end)
        if j < 0:
            raise _ParseError("unterminated text argument", pos, reading=True)
        return bytes(self.data[i : min(j, i + _SHORT)]), j + 1

    def _sized(self, i: int, size_bytes: int, signed: bool = False) -> tuple[bytes | None, int]:
        """A length-prefixed argument at ``i``: its bytes (None when longer than ``_SHORT``), and the position after."""
        if i + size_bytes > self.end:
            raise self._truncated("a length prefix", i)
        n = int.from_bytes(self.data[i : i + size_bytes], "little", signed=signed)
        i += size_bytes
        if n < 0 or i + n > self.end:
            raise _ParseError(f"argument of {n} bytes runs past the end of the data", i, reading=True)
        return (bytes(self.data[i : i + n]) if n <= _SHORT else None), i + n

    def _fixed(self, i: int, size: int, *, signed: bool = False) -> tuple[int, int]:
        if i + size > self.end:
            raise self._truncated(f"a {size}-byte argument", i)
        return int.from_bytes(self.data[i : i + size], "little", signed=signed), i + size

    def _skip_joblib_array(self, i: int, state: object, pos: int) -> int:
        """Step over the array data that ``joblib.load`` reads right after a NumpyArrayWrapper's BUILD.

        Numeric arrays are raw bytes (after an alignment padding byte); object arrays are a nested pickle, analysed
        like any other. ``pickle.load`` and ``torch.load`` do not know about the data and read those same bytes as
        opcodes: :func:`analyse_pickle_buffer` walks the stream a second time that way. When the size cannot be
        worked out, the walk cannot follow joblib past this point: that is a parse error with bytes after it,
        which fails closed.
        """
        fields = state.value if isinstance(state, _Val) and isinstance(state.value, dict) else {}
        shape = _concrete(fields.get("shape"))
        dtype = fields.get("dtype")
        code = _dtype_code(dtype)
        unfollowable = _ParseError(
            "joblib array whose dtype or shape cannot be worked out without running the pickle: the scanner cannot "
            "follow joblib's reader past it",
            pos,
        )
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape) or code is None:
            raise unfollowable
        if code.startswith(("O", "|O")):
            if self.nesting >= _MAX_NESTING:
                raise _LimitError(f"object arrays nested more than {_MAX_NESTING} deep")
            self.nesting += 1
            try:
                return self.run_one(i)  # the nested pickle of an object array
            finally:
                self.nesting -= 1
        itemsize = _dtype_itemsize(dtype, code)
        if itemsize is None:
            raise unfollowable
        if _concrete(fields.get("numpy_array_alignment_bytes")) is not None and i < self.end:
            i += 1 + self.data[i]  # the padding length byte, then the padding
        count = 1
        for d in shape:
            count *= d
        i += count * itemsize
        if i > self.end:
            raise _ParseError(f"array data of {count * itemsize} bytes runs past the end of the stream", pos)
        self.arrays_skipped += 1
        return i

    def _check_paths(self, item: object, offset: int, depth: int = 0) -> None:
        """Record constant strings among call arguments or BUILD state that an allowlisted callable resolves to a
        file outside its own data: pandas hands time-zone names that start with ``dateutil/`` to
        ``dateutil.tz.gettz``, which opens absolute paths and follows ``..``."""
        if type(item) is str:
            if "dateutil/" in item and _FILE_NAMING.search(item):
                self.paths.append((offset, item[:200]))
        elif isinstance(item, _Val) and depth < 8:
            values = item.value.values() if isinstance(item.value, dict) else item.value
            for value in values:
                self._check_paths(value, offset, depth + 1)

    def run_one(self, i: int) -> int:  # noqa: PLR0915 - one branch per opcode family, by design
        """Walk one pickle starting at ``i``; the position after its STOP."""
        data, end, base = self.data, self.end, self.base
        stack: list[object] = []
        push = stack.append
        memo: dict[int, object] = {}
        max_memo = self.limits.max_memo

        def pop(pos: int) -> object:
            if not stack or stack[-1] is _MARK:
                raise _ParseError("stack underflow", pos)
            return stack.pop()

        def pop_mark(pos: int) -> list[object]:
            k = len(stack) - 1
            while k >= 0 and stack[k] is not _MARK:
                k -= 1
            if k < 0:
                raise _ParseError("no MARK on the stack", pos)
            items = stack[k + 1 :]
            del stack[k:]
            return items

        def put(key: int, pos: int) -> None:
            if not stack:
                raise _ParseError("memo store from an empty stack", pos)
            memo[key] = stack[-1]
            if len(memo) > max_memo:
                raise _LimitError(f"more than {max_memo:,} memo entries")

        def get(key: int, pos: int) -> None:
            if key not in memo:
                raise _ParseError(f"memo key {key} read before it is written", pos)
            push(memo[key])

        def add_import(module: str, name: str, pos: int, opcode: str) -> _Global:
            self.imports.append(ImportRef(module, name, pos - base, opcode, self.policy.classify(module, name)))
            return _Global(len(self.imports) - 1)

        def mark(index: int, how: str) -> None:
            ref = self.imports[index]
            if ref.invoked_by is None:
                self.imports[index] = ImportRef(ref.module, ref.name, ref.offset, ref.opcode, ref.classification, how)

        def invoke(item: object, how: str, args: object = None) -> object:
            if isinstance(item, _Global) and how == "REDUCE":
                resolved = resolve_getattr(item, args)
                if resolved is not None:
                    return resolved
            self._check_paths(args, pos - base)
            if isinstance(item, _Global):
                mark(item.ref_index, how)
                ref = self.imports[item.ref_index]
                key = (ref.classification.module, ref.classification.name)
                operands = args.value if isinstance(args, _Val) and isinstance(args.value, tuple) else ()
                for index in _CALLS_ARGUMENTS.get(key, (0,) if _is_cython_reconstructor(key) else ()):
                    if index < len(operands):
                        operand = operands[index]
                        if isinstance(operand, _Global):
                            mark(operand.ref_index, f"{how} of {ref.qualname}")
                        elif isinstance(operand, _Obj):  # a callable that an earlier call returned
                            self.object_calls.append(pos - base)
                if key in _INSTANCE_OF_ARGUMENT and operands and isinstance(operands[0], _Global):
                    return _Obj(operands[0].ref_index, args)
                return _Obj(item.ref_index, args)
            if isinstance(item, _Obj) and how != "BUILD":  # calling what a call returned: a resolver's result
                self.object_calls.append(pos - base)
            return _Obj(None, args)

        def resolve_getattr(item: _Global, args: object) -> _Global | None:
            """``getattr(X, "name")`` with constant operands, X an import or an object one made, is how pickle
            writes bound methods (``getattr(ZoneInfo, "_unpickle")``): it is judged as the import ``X.name``."""
            ref = self.imports[item.ref_index]
            if (ref.classification.module, ref.classification.name) != ("builtins", "getattr"):
                return None
            operands = args.value if isinstance(args, _Val) and isinstance(args.value, tuple) else ()
            if len(operands) != 2 or type(operands[1]) is not str:
                return None
            target = operands[0]
            index = (
                target.ref_index
                if isinstance(target, _Global)
                else target.made_by
                if isinstance(target, _Obj)
                else None
            )
            if index is None:
                return None
            owner = self.imports[index]
            return add_import(owner.module, f"{owner.name}.{operands[1]}", pos, "getattr")

        max_opcodes = self.limits.max_opcodes
        budget = max_opcodes - self.opcodes
        try:
            while True:
                if i >= end:
                    raise _ParseError("stream ends without a STOP opcode", i, reading=True)
                pos = i
                code = data[i]
                i += 1
                budget -= 1
                if budget < 0:
                    raise _LimitError(f"more than {max_opcodes:,} opcodes")
                # -- the common opcodes of protocols 2-5, most frequent first --------------------------------------
                if code == 0x68:  # BINGET
                    if i >= end:
                        raise self._truncated("BINGET", pos)
                    item = memo.get(data[i], _MISSING)
                    if item is _MISSING:
                        raise _ParseError(f"memo key {data[i]} read before it is written", pos)
                    push(item)
                    i += 1
                elif code == 0x94:  # MEMOIZE
                    if not stack:
                        raise _ParseError("memo store from an empty stack", pos)
                    memo[len(memo)] = stack[-1]
                    if len(memo) > max_memo:
                        raise _LimitError(f"more than {max_memo:,} memo entries")
                elif code == 0x71:  # BINPUT
                    if i >= end:
                        raise self._truncated("BINPUT", pos)
                    put(data[i], pos)
                    i += 1
                elif code == 0x8C:  # SHORT_BINUNICODE: the common short strings, read inline
                    if i >= end:
                        raise self._truncated("SHORT_BINUNICODE", pos)
                    n = data[i] + i + 1
                    if n > end:
                        raise _ParseError(
                            f"argument of {n - i - 1} bytes runs past the end of the data", i + 1, reading=True
                        )
                    push(_text(data[i + 1 : n]))
                    i = n
                elif code == 0x58:  # BINUNICODE
                    raw, i = self._sized(i, 4)
                    push(_text(raw) if raw is not None else _ANY)
                elif code == 0x28:  # MARK
                    push(_MARK)
                elif code == 0x4B:  # BININT1
                    if i >= end:
                        raise self._truncated("BININT1", pos)
                    push(data[i])
                    i += 1
                elif code == 0x4D:  # BININT2
                    if i + 2 > end:
                        raise self._truncated("BININT2", pos)
                    push(_U2(data, i)[0])  # type: ignore[arg-type]
                    i += 2
                elif code == 0x4A:  # BININT
                    if i + 4 > end:
                        raise self._truncated("BININT", pos)
                    push(_I4(data, i)[0])  # type: ignore[arg-type]
                    i += 4
                elif 0x85 <= code <= 0x87:  # TUPLE1, TUPLE2, TUPLE3
                    count = code - 0x84
                    if len(stack) < count or any(item is _MARK for item in stack[-count:]):
                        raise _ParseError("stack underflow", pos)
                    items = tuple(stack[-count:])
                    del stack[-count:]
                    push(_Val(items))
                elif code == 0x74:  # TUPLE
                    push(_Val(tuple(pop_mark(pos))))
                elif code == 0x29:  # EMPTY_TUPLE
                    push(_Val(()))
                elif code == 0x7D:  # EMPTY_DICT
                    push(_Val({}))
                elif code == 0x75 or code == 0x73:  # SETITEMS, SETITEM  # noqa: PLR1714
                    if code == 0x75:
                        pairs = pop_mark(pos)
                    else:
                        value = pop(pos)
                        pairs = [pop(pos), value]
                    if len(pairs) % 2 or not stack:
                        raise _ParseError("SETITEM(S) with an odd number of items or no dict", pos)
                    target = stack[-1]
                    if isinstance(target, _Val) and isinstance(target.value, dict):
                        for k in range(0, len(pairs), 2):
                            if isinstance(pairs[k], str):
                                target.value[cast(str, pairs[k])] = pairs[k + 1]
                elif code == 0x52 or code == 0x81:  # REDUCE, NEWOBJ  # noqa: PLR1714
                    args = pop(pos)
                    push(invoke(pop(pos), "REDUCE" if code == 0x52 else "NEWOBJ", args))
                elif code == 0x62:  # BUILD
                    state = pop(pos)
                    target = pop(pos)
                    if isinstance(target, _Global):  # setting state on an imported class or function itself
                        invoke(target, "BUILD")
                        self.builds.append(pos - base)
                    elif isinstance(target, _Obj):
                        self._check_paths(state, pos - base)
                        target.args = (target.args, state)
                        maker = self._made_by(target)
                        if maker in _JOBLIB_WRAPPERS and self.follow_joblib:
                            self.opcodes = max_opcodes - budget
                            i = self._skip_joblib_array(i, state, pos)
                            budget = max_opcodes - self.opcodes
                        elif maker in _JOBLIB_SIDE_FILES:
                            fields = state.value if isinstance(state, _Val) and isinstance(state.value, dict) else {}
                            name = fields.get("filename")
                            self.side_files.append((pos - base, name if isinstance(name, str) else None))
                    push(target)
                elif code == 0x93:  # STACK_GLOBAL
                    attr, module = pop(pos), pop(pos)
                    if type(module) is str and type(attr) is str:
                        push(add_import(module, attr, pos, "STACK_GLOBAL"))
                    else:
                        self.dynamic.append(pos - base)
                        push(_ANY)
                elif code == 0x4E:  # NONE
                    push(None)
                elif code == 0x88 or code == 0x89:  # NEWTRUE, NEWFALSE  # noqa: PLR1714
                    push(code == 0x88)
                elif code == 0x72:  # LONG_BINPUT
                    if i + 4 > end:
                        raise self._truncated("LONG_BINPUT", pos)
                    put(_U4(data, i)[0], pos)  # type: ignore[arg-type]
                    i += 4
                elif code == 0x6A:  # LONG_BINGET
                    if i + 4 > end:
                        raise self._truncated("LONG_BINGET", pos)
                    get(_U4(data, i)[0], pos)  # type: ignore[arg-type]
                    i += 4
                elif code == 0x47:  # BINFLOAT
                    if i + 8 > end:
                        raise self._truncated("BINFLOAT", pos)
                    push(_ANY)
                    i += 8
                elif code == 0x5D:  # EMPTY_LIST
                    push(_ANY)
                elif code == 0x61:  # APPEND: the list (or object) and the value become an opaque list
                    if len(stack) < 2 or stack[-1] is _MARK or stack[-2] is _MARK:
                        raise _ParseError("stack underflow", pos)
                    del stack[-1]
                    stack[-1] = _ANY
                elif code == 0x65:  # APPENDS
                    pop_mark(pos)
                    pop(pos)
                    push(_ANY)
                elif code == 0x43 or code == 0x42:  # SHORT_BINBYTES, BINBYTES  # noqa: PLR1714
                    _, i = self._sized(i, 1 if code == 0x43 else 4)
                    push(_ANY)
                elif code == 0x2E:  # STOP
                    pop(pos)
                    return i
                elif code == 0x95:  # FRAME: an 8-byte length; the opcodes inside are read like any others
                    if i + 8 > end:
                        raise self._truncated("FRAME", pos)
                    i += 8
                else:
                    i = self._rare(code, i, pos, stack, pop, pop_mark, put, get, add_import, invoke)
        finally:
            self.opcodes = max_opcodes - budget

    def _rare(  # noqa: PLR0915
        self,
        code: int,
        i: int,
        pos: int,
        stack: list[object],
        pop: Callable[[int], object],
        pop_mark: Callable[[int], list[object]],
        put: Callable[[int, int], None],
        get: Callable[[int, int], None],
        add_import: Callable[[str, str, int, str], _Global],
        invoke: Callable[..., object],
    ) -> int:
        """The less common opcodes, protocol 0's text forms among them; the position after the opcode."""
        op = _OPCODES.get(code)
        if op is None:
            raise _ParseError(f"unknown opcode byte 0x{code:02x}", pos, reading=True)
        if code in _OPAQUE:
            return self._opaque(op, code, i, pos, stack, pop, pop_mark)
        name = op.name
        if name == "PROTO":
            if i >= self.end:
                raise self._truncated("PROTO", pos)
            self.protocol = max(self.protocol, self.data[i])
            return i + 1
        if name in {"GLOBAL", "INST"}:
            module, i = self._line(i, pos)
            attr, i = self._line(i, pos)
            ref = add_import(_text(module), _text(attr), pos, name)
            if name == "INST":
                stack.append(invoke(ref, "INST", _Val(tuple(pop_mark(pos)))))
            else:
                stack.append(ref)
            return i
        if name == "OBJ":
            items = pop_mark(pos)
            if not items:
                raise _ParseError("OBJ without a class", pos)
            stack.append(invoke(items[0], "OBJ", _Val(tuple(items[1:]))))
            return i
        if name == "NEWOBJ_EX":
            kwargs = pop(pos)
            args = pop(pos)
            stack.append(invoke(pop(pos), "NEWOBJ_EX", _Val((args, kwargs))))
            return i
        if name in {"PUT", "GET"}:
            raw, i = self._line(i, pos)
            (put if name == "PUT" else get)(_int_text(raw, pos, base=10), pos)
            return i
        if name in {"INT", "LONG"}:
            raw, i = self._line(i, pos)
            stack.append(_int_text(raw, pos, base=0))
            return i
        if name in {"LONG1", "LONG4"}:
            digits, i = self._sized(i, 1 if name == "LONG1" else 4, signed=name == "LONG4")
            stack.append(int.from_bytes(digits, "little", signed=True) if digits is not None else _ANY)
            return i
        if name in {"STRING", "UNICODE"}:
            raw, i = self._line(i, pos)
            value = _quoted(raw) if name == "STRING" else _unicode(raw)
            stack.append(value if value is not None else _ANY)
            return i
        if name in {"SHORT_BINSTRING", "BINSTRING", "BINUNICODE8"}:
            width = {"SHORT_BINSTRING": 1, "BINSTRING": 4, "BINUNICODE8": 8}[name]
            chars, i = self._sized(i, width, signed=name == "BINSTRING")
            stack.append(_text(chars) if chars is not None else _ANY)
            return i
        if name in {"EXT1", "EXT2", "EXT4"}:
            n, i = self._fixed(i, {"EXT1": 1, "EXT2": 2, "EXT4": 4}[name], signed=name == "EXT4")
            # copyreg's extension registry is empty unless a program fills it: a loader stops here.
            raise _ParseError(f"{name} {n} looks up copyreg's extension registry, which no library fills", pos)
        if name == "DUP":
            if not stack:
                raise _ParseError("DUP on an empty stack", pos)
            stack.append(stack[-1])
            return i
        if name == "POP":
            if stack and stack[-1] is _MARK:
                stack.pop()
            else:
                pop(pos)
            return i
        if name == "POP_MARK":
            pop_mark(pos)
            return i
        raise AssertionError(f"opcode {name} has no handler")  # pragma: no cover - _OPAQUE lists all the others

    def _opaque(
        self,
        op: pickletools.OpcodeInfo,
        code: int,
        i: int,
        pos: int,
        stack: list[object],
        pop: Callable[[int], object],
        pop_mark: Callable[[int], list[object]],
    ) -> int:
        """An opcode whose values do not matter (floats, bytes, lists, sets, persistent ids, buffers): skip its
        argument, apply its stack effect, push opaque values."""
        name = op.name
        arg = op.arg
        if arg is not None:
            if arg.n == pickletools.UP_TO_NEWLINE:
                _, i = self._line(i, pos)
            elif arg.n == pickletools.TAKEN_FROM_ARGUMENT1:
                _, i = self._sized(i, 1)
            elif arg.n == pickletools.TAKEN_FROM_ARGUMENT4:
                _, i = self._sized(i, 4, signed=True)
            elif arg.n == pickletools.TAKEN_FROM_ARGUMENT4U:
                _, i = self._sized(i, 4)
            elif arg.n == pickletools.TAKEN_FROM_ARGUMENT8U:
                _, i = self._sized(i, 8)
            else:
                if i + arg.n > self.end:
                    raise self._truncated(name, pos)
                i += arg.n
        to_mark, popped, pushed = _EFFECT[code]
        if to_mark:
            pop_mark(pos)
        for _ in range(popped):
            pop(pos)
        stack.extend(_ANY for _ in range(pushed))
        return i


# Names that mark a dangerous payload in raw bytes (after a parse error, where opcodes cannot be trusted).
_TRAILING = re.compile(
    rb"(?:(?<![A-Za-z0-9_])|(?<=[^A-Za-z0-9_]c))(os|posix|nt|subprocess|builtins|__builtin__|runpy|pty|commands|webbrowser|socket|"
    rb"ctypes|marshal|pickle|_pickle|importlib|pdb|bdb|timeit|cProfile|pydoc|pkgutil)\s*[\n\x00-\x20]?[.\x8c\n]?"
    rb"\s*(system|popen|exec|eval|spawn\w*|run\w*|call|check_output|Popen|getoutput|open|loads|load|__import__|"
    rb"import_module|locate|resolve_name|set_trace|runctx|runcall)(?![A-Za-z0-9_])"
)
_TRAILING_BUDGET = 64 * 1024 * 1024


def _scan_trailing(data: _Buffer, start: int, end: int) -> tuple[str, ...]:
    chunk = data[start : min(end, start + _TRAILING_BUDGET)]
    found = {m.group(0).decode("latin-1") for m in _TRAILING.finditer(chunk)}
    return tuple(sorted(" ".join(f.split()) for f in found))


@dataclass
class _Stream:
    """How a walk over a whole stream (one or more pickles back to back) ended."""

    walk: _Walk
    pickles: int = 0
    position: int = 0
    error: _ParseError | None = None
    limit: str | None = None


def _walk_stream(walk: _Walk, start: int, end: int, max_pickles: int) -> _Stream:
    # Loaders read pickles back to back (legacy torch.save writes five) and need no header on any of them, so every
    # segment is walked. One that stops on an error before importing or calling anything is data a loader reads
    # raw (legacy storages), not a pickle; one that acted is reported.
    result = _Stream(walk, position=start)
    for _ in range(max_pickles):
        acted_before = _acts(walk)
        try:
            result.position = walk.run_one(result.position)
            result.pickles += 1
        except _ParseError as exc:
            if not (result.pickles and _acts(walk) == acted_before):
                result.error = exc
            break
        except _LimitError as exc:
            if not (result.pickles and _acts(walk) == acted_before):
                result.limit = str(exc)
            break
        if result.position >= end:
            break
    return result


def analyse_pickle_buffer(
    data: bytes | mmap.mmap,
    start: int = 0,
    end: int | None = None,
    *,
    policy: Classifier = DEFAULT_POLICY,
    limits: PickleLimits | None = None,
) -> PickleAnalysis:
    """Analyse the pickle(s) in ``data[start:end]``; offsets in the result are relative to ``start``.

    A stream with joblib arrays in it is read twice: as ``joblib.load`` reads it (array data stepped over) and as
    ``pickle.load`` or ``torch.load`` would (the same bytes read as opcodes); what either reading imports or calls
    is reported.
    """
    limits = limits or _DEFAULT_LIMITS
    end = len(data) if end is None else min(end, len(data))
    walk = _Walk(cast(_Buffer, data), start, end, policy, limits)
    run = _walk_stream(walk, start, end, limits.max_pickles)
    if walk.arrays_skipped:
        plain = _walk_stream(_Walk(cast(_Buffer, data), start, end, policy, limits, follow_joblib=False), start, end, 1)
        # Array bytes read as opcodes are mostly noise: keep only what such a read would really do, an import of
        # a well-formed name (pickle.load cannot import a malformed one, nor one whose name is not a string).
        seen = {ref.offset for ref in walk.imports}
        walk.imports += [
            ref for ref in plain.walk.imports if ref.offset not in seen and ref.classification.reason != MALFORMED
        ]
        walk.paths += [p for p in plain.walk.paths if p not in walk.paths]
        for mine, theirs in ((walk.builds, plain.walk.builds), (walk.object_calls, plain.walk.object_calls)):
            mine += [offset for offset in theirs if offset not in mine]
    error = run.error
    trailing = _scan_trailing(walk.data, max(start, error.offset - 1), end) if error is not None else ()
    return PickleAnalysis(
        imports=tuple(walk.imports),
        dynamic_imports=tuple(walk.dynamic),
        builds_on_callables=tuple(walk.builds),
        pickles=run.pickles,
        opcodes=walk.opcodes,
        protocol=walk.protocol,
        error=str(error) if error is not None else None,
        error_offset=error.offset - start if error is not None else None,
        limit=run.limit,
        trailing_names=trailing,
        trailing_bytes=max(0, end - run.position) if error is None else 0,
        calls_on_objects=tuple(walk.object_calls),
        bytes_after_error=max(0, end - error.offset - 1) if error is not None else 0,
        side_files=tuple(walk.side_files),
        file_arguments=tuple(walk.paths),
    )


def _is_cython_reconstructor(key: tuple[str, str]) -> bool:
    """Cython's ``__pyx_unpickle_X(cls, checksum, state)`` and scikit-learn's ``newObj(cls)`` build ``cls``."""
    return key[1].startswith("__pyx_unpickle_") or key[1] == "newObj"


def _acts(walk: _Walk) -> int:
    return len(walk.imports) + len(walk.dynamic) + len(walk.builds) + len(walk.object_calls)


def analyse_pickle(
    stream: BinaryIO,
    *,
    policy: Classifier = DEFAULT_POLICY,
    limits: PickleLimits | None = None,
    size: int | None = None,
) -> PickleAnalysis:
    """Analyse the pickle(s) at the stream's current position; ``size`` bounds the readable bytes.

    A stream backed by a file on disk is memory-mapped (tensor data after the pickle is never read); any other is
    read into memory, ``size`` bytes at most.
    """
    start = stream.tell()
    # A spooled temporary file (decompressed content) is a BytesIO until it rolls over to a file on disk; there is
    # none unless tempfile is imported, and importing it here would cost every scan of a plain file.
    tempfile = sys.modules.get("tempfile")
    inner: object = stream
    if tempfile is not None and isinstance(stream, tempfile.SpooledTemporaryFile):
        inner = stream._file
    data: bytes | mmap.mmap
    if isinstance(inner, io.BytesIO):
        data = inner.getvalue()
    elif isinstance(inner, io.BufferedReader | io.BufferedRandom | io.FileIO):  # not wrappers: their fd is another's
        try:
            data = mmap.mmap(inner.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # empty files, special files
            data, start = (stream.read() if size is None else stream.read(size)), 0
    else:
        data, start = (stream.read() if size is None else stream.read(size)), 0
    end = len(data) if size is None else min(len(data), start + size)
    try:
        return analyse_pickle_buffer(data, start, end, policy=policy, limits=limits)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
