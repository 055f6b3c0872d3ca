#!/usr/bin/env python3
"""Write the fixed held-out clips (never seen in training) as PNG folders, for eval, strips and docs.

    python3 scripts/heldout_clips.py OUTDIR [--frames 24] [--size 128]

The clips are l2d_obs.training.heldout.heldout_clips (the same ones tests/training uses).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    from l2d_obs.training.heldout import heldout_clips

    for name, frames in heldout_clips(args.frames, args.size).items():
        folder = args.outdir / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
