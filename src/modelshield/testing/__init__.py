"""Conformance checks and test helpers for modelshield's plug-ins and adapters.

>>> from modelshield.testing import check_classifier  # doctest: +SKIP
"""

from __future__ import annotations

from modelshield.testing.classifier_checks import check_classifier

__all__ = ["check_classifier"]
