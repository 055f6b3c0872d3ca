#!/usr/bin/env python3
"""The trained default live on this machine's CPU, as a user runs it: `l2d-obs start` with
(1) the synthetic pattern source and (2) a real headless OBS (Xvfb) playing a held-out clip in a Media
Source, each writing a video file. Prints the daemon's own summary lines and saves a strip PNG of what
came out of the OBS run.

    python3 benchmarks/cpu_live.py [--profile toon] [--frames 90] [--out /tmp/l2d-live]

Needs obs-studio and xvfb (scripts/setup --test installs them). Numbers go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' OBS harness lives in tests/ (not installed)

from tests.obs_harness import OBSHarness  # noqa: E402


def held_out_video(path: Path, frames: int) -> None:
    from l2d_obs.training.data import procedural_scene

    clip = procedural_scene(np.random.default_rng([424242, 0]), (360, 640), frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 360))
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def start(args: list[str], env: dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "l2d_obs", "start", *args, "--threads", "1"]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    print(f"$ l2d-obs start {' '.join(args)}   ({time.monotonic() - started:.1f} s, rc {proc.returncode})")
    print(proc.stdout.strip())
    # The daemon logs to stderr: its start-up phases, its status line every 5 s and its summary.
    lines = [line for line in proc.stderr.splitlines() if "l2d_obs.daemon" in line]
    print("\n".join(lines[-4:]) if not proc.returncode else proc.stderr.strip())
    return proc.stdout


def strip(video: Path, png: Path, columns: int = 6) -> None:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if not frames:
        return
    picks = [frames[i] for i in np.linspace(0, len(frames) - 1, columns).round().astype(int)]
    cv2.imwrite(str(png), np.concatenate(picks, axis=1))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="toon")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--out", type=Path, default=Path("/tmp/l2d-live"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # One torch thread: on a shared 2-core machine OpenMP waits make two threads ~3x slower.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("L2D_OBS_")}, "OMP_NUM_THREADS": "1"}

    start(["--profile", args.profile, "--source", "pattern", "--output", f"file:{args.out / 'pattern.avi'}",
           "--frames", str(args.frames)], env)  # fmt: skip

    clip = args.out / "heldout.avi"
    held_out_video(clip, 150)
    obs = OBSHarness(args.out / "obs")
    conn = obs.start()
    try:
        with conn.client() as c:
            scene = c.request("GetCurrentProgramScene")["currentProgramSceneName"]
            c.request("CreateInput", {"sceneName": scene, "inputName": "Webcam", "inputKind": "ffmpeg_source",
                                      "inputSettings": {"local_file": str(clip), "looping": True, "is_local_file": True},
                                      "sceneItemEnabled": True})  # fmt: skip
        time.sleep(1.0)
        start(["--profile", args.profile, "--source", "obs:Webcam", "--output", f"file:{args.out / 'obs.avi'}",
               "--frames", str(args.frames)], {**env, **conn.env()})  # fmt: skip
    finally:
        obs.close()
    strip(args.out / "obs.avi", args.out / "obs-strip.png")
    print(f"strip of the OBS run: {args.out / 'obs-strip.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
