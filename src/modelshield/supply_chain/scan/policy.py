"""Which callables a pickle may reach: safe reconstructors, dangerous callables, and everything else (review).

    >>> from modelshield.supply_chain.scan.policy import DEFAULT_POLICY, Verdict
    >>> DEFAULT_POLICY.classify("collections", "OrderedDict").verdict
    <Verdict.SAFE: 'safe'>
    >>> DEFAULT_POLICY.classify("os", "system").verdict
    <Verdict.DANGEROUS: 'dangerous'>
    >>> DEFAULT_POLICY.classify("os", "path.join").verdict      # dotted names are resolved segment by segment
    <Verdict.DANGEROUS: 'dangerous'>

A name is normalised first: Python 2 module names (``__builtin__``, ``cPickle``, ``commands``, ``urllib2``) map
to what Python 3's unpickler would import, and dotted attribute names (protocol 4 resolves ``path.os.system`` under
``os`` by ``getattr``) are classified by every module and attribute they pass through. The deny rules win over the
allow rules; a name matched by neither is ``UNKNOWN`` and is reported for review.

A :class:`Policy` is immutable and holds no state: :meth:`Policy.classify` works the verdict out on every call. A
scan run remembers verdicts in a :class:`VerdictCache` of its own (a model imports the same few callables many
times), bounded and safe to share between threads:

    >>> verdicts = VerdictCache(DEFAULT_POLICY, maxsize=128)
    >>> verdicts.classify("os", "system") is verdicts.classify("os", "system")
    True
"""

from __future__ import annotations

import _compat_pickle
import enum
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Protocol

__all__ = [
    "DEFAULT_POLICY",
    "MALFORMED",
    "Classification",
    "Classifier",
    "Policy",
    "TorchScriptClassifier",
    "Verdict",
    "VerdictCache",
    "normalise",
]


class Verdict(enum.StrEnum):
    SAFE = "safe"
    UNKNOWN = "unknown"
    DANGEROUS = "dangerous"


@dataclass(frozen=True)
class Classification:
    """The verdict on one ``module.name`` and the rule that decided it."""

    module: str
    name: str
    verdict: Verdict
    reason: str

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


