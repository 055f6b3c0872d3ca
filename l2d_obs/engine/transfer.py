"""Host -> device uploads that do not block the host: pinned staging buffers, non-blocking copies.

On CUDA a pageable ``tensor.to(device)`` waits for the copy (and so for the queue ahead of it). An
``Uploader`` copies the host data into a pinned buffer and enqueues the upload without waiting; the
buffer is reused only after the event recorded behind its copy has passed (a ring of ``slots``, so
in practice that event is long done). Elsewhere (CPU, MPS, meta) it is a plain ``.to(device)``.
"""

from __future__ import annotations

import torch


class Uploader:
    def __init__(self, device: torch.device | str, slots: int = 2) -> None:
        self.device = torch.device(device)
        self.slots = slots
        self._ring: dict[tuple, list] = {}  # (shape, dtype) -> [next index, [(pinned, event|None)]]

    @property
    def pinned(self) -> bool:
        return self.device.type == "cuda"

    def __call__(self, host: torch.Tensor) -> torch.Tensor:
        """``host`` (a CPU tensor) on the device; on CUDA without waiting for the copy."""
        if not self.pinned:
            return host.to(self.device)
        key = (tuple(host.shape), host.dtype)
        ring = self._ring.get(key)
        if ring is None:
            ring = self._ring[key] = [0, [(torch.empty(host.shape, dtype=host.dtype, pin_memory=True), None)
                                         for _ in range(self.slots)]]
        index, buffers = ring
        pinned, event = buffers[index]
        if event is not None:
            event.synchronize()  # the copy that last read this buffer has finished (normally long ago)
        pinned.copy_(host)
        out = pinned.to(self.device, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.device))
        buffers[index] = (pinned, done)
        ring[0] = (index + 1) % self.slots
        return out
