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
    from transformers.utils import logging as transformers_logging

    was_disabled = are_progress_bars_disabled()
    was_active = transformers_logging.is_progress_bar_enabled()  # transformers keeps its own copy of the switch
    disable_progress_bars()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()
        if was_active:
            transformers_logging.enable_progress_bar()
