"""Conformance checks and test helpers for modelshield's plug-ins and adapters.

    >>> from modelshield.testing import check_attack, check_check, check_guard, check_scanner  # doctest: +SKIP

Every plug-in kind has its contract as a function that raises ``AssertionError`` naming the broken rule, in the
spirit of scikit-learn's ``check_estimator``; every built-in plug-in passes them (tested), and third-party plug-ins
can run them in their own tests:

- :func:`check_classifier`: model adapters (shapes, probabilities, batching, query counts, gradients);
- :func:`check_attack`: attacks (protocol, determinism under a seed, query counting, bounds respected);
- :func:`check_check`: audit checks (settings per budget, measure then judge, a pure judge);
- :func:`check_scanner`: format scanners (findings located in the file, no crash on fuzzed bytes, limits);
- :func:`check_guard`: inference guards (decisions, determinism, thread safety, bounded memory).

:func:`tiny_target` builds a real target in about a second; :func:`serve_classifier` serves any classifier over the
Open Inference Protocol v2, so black-box code can be tested against a real HTTP server.
"""

from __future__ import annotations

from modelshield.testing.attack_checks import check_attack
from modelshield.testing.check_checks import check_check
from modelshield.testing.classifier_checks import check_classifier
from modelshield.testing.guard_checks import check_guard
from modelshield.testing.oip_server import OipServer, serve_classifier
from modelshield.testing.scanner_checks import check_scanner, check_scanner_input
from modelshield.testing.targets import tiny_datasets, tiny_target

__all__ = [
    "OipServer",
    "check_attack",
    "check_check",
    "check_classifier",
    "check_guard",
    "check_scanner",
    "check_scanner_input",
    "serve_classifier",
    "tiny_datasets",
    "tiny_target",
]
