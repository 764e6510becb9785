"""Static pickle analysis: what a load would import and call, found without executing anything."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import pickletools
import struct
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelshield.supply_chain.scan.pickle import PickleLimits, analyse_pickle
from modelshield.supply_chain.scan.policy import DEFAULT_POLICY, Verdict


class Reduce:
    """Pickles as a call of ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def analyse(data: bytes) -> Any:
    return analyse_pickle(io.BytesIO(data))


@pytest.mark.parametrize("protocol", range(6))
def test_benign_data_has_no_imports_beyond_reconstructors(protocol: int) -> None:
    obj = {"weights": np.arange(6.0).reshape(2, 3), "meta": OrderedDict(a=1), "t": (1, 2.5, "x", b"y", None)}
    result = analyse(pickle.dumps(obj, protocol=protocol))
    assert result.error is None
    assert result.worst is Verdict.SAFE, [(i.qualname, i.classification.reason) for i in result.imports]


@pytest.mark.parametrize("protocol", range(6))
def test_reduce_payload_is_dangerous_and_invoked(protocol: int) -> None:
    result = analyse(pickle.dumps(Reduce(os.system, "echo pwned"), protocol=protocol))
    (ref,) = result.imports
    assert ref.classification.verdict is Verdict.DANGEROUS
    assert ref.invoked_by == "REDUCE"
    assert ref.module in {"posix", "nt", "os"}


def test_stack_global_names_from_the_memo_are_resolved() -> None:
    # Protocol 4: "os" and "system" memoised, then read back with BINGET before STACK_GLOBAL.
    data = (
        b"\x80\x04"
        + _unicode("os")
        + b"\x94"
        + _unicode("system")
        + b"\x94"
        + b"0"
        + b"0"
        + b"h\x00h\x01\x93"
        + _unicode("id")
        + b"\x85R."
    )
    result = analyse(data)
    assert [(i.qualname, i.invoked_by) for i in result.imports] == [("os.system", "REDUCE")]


def test_dotted_traversal_in_stack_global_is_caught() -> None:
    data = b"\x80\x04" + _unicode("collections") + _unicode("OrderedDict.__init__.__globals__") + b"\x93."
    (ref,) = analyse(data).imports
    assert ref.classification.verdict is not Verdict.SAFE
    (ref,) = analyse(b"\x80\x04" + _unicode("os") + _unicode("path.os.system") + b"\x93.").imports
    assert ref.classification.verdict is Verdict.DANGEROUS


def test_computed_stack_global_operands_are_flagged() -> None:
    # The module name comes out of a call, not a constant: nothing static can say what it imports.
    data = b"\x80\x04" + _global("builtins", "str") + b"(" + _unicode("os") + b"tR" + _unicode("system") + b"\x93."
    result = analyse(data)
    assert result.dynamic_imports
    assert result.worst is Verdict.DANGEROUS


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("__builtin__", "eval"),
        ("commands", "getoutput"),
        ("runpy", "_run_code"),
        ("pty", "spawn"),
        ("bdb", "Bdb.run"),
        ("pdb", "run"),
        ("trace", "Trace.runctx"),
        ("timeit", "timeit"),
        ("cProfile", "run"),
        ("doctest", "debug_script"),
        ("idlelib.pyshell", "ModifiedInterpreter.runcode"),
        ("lib2to3.pgen2.pgen", "generate_grammar"),
        ("_osx_support", "_read_output"),
        ("_aix_support", "_read_cmd_output"),
        ("uuid", "_get_command_stdout"),
        ("imaplib", "IMAP4_stream"),
        ("venv", "create"),
        ("multiprocessing.util", "spawnv_passfds"),
        ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
        ("pip", "main"),
        ("pkgutil", "resolve_name"),
        ("pydoc", "locate"),
        ("operator", "attrgetter"),
        ("functools", "partial"),
        ("marshal", "loads"),
        ("types", "FunctionType"),
        ("numpy.testing._private.utils", "runstring"),
        ("numpy.f2py.crackfortran", "getlincoef"),
        ("torch.utils.cpp_extension", "load_inline"),
        ("torch.jit", "load"),
        ("mlflow.pyfunc", "load_model"),
        ("pandas.io.parsers", "read_csv"),
        ("cPickle", "loads"),
        ("urllib2", "urlopen"),
        ("webbrowser", "open"),
        ("shutil", "rmtree"),
        ("socket", "create_connection"),
        ("ctypes", "CDLL"),
        ("code", "InteractiveInterpreter.runsource"),
    ],
)
def test_denylist(module: str, name: str) -> None:
    result = DEFAULT_POLICY.classify(module, name)
    assert result.verdict is Verdict.DANGEROUS, result.reason


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch", "FloatStorage"),
        ("collections", "OrderedDict"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "dtype"),
        ("sklearn.ensemble._gb", "GradientBoostingClassifier"),
        ("sklearn.tree._tree", "Tree"),
        ("builtins", "set"),
        ("__builtin__", "xrange"),
        ("copy_reg", "_reconstructor"),
    ],
)
def test_allowlist(module: str, name: str) -> None:
    result = DEFAULT_POLICY.classify(module, name)
    assert result.verdict is Verdict.SAFE, result.reason


