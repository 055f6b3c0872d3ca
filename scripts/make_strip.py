#!/usr/bin/env python3
"""Turn a clip into an input/output picture for the README and docs.

    python3 scripts/make_strip.py INPUT --profile NAME --png strip.png [--gif strip.gif]
                                  [--frames N] [--every K] [--size WxH] [--seed S]

INPUT is a video file, a folder of numbered PNG frames, or ``pattern`` (the package's synthetic moving
scene, so no input file is needed). The clip is styled exactly as ``l2d-obs render`` does it (the
package's ``render.render`` with ``build_engine``), unless ``--output-video`` names an output that
was rendered already. The PNG shows every K-th input frame on the top row and the styled frame under
it; the GIF shows input | output side by side for every frame.

Errors the package reports (a missing input, an unknown profile) are one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

try:
    import l2d_obs  # noqa: F401
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from l2d_obs.errors import ConfigError, InputError, L2DError, OutputError
from l2d_obs.frames import Frame
from l2d_obs.imageops import fit
from l2d_obs.render import open_input, render
from l2d_obs.sinks.video import VideoFileSink
from l2d_obs.evaluation.evaluate import read_video
from l2d_obs.sources.pattern import PatternSource

PATTERN = "pattern"
GAP = 4  # pixels between tiles and around the picture
BACKGROUND = (24, 24, 24)
DEFAULT_COLUMNS = 6
PATTERN_FRAMES = 24
PATTERN_SIZE = (128, 128)
MAX_TILE_WIDTH = 256  # file inputs: tiles at native size, but never wider than this


@dataclass(frozen=True)
class Clip:
    frames: list[np.ndarray]  # HxWx3 uint8 RGB
    fps: float


# ------------------------------------------------------------------------------------ reading


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 128x128, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, got {text!r}")
    return w, h


def read_clip(path: Path, limit: int | None = None, fps: float = 30.0) -> tuple[Clip, int]:
    """The first ``limit`` frames of a video file or PNG folder, and the clip's total frame count."""
    source, total = open_input(path, fps)
    clip_fps = source.fps
    source.close()
    frames = read_video(path, limit)  # the same reader (and errors) as `l2d-obs eval`
    if not frames:
        raise InputError(f"input {path} holds no readable frames")
    return Clip(frames, clip_fps), total


def pattern_clip(count: int, size: tuple[int, int]) -> Clip:
    source = PatternSource(width=size[0], height=size[1], limit=count)
    # render(i) directly: read() would pace the frames at 30 fps, which only costs time here.
    return Clip([source.render(i) for i in range(count)], source.fps)


def load_input(spec: str, limit: int | None, size: tuple[int, int] | None) -> tuple[Clip, int]:
    if spec == PATTERN and not Path(spec).exists():
        count = limit or PATTERN_FRAMES
        return pattern_clip(count, size or PATTERN_SIZE), count
    return read_clip(Path(spec), limit)


# ---------------------------------------------------------------------------------- rendering


def write_png_folder(frames: list[np.ndarray], folder: Path, fps: float) -> None:
    sink = VideoFileSink(str(folder) + "/")
    sink.open(frames[0].shape[1], frames[0].shape[0], fps)
    for i, pixels in enumerate(frames):
        sink.write(Frame(pixels=pixels, index=i))
    sink.close()


def style_clip(clip: Clip, profile_name: str, seed: int | None, device: str | None, dtype: str | None) -> list[np.ndarray]:
    """Style ``clip`` exactly as `l2d-obs render` would (same render function, same engine factory)."""
    from l2d_obs.factory import build_engine
    from l2d_obs.profiles import load_profile

    profile = load_profile(profile_name)  # before any work: an unknown profile fails fast
    overrides = {} if seed is None else {"seed": seed}
    with tempfile.TemporaryDirectory(prefix="make_strip-") as tmp:
        # The (possibly shortened) clip goes through a lossless PNG folder: render() reads paths.
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        write_png_folder(clip.frames, src, clip.fps)
        render(src, dst, lambda: build_engine(profile, device=device, dtype=dtype, **overrides), input_fps=clip.fps)
        styled, _ = read_clip(dst)
    return styled.frames


# ------------------------------------------------------------------------------------ drawing


