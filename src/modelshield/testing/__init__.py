"""Conformance checks and test helpers for modelshield's plug-ins and adapters.

    >>> from modelshield.testing import check_classifier, serve_classifier  # doctest: +SKIP

``check_classifier`` is the contract every model adapter keeps; ``serve_classifier`` serves any classifier over
the Open Inference Protocol v2, so black-box code can be tested against a real HTTP server.
"""

from __future__ import annotations

from modelshield.testing.classifier_checks import check_classifier
from modelshield.testing.oip_server import OipServer, serve_classifier

__all__ = ["OipServer", "check_classifier", "serve_classifier"]
