"""What one benchmark run measures, as one typed, JSON-able configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PARTS = ("engine", "daemon", "soak", "graphs")
SIZES = ("tiny", "small", "full")


def t_index_list_for(steps: int) -> tuple[int, ...]:
    """T evenly spread indices on the 50-step LCM grid, inside the official range (30..45)."""
    if steps < 1:
        raise ValueError("need at least one denoising step")
    if steps == 1:
        return (35,)
    return tuple(round(30 + i * 15 / (steps - 1)) for i in range(steps))


@dataclass(frozen=True)
class Accelerations:
    """GPU speed options, each switchable so its effect can be measured (CPU runs use none)."""

    sdpa: bool = True  # PyTorch scaled-dot-product attention in the spatial attentions (diffusers' default)
    channels_last: bool = False
    compile: bool = False  # torch.compile the UNet
    cuda_graphs: bool = False  # torch.compile mode "reduce-overhead" (CUDA graphs)
    overlap: bool = False  # the next frame's encode on a second CUDA stream (the daemon part uses it)

    @classmethod
    def defaults_for(cls, device_type: str) -> "Accelerations":
        if device_type == "cuda":
            return cls(sdpa=True, channels_last=True, compile=True, cuda_graphs=True, overlap=True)
        return cls()


@dataclass(frozen=True)
class BenchConfig:
    size: str = "tiny"
    resolution: int = 64
    steps: int = 2  # T
    window: int = 16  # L
    warmup: int = 8  # Lw
    device: str = "cpu"
    dtype: str = "fp32"
    depth: bool = True
    quick: bool = False
    frames: int = 8  # timed (steady-state) frames per repetition and variant
    repeats: int = 3
    daemon_frames: int = 120  # steady-state frames published in the daemon run
    source_fps: float = 0.0  # pattern source rate in the daemon run; 0 = max(30, 1.5x engine-only)
    soak_frames: int = 5000
    parts: tuple[str, ...] = PARTS
    accel: Accelerations = Accelerations()
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # An untimed pass of every variant before the timed repetitions (each run also starts with L
    # untimed frames). Quick runs skip it: they are smoke runs, not figures to quote.
    warm_pass: bool = True

    def __post_init__(self) -> None:
        if self.resolution % 8:
            raise ValueError(f"resolution {self.resolution} is not a multiple of 8")
        unknown = set(self.parts) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown parts {sorted(unknown)}; use some of {', '.join(PARTS)}")
        if self.frames < 1 or self.repeats < 1:
            raise ValueError("frames and repeats must be at least 1")
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; use one of {', '.join(SIZES)}")
        if not 1 <= self.warmup < self.window:
            raise ValueError(f"need 1 <= warmup < window, got warmup={self.warmup} window={self.window}")
        a = self.accel
        if not self.device.startswith("cuda") and (a.compile or a.cuda_graphs or a.channels_last or a.overlap):
            raise ValueError("--compile, --cuda-graphs, --channels-last and --overlap are GPU options; use them with --device cuda")

    @property
    def t_index_list(self) -> tuple[int, ...]:
        return t_index_list_for(self.steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["parts"] = list(self.parts)
        d["t_index_list"] = list(self.t_index_list)
        return d
