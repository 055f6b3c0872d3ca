"""Pictures for docs/obs-output.md, from a real headless OBS: two scenes that show the same camera at
different places under overlays, before the daemon runs, while it runs (``--output obs``, the styled
camera in place of the camera) and after it stopped (scenes as they were).

    python scripts/obs_mirror_screenshots.py [--profile toon] [--out docs/images/obs-mirror.png]

The "camera" is an Image Source showing scikit-image's bundled ``chelsea.png`` (a cat; licence in
docs/training-data.md), cropped to 16:9. Needs obs-studio and Xvfb (scripts/setup --test).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from l2d_obs.config import OBSSettings, Secret  # noqa: E402
from l2d_obs.daemon import Daemon, DaemonConfig, default_engine_factory  # noqa: E402
from l2d_obs.profiles import load_profile  # noqa: E402
from l2d_obs.sinks.obs_return import OBSReturnSink  # noqa: E402
from l2d_obs.sources.obs import OBSSource, decode_data_url  # noqa: E402
from tests.obs_harness import OBSHarness, add_color_source  # noqa: E402

SCENES = ("Just Chatting", "Gameplay")


def camera_image(folder: Path) -> Path:
    import skimage

    img = cv2.imread(str(Path(skimage.__file__).parent / "data" / "chelsea.png"))
    h, w = img.shape[:2]
    crop = img[(h - w * 9 // 16) // 2:][: w * 9 // 16]
    path = folder / "camera.png"
    cv2.imwrite(str(path), cv2.resize(crop, (448, 252), interpolation=cv2.INTER_AREA))
    return path


def build_scenes(client, image: Path) -> None:
    r = client.request
    for scene in SCENES:
        r("CreateScene", {"sceneName": scene})
    add_color_source(client, SCENES[0], "Backdrop", (38, 34, 60))
    add_color_source(client, SCENES[1], "Game", (20, 70, 40))
    r("CreateInput", {"sceneName": SCENES[0], "inputName": "Webcam", "inputKind": "image_source",
                      "inputSettings": {"file": str(image)}, "sceneItemEnabled": True})
    r("CreateSceneItem", {"sceneName": SCENES[1], "sourceName": "Webcam"})
    add_color_source(client, SCENES[0], "Alert box", (240, 190, 30), size=(180, 44))
    add_color_source(client, SCENES[1], "Camera frame", (230, 230, 230), size=(196, 116))

    def place(scene, source, **t):
        item = r("GetSceneItemId", {"sceneName": scene, "sourceName": source})["sceneItemId"]
        r("SetSceneItemTransform", {"sceneName": scene, "sceneItemId": item, "sceneItemTransform": t})

    # Just Chatting: a big camera on the left, an alert box over its bottom edge
    place(SCENES[0], "Webcam", positionX=40.0, positionY=40.0, boundsType="OBS_BOUNDS_SCALE_INNER",
          boundsWidth=448.0, boundsHeight=252.0)
    place(SCENES[0], "Alert box", positionX=300.0, positionY=270.0)
    # Gameplay: a small camera in the corner, on a white frame (the frame is below it)
    frame_id = r("GetSceneItemId", {"sceneName": SCENES[1], "sourceName": "Camera frame"})["sceneItemId"]
    r("SetSceneItemIndex", {"sceneName": SCENES[1], "sceneItemId": frame_id, "sceneItemIndex": 1})
    place(SCENES[1], "Camera frame", positionX=432.0, positionY=232.0)
    place(SCENES[1], "Webcam", positionX=440.0, positionY=240.0, scaleX=180 / 448, scaleY=180 / 448, cropTop=20)
    r("SetCurrentProgramScene", {"sceneName": SCENES[0]})


def shots(client) -> list[np.ndarray]:
    return [decode_data_url(client.request("GetSourceScreenshot", {"sourceName": s, "imageFormat": "png"})["imageData"])
            for s in SCENES]


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 26), (0, 0, 0), -1)
    cv2.putText(out, text, (8, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="toon")
    ap.add_argument("--out", default="docs/images/obs-mirror.png")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    harness = OBSHarness()
    harness.start()
    try:
        with tempfile.TemporaryDirectory() as tmp, harness.conn.client() as client:
            build_scenes(client, camera_image(Path(tmp)))
            time.sleep(1.0)
            before = shots(client)
            c = harness.conn
            settings = OBSSettings(c.host, c.port, Secret(c.password))
            daemon = Daemon(load_profile(args.profile), OBSSource("Webcam", settings), [OBSReturnSink(settings, camera="Webcam")],
                            default_engine_factory("cpu", "fp32"), DaemonConfig())
            runner = threading.Thread(target=daemon.run, daemon=True)
            runner.start()
            deadline = time.monotonic() + 300
            while daemon.phase != "running" and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(12)  # past the warmup: the styled picture has settled
            during = shots(client)
            engine = f"{daemon.profile.name} at {daemon.profile.width}x{daemon.profile.height}"
            daemon.stop()
            runner.join(20)
            time.sleep(1.0)
            after = shots(client)
        rows = []
        for i, scene in enumerate(SCENES):
            rows.append(np.hstack([label(before[i], f"{scene}: before"), label(during[i], f"{scene}: l2d-obs running ({engine})"),
                                   label(after[i], f"{scene}: after stop")]))
        strip = np.vstack(rows)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(args.out, cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"wrote {args.out} ({strip.shape[1]}x{strip.shape[0]})")
    finally:
        harness.close()


if __name__ == "__main__":
    main()
