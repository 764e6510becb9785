"""Supply-chain security: model-file format identification now; scanners, signing, encryption and ML-BOM follow.

>>> from modelshield.supply_chain.formats import identify_format  # doctest: +SKIP
"""
