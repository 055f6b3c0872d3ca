"""How fast the obs: source captures at a model's resolution, against a real OBS under Xvfb.

Run from the repository root: ``python -m benchmarks.obs_capture_rate [--size 512] [--seconds 10]``.
It starts its own throwaway OBS (tests/obs_harness.py), shows a noisy image (the hard case for JPEG)
and reads frames through OBSSource unpaced, printing frames per second and per-frame milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from l2d_obs.config import OBSSettings, Secret
from l2d_obs.sources.obs import OBSSource
from tests.obs_harness import OBSHarness


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--quality", type=int, default=80)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="l2d-bench-"))
    noise = work / "noise.png"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8))
    harness = OBSHarness(work / "obs")
    try:
        conn = harness.start()
        with conn.client() as c:
            c.request("CreateInput", {"sceneName": "Scene", "inputName": "noise", "inputKind": "image_source",
                                      "inputSettings": {"file": str(noise)}, "sceneItemEnabled": True})
        src = OBSSource("noise", OBSSettings(conn.host, conn.port, Secret(conn.password)), fps=0, quality=args.quality)
        src.preferred_size = (args.size, args.size)
        src.open()
        times = []
        t_end = time.monotonic() + args.seconds
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            frame = src.read()
            times.append(time.perf_counter() - t0)
        src.close()
        ms = [t * 1000 for t in times]
        print(f"obs: capture {frame.width}x{frame.height} for a {args.size}x{args.size} model: "
              f"{len(times) / sum(times):.1f} frames/s, median {statistics.median(ms):.1f} ms, "
              f"p95 {np.percentile(ms, 95):.1f} ms over {len(times)} frames")
    finally:
        harness.close()


if __name__ == "__main__":
    main()
