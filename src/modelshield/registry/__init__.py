"""Model registry: content-addressed model versions with signature, scan and audit attached; promote, rollback.

    >>> from modelshield.registry import Registry
    >>> with Registry(Path("registry/")) as registry:  # doctest: +SKIP
    ...     v = registry.add("churn", Path("model.skops"), signature=Path("model.skops.sig"))
    ...     registry.promote("churn", v.version, public_key=Path("keys/modelshield.pub"))

Needs the ``registry`` extra (SQLAlchemy; psycopg for a PostgreSQL index): ``pip install 'modelshield[registry]'``.
"""

from __future__ import annotations

from modelshield.errors import PromotionRefusedError, RegistryError
from modelshield.registry.index import HistoryEntry, Index, ModelSummary, ModelVersion, VerifiedHistory
from modelshield.registry.registry import PRODUCTION, Registry, default_actor
from modelshield.registry.store import Artifact, ArtifactKind, BlobStore, TreeEntry

__all__ = [
    "PRODUCTION",
    "Artifact",
    "ArtifactKind",
    "BlobStore",
    "HistoryEntry",
    "Index",
    "ModelSummary",
    "ModelVersion",
    "PromotionRefusedError",
    "Registry",
    "RegistryError",
    "TreeEntry",
    "VerifiedHistory",
    "default_actor",
]
