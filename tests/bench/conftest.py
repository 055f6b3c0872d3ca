"""One torch thread for the benchmark tests: on 2 cores shared with other jobs, two OpenMP threads
wait on each other and the same run takes several times longer (see benchmarks/README.md)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
