"""Evidence packs: one signed folder an auditor can verify, with the audit report, the model's scan, its signature
verification and its ML bill of materials.

    >>> from modelshield.audit.evidence import check_pack_destination, write_evidence_pack
    >>> check_pack_destination(Path("evidence/"))  # doctest: +SKIP
    >>> write_evidence_pack(report, target, Path("evidence/"), key=private_key)  # doctest: +SKIP

The folder holds:

- ``report.json``, ``report.html``, ``report.sarif``: the audit report (with the release policy's verdict and the
  compliance section, where the report has them);
- ``scan.json``: the static scan of the model file (code that would run on load), as ``modelshield scan --format
  json`` writes it;
- ``signature.json``: what the audit found about the model file's signature (verified, by which key, or why not);
- ``bom.cdx.json``: a CycloneDX 1.6 ML bill of materials of the model file and the Python environment;
- ``index.json``: what each file is, with its SHA-256, the target and the tool's version;
- ``README.txt``: how to verify the folder;
- ``evidence.sig``: the signature over every other file, in the OpenSSF Model Signing format (a Sigstore bundle),
  made with the signer's key.

``modelshield verify DIR --signature DIR/evidence.sig --public-key SIGNER.pub`` checks it and fails on any file
changed, added or removed. The pack is built in a temporary folder beside the destination and moved into place
only when complete and signed: an error leaves nothing behind. A target without a model file (a served endpoint, an
in-memory model) gets no scan and no bill of materials; ``index.json`` says so.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from modelshield._extras import require
from modelshield._internal.atomic import write_text_atomic
from modelshield._internal.hashing import sha256_file
from modelshield._version import __version__
from modelshield.errors import FileFormatError
from modelshield.findings import JSONValue, Report
from modelshield.supply_chain.keys import PrivateKeySet
from modelshield.target import Target

__all__ = ["PACK_FORMAT", "SIGNATURE_NAME", "check_pack_destination", "write_evidence_pack"]

PACK_FORMAT = "modelshield-evidence-pack/1"
SIGNATURE_NAME = "evidence.sig"

_WHAT = {
    "report.json": "the audit report (JSON, schema report.schema.json)",
    "report.html": "the audit report for people",
    "report.sarif": "the audit report as SARIF 2.1.0 (code scanning)",
    "scan.json": "the static scan of the model file for code that runs on load",
    "signature.json": "what the audit found about the model file's signature",
    "bom.cdx.json": "the ML bill of materials (CycloneDX 1.6) of the model file and the Python environment",
    "README.txt": "how to verify this folder",
}


def check_pack_destination(out: Path) -> None:
    """Refuse, before any work, a destination that exists and is not an empty folder, or whose parent is missing;
    and a missing bill-of-materials dependency. :class:`FileFormatError` or :class:`MissingExtraError`."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileFormatError(
            f"The evidence pack folder {out} already exists and is not empty.",
            remedy="Name a new folder for --evidence-pack (a pack is written whole, never over another).",
        )
    parent = out.absolute().parent
    if not parent.is_dir():
        raise FileFormatError(f"The folder {parent} for the evidence pack does not exist.", remedy="Create it first.")
    require("cyclonedx", extra="bom", feature="The evidence pack's bill of materials")


def _signature_record(report: Report, target: Target) -> dict[str, JSONValue]:
    """The signature check's outcome as the report holds it, with the files it concerned."""
    run = next((c for c in report.checks if c.name == "signature"), None)
    findings: list[JSONValue] = [f.to_dict() for f in report.findings if f.check == "signature"]
    signature = target.signature_path
    if signature is None and target.model_path is not None:
        candidate = target.model_path.with_name(target.model_path.name + ".sig")
        signature = candidate if candidate.is_file() else None
    return {
        "check": run.to_dict() if run is not None else None,
        "verified": any(f.id == "signature.verified" for f in report.findings),
        "signature_file": signature.name if signature is not None else None,
        "signature_sha256": sha256_file(signature) if signature is not None and signature.is_file() else None,
        "findings": findings,
    }


def _write_model_evidence(target: Target, work: Path) -> list[str]:
    """``scan.json`` and ``bom.cdx.json`` of the model file; the reasons for what could not be written."""
    from modelshield.reporting.scan import render_scan_json
    from modelshield.supply_chain.bom import build_bom, render_bom
    from modelshield.supply_chain.scan import scan_paths

    model = target.model_path
    if model is None or not model.exists():
        return ["the target has no model file (a served or in-memory model): no scan and no bill of materials"]
    write_text_atomic(work / "scan.json", render_scan_json(scan_paths([model], workers=1)))
    write_text_atomic(work / "bom.cdx.json", render_bom(build_bom(model, name=target.name)))
    return []


_README = """This folder is a modelshield evidence pack ({format}).

Every file in it is signed: evidence.sig is a Sigstore bundle (OpenSSF Model Signing format) over the SHA-256 of
every other file. To check that nothing was changed, added or removed since it was signed:

    modelshield verify THIS_FOLDER --signature THIS_FOLDER/evidence.sig --public-key SIGNER.pub

index.json lists what each file is. The compliance section of the report maps findings to NIST AI RMF, EU AI Act and
GDPR requirements: it is evidence for an assessor, not a certification.
"""


def write_evidence_pack(report: Report, target: Target, out: Path, *, key: PrivateKeySet) -> Path:
    """Write the evidence pack of ``report`` (an audit of ``target``) to ``out`` and sign it with ``key``; ``out``
    must not exist or be an empty folder (see :func:`check_pack_destination`). Returns ``out``."""
    from modelshield.reporting import write_reports
    from modelshield.supply_chain.signing import sign_model

    check_pack_destination(out)
    out = out.absolute()
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_reports(report, work)
        missing = _write_model_evidence(target, work)
        write_text_atomic(work / "signature.json", json.dumps(_signature_record(report, target), indent=2) + "\n")
        write_text_atomic(work / "README.txt", _README.format(format=PACK_FORMAT))
        files: dict[str, Any] = {
            p.name: {"sha256": sha256_file(p), "what": _WHAT.get(p.name, "")} for p in sorted(work.iterdir())
        }
        index = {
            "format": PACK_FORMAT,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "tool": {"name": "modelshield", "version": __version__},
            "target": report.target.to_dict(),
            "audit": {"started_at": report.started_at, "budget": report.budget, "seed": report.seed},
            "policy": None
            if report.policy is None
            else {"policy": report.policy.policy, "passed": report.policy.passed},
            "files": files,
            "not_included": missing,
            "signature": SIGNATURE_NAME,
        }
        write_text_atomic(work / "index.json", json.dumps(index, indent=2) + "\n")
        sign_model(work, key, work / SIGNATURE_NAME)
        if out.exists():
            out.rmdir()  # empty, as checked
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out
