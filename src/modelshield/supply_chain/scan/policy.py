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
from typing import Protocol

__all__ = ["DEFAULT_POLICY", "Classification", "Classifier", "Policy", "Verdict", "VerdictCache", "normalise"]


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
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "bytearray",
        "bytes",
        "str",
        "int",
        "float",
        "complex",
        "bool",
        "slice",
        "range",
        "object",
        "NoneType",
        "Ellipsis",
        "NotImplemented",
        "True",
        "False",
        "None",
    )
)

# (module, name) pairs, or module prefixes mapped to a name pattern, that rebuild data and nothing else.
_SAFE_EXACT = frozenset(
    {
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "deque"),
        ("collections", "Counter"),
        ("collections", "namedtuple"),
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
        ("enum", "Enum"),
        ("re", "_compile"),
        ("array", "array"),
        ("array", "_array_reconstructor"),
        ("_codecs", "encode"),
        ("codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy", "matrix"),
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.ma.core", "MaskedArray"),
        ("numpy.random", "__RandomState_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "_RandomState_ctor"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch", "dtype"),
        ("torch", "layout"),
        ("torch", "memory_format"),
        ("torch", "Tensor"),
        ("torch.nn.parameter", "Parameter"),
        ("torch.nn.parameter", "UninitializedParameter"),
        ("torch.nn.parameter", "Buffer"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.serialization", "_get_layout"),
        ("torch.storage", "UntypedStorage"),
        ("torch.storage", "TypedStorage"),
        ("torch.utils.hooks", "RemovableHandle"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("joblib.numpy_pickle", "NDArrayWrapper"),
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
        ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas.core.frame", "DataFrame"),
        ("pandas.core.series", "Series"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas.core.indexes.base", "Index"),
        ("pandas.core.indexes.range", "RangeIndex"),
        ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    }
)

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_SAFE_PATTERNS: tuple[tuple[re.Pattern[str], re.Pattern[str], str], ...] = tuple(
    (re.compile(module), re.compile(name), reason)
    for module, name, reason in (
        # NumPy array and scalar reconstruction, in numpy 1.x and 2.x module layouts.
        (
            r"numpy(\._core|\.core)(\.multiarray|\.numeric|\._multiarray_umath)?",
            r"_reconstruct|scalar|_frombuffer|dtype|ndarray|_DType_reconstruct",
            "NumPy array reconstruction",
        ),
        (r"numpy\.dtypes", r"[A-Z]\w*DType", "NumPy dtype class"),
        (
            r"numpy",
            r"(u?int(8|16|32|64)|float(16|32|64|128)|complex(64|128|256)|bool_?|object_|str_|bytes_|void|longlong|ulonglong|intc|uintc|half|single|double|longdouble|datetime64|timedelta64)",
            "NumPy scalar type",
        ),
        # PyTorch tensor and storage reconstruction.
        (
            r"torch\._utils",
            r"_rebuild_(tensor|tensor_v2|tensor_v3|parameter|parameter_with_state|sparse_tensor|nested_tensor|device_tensor_from_numpy|meta_tensor_no_storage|wrapper_subclass|qtensor|xla_tensor|mps_tensor)",
            "PyTorch tensor reconstruction",
        ),
        (
            r"torch",
            r"(Byte|Char|Short|Int|Long|Half|Float|Double|BFloat16|Bool|ComplexFloat|ComplexDouble|QUInt8|QInt8|QInt32|QUInt4x2|QUInt2x4)Storage",
            "PyTorch storage type",
        ),
        (
            r"torch",
            r"(float|float16|float32|float64|bfloat16|half|double|int8|int16|int32|int64|uint8|bool|complex64|complex128|long|int|short)",
            "PyTorch dtype",
        ),
        (r"torch\.nn\.modules(\.\w+)*", r"[A-Z]\w*", "PyTorch module class"),
        (r"torch\.optim(\.\w+)*", r"[A-Z]\w*", "PyTorch optimiser class"),
        # scikit-learn, SciPy and friends: classes rebuild state; their functions are left for review.
        (r"sklearn(\.\w+)*", r"_?[A-Z]\w*", "scikit-learn class"),
        (r"numpy\.random(\.\w+)*", r"[A-Z]\w*|__pyx_unpickle_\w+|__\w+_ctor", "NumPy random generator state"),
        (r"sklearn\._loss\._loss", r"__pyx_unpickle_\w+", "scikit-learn loss state"),
        (r"sklearn\.tree\._tree", r"Tree|__pyx_unpickle_\w+", "scikit-learn tree state"),
        (r"sklearn\.neighbors\._\w+", r"(newObj|__pyx_unpickle_\w+)", "scikit-learn neighbours state"),
        (r"scipy\.sparse(\._\w+|\.\w+)*", r"[a-z_]*(matrix|array)", "SciPy sparse container"),
        (r"scipy\.sparse(\._\w+|\.\w+)*", r"[A-Z]\w*", "SciPy sparse class"),
        (r"xgboost(\.\w+)*", r"XGB\w+|Booster", "XGBoost model class"),
        (r"lightgbm(\.\w+)*", r"LGBM\w+|Booster", "LightGBM model class"),
        (r"catboost(\.\w+)*", r"CatBoost\w+", "CatBoost model class"),
    )
)


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
        """The verdict on ``module.name``: safe, dangerous, or unknown (review), with the reason."""
        module, name = normalise(module.strip(), name.strip())
        segments = name.split(".")
        if (
            not module
            or not all(_IDENT_RE.fullmatch(s) for s in segments)
            or not all(_IDENT_RE.fullmatch(s) for s in module.split("."))
        ):
            return Classification(module, name, Verdict.DANGEROUS, "malformed module or attribute name")
        qualname = f"{module}.{name}"
        # Every module the name passes through, and every attribute on the way, must be acceptable.
        paths = [module, *(f"{module}.{'.'.join(segments[:i])}" for i in range(1, len(segments) + 1))]
        if self.extra_dangerous:
            for candidate in (qualname, *paths):
                if candidate in self.extra_dangerous or _wild(candidate, self.extra_dangerous):
                    return Classification(module, name, Verdict.DANGEROUS, "denied by the scan policy")
        if self.extra_safe and (qualname in self.extra_safe or _wild(qualname, self.extra_safe)):
            return Classification(module, name, Verdict.SAFE, "allowed by the scan policy")
        for candidate in paths:
            reason = _module_rule(candidate, _DANGEROUS_MODULES)
            if reason is not None and (module, name) not in _SAFE_EXACT:
                return Classification(module, name, Verdict.DANGEROUS, f"{candidate}: {reason}")
        for segment in segments:
            reason = _DANGEROUS_NAMES.get(segment)
            if reason is not None and not (module == "builtins" and segment in _SAFE_BUILTINS):
                return Classification(module, name, Verdict.DANGEROUS, f"{segment}: {reason}")
        for segment in segments:
            if segment.startswith("__") and segment.endswith("__") and len(segments) > 1:
                return Classification(module, name, Verdict.DANGEROUS, f"{segment}: reaches interpreter internals")
            reason = _module_rule(segment, _DANGEROUS_MODULES) if segment != segments[-1] else None
            if reason is not None:
                return Classification(module, name, Verdict.DANGEROUS, f"{segment} reached through {module}: {reason}")
        if len(segments) > 1 and (module, name) not in _SAFE_EXACT:
            return Classification(module, name, Verdict.UNKNOWN, "dotted attribute path: review what it resolves to")
        if module == "builtins":
            if name in _SAFE_BUILTINS:
                return Classification(module, name, Verdict.SAFE, "builtin value type")
            return Classification(module, name, Verdict.UNKNOWN, "builtin outside the plain value types")
        if (module, name) in _SAFE_EXACT:
            return Classification(module, name, Verdict.SAFE, "known data reconstructor")
        for module_re, name_re, reason in _SAFE_PATTERNS:
            if module_re.fullmatch(module) and name_re.fullmatch(name):
                return Classification(module, name, Verdict.SAFE, reason)
        return Classification(module, name, Verdict.UNKNOWN, "not on the allow list: review it")


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
