"""How many torch CPU threads to use when the user does not say.

On a small CPU, torch's default (one thread per core) fights the daemon's own capture and output
threads and OBS: on a shared 2-core machine `render` ran 3.3x faster with one thread than with two.
So: one thread on machines with up to 2 cores, else all cores but one.
"""

from __future__ import annotations

import os


def default_threads(cores: int | None = None) -> int:
    cores = cores or os.cpu_count() or 1
    return 1 if cores <= 2 else cores - 1


def apply_threads(requested: int | None) -> int:
    """Set torch's intra-op thread count (the request, else ``default_threads()``); returns it."""
    import torch

    count = requested if requested is not None else default_threads()
    torch.set_num_threads(count)
    return count
