"""No per-model progress bars while models load from disk.

transformers draws a "Loading weights" bar for every model it loads, in the middle of the daemon's
own start-up progress line. Its bars follow huggingface_hub's switch, which downloads use too, so the
switch is flipped only around a local load and put back as it was.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def no_loading_bars() -> Iterator[None]:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()
