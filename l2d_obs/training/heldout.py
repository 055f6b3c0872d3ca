"""The fixed held-out clips: never seen in training, used by the tests, `scripts/heldout_clips.py`,
the model card and benchmarks/EVAL.md.

scene-0, scene-1: procedural scenes from a seed training never draws (training draws its clips from
``default_rng([hash(seed, stage), index])``); coffee: a virtual camera over the photo held out of
training (``data.HELDOUT_IMAGES``).
"""

from __future__ import annotations

import numpy as np

from .data import image_pool, photo_clip, procedural_scene

HELDOUT_SEED = 424242
CAMERA_NOISE_STD = 4.0  # 8-bit levels: a webcam in ordinary room light


def heldout_clips(frames: int = 24, size: int = 128) -> dict[str, np.ndarray]:
    """name -> (F, H, W, 3) uint8 RGB; deterministic."""
    out = {}
    for k in range(2):
        clip = procedural_scene(np.random.default_rng([HELDOUT_SEED, k]), (size, size), frames)
        if np.array_equal(clip.frames[0], clip.frames[-1]):  # want motion: take the next seed
            clip = procedural_scene(np.random.default_rng([HELDOUT_SEED, k + 100]), (size, size), frames)
        out[f"scene-{k}"] = clip.frames
    coffee = image_pool("heldout")[0]
    out[coffee.name] = photo_clip(np.random.default_rng([HELDOUT_SEED, 7]), coffee, (size, size), frames).frames
    return out


def with_camera_noise(frames: np.ndarray, std: float = CAMERA_NOISE_STD, seed: int = HELDOUT_SEED + 1) -> np.ndarray:
    """The clip as a real camera delivers it: new sensor noise in every frame (Gaussian, ``std``
    8-bit levels, from a seed training never uses), quantised to 8 bits."""
    rng = np.random.default_rng(seed)
    noisy = frames.astype(np.float32) + rng.normal(0.0, std, frames.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
