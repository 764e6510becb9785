"""Every built-in format scanner passes the conformance checks, and the checks catch scanners that break them."""

from __future__ import annotations

import io
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelshield.findings import Finding, Severity
from modelshield.supply_chain.formats import ModelFormat, identify_stream
from modelshield.supply_chain.scan import FormatScanner, ScanContext, default_registry, scan_finding
from modelshield.supply_chain.scan.formats import builtin_scanners
from modelshield.testing.scan_corpus import format_samples
from modelshield.testing.scanner_checks import check_scanner, check_scanner_input

SAMPLES = format_samples()
SCANNERS = {s.name: s for s in builtin_scanners()}
PLUGINS = [s for s in default_registry() if s.name not in SCANNERS]  # what installed packages declare


def _samples(scanner: FormatScanner) -> list[bytes]:
    return [data for fmt in sorted(scanner.formats) for data in SAMPLES.get(fmt, ())]


def test_samples_cover_every_format_the_builtins_serve() -> None:
    served = {fmt for s in builtin_scanners() for fmt in s.formats}
    assert served == set(ModelFormat) - {ModelFormat.UNKNOWN}
    assert set(SAMPLES) == served - ({ModelFormat.ONNX} if ModelFormat.ONNX not in SAMPLES else set())


@pytest.mark.parametrize("name", SCANNERS)
def test_builtin_scanner_conforms(name: str) -> None:
    check_scanner(SCANNERS[name], _samples(SCANNERS[name]), fuzz_examples=150)


@pytest.mark.parametrize("plugin", PLUGINS, ids=[s.name for s in PLUGINS])
def test_installed_scanner_plugin_conforms(plugin: FormatScanner) -> None:
    samples = [data for fmt in sorted(plugin.formats) for data in SAMPLES.get(fmt, ())]
    if not samples:
        pytest.skip(f"no samples of {sorted(plugin.formats)}")
    check_scanner(plugin, samples, fuzz_examples=50)


@pytest.mark.parametrize("name", SCANNERS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_builtin_scanner_survives_generated_damage(name: str, data: st.DataObject) -> None:
    scanner = SCANNERS[name]
    sample = data.draw(st.sampled_from(_samples(scanner)))
    info = identify_stream(io.BytesIO(sample), len(sample))
    raw = bytearray(sample)
    for position, value in data.draw(st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8)):
        raw[position % len(raw)] = value
    cut = data.draw(st.integers(0, len(raw)))
    findings = check_scanner_input(scanner, bytes(raw[:cut] if data.draw(st.booleans()) else raw), info)
    assert all(isinstance(f, Finding) for f in findings)


# -- scanners that break the contract, and the check that catches each -------------------------------------------
class _Base:
    name = "broken"
    formats = frozenset({ModelFormat.PICKLE})


class _RaisesOnDamage(_Base):
    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        stream.seek(0)
        if not stream.read(size).endswith(b"."):
            raise ValueError("no STOP opcode")
        return []


class _ReturnsTuples(_Base):
    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        return [("pickle.x", Severity.HIGH, "title", "description")]  # type: ignore[list-item]


class _LocatesElsewhere(_Base):
    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        return [scan_finding("x.y", Severity.LOW, "t", "d", "/etc/passwd")]


class _ReadsFromWhereItIs(_Base):
    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        rest = stream.read()
        return [scan_finding("x.y", Severity.LOW, "t", f"{len(rest)} bytes", location)]


class _Counter(_Base):
    calls = 0

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        type(self).calls += 1
        return [scan_finding("x.y", Severity.LOW, "t", f"call {self.calls}", location)]


class _IgnoresMemberLimit(_Base):
    formats = frozenset({ModelFormat.ZIP})

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        import zipfile

        found: list[Finding] = []
        with zipfile.ZipFile(stream) as zf:
            for name in zf.namelist():
                data = zf.read(name)
                found += context.scan_member(io.BytesIO(data), len(data), f"{location}!{name}")
        return found


class _NoFormats(_Base):
    formats = frozenset()

    def scan(self, stream: BinaryIO, size: int, location: str, context: ScanContext) -> list[Finding]:
        return []


def _zip_of(count: int) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(count):
            zf.writestr(f"m{i}", b"x")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("scanner", "samples", "message"),
    [
        (_RaisesOnDamage(), SAMPLES[ModelFormat.PICKLE], "raised ValueError"),
        (_ReturnsTuples(), SAMPLES[ModelFormat.PICKLE], "not a Finding"),
        (_LocatesElsewhere(), SAMPLES[ModelFormat.PICKLE], "outside the scanned"),
        (_ReadsFromWhereItIs(), SAMPLES[ModelFormat.PICKLE], "depends on the stream's position"),
        (_Counter(), SAMPLES[ModelFormat.PICKLE], "not deterministic"),
        (_IgnoresMemberLimit(), [_zip_of(5)], "more than max_members"),
        (_NoFormats(), SAMPLES[ModelFormat.PICKLE], "does not keep the FormatScanner protocol"),
        (SCANNERS["pickle"], SAMPLES[ModelFormat.GGUF], "which scanner 'pickle' does not serve"),
    ],
    ids=["raises", "tuples", "location", "position", "nondeterministic", "member-limit", "protocol", "samples"],
)
def test_check_scanner_catches_each_breach(scanner: FormatScanner, samples: list[bytes], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_scanner(scanner, samples, fuzz_examples=50)
