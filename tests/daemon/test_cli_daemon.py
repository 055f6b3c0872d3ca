"""`l2d-obs start | status | stop` as separate processes, the way a user runs them."""

from __future__ import annotations

import glob
import json
import signal
import time

import pytest

from l2d_obs.control.client import ControlClient, read_control_file
from l2d_obs.control.server import control_file
from tests.daemon.daemon_helpers import cli, cli_run, wait_until


def running_daemon(*extra: str):
    proc = cli("start", "--profile", "tiny", "--source", "pattern", "--output", "null", "--control-port", "0", *extra)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited early: {proc.communicate()[1]}")
        if not control_file().exists():
            return False
        r = cli_run("status", "--json")
        return r.returncode == 0 and json.loads(r.stdout)["frames_published"] > 0

    assert wait_until(ready, 90, interval=0.5), "daemon never published a frame"
    return proc


def test_start_runs_n_frames_and_exits():
    r = cli_run("start", "--profile", "tiny", "--source", "pattern", "--output", "null", "--frames", "12",
                "--control-port", "0", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "stopped after 12 frames" in r.stderr
    assert not control_file().exists()


def test_status_then_sigterm_stops_within_two_seconds():
    proc = running_daemon()
    r = cli_run("status")
    assert r.returncode == 0, r.stderr
    assert "profile tiny" in r.stdout and "source  pattern" in r.stdout and "latency" in r.stdout
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 0, proc.stderr.read()
    assert not control_file().exists()


def test_sigint_stops_within_two_seconds():
    proc = running_daemon()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 130, proc.stderr.read()  # Ctrl+C: the shell's convention


def test_stop_through_the_api_and_the_command():
    proc = running_daemon()
    assert read_control_file().pid == proc.pid
    t0 = time.monotonic()
    ControlClient().stop()
    proc.wait(10)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 0

    proc = running_daemon()
    r = cli_run("stop")
    assert r.returncode == 0, r.stderr
    assert f"stopped daemon (pid {proc.pid})" in r.stdout
    assert proc.wait(5) == 0


def test_status_without_a_daemon_is_one_line():
    r = cli_run("status")
    assert r.returncode == 7
    assert r.stderr.strip().count("\n") == 0
    assert "no running daemon found" in r.stderr and "l2d-obs start" in r.stderr


def test_vcam_without_a_device_says_what_to_install():
    if glob.glob("/dev/video*"):
        pytest.skip("this machine has a video device")
    r = cli_run("start", "--profile", "tiny", "--source", "pattern", "--output", "vcam", "--frames", "1",
                "--control-port", "0", timeout=120)
    assert r.returncode == 6
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("l2d-obs: error: no virtual camera device: install and load v4l2loopback "
                           "(sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback exclusive_caps=1), "
                           "or send the styled video straight into OBS with --output obs (pyvirtualcam: 'v4l2loopback' backend: ")


def test_bad_source_is_a_usage_error():
    r = cli_run("start", "--source", "webcam", "--output", "null")
    assert r.returncode == 2 and "unknown source 'webcam'" in r.stderr
