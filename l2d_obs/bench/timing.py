"""Clocks and summaries for fair timings.

On CUDA the clock synchronises before reading the time, so a phase's time is the GPU work it
queued; it is only read between model calls, never inside one. On the CPU it is a plain clock.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass, field

import torch


class Clock:
    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"

    def now(self) -> float:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


@dataclass
class PhaseSample:
    """One timed frame: encode (VAE + depth), denoise (UNet + LCM update), decode (VAE)."""

    encode_ms: float
    denoise_ms: float
    decode_ms: float

    @property
    def total_ms(self) -> float:
        return self.encode_ms + self.denoise_ms + self.decode_ms


@dataclass
class VariantTiming:
    """All timed frames of one variant over every repetition."""

    name: str
    samples: list[PhaseSample] = field(default_factory=list)
    rep_means_ms: list[float] = field(default_factory=list)

    def add_repetition(self, samples: list[PhaseSample]) -> None:
        self.samples += samples
        if samples:
            self.rep_means_ms.append(statistics.fmean(s.total_ms for s in samples))

    # Medians over every timed frame of every repetition: robust to a neighbour's load spike.
    @property
    def ms_per_frame(self) -> float:
        return statistics.median(s.total_ms for s in self.samples)

    @property
    def denoise_ms(self) -> float:
        return statistics.median(s.denoise_ms for s in self.samples)

    @property
    def encode_ms(self) -> float:
        return statistics.median(s.encode_ms for s in self.samples)

    @property
    def decode_ms(self) -> float:
        return statistics.median(s.decode_ms for s in self.samples)

    def summary(self) -> dict:
        return {
            "ms_per_frame": round(self.ms_per_frame, 3),
            "encode_ms": round(self.encode_ms, 3),
            "denoise_ms": round(self.denoise_ms, 3),
            "decode_ms": round(self.decode_ms, 3),
            "frames_timed": len(self.samples),
            "rep_means_ms": [round(m, 3) for m in self.rep_means_ms],
        }


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def current_rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