def tile_size(frame: np.ndarray, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        return size
    h, w = frame.shape[:2]
    if w <= MAX_TILE_WIDTH:
        return w, h
    return MAX_TILE_WIDTH, max(8, round(h * MAX_TILE_WIDTH / w))


def label(tile: np.ndarray, text: str, corner: str = "top") -> None:
    """Small white text with a dark outline, readable on any picture (drawn in place)."""
    h = tile.shape[0]
    scale = max(0.3, h / 320)
    thickness = 1 if scale < 0.6 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    org = (3, th + 3) if corner == "top" else (3, h - base - 2)
    cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(tile, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def canvas(columns: int, rows: int, tw: int, th: int) -> np.ndarray:
    w, h = columns * tw + (columns + 1) * GAP, rows * th + (rows + 1) * GAP
    return np.full((h, w, 3), BACKGROUND, np.uint8)


def paste(picture: np.ndarray, tile: np.ndarray, col: int, row: int) -> None:
    th, tw = tile.shape[:2]
    y, x = GAP + row * (th + GAP), GAP + col * (tw + GAP)
    picture[y : y + th, x : x + tw] = tile


def pick_columns(count: int, every: int | None, columns: int) -> list[int]:
    """Frame indices to show: every K-th frame (K chosen to spread ``columns`` over the clip)."""
    step = every if every else max(1, math.ceil(count / columns))
    return list(range(0, count, step))[:columns]


def make_strip(inputs: list[np.ndarray], outputs: list[np.ndarray], indices: list[int], name: str,
               size: tuple[int, int]) -> np.ndarray:
    tw, th = size
    picture = canvas(len(indices), 2, tw, th)
    for col, i in enumerate(indices):
        for row, (frames, text) in enumerate(((inputs, "input"), (outputs, name))):
            tile = fit(frames[i], tw, th).copy()
            if col == 0:
                label(tile, text, "top")
            label(tile, f"#{i}", "bottom")
            paste(picture, tile, col, row)
    return picture


def make_gif_frames(inputs: list[np.ndarray], outputs: list[np.ndarray], name: str,
                    size: tuple[int, int]) -> list[np.ndarray]:
    tw, th = size
    pictures = []
    for i, (a, b) in enumerate(zip(inputs, outputs)):
        picture = canvas(2, 1, tw, th)
        for col, (frame, text) in enumerate(((a, "input"), (b, name))):
            tile = fit(frame, tw, th).copy()
            label(tile, text, "top")
            label(tile, f"#{i}", "bottom")
            paste(picture, tile, col, 0)
        pictures.append(picture)
    return pictures


def save_png(picture: np.ndarray, path: Path) -> None:
    from PIL import Image

    try:
        Image.fromarray(picture).save(path, format="PNG")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def save_gif(pictures: list[np.ndarray], path: Path, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(p) for p in pictures]
    try:
        images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000 / fps)), loop=0)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="make_strip.py",
        description="Make an input/output strip (PNG) and side-by-side animation (GIF) of a styled clip.",
    )
    p.add_argument("input", metavar="INPUT", help="video file, folder of numbered PNGs, or 'pattern' (synthetic scene)")
    p.add_argument("--profile", "-p", default=None, help="style profile name or .toml path (default: tiny)")
    p.add_argument("--png", required=True, type=Path, help="where to write the strip")
    p.add_argument("--gif", type=Path, default=None, help="also write an animated GIF: input | output, every frame")
    p.add_argument("--frames", type=int, default=None,
                   help=f"use the first N frames (default: the whole clip; {PATTERN_FRAMES} for pattern)")
    p.add_argument("--every", type=int, default=None, help="show every K-th frame in the strip (default: spread over the clip)")
    p.add_argument("--columns", type=int, default=DEFAULT_COLUMNS, help=f"at most this many columns (default {DEFAULT_COLUMNS})")
    p.add_argument("--size", type=parse_size, default=None,
                   help="WxH of the pattern's frames and of every tile (default: 128x128 for pattern, "
                        f"else the input's size, at most {MAX_TILE_WIDTH} px wide)")
    p.add_argument("--seed", type=int, default=None, help="noise seed (default: the profile's)")
    p.add_argument("--output-video", type=Path, default=None,
                   help="an already rendered output of INPUT (same frame count): skip rendering")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--dtype", default=None, help="fp16, bf16 or fp32 (default: fp16 on GPU, fp32 on CPU)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default 1)")
    return p


def run(args: argparse.Namespace) -> None:
    if args.frames is not None and args.frames < 1:
        raise ConfigError(f"--frames must be at least 1, got {args.frames}")
    if args.every is not None and args.every < 1:
        raise ConfigError(f"--every must be at least 1, got {args.every}")
    if args.columns < 1:
        raise ConfigError(f"--columns must be at least 1, got {args.columns}")
    clip, total = load_input(args.input, args.frames, args.size)
    if args.output_video is not None:
        styled, styled_total = read_clip(args.output_video, len(clip.frames))
        if styled_total != total:
            raise InputError(f"{args.output_video} has {styled_total} frames but {args.input} has {total}; "
                             "pass the output rendered from this input")
        outputs, name = styled.frames, args.profile or "output"
    else:
        import torch

        torch.set_num_threads(args.threads)
        name = args.profile or "tiny"
        outputs = style_clip(clip, name, args.seed, args.device, args.dtype)
    size = tile_size(clip.frames[0], args.size)
    indices = pick_columns(len(clip.frames), args.every, args.columns)
    save_png(make_strip(clip.frames, outputs, indices, Path(name).stem, size), args.png)
    if args.gif is not None:
        save_gif(make_gif_frames(clip.frames, outputs, Path(name).stem, size), args.gif, clip.fps)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except L2DError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