def test_unknown_callables_are_left_for_review() -> None:
    assert DEFAULT_POLICY.classify("mypackage.models", "Net").verdict is Verdict.UNKNOWN
    assert DEFAULT_POLICY.classify("sklearn.utils", "check_array").verdict is Verdict.UNKNOWN
    custom = DEFAULT_POLICY.with_rules(safe=["mypackage.models.*"], dangerous=["collections.OrderedDict"])
    assert custom.classify("mypackage.models", "Net").verdict is Verdict.SAFE
    assert custom.classify("collections", "OrderedDict").verdict is Verdict.DANGEROUS


def test_parse_error_keeps_what_came_before_and_searches_what_follows() -> None:
    payload = pickle.dumps(Reduce(os.system, "id"), protocol=2)[:-1]  # drop STOP
    data = payload + b"\xff" + b"junk cposix\nsystem\n junk"
    result = analyse(data)
    assert result.error is not None and "unknown opcode" in result.error
    assert [i.classification.verdict for i in result.imports] == [Verdict.DANGEROUS]
    assert result.trailing_names


def test_truncated_stream_is_an_error() -> None:
    data = pickle.dumps({"a": "b" * 100}, protocol=2)[:40]
    result = analyse(data)
    assert result.error is not None


def test_second_pickle_is_read() -> None:
    data = pickle.dumps({"ok": 1}, protocol=2) + pickle.dumps(Reduce(eval, "1+1"), protocol=2)
    result = analyse(data)
    assert result.pickles == 2
    assert any(i.classification.verdict is Verdict.DANGEROUS and i.invoked_by for i in result.imports)


def test_data_after_the_last_pickle_is_not_an_error() -> None:
    # Legacy torch files put raw storage bytes after their pickles; they may start like a pickle header.
    data = pickle.dumps({"ok": 1}, protocol=2) + struct.pack("<q", 640) + bytes(64)
    result = analyse(data)
    assert result.error is None
    assert result.pickles == 1


def test_build_on_an_imported_callable_is_noticed() -> None:
    data = b"\x80\x02" + _global("collections", "OrderedDict") + b"}b."
    (ref,) = analyse(data).imports
    assert ref.invoked_by == "BUILD"


def test_large_byte_arguments_are_skipped_not_read() -> None:
    blob = pickle.dumps(b"x" * 5_000_000, protocol=4)
    result = analyse(blob)
    assert result.error is None and result.opcodes < 10


def test_opcode_limit_is_reported() -> None:
    data = pickle.dumps(list(range(1000)), protocol=0)
    result = analyse_pickle(io.BytesIO(data), limits=PickleLimits(max_opcodes=100))
    assert result.limit is not None and "100" in result.limit


def test_memo_read_before_write_is_an_error() -> None:
    result = analyse(b"\x80\x02h\x05.")
    assert result.error is not None and "memo key 5" in result.error


def _first_pickle(data: bytes) -> int | None:
    """The opcode count of the first pickle by the standard library's own parser; None if it rejects the stream's
    grammar. (-1 when only a string argument fails to decode: the walker reads on past text it cannot decode, as a
    scanner must, since the loader has run every opcode before it.)"""
    try:
        return sum(1 for _ in pickletools.genops(io.BytesIO(data)))
    except UnicodeDecodeError:
        return -1
    except Exception:  # genops raises ValueError, KeyError, struct.error, ...
        return None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.builds(lambda b: b"\x80\x04" + b, st.binary(max_size=300))))
def test_never_crashes_on_arbitrary_bytes(data: bytes) -> None:
    result = analyse(data)
    assert 0 <= result.opcodes <= len(data)  # every opcode takes at least one byte
    assert result.error_offset is None or 0 <= result.error_offset <= len(data)
    assert all(0 <= ref.offset < len(data) for ref in result.imports)
    first = _first_pickle(data)
    if result.error is None and result.limit is None and result.pickles == 1 and not result.trailing_bytes:
        # the walk accepted exactly one pickle: the standard parser accepts it too, opcode for opcode
        assert first in (-1, result.opcodes)


