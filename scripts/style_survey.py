#!/usr/bin/env python3
"""A trained profile on more unseen procedural scenes than the three fixed held-out clips.

    python3 scripts/style_survey.py --profile toon [--scenes 10] [--json out.json] [--sheet out.png]

Scenes come from ``procedural_scene`` with seeds (HELDOUT_SEED, k), k = 2, 3, ... - a seed family
training never draws (the fixed held-out scenes are k = 0, 1). Per scene it prints the edge
correlation with the input and the dB gained towards the target stylisation (as the shipped-model
test and the model card measure them), then the median, the worst and how many gain >= 2 dB. The
sheet shows input | output | target of one frame per scene.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

STYLE_OF = {"toon": "toon-cel", "pencil": "pencil"}  # the target each shipped profile was trained to


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="toon")
    parser.add_argument("--style", default=None, help="target style (default: the shipped profile's)")
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--sheet", type=Path, default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from l2d_obs.evaluation.metrics import mean_edge_correlation, mean_psnr
    from l2d_obs.evaluation.variants import run_variant
    from l2d_obs.factory import build_engine
    from l2d_obs.profiles import load_profile
    from l2d_obs.training.data import procedural_scene
    from l2d_obs.training.heldout import HELDOUT_SEED
    from l2d_obs.training.stylize import stylize

    profile = load_profile(args.profile)
    style = args.style or STYLE_OF.get(profile.name, profile.name)
    engine = build_engine(profile)
    rows, sheet = [], []
    for k in range(2, 2 + args.scenes):
        frames = list(procedural_scene(np.random.default_rng([HELDOUT_SEED, k]), (profile.height, profile.width), args.frames).frames)
        targets = [stylize(style, f) for f in frames]
        outputs = run_variant(engine, frames, "live2diff")
        row = {"seed": [HELDOUT_SEED, k], "edge_correlation": round(mean_edge_correlation(outputs, frames), 3),
               "gain_db": round(mean_psnr(outputs, targets) - mean_psnr(frames, targets), 2)}  # fmt: skip
        rows.append(row)
        print(f"scene k={k:2d}: edge correlation {row['edge_correlation']:.3f}, {row['gain_db']:+.2f} dB towards {style}", flush=True)
        mid = len(frames) // 2
        sheet.append(np.hstack([frames[mid], outputs[mid], targets[mid]]))
    gains = np.array([r["gain_db"] for r in rows])
    edges = np.array([r["edge_correlation"] for r in rows])
    summary = {"profile": profile.name, "style": style, "t_index_list": list(profile.t_index_list), "scenes": rows,
               "median_gain_db": round(float(np.median(gains)), 2), "worst_gain_db": round(float(gains.min()), 2),
               "scenes_gaining_2db": int((gains >= 2).sum()), "median_edge_correlation": round(float(np.median(edges)), 3),
               "worst_edge_correlation": round(float(edges.min()), 3)}  # fmt: skip
    print(f"median {summary['median_gain_db']:+.2f} dB (worst {summary['worst_gain_db']:+.2f}), "
          f"{summary['scenes_gaining_2db']}/{len(rows)} scenes >= +2 dB; edge correlation median "
          f"{summary['median_edge_correlation']:.3f}, worst {summary['worst_edge_correlation']:.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.sheet:
        cv2.imwrite(str(args.sheet), cv2.cvtColor(np.vstack(sheet), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
