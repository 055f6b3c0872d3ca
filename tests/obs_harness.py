"""A real OBS Studio for tests: Xvfb + Debian's obs-studio (obs-websocket 5.x built in).

``OBSHarness`` owns a throwaway HOME with a profile (640x360 canvas, 30 fps) and websocket settings
(random port, random password), starts Xvfb on a free display and OBS on it, and waits until the
websocket answers (checking the port, not the exit code: OBS exits 0 without a display). ``stop()``
sends SIGINT (OBS saves and exits in ~2 s), ``kill()`` simulates a crash. The ``obs`` fixture in a
conftest wraps it; under CI (CI=true) a missing binary or a failed start is a test failure, never a skip.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from l2d_obs.errors import OBSConnectionError
from l2d_obs.obsclient import OBSClient

PROFILE = "l2dtest"
CANVAS = (640, 360)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class OBSConnection:
    host: str
    port: int
    password: str

    def env(self) -> dict[str, str]:
        """Environment variables that point l2d-obs at this OBS."""
        return {"L2D_OBS_HOST": self.host, "L2D_OBS_PORT": str(self.port), "L2D_OBS_PASSWORD": self.password}

    def client(self) -> OBSClient:
        return OBSClient(self.host, self.port, self.password).connect()


class OBSHarness:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="l2d-obs-test-"))
        self.home = self.root / "home"
        self.conn = OBSConnection("127.0.0.1", free_port(), secrets.token_urlsafe(12))
        self._xvfb: subprocess.Popen | None = None
        self._obs: subprocess.Popen | None = None
        self.display: str | None = None
        self._write_config()

    # --- setup ---------------------------------------------------------------------------------
    def _write_config(self) -> None:
        cfg = self.home / ".config" / "obs-studio"
        (cfg / "basic" / "profiles" / PROFILE).mkdir(parents=True, exist_ok=True)
        (cfg / "basic" / "scenes").mkdir(parents=True, exist_ok=True)
        (cfg / "global.ini").write_text(
            "[General]\nFirstRun=true\nLastVersion=486539266\nEnableAutoUpdates=false\n\n"
            f"[Basic]\nProfile={PROFILE}\nProfileDir={PROFILE}\n\n"
            "[OBSWebSocket]\nFirstLoad=false\nServerEnabled=true\n"
            f"ServerPort={self.conn.port}\nAuthRequired=true\nServerPassword={self.conn.password}\nAlertsEnabled=false\n"
        )
        w, h = CANVAS
        (cfg / "basic" / "profiles" / PROFILE / "basic.ini").write_text(
            f"[General]\nName={PROFILE}\n\n[Video]\nBaseCX={w}\nBaseCY={h}\nOutputCX={w}\nOutputCY={h}\n"
            "FPSType=0\nFPSCommon=30\n"
        )

    @property
    def scene_collection_path(self) -> Path:
        """The scene collection OBS loads (``--collection l2dtest``) and rewrites on a clean stop."""
        return self.home / ".config" / "obs-studio" / "basic" / "scenes" / "l2dtest.json"

    def read_scene_collection(self) -> dict:
        path = self.scene_collection_path
        return json.loads(path.read_text()) if path.exists() else {}

    def add_script(self, path: Path | str, settings: dict | None = None) -> None:
        """Have OBS load a Python script (Tools -> Scripts) with these settings at its next start.

        Writes the script into the scene collection (keeping what OBS saved there, replacing an earlier
        entry for the same file); call it while OBS is stopped, or OBS overwrites it when it exits."""
        data = self.read_scene_collection() or {"name": "l2dtest"}
        tool = data.setdefault("modules", {}).setdefault("scripts-tool", [])
        path = str(Path(path).resolve())
        tool[:] = [entry for entry in tool if entry.get("path") != path]
        tool.append({"path": path, "settings": dict(settings or {})})
        self.scene_collection_path.parent.mkdir(parents=True, exist_ok=True)
        self.scene_collection_path.write_text(json.dumps(data, indent=4))

    def obs_log(self) -> str:
        """OBS's own log files (newest last), e.g. to see what a script printed."""
        logs = sorted((self.home / ".config" / "obs-studio" / "logs").glob("*.txt"), key=lambda p: p.stat().st_mtime)
        return "\n".join(p.read_text(errors="replace") for p in logs)

    @staticmethod
    def binaries_missing() -> list[str]:
        return [b for b in ("obs", "Xvfb") if shutil.which(b) is None]

    def _start_xvfb(self) -> None:
        read_fd, write_fd = os.pipe()
        self._xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        os.close(write_fd)
        deadline = time.monotonic() + 15
        buf = b""
        with os.fdopen(read_fd, "rb", buffering=0) as r:
            while not buf.endswith(b"\n") and time.monotonic() < deadline:
                chunk = r.read(16)
                if not chunk:
                    break
                buf += chunk
        if not buf.strip():
            raise RuntimeError("Xvfb did not report a display number")
        self.display = ":" + buf.decode().strip()

    def start(self, timeout: float = 45.0) -> OBSConnection:
        if self._xvfb is None:
            self._start_xvfb()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("L2D_", "XDG_"))}
        env.update(HOME=str(self.home), DISPLAY=self.display or "", LIBGL_ALWAYS_SOFTWARE="1", QT_QPA_PLATFORM="xcb")
        self.log_path = self.root / "obs-stdout.log"
        self._obs = subprocess.Popen(
            ["obs", "--multi", "--disable-updater", "--disable-missing-files-check", "--profile", PROFILE,
             "--collection", "l2dtest"],
            cwd=self.root, env=env, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._obs.poll() is not None:
                raise RuntimeError(f"OBS exited with status {self._obs.returncode}; see {self.log_path}")
            try:
                with self.conn.client() as c:
                    c.request("GetVersion")
                return self.conn
            except OBSConnectionError as exc:
                last = exc
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"OBS websocket did not answer within {timeout:.0f} s: {last}")

    def ensure_running(self) -> "OBSHarness":
        """Start OBS again if a test stopped or killed it (fixtures share one OBS)."""
        if self._obs is None or self._obs.poll() is not None:
            self.start()
        return self

    # --- teardown ------------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        """Clean shutdown (SIGINT), escalating to SIGKILL."""
        p, self._obs = self._obs, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def kill(self) -> None:
        """Crash OBS (SIGKILL): nothing is saved, sockets drop at once."""
        p, self._obs = self._obs, None
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

    def close(self) -> None:
        self.stop()
        x, self._xvfb = self._xvfb, None
        if x is not None and x.poll() is None:
            x.terminate()
            try:
                x.wait(5)
            except subprocess.TimeoutExpired:
                x.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def obs_fixture_body(tmp_root: Path, prepare: Callable[[OBSHarness], None] | None = None):
    """Generator used by conftest fixtures: yields a started OBSHarness, fails (CI) or skips (locally).
    ``prepare(harness)`` runs before OBS first starts (e.g. ``harness.add_script(...)``)."""
    missing = OBSHarness.binaries_missing()
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install obs-studio xvfb)"
        if in_ci():
            pytest.fail(f"OBS tests must run in CI: {reason}")
        pytest.skip(reason)
    harness = OBSHarness(tmp_root)
    try:
        if prepare is not None:
            prepare(harness)
        harness.start()
    except Exception as exc:  # noqa: BLE001 - any failure to start is a test failure with its reason
        harness.close()
        pytest.fail(f"OBS could not start: {exc}")
    try:
        yield harness
    finally:
        harness.close()


def add_color_source(client: OBSClient, scene: str, name: str, rgb: tuple[int, int, int], size=CANVAS) -> None:
    """A Color Source filling the canvas; obs colours are 0xAABBGGRR."""
    client.request("CreateInput", {
        "sceneName": scene, "inputName": name, "inputKind": "color_source_v3",
        "inputSettings": {"color": abgr(rgb), "width": size[0], "height": size[1]}, "sceneItemEnabled": True,
    })


def set_color(client: OBSClient, name: str, rgb: tuple[int, int, int]) -> None:
    client.request("SetInputSettings", {"inputName": name, "inputSettings": {"color": abgr(rgb)}})


def abgr(rgb: tuple[int, int, int]) -> int:
    r, g, b = rgb
    return 0xFF000000 | (b << 16) | (g << 8) | r
