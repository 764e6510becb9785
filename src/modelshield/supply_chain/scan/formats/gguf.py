"""GGUF files (llama.cpp): header sanity, and chat templates judged by Jinja's own parser (template injection).

    >>> import io, struct
    >>> from modelshield.supply_chain.scan.formats.gguf import GGUF, template_findings
    >>> from modelshield.supply_chain.scan.scanner import Scanner
    >>> data = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    >>> GGUF.scan(io.BytesIO(data), len(data), "model.gguf", Scanner().context())
    []
    >>> [f.severity.value for f in template_findings("{{ x|attr('_'*2 ~ 'class' ~ '_'*2) }}", "k", "m.gguf")]
    ['high']

Only the metadata is read; numeric arrays (vocabulary scores) are stepped over and tensor data is never touched.
Every string under a ``chat_template`` key (``tokenizer.chat_template``, the named variants
``tokenizer.chat_template.<name>``, and string arrays such as ``tokenizer.chat_templates``) is parsed with
:meth:`jinja2.Environment.parse` (parsing runs nothing) and its syntax tree judged allowlist-first: attribute names,
filters, tests and called names must be ones that real chat templates use; keys computed at render time, the
``attr`` filter with a computed or private name, template imports and Jinja's internal objects are high; any
double-underscore name is critical. A template that does not parse is medium (the server cannot render it).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat
from modelshield.supply_chain.scan.interface import ScanContext, scan_finding

__all__ = ["GGUF", "GgufScanner", "template_findings"]

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_KV = 1_000_000
_MAX_STRING = 64 * 1024 * 1024
_MAX_TEMPLATE = 4 * 1024 * 1024
_MAX_ARRAY_DEPTH = 4

#: Attribute and method names that real chat templates use (messages, tools, JSON schemas, loop state, strings).
ALLOWED_ATTRIBUTES = frozenset(
    {
        # str, dict and list methods
        "items", "keys", "values", "get", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines",
        "startswith", "endswith", "upper", "lower", "title", "capitalize", "replace", "append", "extend", "count",
        "find", "rfind", "index", "join", "pop", "copy", "update", "insert",
        # loop state
        "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0", "previtem", "nextitem",
        "cycle", "changed",
        # messages, tools and JSON schemas
        "content", "role", "name", "tool_calls", "tool_call", "function", "arguments", "type", "text", "parameters",
        "properties", "description", "required", "tools", "tool_call_id", "id", "reasoning_content", "reasoning",
        "thinking", "image", "images", "image_url", "url", "video", "videos", "audio", "documents", "document",
        "enum", "default", "nullable", "value", "key", "anyOf", "oneOf", "allOf", "additionalProperties",
        "minimum", "maximum", "pattern", "examples", "strict", "tool_name", "output", "result", "results", "system",
        "source", "metadata", "language", "response", "responses", "message", "messages", "data", "snippet",
    }
)  # fmt: skip
#: Names whose use is an exploitation primitive even without underscores.
_PRIMITIVES = frozenset(
    {
        "format_map", "mro", "gi_frame", "gi_code", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
        "tb_frame", "tb_next", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "func_globals", "func_code",
        "im_func", "globals", "environment", "module",
    }
)  # fmt: skip
#: Names templates may call: what the serving stacks (transformers, llama.cpp, vLLM) provide.
ALLOWED_CALLS = frozenset({"raise_exception", "strftime_now", "range", "namespace", "dict", "caller"})
#: Names that reach Jinja's or a web framework's internals.
_FORBIDDEN_NAMES = frozenset(
    {"self", "cycler", "joiner", "lipsum", "config", "request", "url_for", "get_flashed_messages", "g", "session"}
)
_LOOP_INTEGERS = frozenset({"index", "index0", "revindex", "revindex0", "length", "depth", "depth0"})
_INTEGER_FILTERS = frozenset({"length", "count", "int", "abs", "round", "wordcount"})
#: Filter arguments that name attributes (positional index, keyword), read with getitem semantics.
_ATTRIBUTE_ARGS: dict[str, tuple[int | None, str]] = {
    "map": (None, "attribute"),
    "selectattr": (0, "attribute"),
    "rejectattr": (0, "attribute"),
    "sort": (2, "attribute"),
    "groupby": (0, "attribute"),
    "sum": (0, "attribute"),
    "unique": (1, "attribute"),
    "min": (1, "attribute"),
    "max": (1, "attribute"),
    "join": (1, "attribute"),
}


class _Problems:
    def __init__(self) -> None:
        self.critical: list[str] = []
        self.high: list[str] = []

    def name(self, name: object, what: str, *, allowlist: frozenset[str] | None) -> None:
        """Judge an attribute name: dunders are critical, private names and names off ``allowlist`` high."""
        if not isinstance(name, str):
            if not isinstance(name, int) or isinstance(name, bool):
                self.high.append(f"{what} {name!r}")
            return
        if "__" in name or name in _PRIMITIVES:
            self.critical.append(f"{what} {name!r}")
        elif name.startswith("_"):
            self.high.append(f"{what} {name!r}")
        elif allowlist is not None and name not in allowlist:
            self.high.append(f"{what} {name!r} (not one that chat templates use)")


def _environment() -> Any:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension

    class GenerationTag(Extension):  # transformers' {% generation %} marker (assistant masks)
        tags = {"generation"}  # noqa: RUF012 - Jinja's own class attribute

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", GenerationTag])  # noqa: S701


class _Judge:
    """The allowlist-first judgement of one parsed template."""

    def __init__(self, tree: Any) -> None:
        from jinja2 import nodes
        from jinja2.defaults import DEFAULT_FILTERS, DEFAULT_TESTS  # type: ignore[attr-defined]

        self.nodes = nodes
        self.filters = frozenset(DEFAULT_FILTERS)
        self.tests = frozenset(DEFAULT_TESTS)
        self.tree = tree
        self.problems = _Problems()
        self.assigned: dict[str, list[Any]] = {}  # name -> expressions assigned to it (None: a block or parameter)
        self.ns_assigned: dict[tuple[str, str], list[Any]] = {}
        self.namespaces: set[str] = set()
        self.loop_iterables: dict[str, list[Any]] = {}
        self.macros: set[str] = set()
        self._busy: set[str] = set()
        self._collect()

    def _targets(self, target: Any) -> Iterator[Any]:
        nodes = self.nodes
        if isinstance(target, nodes.Tuple | nodes.List):
            for item in target.items:
                yield from self._targets(item)
        else:
            yield target

    def _collect(self) -> None:
        nodes = self.nodes
        for node in self.tree.find_all((nodes.Assign, nodes.AssignBlock, nodes.For, nodes.Macro, nodes.CallBlock)):
            if isinstance(node, nodes.Assign):
                for target in self._targets(node.target):
                    if isinstance(target, nodes.Name):
                        self.assigned.setdefault(target.name, []).append(node.node)
                        if isinstance(node.node, nodes.Call) and _called_name(node.node, nodes) == "namespace":
                            self.namespaces.add(target.name)
                            for kw in node.node.kwargs:
                                self.ns_assigned.setdefault((target.name, kw.key), []).append(kw.value)
                    elif isinstance(target, nodes.NSRef):
                        self.ns_assigned.setdefault((target.name, target.attr), []).append(node.node)
            elif isinstance(node, nodes.AssignBlock):
                for target in self._targets(node.target):
                    if isinstance(target, nodes.Name):
                        self.assigned.setdefault(target.name, []).append(None)
            elif isinstance(node, nodes.For):
                for target in self._targets(node.target):
                    if isinstance(target, nodes.Name):
                        self.loop_iterables.setdefault(target.name, []).append(node.iter)
            else:
                if isinstance(node, nodes.Macro):
                    self.macros.add(node.name)
                for arg in node.args:
                    self.assigned.setdefault(arg.name, []).append(None)

    def integer(self, expr: Any) -> bool:
        """Whether ``expr`` can only be a number (so a subscript with it indexes, never names an attribute)."""
        nodes = self.nodes
        if isinstance(expr, nodes.Const):
            return isinstance(expr.value, int | float | type(None))
        if isinstance(expr, nodes.Neg | nodes.Pos):
            return self.integer(expr.node)
        if isinstance(expr, nodes.Sub | nodes.FloorDiv | nodes.Div):
            return True  # numbers only: strings do not subtract or divide
        if isinstance(expr, nodes.Add | nodes.Mul | nodes.Pow):
            return self.integer(expr.left) and self.integer(expr.right)
        if isinstance(expr, nodes.Filter):
            return expr.name in _INTEGER_FILTERS
        if isinstance(expr, nodes.CondExpr):
            return self.integer(expr.expr1) and (expr.expr2 is None or self.integer(expr.expr2))
        if isinstance(expr, nodes.Getattr) and isinstance(expr.node, nodes.Name):
            if expr.node.name == "loop":
                return expr.attr in _LOOP_INTEGERS
            return self._assigned_integer(
                f"{expr.node.name}.{expr.attr}", self.ns_assigned.get((expr.node.name, expr.attr))
            )
        if isinstance(expr, nodes.Name):
            return self._assigned_integer(expr.name, self.assigned.get(expr.name))
        return False

    def _assigned_integer(self, name: str, values: list[Any] | None) -> bool:
        """Whether every value assigned to ``name`` is a number (``{% set i = i + 1 %}`` counts: a cycle is assumed
        numeric while its other assignments are checked)."""
        if not values:
            return False
        if name in self._busy:
            return True
        self._busy.add(name)
        try:
            return all(v is not None and self.integer(v) for v in values)
        finally:
            self._busy.discard(name)

    def from_data(self, expr: Any) -> bool:
        """Whether ``expr`` only reads the render's data (no strings made by the template itself)."""
        nodes = self.nodes
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, nodes.Const) and isinstance(node.value, str):
                return False
            if isinstance(node, nodes.Concat | nodes.Add | nodes.Mul | nodes.Mod | nodes.List | nodes.Tuple):
                return False
            if isinstance(node, nodes.Dict):
                return False
            if isinstance(node, nodes.Name) and node.name in self.assigned:
                return False
            if isinstance(node, nodes.Filter | nodes.Test | nodes.Call):
                stack.append(node.node)  # arguments select or format, they do not make the items
                continue
            stack += list(node.iter_child_nodes())
        return True

    def key(self, expr: Any) -> bool:
        """Whether a computed subscript key is safe: a number, or data that the template did not make."""
        nodes = self.nodes
        if isinstance(expr, nodes.Slice) or self.integer(expr):
            return True
        if isinstance(expr, nodes.Name):
            if expr.name in self.assigned:
                return False
            iterables = self.loop_iterables.get(expr.name)
            if iterables is not None:
                return all(self.from_data(i) for i in iterables)
            return True  # a variable of the render (messages, bos_token, ...)
        if isinstance(expr, nodes.Getattr | nodes.Getitem):
            return self.from_data(expr) and not (
                isinstance(expr.node, nodes.Name) and expr.node.name in self.namespaces
            )
        return False

    def attribute_path(self, expr: Any, what: str) -> None:
        if not isinstance(expr, self.nodes.Const):
            self.problems.high.append(f"{what} computed at render time")
            return
        for part in str(expr.value).split("."):
            self.problems.name(part, what, allowlist=None)

    def filter_args(self, node: Any, name: str, what: str) -> None:
        nodes = self.nodes
        if name == "attr":
            if node.args and isinstance(node.args[0], nodes.Const):
                self.problems.name(node.args[0].value, f"{what} |attr", allowlist=ALLOWED_ATTRIBUTES)
            else:
                self.problems.high.append(f"{what} |attr with a computed name")
            return
        index, keyword = _ATTRIBUTE_ARGS.get(name, (None, ""))
        if index is not None and len(node.args) > index:
            self.attribute_path(node.args[index], f"{what} |{name} attribute")
        for kw in node.kwargs:
            if kw.key == keyword:
                self.attribute_path(kw.value, f"{what} |{name} attribute")
        if name in {"map", "select", "reject", "selectattr", "rejectattr"}:
            position = 1 if name.endswith("attr") else 0
            if name == "map" and any(kw.key == "attribute" for kw in node.kwargs):
                return
            if len(node.args) > position:
                ref = node.args[position]
                allowed = self.filters if name == "map" else self.tests
                if not isinstance(ref, nodes.Const) or ref.value not in allowed:
                    self.problems.high.append(f"{what} |{name} applying {_show(ref, nodes)}")
                elif name == "map" and ref.value == "attr":
                    rest = node.args[position + 1 : position + 2]
                    if not rest or not isinstance(rest[0], nodes.Const):
                        self.problems.high.append(f"{what} |map('attr') with a computed name")
                    else:
                        self.problems.name(rest[0].value, f"{what} |map('attr')", allowlist=ALLOWED_ATTRIBUTES)

    def run(self) -> _Problems:
        nodes = self.nodes
        p = self.problems
        for node in self.tree.find_all(nodes.Node):
            line = f"line {getattr(node, 'lineno', '?')}:"
            if isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value:
                p.critical.append(f"{line} the string {node.value[:60]!r}")
            elif isinstance(node, nodes.Getattr):
                allowed = ALLOWED_ATTRIBUTES | (
                    {a for (ns, a) in self.ns_assigned if ns == node.node.name}
                    if isinstance(node.node, nodes.Name)
                    else set()
                )
                p.name(node.attr, f"{line} attribute", allowlist=frozenset(allowed))
            elif isinstance(node, nodes.Getitem):
                if isinstance(node.arg, nodes.Const):
                    p.name(node.arg.value, f"{line} key", allowlist=None)
                elif not self.key(node.arg):
                    p.high.append(f"{line} key {_show(node.arg, nodes)} computed at render time")
            elif isinstance(node, nodes.Filter):
                if node.name not in self.filters:
                    p.high.append(f"{line} unknown filter {node.name!r}")
                self.filter_args(node, node.name, line)
            elif isinstance(node, nodes.Test):
                if node.name not in self.tests:
                    p.high.append(f"{line} unknown test {node.name!r}")
            elif isinstance(node, nodes.Call):
                called = _called_name(node, nodes)
                if isinstance(node.node, nodes.Name):
                    if called not in ALLOWED_CALLS and called not in self.macros:
                        p.high.append(f"{line} call of {called!r}")
                elif not isinstance(node.node, nodes.Getattr):
                    p.high.append(f"{line} call of a computed value")
            elif isinstance(node, nodes.Name):
                if node.name in _FORBIDDEN_NAMES:
                    p.high.append(f"{line} Jinja internal {node.name!r}")
                elif "__" in node.name:
                    p.critical.append(f"{line} name {node.name!r}")
            elif isinstance(node, nodes.Import | nodes.FromImport | nodes.Include | nodes.Extends):
                p.high.append(f"{line} {type(node).__name__.lower()} of another template")
            elif isinstance(
                node, nodes.ExtensionAttribute | nodes.ImportedName | nodes.InternalName | nodes.ContextReference
            ):
                p.high.append(f"{line} Jinja internal {type(node).__name__}")
        return p


