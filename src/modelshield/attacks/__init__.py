"""Attacks against models, the assessment layer: each measures one risk with the metrics its research field uses.

    >>> from modelshield.attacks.membership import assess_membership  # doctest: +SKIP

- :mod:`.evasion`: FGSM, PGD, APGD, DeepFool, Square, HopSkipJump, and robustness evaluation.
- :mod:`.membership`: loss, population, LiRA, RMIA and label-only membership inference.
- :mod:`.inversion` and :mod:`.attribute`: class reconstruction from gradients, attribute inference.
- :mod:`.extraction`: surrogate training from queries, equation-solving extraction of linear models.
- :mod:`.dp_audit`: an empirical lower bound on a training run's ε from canaries.
- :mod:`.metrics`: ROC, TPR at low FPR with exact intervals, ε lower bounds.

Importing this package imports no submodule (and so no torch).
"""
