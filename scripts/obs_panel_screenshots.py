"""Screenshots of the l2d-obs panel (Tools -> Scripts) in a real OBS under Xvfb, for docs/obs-panel.md.

    python3 scripts/obs_panel_screenshots.py docs/images

Starts a throwaway headless OBS (tests/obs_harness.py) with the plugin script and a colour source
named "Webcam", opens Tools -> Scripts with xdotool (apt-get install xdotool), clicks the panel's own
Start button, waits until the script logs "status: running", clicks "Refresh panel" and takes
obs-panel-running.png; ticks Bypass and takes obs-panel-bypass.png. The daemon is the real
`l2d-obs start` with the tiny profile and an MJPEG output. The click positions are those of OBS 29.0.2's
Scripts window at 1280x720 with this script's fields; another OBS version may need other ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import ImageGrab

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from l2d_obs.control.client import _pid_alive, read_control_file  # noqa: E402
from l2d_obs.errors import ControlError  # noqa: E402
from tests.obs_harness import OBSHarness, add_color_source, free_port  # noqa: E402

START, REFRESH, BYPASS = (1044, 187), (1073, 275), (1022, 356)  # in the Scripts window at 1280x720
SCRIPTS_MENU_ITEM = (388, 146)  # Tools -> Scripts in the main window at 1280x720


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="l2d-panel-shots-"))
    state = root / "state"
    harness = OBSHarness(root / "obs")
    harness.add_script(REPO / "plugin" / "l2d_obs_hotkeys.py", {
        "profiles": "tiny", "control_file": str(state / "control.json"),
        "command": str(Path(sys.executable).with_name("l2d-obs")), "start_profile": "tiny", "source": "obs:Webcam",
        "output": f"mjpeg:{free_port()}", "extra_args": "--fps 10 --threads 1",
        "obs_port": harness.conn.port, "obs_password": harness.conn.password,
    })
    harness.start()
    env = dict(os.environ, DISPLAY=harness.display or "")

    def xdotool(*args: str) -> str:
        return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, check=False).stdout.strip()

    def click(at: tuple[int, int], settle: float = 1.5) -> None:
        xdotool("mousemove", str(at[0]), str(at[1]), "click", "1")
        time.sleep(settle)

    def grab(name: str) -> None:
        ImageGrab.grab(xdisplay=harness.display).save(out / name)
        print("wrote", out / name)

    try:
        with harness.conn.client() as c:  # the collection holds only the script: add a scene and a camera
            c.request("CreateScene", {"sceneName": "Scene"})
            c.request("SetCurrentProgramScene", {"sceneName": "Scene"})
            add_color_source(c, "Scene", "Webcam", (200, 40, 90))
        main_window = next(w for w in xdotool("search", "--name", "OBS").split()
                           if xdotool("getwindowname", w).startswith("OBS "))
        xdotool("windowactivate", "--sync", main_window, "windowsize", main_window, "1280", "720",
                "windowmove", main_window, "0", "0")
        time.sleep(1)
        xdotool("key", "alt+t")
        time.sleep(0.7)
        click(SCRIPTS_MENU_ITEM)
        xdotool("search", "--name", "^Scripts$", "windowsize", "%1", "1280", "720", "windowmove", "%1", "0", "0")
        time.sleep(1.5)
        click(START)
        deadline = time.monotonic() + 180
        while "status: running" not in harness.obs_log():
            if time.monotonic() > deadline:
                raise SystemExit("the daemon did not reach running in 180 s; see " + str(state / "obs-panel-daemon.log"))
            time.sleep(0.5)
        time.sleep(3)  # a few frames, so fps and latency mean something
        click(REFRESH)
        grab("obs-panel-running.png")
        click(BYPASS, settle=2.0)
        click(REFRESH)
        grab("obs-panel-bypass.png")
    finally:
        try:
            pid = read_control_file(state / "control.json").pid
            if _pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
        except ControlError:
            pass
        harness.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