# Modules any attribute of which can run code, spawn processes, touch the network or the file system, import
# code, or unpickle again. Matched on the module and its sub-modules.
_DANGEROUS_MODULES: Mapping[str, str] = {
    **dict.fromkeys(("os", "posix", "nt", "posixpath", "ntpath", "subprocess", "pty", "commands"), "process or OS"),
    **dict.fromkeys(("sys", "signal", "resource", "gc", "atexit", "faulthandler"), "interpreter internals"),
    **dict.fromkeys(
        (
            "runpy",
            "code",
            "codeop",
            "compileall",
            "py_compile",
            "importlib",
            "imp",
            "pkgutil",
            "zipimport",
            "pydoc",
            "inspect",
            "ast",
            "dis",
            "types",
            "marshal",
            "ctypes",
            "cffi",
            "_ctypes",
        ),
        "code loading or execution",
    ),
    **dict.fromkeys(
        (
            "bdb",
            "pdb",
            "trace",
            "cProfile",
            "profile",
            "timeit",
            "doctest",
            "idlelib",
            "lib2to3",
            "unittest",
            "test",
            "tkinter",
            "turtle",
            "turtledemo",
            "ensurepip",
            "venv",
            "distutils",
            "setuptools",
            "pip",
            "_osx_support",
            "_aix_support",
            "sysconfig",
            "platform",
            "uuid",
            "ctypes.util",
        ),
        "debugger, profiler, test runner or tool that runs code or commands",
    ),
    **dict.fromkeys(
        (
            "pickle",
            "_pickle",
            "cPickle",
            "pickletools",
            "shelve",
            "dill",
            "cloudpickle",
            "joblib.numpy_pickle_utils",
            "copyreg._reconstructor_unsafe",
            "torch.load",
            "torch.serialization",
            "torch.hub",
            "torch.package",
        ),
        "nested deserialisation",
    ),
    **dict.fromkeys(
        (
            "socket",
            "ssl",
            "http",
            "urllib",
            "urllib2",
            "httplib",
            "ftplib",
            "smtplib",
            "poplib",
            "imaplib",
            "nntplib",
            "telnetlib",
            "xmlrpc",
            "webbrowser",
            "requests",
            "httpx",
            "aiohttp",
            "asyncio",
            "socketserver",
            "select",
            "selectors",
            "mmap",
        ),
        "network or event-loop access",
    ),
    **dict.fromkeys(
        (
            "shutil",
            "tempfile",
            "glob",
            "fileinput",
            "io",
            "_io",
            "pathlib",
            "zipfile",
            "tarfile",
            "gzip",
            "bz2",
            "lzma",
            "dbm",
            "sqlite3",
            "linecache",
            "codecs",
        ),
        "file-system access",
    ),
    **dict.fromkeys(
        ("multiprocessing", "concurrent", "threading", "_thread", "_posixsubprocess"), "processes or threads"
    ),
    **dict.fromkeys(("operator", "functools", "itertools"), "indirect call (getter, caller, partial application)"),
    **dict.fromkeys(
        ("mlflow", "keras", "tensorflow", "jinja2", "yaml"), "framework entry point that loads or runs code"
    ),
    **dict.fromkeys(
        (
            "numpy.testing",
            "numpy.f2py",
            "numpy.distutils",
            "numpy.lib.npyio",
            "numpy.load",
            "numpy.ctypeslib",
            "pandas.io",
            "pandas.read_csv",
            "pandas.read_pickle",
            "torch._dynamo",
            "torch._inductor",
            "torch.utils.cpp_extension",
            "torch.jit",
            "torch._C._jit",
            "torch.utils.data.datapipes",
            "torch.distributed",
            "torch.cuda.jiterator",
            "torch.compile",
            "torch._ops",
            "torch.ops",
            "torch.library",
            "torch.fx",
            "torch.export",
            "sklearn.utils._testing",
            "sklearn.datasets",
            "scipy.weave",
            "scipy.io",
        ),
        "library function that compiles, loads, reads or runs code or files",
    ),
}

# Individual dangerous names, whatever module they are reached through.
_DANGEROUS_NAMES: Mapping[str, str] = {
    **dict.fromkeys(
        (
            "eval",
            "exec",
            "execfile",
            "compile",
            "__import__",
            "open",
            "input",
            "breakpoint",
            "help",
            "getattr",
            "setattr",
            "delattr",
            "globals",
            "locals",
            "vars",
            "dir",
            "memoryview",
            "apply",
            "reload",
            "file",
        ),
        "builtin that evaluates, imports, reflects or opens files",
    ),
    **dict.fromkeys(
        (
            "system",
            "popen",
            "popen2",
            "popen3",
            "popen4",
            "spawn",
            "spawnl",
            "spawnv",
            "spawnve",
            "spawnvp",
            "execl",
            "execle",
            "execlp",
            "execv",
            "execve",
            "execvp",
            "fork",
            "forkpty",
            "startfile",
            "getoutput",
            "getstatusoutput",
            "check_output",
            "check_call",
            "run",
            "call",
            "Popen",
            "run_path",
            "run_module",
            "_run_code",
            "_run_module_code",
            "runctx",
            "runcall",
            "run_command",
            "runstring",
            "runeval",
            "runcode",
            "loads",
            "load",
            "load_module",
            "import_module",
            "resolve_name",
            "locate",
            "attrgetter",
            "methodcaller",
            "itemgetter",
            "partial",
            "partialmethod",
            "reduce",
            "FunctionType",
            "CodeType",
            "LambdaType",
            "MethodType",
            "create_subprocess_exec",
            "create_subprocess_shell",
            "_get_command_stdout",
            "_read_output",
            "_find_build_tool",
            "_syscmd_uname",
            "_syscmd_file",
            "load_inline",
            "compile_inline",
            "read_pickle",
            "urlopen",
            "urlretrieve",
            "b64decode",
        ),
        "callable that runs commands or code, loads objects, or calls indirectly",
    ),
}

