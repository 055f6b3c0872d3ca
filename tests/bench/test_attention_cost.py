"""The fused-PE streaming attention reads the cache in place: no cache-sized temporary, fewer bytes
moved than the materialised reference form (metered op by op on the tiny model, CPU)."""

import torch

from l2d_obs.bench.attention import AllocationMeter, measure_pe_attention


def test_the_meter_sees_allocations_and_frees_and_ignores_views():
    with AllocationMeter() as meter:
        a = torch.ones(1024)  # 4 KiB
        view = a.view(32, 32).t()
        b = view + 1  # 4 KiB more, both alive
        del b
        c = a * 2  # reuses nothing: 4 KiB, while b is gone
    f = meter.figures
    assert f.largest_allocation == 4096
    assert f.peak_allocated == 8192  # a and b together, never a, b and c
    assert f.ops == 3  # ones, add, mul: the view and transpose move nothing
    del c


def test_fused_pe_allocates_no_cache_sized_temporary_and_moves_fewer_bytes():
    figures = measure_pe_attention("tiny", resolution=32, steps=2, window=6, warmup=3, pushes=1, repeats=1)
    fused, materialised = figures["modes"]["fused"], figures["modes"]["materialised"]
    rows = fused["largest_cache_rows_bytes"]  # K of the largest layer's T rows
    assert materialised["largest_allocation_bytes"] >= rows  # the reference form copies the cache rows
    assert fused["largest_allocation_bytes"] < rows / 2
    assert fused["bytes_moved_per_frame"] < materialised["bytes_moved_per_frame"]
    assert fused["peak_allocated_bytes"] < materialised["peak_allocated_bytes"]
