import numpy as np
import torch

from l2d_obs.engine.stream import EngineSettings, StreamEngine
from l2d_obs.engine.tiny import build_tiny_components
from l2d_obs.frames import Frame


def make_engine(steps: int = 2, *, window: int = 16, warmup: int = 8, size: int = 32, depth: bool = True,
                noise: str = "fresh", seed: int = 7, pipelined: bool = True, weights_seed: int = 0) -> StreamEngine:
    """A tiny fp32 CPU engine; t_index_list spread over the 50-step grid."""
    t_index_list = tuple(np.linspace(20, 45, steps).round().astype(int).tolist()) if steps > 1 else (35,)
    settings = EngineSettings(width=size, height=size, prompt="a tiny test style", t_index_list=t_index_list,
                              window=window, warmup=warmup, seed=seed, noise=noise, pipelined=pipelined)
    return StreamEngine(build_tiny_components(weights_seed, depth=depth), settings, device="cpu", dtype=torch.float32)


def moving_frames(n: int, size: int = 32, seed: int = 0) -> list[Frame]:
    """A synthetic clip: a bright square moving over textured noise (frames differ but correlate)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        img = base.copy()
        x = (3 * i) % (size - 8)
        img[8:16, x : x + 8] = 255
        frames.append(Frame(pixels=img, index=i))
    return frames


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))

