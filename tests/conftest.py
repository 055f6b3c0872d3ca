"""Shared test setup: never reach a model hub; keep torch to the cores we have."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# One torch thread everywhere: on a shared 2-core machine two threads made runs 3x slower (OpenMP
# waits). Set at import too, so module- and session-scoped fixtures that build models get it.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """A test that changes the thread count does not leak it into the next one."""
    yield
    torch.set_num_threads(1)
