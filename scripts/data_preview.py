#!/usr/bin/env python
"""Save a picture of the training data: clips as rows of frames, their toon and pencil targets
under them, and depth where a clip has it.

    python scripts/data_preview.py [--out docs/images/training-data.png] [--seed 0]

Needs scikit-image (and the scikit-learn wheel for two photos), like l2d_obs.training.data.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from l2d_obs.training.data import Clip, ClipDataset
from l2d_obs.training.stylize import STYLES, stylize

_LABEL_W = 64
_GAP = 4
_BACKGROUND = 255
PREVIEW_PHOTOS = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "retina")


@dataclass(frozen=True)
class PreviewSpec:
    size: int  # tile side in pixels (the clips are made at this size)
    length: int  # frames per clip
    shown: int  # frames shown per clip, evenly spaced
    seed: int


def pick_clips(spec: PreviewSpec) -> list[Clip]:
    """The first moving clips of the seed's stream: two scenes, then two photo clips.

    Photos are limited to public-domain and CC0 ones (scene posters already skip the photos
    without a stated licence), so the committed picture needs no attribution of its own.
    """
    dataset = ClipDataset((spec.size, spec.size), spec.length, spec.seed)
    scenes: list[Clip] = []
    photos: list[Clip] = []
    for index in range(400):
        clip = dataset.clip(index)
        if np.array_equal(clip.frames[0], clip.frames[-1]):
            continue  # a static clip shows nothing moving
        if clip.source == "scene" and len(scenes) < 2:
            scenes.append(clip)
        elif clip.source.removeprefix("photo:") in PREVIEW_PHOTOS and len(photos) < 2:
            if not any(p.source == clip.source for p in photos):
                photos.append(clip)
        if len(scenes) == 2 and len(photos) == 2:
            break
    return scenes + photos


def clip_rows(clip: Clip, shown: int) -> list[tuple[str, list[np.ndarray]]]:
    picks = np.linspace(0, clip.frames.shape[0] - 1, shown).round().astype(int)
    frames = [clip.frames[i] for i in picks]
    rows = [(clip.source.replace("photo:", ""), frames)]
    rows += [(style, [stylize(style, frame) for frame in frames]) for style in STYLES]
    if clip.depth is not None:
        depth = [
            np.repeat((clip.depth[i] * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=2) for i in picks
        ]
        rows.append(("depth", depth))
    return rows


def label_tile(text: str, height: int) -> np.ndarray:
    tile = np.full((height, _LABEL_W, 3), _BACKGROUND, np.uint8)
    scale = 0.38 if len(text) <= 8 else 0.3
    cv2.putText(tile, text, (3, height // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def grid(clips: list[Clip], spec: PreviewSpec) -> np.ndarray:
    blocks = []
    for clip in clips:
        for label, tiles in clip_rows(clip, spec.shown):
            row = [label_tile(label, spec.size)]
            for tile in tiles:
                row += [tile, np.full((spec.size, 2, 3), _BACKGROUND, np.uint8)]
            blocks.append(np.concatenate(row[:-1], axis=1))
            blocks.append(np.full((2, blocks[-1].shape[1], 3), _BACKGROUND, np.uint8))
        blocks.append(np.full((_GAP * 2, blocks[-1].shape[1], 3), _BACKGROUND, np.uint8))
    return np.concatenate(blocks[:-1], axis=0)


def save_png(rgb: np.ndarray, path: Path) -> None:
    """A 256-colour PNG: keeps the preview small enough for the repository."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(rgb).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    picture.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/training-data.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    spec = PreviewSpec(size=args.size, length=16, shown=5, seed=args.seed)
    save_png(grid(pick_clips(spec), spec), args.out)


if __name__ == "__main__":
    main()
