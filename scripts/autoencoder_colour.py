#!/usr/bin/env python3
"""Which colours a profile's autoencoder keeps: what each latent channel carries, and its round trip
on the survey scenes.

    python3 scripts/autoencoder_colour.py [--profile toon] [--scenes 10] [--json out.json]

Per latent channel: its spread across pictures and its correlation with luminance and the three
opponent-colour axes of the picture (red-green, green-magenta, blue-yellow) at the latent's scale; and,
since an axis may be spread over several channels, how much of each axis a linear map of all the
channels recovers (R^2). Every axis the pictures vary in near 1 is what a healthy autoencoder has.
Then, per survey scene (``procedural_scene`` with seeds (HELDOUT_SEED, k), k = 2, 3, ...: never
seen in training), the round trip's PSNR and its mean error in the green channel on green pixels (negative: greens come
back grey, blue or brown).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

GREEN_MARGIN = 0.15  # a pixel is green when G exceeds the mean of R and B by this much (0..1 scale)


def opponent_axes(images01):
    """(N, 3, H, W) in [0, 1] -> name -> (N, H, W)."""
    r, g, b = images01[:, 0], images01[:, 1], images01[:, 2]
    return {"luminance": (r + g + b) / 3, "red-green": r - g, "green-magenta": g - (r + b) / 2, "blue-yellow": b - (r + g) / 2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="toon")
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    from l2d_obs.training.config import load_train_config
    from l2d_obs.training.data import procedural_scene
    from l2d_obs.training.export import load_run_models
    from l2d_obs.training.heldout import HELDOUT_SEED
    from l2d_obs.training.stages import calibration_images

    models = load_run_models(args.profile, None)
    vae = models.vae.eval()
    config = load_train_config(Path(__file__).resolve().parents[1] / "l2d_obs" / "data" / "train" / "toon.toml")
    pictures = calibration_images(config, 48)  # training frames of every kind, fixed
    with torch.no_grad():
        latents = vae.encode(pictures * 2 - 1).latents
    factor = pictures.shape[-1] // latents.shape[-1]  # the autoencoder's downsampling
    axes = opponent_axes(F.avg_pool2d(pictures, factor))
    channels = []
    for c in range(latents.shape[1]):
        values = latents[:, c]
        spread = float((values - values.mean(0, keepdim=True)).std())
        corr = {name: round(float(torch.corrcoef(torch.stack([values.flatten(), axis.flatten()]))[0, 1]), 2)
                for name, axis in axes.items()}  # fmt: skip
        channels.append({"channel": c, "spread": round(spread, 4), "correlation": corr})
        print(f"latent {c}: spread {spread:.4f}  " + "  ".join(f"{k} {v:+.2f}" for k, v in corr.items()))

    # Least squares from all channels (plus a constant) to each axis: how much of it the latents carry.
    design = torch.cat([latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]), torch.ones(latents[:, :1].numel(), 1)], 1)
    recovered = {}
    for name, axis in axes.items():
        target = axis.reshape(-1, 1)
        fit = design @ torch.linalg.lstsq(design, target).solution
        recovered[name] = round(1 - float((fit - target).pow(2).mean() / target.var()), 3)
    print("linear fit from all channels, R^2: " + "  ".join(f"{k} {v:.3f}" for k, v in recovered.items()))

    scenes = []
    for k in range(2, 2 + args.scenes):
        frame = procedural_scene(np.random.default_rng([HELDOUT_SEED, k]), (128, 128), 1).frames
        x = torch.from_numpy(frame).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            back = ((vae.decode(vae.encode(x * 2 - 1).latents).sample + 1) / 2).clamp(0, 1)
        psnr = float(10 * torch.log10(1 / F.mse_loss(back, x)))
        green = opponent_axes(x)["green-magenta"] > GREEN_MARGIN
        share = float(green.float().mean())
        error = float(((back - x)[:, 1][green]).mean() * 255) if share > 0 else None
        scenes.append({"seed": [HELDOUT_SEED, k], "psnr_db": round(psnr, 2), "green_share": round(share, 3),
                       "green_error_levels": None if error is None else round(error, 1)})  # fmt: skip
        said = "no green pixels" if error is None else f"G on its green pixels ({share:.0%}) off by {error:+.1f} levels"
        print(f"scene k={k:2d}: round trip {psnr:.2f} dB, {said}")
    if args.json is not None:
        args.json.write_text(json.dumps({"profile": args.profile, "channels": channels, "axes_r2": recovered, "scenes": scenes}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
