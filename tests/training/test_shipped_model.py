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
import torch

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


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


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
# figures by a margin for other CPUs' float rounding. They are NOT the trained-default issue's targets
# (edge correlation >= 0.6 on every clip, +2 dB to the target): the models do not reach those yet.
FLOORS = {
    # profile: (mean edge correlation, worst clip's edge correlation, mean dB gained towards the target, worst clip's)
    "toon": (0.55, 0.35, 0.8, 0.4),
    "pencil": (0.55, 0.30, 2.5, 2.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["toon", "pencil"])
def test_style_applied_and_structure_kept_on_unseen_clips(profile, tmp_path):
    mean_edges, worst_edges, mean_gain, worst_gain = FLOORS[profile]
    edges_all, gains = [], []
    for name, frames in heldout_clips().items():
        outputs = render(profile, frames, tmp_path, name)
        targets = [stylize(profile, f) for f in frames]
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
def test_streaming_is_no_less_steady_than_per_frame(tmp_path):
    from l2d_obs.engine import build_engine
    from l2d_obs.evaluation.variants import run_variant
    from l2d_obs.profiles import load_profile

    engine = build_engine(load_profile("toon"))
    ratios = []
    for name, frames in heldout_clips().items():
        inputs = list(frames)
        stream = warp_error(run_variant(engine, inputs, "live2diff"), inputs).mean
        single = warp_error(run_variant(engine, inputs, "per-frame"), inputs).mean
        print(f"toon on {name}: warp error live2diff {stream:.4f}, per-frame {single:.4f} ({stream / single:.3f}x)")
        ratios.append(stream / single)
    # Measured: equal to within 1 % (the fixed noise already makes per-frame output steady at this
    # size); the paper's gain does not reproduce here. The floor: temporal attention must not add flicker.
    assert np.mean(ratios) <= 1.02, "streaming output flickers more than per-frame output"
