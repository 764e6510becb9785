from __future__ import annotations

import subprocess
import sys

import modelshield.explain


def test_all_names_every_public_object() -> None:
    public = {name for name in dir(modelshield.explain) if not name.startswith("_")}
    modules = {"agnostic", "gradients", "interface", "stability", "tree", "annotations"}
    assert public - modules == set(modelshield.explain.__all__)


def test_import_is_light() -> None:
    code = (
        "import sys, modelshield.explain;"
        "heavy = [m for m in ('torch', 'shap', 'captum', 'sklearn') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