class _Stub:
    """What the recording unpickler hands out for every global: calling it or setting state on it does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()


class _RecordingUnpickler(pickle.Unpickler):
    """The real unpickler (CPython's C implementation), with every global lookup recorded and replaced by a stub:
    the oracle for what loading a stream would import, in the loader's own reading of the bytes."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.looked_up: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        self.looked_up.append((module, name))
        return _Stub

    def persistent_load(self, pid: Any) -> Any:
        return None


@contextlib.contextmanager
def _memory_cap(extra: int = 2 << 30) -> Iterator[None]:
    """Address space for the real unpickler: what the process maps now and ``extra`` bytes more.

    CPython's unpickler grows its memo to whatever index a PUT names, and clears the new part: a mutated index of
    a few billion takes tens of gigabytes, and the machine's memory with it. Capped, it raises MemoryError.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm", encoding="ascii") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = mapped + extra if hard == resource.RLIM_INFINITY else min(mapped + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_the_memory_cap_turns_a_huge_memo_index_into_an_error() -> None:
    huge_put = b"\x80\x02K\x01r" + (200_000_000).to_bytes(4, "little") + b"."  # a memo of 3.2 GB, uncapped
    with pytest.raises(MemoryError), _memory_cap():
        pickle.loads(huge_put)


_SEEDS = [
    pickle.dumps(obj, protocol=protocol)
    for obj in (OrderedDict(a=1), {"k": [1, 2.0, "s"], "t": (None, True)}, [np.float64(1.5), b"xyz"], {1, 2})
    for protocol in range(6)
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_SEEDS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_every_global_the_real_unpickler_looks_up_is_found(seed: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for where, value in edits:
        data[where % len(data)] = value
    oracle = _RecordingUnpickler(bytes(data))
    # a damaged stream stops the loader; what it looked up before is what counts
    with contextlib.suppress(Exception), _memory_cap():
        oracle.load()
    found = {(ref.module, ref.name) for ref in analyse(bytes(data)).imports}
    assert [g for g in oracle.looked_up if g not in found] == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 5))
def test_never_crashes_on_mutated_pickles(noise: bytes, protocol: int) -> None:
    base = bytearray(pickle.dumps({"k": [1, 2.0, "s"], "t": (None, True)}, protocol=protocol))
    for i, byte in enumerate(noise[: len(base)]):
        if byte % 7 == 0:
            base[i] = noise[-1 - i % len(noise)]
    analyse(bytes(base))


def test_opcode_table_covers_every_opcode() -> None:
    assert len({op.code for op in pickletools.opcodes}) == len(pickletools.opcodes)


def _key(result: Any) -> tuple[Any, ...]:
    refs = [(r.module, r.name, r.offset, r.opcode, r.invoked_by) for r in result.imports]
    return refs, result.dynamic_imports, result.pickles, result.error, result.error_offset, result.trailing_bytes


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_file_on_disk_reads_the_same_as_memory_with_offsets_from_the_start(tmp_path: Any, protocol: int) -> None:
    payload = pickle.dumps([Reduce(os.system, "id"), {"a": 1}], protocol=protocol)
    path = tmp_path / "blob.bin"
    path.write_bytes(b"HEADER" + payload + b"tail")
    with path.open("rb") as fh:  # a real file is memory-mapped
        fh.seek(6)
        from_file = analyse_pickle(fh, size=len(payload))
    assert _key(from_file) == _key(analyse(payload))
    assert from_file.imports[0].offset < len(payload)


def test_a_wrapped_stream_is_read_not_mapped(tmp_path: Any) -> None:
    # GzipFile.fileno() is the compressed file's descriptor: mapping it would analyse the wrong bytes.
    import gzip

    payload = pickle.dumps(Reduce(os.system, "id"), protocol=4)
    path = tmp_path / "p.gz"
    with gzip.open(path, "wb") as out:
        out.write(payload)
    with gzip.open(path, "rb") as fh:
        result = analyse_pickle(fh)  # type: ignore[arg-type]
    assert result.error is None and result.worst is Verdict.DANGEROUS


def test_an_unterminated_argument_is_reported_where_it_starts_and_what_follows_is_searched() -> None:
    data = b"\x80\x02cos\nsystem"  # GLOBAL whose name never ends: a lenient reader may still act on it
    result = analyse(data)
    assert result.error == "unterminated text argument"
    assert result.error_offset == 2  # the GLOBAL opcode
    assert result.trailing_names == ("os system",)


def test_ext_codes_stop_the_walk_as_the_empty_extension_registry_stops_the_unpickler() -> None:
    result = analyse(b"\x80\x02\x84" + struct.pack("<i", -5) + b".")
    assert result.imports == ()
    assert result.error is not None and "EXT4 -5" in result.error and "extension registry" in result.error


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=20), st.binary(max_size=20),
                          st.none(), st.booleans()), max_size=30), st.integers(0, 5))  # fmt: skip
def test_plain_data_at_every_protocol_imports_nothing_and_parses(values: list[Any], protocol: int) -> None:
    result = analyse(pickle.dumps(values, protocol=protocol))
    assert result.error is None and result.pickles == 1 and result.worst is Verdict.SAFE


@pytest.mark.parametrize(
    "data",
    [b"(I1\np\xb3\n.", b"(I1\np1\ng\xb3\n.", b"I\xd9\xa3\n.", b"L\xb2L\n."],  # superscripts, Arabic-Indic digits
    ids=["put-superscript", "get-superscript", "int-arabic-indic", "long-superscript"],
)
def test_non_ascii_digits_stop_the_walk_as_they_stop_the_loader(data: bytes) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever CPython raises, it does not load
        pickle.loads(data)
    assert "malformed integer" in (analyse(data).error or "")


@pytest.mark.parametrize(("text", "value"), [(b"0x10", 16), (b"012", 10), (b"1_0", 10), (b" 7 ", 7)])
def test_protocol_0_integers_read_as_the_loader_reads_them(text: bytes, value: int) -> None:
    data = b"I" + text + b"\n."
    assert pickle.loads(data) == value
    assert analyse(data).error is None
