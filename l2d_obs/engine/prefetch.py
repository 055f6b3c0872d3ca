"""Encoding the next frame while the current one denoises: work on a second CUDA stream.

When the engine is slower than the camera, the next frame is already waiting when a push starts. The
engine enqueues that frame's upload, VAE encode and depth prior on a side stream right after the
current frame's UNet work, so on a GPU they run beside it instead of after the current frame's
download. The main stream waits for them (an event recorded behind the side work) only when the
frame is pushed. Off CUDA there is no second stream and the work runs at once: the same numbers, so
the CPU tests check everything but the concurrency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class EncodedFrame:
    """What the denoiser needs of a frame besides its noise: the clean latent and the depth residual."""

    latent: torch.Tensor
    cond: torch.Tensor | None


@dataclass
class Prefetched:
    pixels: np.ndarray  # the frame's pixels, by identity: a push of the same frame object takes the result
    encoded: EncodedFrame
    ready: object | None  # a CUDA event recorded behind the side stream's work; None when it ran inline


class SideStream:
    """A second stream on a CUDA device (nothing elsewhere)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device=device) if device.type == "cuda" else None
        if self.stream is not None:
            # Ordered once after everything enqueued so far (the weights' placement); later side work
            # must not wait for the main stream, or it could not overlap the UNet enqueued before it.
            self.stream.wait_stream(torch.cuda.current_stream(device))

    def start(self, pixels: np.ndarray, work: Callable[[], EncodedFrame]) -> Prefetched:
        if self.stream is None:
            return Prefetched(pixels, work(), None)
        with torch.cuda.stream(self.stream):
            encoded = work()
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return Prefetched(pixels, encoded, ready)

    def join(self, prefetched: Prefetched) -> EncodedFrame:
        """The result, usable on the current stream (which waits for the side work on the device,
        not on the host)."""
        if prefetched.ready is None:
            return prefetched.encoded
        main = torch.cuda.current_stream(self.device)
        main.wait_event(prefetched.ready)  # type: ignore[arg-type]
        encoded = prefetched.encoded
        for tensor in (encoded.latent, encoded.cond):
            if tensor is not None:
                tensor.record_stream(main)  # the allocator must not reuse them while the main stream reads
        return encoded
