"""The one place where modelshield sets torch's intra-op thread count: once, when the command line starts.

    >>> from modelshield.cli._threads import configure_torch_threads
    >>> configure_torch_threads(1)  # doctest: +SKIP

The thread count is one setting for the whole process, so library code never touches it (a library that changed it
around its own work would change it for every other thread too). The models modelshield trains and attacks are
small: their operations are too short to gain from intra-op threads, and when the cores are busy with other work
every parallel operation waits for a thread the scheduler has parked. Measured on a 2-core machine, the eight
reference models of the quick membership check on ``zoo:cancer-mlp-overfit`` train in 1.5 s with one thread and
1.4 s with two on idle cores, but in 3.7 s with one thread and 27 s with two when other processes keep the cores
busy (load 7). Hence ``modelshield --threads`` defaults to 1.
"""

from __future__ import annotations

import os
import sys

from modelshield.errors import InvalidParameterError

__all__ = ["DEFAULT_THREADS", "configure_torch_threads"]

#: The CLI's default: one intra-op thread (see the module docstring for the measurements behind it).
DEFAULT_THREADS = 1


def configure_torch_threads(n: int) -> None:
    """Give torch ``n`` intra-op threads for the rest of the process, without importing torch.

    If torch is already imported this calls ``torch.set_num_threads(n)``; otherwise it sets ``OMP_NUM_THREADS``,
    which torch (and the OpenMP runtime it loads) reads when it is first imported, so commands that never use
    torch do not pay for importing it. Call it once, at start-up, before any other thread uses torch.
    """
    if n < 1:
        raise InvalidParameterError(
            f"The number of threads must be a positive integer, not {n!r}.", remedy="Pass --threads 1 or more."
        )
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)
