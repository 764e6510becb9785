"""Attacks against models (evasion, poisoning, membership, inversion, extraction): home of the assessment layer.

No attack ships yet; each will be an ``Attack`` whose ``run(target, budget)`` returns an ``AttackResult``.
"""