def _called_name(node: Any, nodes: Any) -> str | None:
    return node.node.name if isinstance(node.node, nodes.Name) else None


def _show(expr: Any, nodes: Any) -> str:
    if isinstance(expr, nodes.Const):
        return repr(expr.value)[:60]
    if isinstance(expr, nodes.Name):
        return repr(expr.name)
    return f"<{type(expr).__name__}>"


def template_findings(template: str, key: str, location: str) -> list[Finding]:
    """Findings for one chat template stored under metadata ``key``."""
    if len(template) > _MAX_TEMPLATE:
        return [
            scan_finding(
                "gguf.template-unreadable",
                Severity.HIGH,
                "GGUF chat template too large to check",
                f"{key} holds {len(template):,} characters, more than the {_MAX_TEMPLATE:,} the scanner parses.",
                location,
            )
        ]
    try:
        import jinja2
    except ImportError:
        return [
            scan_finding(
                "gguf.template-not-inspected",
                Severity.HIGH,
                "GGUF chat template not inspected",
                f"{key} could not be parsed: the jinja2 package is not installed (pip install jinja2).",
                location,
            )
        ]
    try:
        problems = _Judge(_environment().parse(template)).run()
    except jinja2.TemplateSyntaxError as exc:
        return [
            scan_finding(
                "gguf.template-invalid",
                Severity.MEDIUM,
                "GGUF chat template does not parse",
                f"{key} is not a valid Jinja template ({str(exc)[:200]}, line {exc.lineno}); servers cannot render it.",
                location,
            )
        ]
    except (RecursionError, MemoryError, ValueError, TypeError, LookupError) as exc:
        return [
            scan_finding(
                "gguf.template-unreadable",
                Severity.HIGH,
                "GGUF chat template cannot be checked",
                f"{key} could not be parsed to the end ({type(exc).__name__}); a server may still render it.",
                location,
            )
        ]
    found: list[Finding] = []
    if problems.critical:
        found.append(
            scan_finding(
                "gguf.template-injection",
                Severity.CRITICAL,
                "GGUF chat template reaches Python internals",
                f"{key} uses {', '.join(dict.fromkeys(problems.critical[:6]))}: rendering it can run code in an "
                "unsandboxed Jinja.",
                location,
                evidence={"constructs": [*(problems.critical + problems.high)[:50]]},
            )
        )
    elif problems.high:
        found.append(
            scan_finding(
                "gguf.template-unreviewed",
                Severity.HIGH,
                "GGUF chat template uses constructs outside the allowlist",
                f"{key} uses {', '.join(dict.fromkeys(problems.high[:6]))}: chat templates do not need them, and "
                "they can reach Python objects at render time.",
                location,
                evidence={"constructs": [*problems.high[:50]]},
            )
        )
    return found


