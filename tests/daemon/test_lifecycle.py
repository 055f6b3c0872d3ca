"""The daemon's life as a user sees it: one instance per state folder, status and stop in every phase
(loading, warming, running), and signals that end it within 2 s with a playable file.

The shipped ``toon`` profile is used where a phase must last long enough to be hit (its model takes
several seconds to load on a small CPU); ``tiny`` elsewhere. Every daemon is a separate process.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from l2d_obs.control.client import ControlClient, read_control_file
from l2d_obs.control.instance import lock_file
from l2d_obs.control.server import control_file
from tests.daemon.daemon_helpers import cli, cli_run, playable_frames, wait_until


def _status() -> dict | None:
    try:
        return ControlClient(timeout=2).status()
    except Exception:  # noqa: BLE001 - not up yet
        return None


def _wait_for_phase(proc, phases: set[str], timeout: float = 120) -> dict:
    seen: dict = {}

    def reached() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited early (rc {proc.returncode}): {proc.communicate()[1][-2000:]}")
        st = _status()
        if st is not None:
            seen.update(st)
        return st is not None and st.get("phase") in phases

    assert wait_until(reached, timeout, interval=0.05), f"never reached {phases}; last status {seen.get('phase')}"
    return seen


def _start(*args: str, output: str = "null", profile: str = "tiny"):
    return cli("start", "--profile", profile, "--source", "pattern", "--output", output, "--control-port", "0",
               "--threads", "1", *args)  # fmt: skip


def _playable(path) -> int:
    return playable_frames(path)


def test_second_start_fails_fast_naming_the_first_and_leaves_it_reachable(tmp_path):
    first = _start(output=f"file:{tmp_path / 'first.avi'}")
    _wait_for_phase(first, {"running"})
    size_before = (tmp_path / "first.avi").stat().st_size
    t0 = time.monotonic()
    second = cli_run("start", "--profile", "tiny", "--source", "pattern", "--output", f"file:{tmp_path / 'first.avi'}",
                     "--control-port", "0", timeout=30)  # fmt: skip
    took = time.monotonic() - t0
    print(f"second start refused in {took:.2f} s: {second.stderr.strip()}")
    assert second.returncode != 0
    assert took < 5.0
    assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    # The first one's control file, lock and output are untouched: it still answers and stops.
    assert read_control_file().pid == first.pid
    assert (tmp_path / "first.avi").stat().st_size >= size_before
    assert cli_run("status").returncode == 0
    r = cli_run("stop")
    assert r.returncode == 0, r.stderr
    assert first.wait(5) == 0
    assert not control_file().exists()
    assert _playable(tmp_path / "first.avi") > 0


def test_a_dead_daemons_files_do_not_block_the_next_start(tmp_path):
    proc = _start()
    _wait_for_phase(proc, {"running"})
    proc.kill()  # no chance to clean up: control.json and daemon.lock stay behind
    proc.wait(5)
    assert control_file().exists() and lock_file().exists()
    again = _start()
    st = _wait_for_phase(again, {"running"})
    assert st["pid"] == again.pid == read_control_file().pid
    again.send_signal(signal.SIGTERM)
    assert again.wait(5) == 0


@pytest.mark.slow
def test_status_says_loading_and_stop_works_while_the_model_loads(tmp_path):
    proc = _start(profile="toon")
    st = _wait_for_phase(proc, {"loading"})
    assert st["loading"]["step"], st
    r = cli_run("status")
    print(r.stdout)
    assert r.returncode == 0 and "loading" in r.stdout
    t0 = time.monotonic()
    ControlClient().stop()
    rc = proc.wait(10)
    took = time.monotonic() - t0
    print(f"stopped during load in {took:.2f} s")
    assert rc == 0 and took < 2.0
    assert not control_file().exists()


PHASE_CASES = [
    ("loading", signal.SIGINT, "fp32"),
    ("loading", signal.SIGTERM, "fp16"),
    ("warming", signal.SIGTERM, "fp32"),
    ("warming", signal.SIGINT, "fp16"),
    ("running", signal.SIGINT, "fp32"),
    ("running", signal.SIGTERM, "fp16"),
]


@pytest.mark.slow
@pytest.mark.parametrize("phase,signum,dtype", PHASE_CASES, ids=[f"{p}-{s.name}-{d}" for p, s, d in PHASE_CASES])
def test_signals_end_the_daemon_within_two_seconds_in_every_phase(phase, signum, dtype, tmp_path):
    out = tmp_path / "out.avi"
    proc = _start("--dtype", dtype, profile="toon", output=f"file:{out}")
    _wait_for_phase(proc, {phase})
    t0 = time.monotonic()
    proc.send_signal(signum)
    rc = proc.wait(10)
    took = time.monotonic() - t0
    stderr = proc.stderr.read()
    frames = _playable(out) if phase == "running" else None
    print(f"{phase} {signum.name} {dtype}: rc {rc} in {took:.2f} s, {frames} frames in the file")
    assert took < 2.0
    assert rc == (130 if signum == signal.SIGINT else 0), stderr[-2000:]
    assert "terminate called" not in stderr and "Traceback" not in stderr
    assert not control_file().exists()
    assert out.exists()
    if phase == "running":
        assert frames and frames > 0


def test_frames_counts_the_frames_a_file_output_records(tmp_path):
    out = tmp_path / "clip.avi"
    r = cli_run("start", "--profile", "tiny", "--source", "pattern", "--output", f"file:{out}", "--frames", "15",
                "--control-port", "0", timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _playable(out) == 15  # a live source's repeated ticks are not recorded


def test_status_json_reports_the_phase(tmp_path):
    proc = _start()
    _wait_for_phase(proc, {"running"})
    st = json.loads(cli_run("status", "--json").stdout)
    assert st["phase"] == "running" and st["loading"] is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0


def test_default_threads_leave_a_core_for_capture_output_and_obs():
    from l2d_obs.threads import default_threads

    assert [default_threads(n) for n in (1, 2, 4, 16)] == [1, 1, 3, 15]
