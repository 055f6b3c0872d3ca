"""The shipped trained profiles on clips they never saw: structure kept, style applied, not flat, no
flicker on a still camera, and no more flicker than the same weights run frame by frame.

The clips are ``l2d_obs.training.heldout.heldout_clips``: procedural scenes from a seed training never
draws, and a photo clip of the image held out of training. Frames go through the real ``l2d-obs render``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from l2d_obs.evaluation.metrics import (
    mean_edge_correlation,
    mean_psnr,
    mean_spatial_std,
    temporal_flicker,
    warp_error,
)
from l2d_obs.training.heldout import heldout_clips as _heldout
from l2d_obs.training.stylize import stylize

SIZE = 128
FRAMES = 24


def heldout_clips() -> dict[str, np.ndarray]:
    return _heldout(FRAMES, SIZE)


def write_folder(frames: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def read_folder(folder: Path) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.png"))]


def render(profile: str, frames: np.ndarray, tmp: Path, name: str) -> list[np.ndarray]:
    src = write_folder(frames, tmp / f"{name}-in")
    dst = tmp / f"{name}-{profile}"
    proc = subprocess.run(
        [sys.executable, "-m", "l2d_obs", "render", str(src), str(dst), "--profile", profile, "--no-progress", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = read_folder(dst)
    assert len(out) == len(frames)
    return out


# Regression floors for what the shipped models measured (docs/model-card.md), below the measured
# figures by a margin for other CPUs' float rounding. Since 2026-12-03 they include the trained-default
# issue's targets on every clip: edge correlation >= 0.6 and >= +2 dB towards the target.
# The target each shipped profile was trained to (stylize.py): toon is the cel-shaded toon.
STYLE_OF = {"toon": "toon-cel", "pencil": "pencil"}

FLOORS = {
    # profile: (mean edge correlation, worst clip's edge correlation, mean dB gained towards the target, worst clip's)
    "toon": (0.74, 0.63, 3.3, 2.0),  # measured 0.765 / 0.663, +3.63 / +2.08 dB (2026-12-03)
    "pencil": (0.74, 0.60, 7.0, 6.0),  # measured 0.765 / 0.612, +7.55 / +6.45 dB (on that toon)
}


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["toon", "pencil"])
def test_style_applied_and_structure_kept_on_unseen_clips(profile, tmp_path):
    mean_edges, worst_edges, mean_gain, worst_gain = FLOORS[profile]
    edges_all, gains = [], []
    for name, frames in heldout_clips().items():
        outputs = render(profile, frames, tmp_path, name)
        targets = [stylize(STYLE_OF[profile], f) for f in frames]
        edges = mean_edge_correlation(outputs, list(frames))
        to_target = mean_psnr(outputs, targets)
        input_to_target = mean_psnr(list(frames), targets)
        spread, input_spread = mean_spatial_std(outputs), mean_spatial_std(list(frames))
        print(f"{profile} on {name}: edge corr {edges:.3f}, PSNR to target {to_target:.2f} dB "
              f"(input {input_to_target:.2f} dB, {to_target - input_to_target:+.2f}), std {spread:.1f} (input {input_spread:.1f})")
        assert spread >= 0.4 * input_spread, f"{name}: output is flat"
        edges_all.append(edges)
        gains.append(to_target - input_to_target)
    print(f"{profile}: mean edge corr {np.mean(edges_all):.3f}, mean gain {np.mean(gains):+.2f} dB")
    assert np.mean(edges_all) >= mean_edges and min(edges_all) >= worst_edges, "structure lost"
    assert np.mean(gains) >= mean_gain and min(gains) >= worst_gain, "style not applied"


@pytest.mark.slow
def test_no_flicker_on_a_still_camera(tmp_path):
    frame = heldout_clips()["scene-0"][0]
    still = np.stack([frame] * FRAMES)
    outputs = render("toon", still, tmp_path, "still")
    flicker = temporal_flicker(outputs)
    print(f"toon on a still frame: mean |frame t+1 - frame t| = {flicker:.3f} (of 255)")
    assert flicker < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("camera_noise", [False, True], ids=["clean", "camera-noise"])
def test_streaming_is_steadier_than_per_frame(camera_noise, tmp_path):
    """Warp error of toon's streaming output (Live2Diff attention) below the same weights run frame by
    frame, on every moving held-out clip, clean and with a webcam's per-frame sensor noise (the flow
    is the clean clip's). Measured 2026-12-03: 0.992-0.998x clean, 0.990-0.999x noisy - a real but
    small gain, nearly nil on coffee (the paper's is larger; these motion modules trained for 350
    steps on a CPU)."""
    from l2d_obs.factory import build_engine
    from l2d_obs.evaluation.variants import run_variant
    from l2d_obs.profiles import load_profile
    from l2d_obs.training.heldout import with_camera_noise

    engine = build_engine(load_profile("toon"))
    for name, frames in heldout_clips().items():
        clean = list(frames)
        inputs = list(with_camera_noise(frames)) if camera_noise else clean
        stream = warp_error(run_variant(engine, inputs, "live2diff"), clean).mean
        single = warp_error(run_variant(engine, inputs, "per-frame"), clean).mean
        print(f"toon on {name}{' + camera noise' if camera_noise else ''}: warp error live2diff {stream:.4f}, "
              f"per-frame {single:.4f} ({stream / single:.3f}x)")
        assert stream < single, f"{name}: streaming output is no steadier than per-frame output"