class _Reader:
    """Bounded reads of the metadata: every length is checked against the bytes the file has."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh, self.size = fh, size

    def read(self, n: int) -> bytes:
        if n < 0 or self.fh.tell() + n > self.size:
            raise ValueError("metadata runs past the end of the file")
        data = self.fh.read(n)
        if len(data) != n:
            raise ValueError("metadata runs past the end of the file")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > _MAX_STRING:
            raise ValueError(f"string of {n:,} bytes")
        return self.read(n).decode("utf-8", "replace")

    def value(self, kind: int, keep: bool, depth: int = 0) -> list[str]:
        """Read one value; the strings in it when ``keep`` (others are stepped over)."""
        if kind in _GGUF_SCALARS:
            self.read(struct.calcsize(_GGUF_SCALARS[kind]))
            return []
        if kind == _STRING:
            text = self.string()
            return [text] if keep else []
        if kind == _ARRAY and depth < _MAX_ARRAY_DEPTH:
            item_kind = self.unpack("<I")
            count = self.unpack("<Q")
            if item_kind in _GGUF_SCALARS:  # numeric arrays: vocabulary scores and the like
                self.read_skip(count * struct.calcsize(_GGUF_SCALARS[item_kind]))
                return []
            if count * 8 > self.size - self.fh.tell():  # every item takes at least eight bytes
                raise ValueError(f"array of {count:,} items")
            strings: list[str] = []
            for _ in range(count):
                strings += self.value(item_kind, keep, depth + 1)
            return strings
        raise ValueError(f"unknown value type {kind}")

    def read_skip(self, n: int) -> None:
        if n < 0 or self.fh.tell() + n > self.size:
            raise ValueError("array runs past the end of the file")
        self.fh.seek(n, 1)


def _templates(fh: BinaryIO, size: int, out: list[tuple[str, str]]) -> None:
    """Append (key, template) for every string under a chat-template key; raises ValueError on a bad header."""
    fh.seek(0)
    reader = _Reader(fh, size)
    magic = reader.read(4)
    version = reader.unpack("<I")
    if magic != b"GGUF" or version not in (1, 2, 3):
        raise ValueError(f"magic {magic!r}, version {version}")
    if version == 1:
        raise ValueError("GGUF version 1 (32-bit counts) is not supported by current loaders")
    _tensors = reader.unpack("<Q")
    kv_count = reader.unpack("<Q")
    if kv_count > _MAX_KV:
        raise ValueError(f"{kv_count:,} metadata entries")
    for _ in range(kv_count):
        key = reader.string()
        kind = reader.unpack("<I")
        keep = "chat_template" in key.lower()
        out += [(key, text) for text in reader.value(kind, keep)]


class GgufScanner:
    """GGUF metadata: chat templates that can run code when rendered."""

    name = "gguf"
    formats = frozenset({ModelFormat.GGUF})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        """Findings for an unreadable header and for chat templates outside what the allowlist accepts."""
        templates: list[tuple[str, str]] = []
        found: list[Finding] = []
        try:
            _templates(stream, size, templates)
        except (ValueError, struct.error, OverflowError) as exc:
            found.append(
                scan_finding("gguf.header", Severity.MEDIUM, "GGUF header cannot be read", str(exc)[:200], location)
            )
        for key, template in templates:  # those read before a damaged entry are judged too
            found += template_findings(template, key, location)
        return found


GGUF = GgufScanner()
