"""The steady-state step is sync-free: on the meta device (no data on the host to read) and under an
audit that fails on host reads and host-built tensors, a push uploads the frame and downloads the
finished frame, nothing else. The audit itself is shown to catch what it is there to catch."""

import pytest
import torch

from l2d_obs.bench.transfers import HostSyncError, TransferAudit, measure_steady_state_transfers
from l2d_obs.engine.stream import StreamEngine
from l2d_obs.engine.tiny import build_tiny_components
from tests.engine.helpers import make_engine, moving_frames


def _meta_engine(steps: int, noise: str = "fixed", pipelined: bool = True) -> StreamEngine:
    settings = make_engine(steps, noise=noise, pipelined=pipelined, depth=True).settings
    return StreamEngine(build_tiny_components(0, depth=True), settings, device="meta", dtype=torch.float32)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_steady_state_push_uploads_the_frame_and_downloads_the_output_only(steps):
    engine = _meta_engine(steps)
    figures = measure_steady_state_transfers(engine, moving_frames(40), pushes=4)
    assert figures["outputs_per_push"] == 1
    assert figures["uploads_per_push"] == 1 and figures["downloads_per_push"] == 1
    assert figures["host_device_transfers_per_push"] == 2
    assert figures["transfers"] == ["upload (32, 32, 3) torch.uint8", "download (32, 32, 3) torch.uint8"]


def test_fresh_noise_adds_only_its_own_upload_and_sequential_is_sync_free_too():
    fresh = measure_steady_state_transfers(_meta_engine(2, noise="fresh"), moving_frames(40))
    assert fresh["uploads_per_push"] == 2 and fresh["downloads_per_push"] == 1  # the frame and its noise
    sequential = measure_steady_state_transfers(_meta_engine(2, pipelined=False), moving_frames(40))
    assert sequential["host_device_transfers_per_push"] == 2


@pytest.mark.parametrize("host_sync", [
    lambda t: t.sum().tolist(),
    lambda t: t[0, 0].item(),
    lambda t: bool(t.sum() > 0),
    lambda t: int(t[0, 0]),
    lambda t: t[torch.tensor([0, 1])],  # a host-built index
    lambda t: torch.tensor([1, 2], device=t.device),  # host data built straight onto the device
])
def test_the_audit_catches_host_reads_and_host_built_tensors(host_sync):
    t = torch.zeros(4, 3, device="meta")
    with pytest.raises(HostSyncError):
        with TransferAudit():
            host_sync(t)


def test_the_audit_counts_uploads_and_fakes_meta_downloads():
    with TransferAudit() as audit:
        up = torch.zeros(2, 3).to("meta")
        down = up.cpu()
    assert audit.counts.uploads == 1 and audit.counts.downloads == 1
    assert down.shape == (2, 3) and down.device.type == "cpu"
