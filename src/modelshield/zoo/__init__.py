"""Reference targets: small real models trained reproducibly on bundled data (see :mod:`.catalog`).

>>> from modelshield.zoo import ZOO
>>> sorted(ZOO)[:2]
['cancer-gbm', 'cancer-mlp']
"""

from __future__ import annotations

from modelshield.zoo.catalog import (
    ZOO,
    ZooEntry,
    ZooStatus,
    architecture,
    default_cache_dir,
    load_target,
    status,
    trainer,
)

__all__ = ["ZOO", "ZooEntry", "ZooStatus", "architecture", "default_cache_dir", "load_target", "status", "trainer"]