# Builtins that only construct plain values.
_SAFE_BUILTINS = frozenset(
    (
        "dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str", "int", "float", "complex", "bool",
        "slice", "range", "object", "NoneType", "Ellipsis", "NotImplemented", "True", "False", "None",
    )
)  # fmt: skip


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_TORCH_DTYPES = _words(
    "float float16 float32 float64 bfloat16 half double complex32 complex64 complex128 chalf cfloat cdouble "
    "uint8 uint16 uint32 uint64 int8 int16 int32 int64 short int long bool quint8 qint8 qint32 quint4x2 quint2x4 "
    "float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz float8_e8m0fnu float4_e2m1fn_x2 "
    "bits1x8 bits2x4 bits4x2 bits8 bits16 int1 int2 int3 int4 int5 int6 int7 uint1 uint2 uint3 uint4 uint5 uint6 uint7"
)
_TORCH_ENUMS = _words(
    # quantisation schemes, layouts and memory formats: module-level constants that tensors are rebuilt with
    "per_tensor_affine per_channel_affine per_tensor_symmetric per_channel_symmetric per_channel_affine_float_qparams "
    "strided sparse_coo sparse_csr sparse_csc sparse_bsr sparse_bsc _mkldnn jagged "
    "contiguous_format channels_last channels_last_3d preserve_format"
)
_TORCH_STORAGES = _words(
    "Byte Char Short Int Long Half Float Double BFloat16 Bool ComplexFloat ComplexDouble QUInt8 QInt8 QInt32 "
    "QUInt4x2 QUInt2x4"
)
_TORCH_REBUILDERS = _words(
    "tensor tensor_v2 tensor_v3 parameter parameter_with_state sparse_tensor nested_tensor "
    "device_tensor_from_numpy meta_tensor_no_storage wrapper_subclass qtensor xla_tensor mps_tensor"
)

# pyarrow's own reconstructors and type factories, as Arrow-backed pandas frames pickle them.
_PYARROW = _words(
    "_restore_array py_buffer type_for_alias timestamp time32 time64 date32 date64 duration decimal128 decimal256 "
    "list_ large_list struct field dictionary string large_string binary large_binary null bool_ map_ schema "
    "int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64"
)
_XGB = _words("XGBClassifier XGBRegressor XGBRanker XGBRFClassifier XGBRFRegressor")

# (module, name) pairs vetted by hand: each only rebuilds a value from its arguments and state, and each was seen in
# files that the real libraries write. Library classes are listed in allowlist_libraries.txt (generated).
_SAFE_EXACT = frozenset(
    {
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "deque"),
        ("collections", "Counter"),
        ("copyreg", "_reconstructor"),
        ("copyreg", "__newobj__"),
        ("copyreg", "__newobj_ex__"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("uuid", "UUID"),
        ("argparse", "Namespace"),  # fairseq-style checkpoints keep their command-line arguments
        ("zoneinfo", "ZoneInfo"),  # looks a zone up by name in the time-zone database, which it validates
        ("zoneinfo", "ZoneInfo._unpickle"),  # written as getattr(ZoneInfo, "_unpickle") by every tz-aware frame
        ("array", "array"),
        ("array", "_array_reconstructor"),
        ("_codecs", "encode"),  # how protocol 2 writes bytes under Python 3
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy", "matrix"),
        ("numpy.matrixlib.defmatrix", "matrix"),
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.ma.core", "MaskedArray"),
        ("numpy.ma", "MaskedArray"),
        ("numpy.core._internal", "_reconstruct"),  # NumPy 0.x object arrays (Python 2-era .npy files)
        ("numpy.random", "__RandomState_ctor"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch", "dtype"),
        ("torch", "layout"),
        ("torch", "memory_format"),
        ("torch", "Tensor"),
        ("torch._tensor", "Tensor"),
        ("torch.nn.parameter", "Parameter"),
        ("torch.nn.parameter", "UninitializedParameter"),
        ("torch.nn.parameter", "Buffer"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.serialization", "_get_layout"),
        ("torch.storage", "UntypedStorage"),
        ("torch.storage", "TypedStorage"),
        ("torch", "UntypedStorage"),
        ("torch", "TypedStorage"),
        ("torch.utils.hooks", "RemovableHandle"),
        ("torch._dynamo.decorators", "_DimRange"),  # a dataclass of two ints in jagged nested tensors
        ("torch.nested._internal.nested_tensor", "NestedTensor"),
        ("torch.nested._internal.nested_tensor", "_rebuild_njt"),
        *(("torch", f"{n}Tensor") for n in _TORCH_STORAGES),  # legacy (pre-1.6) tar checkpoints name tensor types
        *(("pyarrow.lib", n) for n in _PYARROW),
        ("pandas", "NA"),  # missing-value singletons, referenced by name
        ("pandas", "NaT"),
        ("pandas._libs.missing", "NA"),
        ("pandas._libs.tslibs.nattype", "NaT"),
        ("torch.nn.modules.container", "Sequential"),
        *(("torch", n) for n in (*_TORCH_DTYPES, *_TORCH_ENUMS)),
        *(("torch", f"{n}Storage") for n in _TORCH_STORAGES),
        *(("torch._utils", f"_rebuild_{n}") for n in _TORCH_REBUILDERS),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("joblib.numpy_pickle", "NDArrayWrapper"),
        ("joblib.numpy_pickle", "ZNDArrayWrapper"),
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
        ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"),
        ("xgboost.core", "Booster"),
        *(("xgboost.sklearn", n) for n in _XGB),
        ("lightgbm.basic", "Booster"),
        *(("lightgbm.sklearn", n) for n in ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel")),
        *(("catboost.core", n) for n in ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")),
    }
)  # fmt: skip

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
#: The reason given for a name that is not a dotted Python identifier (an import of it fails in a normal loader).
MALFORMED = "malformed module or attribute name"
# NumPy's reconstructors, scalar types and dtype classes, in its 1.x (numpy.core) and 2.x (numpy._core) layouts:
# a closed set of names, matched exactly by these patterns.
_SAFE_PATTERNS: tuple[tuple[re.Pattern[str], re.Pattern[str], str], ...] = tuple(
    (re.compile(module), re.compile(name), reason)
    for module, name, reason in (
        (
            r"numpy(\._core|\.core)(\.multiarray|\.numeric|\._multiarray_umath)?",
            r"_reconstruct|scalar|_frombuffer|dtype|ndarray|_DType_reconstruct",
            "NumPy array reconstruction",
        ),
        (r"numpy\.dtypes", r"[A-Z][A-Za-z0-9]*DType", "NumPy dtype class"),
        (
            r"numpy",
            (
                r"(u?int(8|16|32|64)|float(16|32|64|128)|complex(64|128|256)|bool_?|object_|str_|bytes_|void|longlong"
                r"|ulonglong|intc|uintc|half|single|double|longdouble|datetime64|timedelta64)"
            ),
            "NumPy scalar type",
        ),
    )
)


@functools.cache
def _library_allowlist() -> Mapping[tuple[str, str], str]:
    """The generated list of classes and reconstructors that the data libraries define (read once, on first use)."""
    text = (resources.files(__package__) / "allowlist_libraries.txt").read_text(encoding="utf-8")
    rows: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            module, name, reason = line.split("\t")
            rows[(module, name)] = reason
    return rows


_IDENT_RE = re.compile(_IDENT)


def normalise(module: str, name: str) -> tuple[str, str]:
    """What Python 3's unpickler imports for ``module.name`` (Python 2 names mapped)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _module_rule(module: str, rules: Mapping[str, str]) -> str | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        reason = rules.get(".".join(parts[:i]))
        if reason is not None:
            return reason
    return None


class Classifier(Protocol):
    """Anything that gives a verdict on ``module.name``: a :class:`Policy`, or a :class:`VerdictCache` over one."""

    def classify(self, module: str, name: str) -> Classification:
        """The verdict on ``module.name``, with the reason."""
        ...


@dataclass(frozen=True)
class Policy:
    """An allow/deny policy over ``module.name`` callables; ``extra_safe`` and ``extra_dangerous`` extend it.

    Immutable and stateless: every call of :meth:`classify` works the verdict out again. Wrap a policy in a
    :class:`VerdictCache` to remember verdicts for the length of a scan run.
    """

    extra_safe: frozenset[str] = field(default_factory=frozenset)  # "module.name" or "module.*"
    extra_dangerous: frozenset[str] = field(default_factory=frozenset)

    def with_rules(self, *, safe: Iterable[str] = (), dangerous: Iterable[str] = ()) -> Policy:
        """This policy with more allowed (``safe``) and denied (``dangerous``) names or ``module.*`` patterns."""
        return Policy(self.extra_safe | frozenset(safe), self.extra_dangerous | frozenset(dangerous))

    def classify(self, module: str, name: str) -> Classification:
        """The verdict on ``module.name``: safe, dangerous, or unknown (not reviewed), with the reason.

        Allowlist first: a name is safe only when the policy, the vetted list or the generated library list names
        it exactly (NumPy's closed set of reconstructors by pattern); everything else is dangerous when a deny
        rule knows why, and unknown otherwise. The scanner rates unknown names high: a name nobody reviewed may
        run anything.
        """
        module, name = normalise(module.strip(), name.strip())
        segments = name.split(".")
        if (
            not module
            or not all(_IDENT_RE.fullmatch(s) for s in segments)
            or not all(_IDENT_RE.fullmatch(s) for s in module.split("."))
        ):
            return Classification(module, name, Verdict.DANGEROUS, MALFORMED)
        qualname = f"{module}.{name}"
        # Every module the name passes through, and every attribute on the way, is judged.
        paths = [module, *(f"{module}.{'.'.join(segments[:i])}" for i in range(1, len(segments) + 1))]
        if self.extra_dangerous:
            for candidate in (qualname, *paths):
                if candidate in self.extra_dangerous or _wild(candidate, self.extra_dangerous):
                    return Classification(module, name, Verdict.DANGEROUS, "denied by the scan policy")
        if self.extra_safe and (qualname in self.extra_safe or _wild(qualname, self.extra_safe)):
            return Classification(module, name, Verdict.SAFE, "allowed by the scan policy")
        safe = _safe_reason(module, name)
        if safe is not None:
            return Classification(module, name, Verdict.SAFE, safe)
        for candidate in paths:
            reason = _module_rule(candidate, _DANGEROUS_MODULES)
            if reason is not None:
                return Classification(module, name, Verdict.DANGEROUS, f"{candidate}: {reason}")
        for segment in segments:
            reason = _DANGEROUS_NAMES.get(segment)
            if reason is not None:
                return Classification(module, name, Verdict.DANGEROUS, f"{segment}: {reason}")
        for segment in segments:
            if segment.startswith("__") and segment.endswith("__") and len(segments) > 1:
                return Classification(module, name, Verdict.DANGEROUS, f"{segment}: reaches interpreter internals")
            reason = _module_rule(segment, _DANGEROUS_MODULES) if segment != segments[-1] else None
            if reason is not None:
                return Classification(module, name, Verdict.DANGEROUS, f"{segment} reached through {module}: {reason}")
        if len(segments) > 1:
            return Classification(module, name, Verdict.UNKNOWN, "attribute path not on the allowlist")
        if module == "builtins":
            return Classification(module, name, Verdict.UNKNOWN, "builtin outside the plain value types")
        return Classification(module, name, Verdict.UNKNOWN, "not on the allowlist of data reconstructors")


def _safe_reason(module: str, name: str) -> str | None:
    """Why ``module.name`` is on the allowlist, or None."""
    if module == "builtins" and name in _SAFE_BUILTINS:
        return "builtin value type"
    if (module, name) in _SAFE_EXACT:
        return "known data reconstructor"
    library = _library_allowlist().get((module, name))
    if library is not None:
        return library
    for module_re, name_re, reason in _SAFE_PATTERNS:
        if module_re.fullmatch(module) and name_re.fullmatch(name):
            return reason
    return None


def _wild(qualname: str, rules: frozenset[str]) -> bool:
    return any(rule.endswith(".*") and qualname.startswith(rule[:-1]) for rule in rules)


DEFAULT_POLICY = Policy()

_CACHE_SIZE = 4096


class VerdictCache:
    """A policy's verdicts, remembered for one scan run: a bounded LRU cache, safe to share between threads.

    Create one per run (the scanner does): it belongs to whoever created it, and nothing else sees it. ``maxsize``
    bounds it, since the names come from untrusted files. Two caches never share verdicts, even over equal
    policies.
    """

    def __init__(self, policy: Policy = DEFAULT_POLICY, *, maxsize: int = _CACHE_SIZE) -> None:
        self.policy = policy
        self.maxsize = maxsize
        # functools.lru_cache locks its bookkeeping; two threads asking at once may both compute a verdict, which
        # is harmless since classify is a pure function of the policy and the name.
        self._classify = functools.lru_cache(maxsize=maxsize)(policy.classify)

    def classify(self, module: str, name: str) -> Classification:
        """The policy's verdict on ``module.name``, worked out once per cache."""
        return self._classify(module, name)

    def __len__(self) -> int:
        """How many verdicts are remembered (never more than ``maxsize``)."""
        return self._classify.cache_info().currsize

    def __repr__(self) -> str:
        return f"VerdictCache({self.policy!r}, maxsize={self.maxsize}, size={len(self)})"


# What torch.jit.load's own (C++) unpickler resolves besides the usual tensor reconstructors: classes compiled from
# the archive's code, and its list and type-tag builders. It imports no Python module, so these are safe there.
_TORCHSCRIPT_BUILDERS = frozenset(
    (
        "build_intlist",
        "build_tensorlist",
        "build_doublelist",
        "build_boollist",
        "build_tensor_from_id",
        "restore_type_tag",
    )
)


class TorchScriptClassifier:
    """Verdicts for the pickles of a TorchScript archive, which ``torch.jit.load`` reads with its own unpickler.

    ``__torch__.*`` names are TorchScript classes compiled from the archive's ``code/`` (judged there, not
    imported), and ``torch.jit._pickle`` builders rebuild lists; everything else is judged by ``base``.

        >>> TorchScriptClassifier(DEFAULT_POLICY).classify("__torch__.torch.nn.modules.conv", "Conv2d").verdict
        <Verdict.SAFE: 'safe'>
    """

    def __init__(self, base: Classifier) -> None:
        self.base = base

    def classify(self, module: str, name: str) -> Classification:
        if module == "__torch__" or module.startswith("__torch__."):
            return Classification(module, name, Verdict.SAFE, "TorchScript class compiled from the archive's code")
        if module == "torch.jit._pickle" and name in _TORCHSCRIPT_BUILDERS:
            return Classification(module, name, Verdict.SAFE, "TorchScript list builder")
        return self.base.classify(module, name)
