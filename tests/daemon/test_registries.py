"""Sources and sinks come from one registry each: make_source/make_sink, the --source/--output help, the
unknown-kind errors and doctor all read it. Sources and sinks are context managers."""

from __future__ import annotations

import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest
import pyvirtualcam

from l2d_obs import sinks, sources
from l2d_obs.errors import ConfigError, SinkError
from l2d_obs.frames import Frame
from l2d_obs.sinks import SINK_KINDS, make_sink, sink_help
from l2d_obs.sinks.virtualcam import VirtualCamSink, install_hint
from l2d_obs.sources import SOURCE_KINDS, SourceKind, make_source, source_help
from l2d_obs.sources.pattern import PatternSource
from tests.daemon.daemon_helpers import write_test_video


def test_every_kind_is_in_the_start_help_and_in_the_unknown_kind_errors(capsys):
    from l2d_obs import cli

    assert cli.main(["start", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for kind in SOURCE_KINDS + SINK_KINDS:
        assert f"{kind.syntax}: {' '.join(kind.help.split())}" in text, kind.name
    with pytest.raises(ConfigError) as unknown_source:
        make_source("rtsp://camera")
    with pytest.raises(ConfigError) as unknown_output:
        make_sink("rtmp://server")
    assert all(k.syntax in str(unknown_source.value) for k in SOURCE_KINDS)
    assert all(k.syntax in str(unknown_output.value) for k in SINK_KINDS)
    assert source_help().count(":") >= len(SOURCE_KINDS) and "Repeat for several" in sink_help()


def test_only_the_obs_kinds_talk_to_obs():
    assert [k.name for k in SOURCE_KINDS if k.talks_to_obs] == ["obs"]
    assert [k.name for k in SINK_KINDS if k.talks_to_obs] == ["obs"]
    assert sources.source_kind("/dev/video3") == (SOURCE_KINDS[1], "/dev/video3")  # an alias of device:
    assert sinks.sink_kind("mjpeg:9000")[1] == "9000"


def test_a_new_kind_is_one_registry_row(monkeypatch):
    """make_source knows nothing of the kinds: a row in the table is all a new source needs there."""
    row = SourceKind("checker", "checker[:SIZE]", "a still checkerboard", False, ("fps",),
                     lambda arg, obs, options: PatternSource(int(arg or 32), int(arg or 32), options.fps, limit=1))
    monkeypatch.setattr(sources, "SOURCE_KINDS", SOURCE_KINDS + (row,))
    source = make_source("checker:48")
    assert isinstance(source, PatternSource) and (source.width, source.height) == (48, 48)
    assert "checker[:SIZE]: a still checkerboard" in sources.source_help()


def test_the_registries_import_no_kind_module():
    code = ("import sys, l2d_obs.sources, l2d_obs.sinks; "
            "print(sorted(m for m in ('cv2', 'numpy', 'pyvirtualcam', 'l2d_obs.sinks.obs_return', "
            "'l2d_obs.sources.obs', 'l2d_obs.sinks.base') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_with_closes_a_source_and_a_sink_even_on_an_error(tmp_path):
    clip = tmp_path / "clip.avi"
    write_test_video(clip, 4)
    with make_source(f"file:{clip}") as source:
        source.open()
        assert source.read() is not None
    assert source._cap is None  # released

    out = tmp_path / "out.avi"
    with pytest.raises(RuntimeError, match="boom"):
        with make_sink(f"file:{out}") as sink:
            sink.open(64, 48, 10.0)
            sink.write(Frame(np.full((48, 64, 3), 200, np.uint8), 0))
            raise RuntimeError("boom")
    capture = cv2.VideoCapture(str(out))  # finalised by the exit: playable, with its one frame
    ok, _ = capture.read()
    capture.release()
    assert ok


def test_with_closes_an_mjpeg_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with make_sink(f"mjpeg:{port}") as sink:
        sink.open(64, 48, 10.0)
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


class _NoDriver:
    def __init__(self, **kw):
        raise RuntimeError("no driver installed.")


class _Busy:
    def __init__(self, **kw):
        raise RuntimeError("device is busy\n(used by another program)")


def test_the_vcam_error_carries_every_backend_reason_on_one_line(monkeypatch):
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {"first": _NoDriver, "second": _Busy})
    with pytest.raises(SinkError) as info:
        with make_sink("vcam") as sink:
            sink.open(64, 48, 30)
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"{install_hint()} (pyvirtualcam: 'first' backend: no driver installed; "
                       "'second' backend: device is busy (used by another program))")
    with pytest.raises(SinkError, match=r"^cannot open virtual camera /dev/video7: 'first' backend: no driver"):
        VirtualCamSink(device="/dev/video7").open(64, 48, 30)


def test_doctor_says_which_kinds_need_obs(monkeypatch, tmp_path):
    from l2d_obs.doctor import check_obs

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("L2D_OBS_PORT", str(port))
    monkeypatch.setenv("L2D_CONFIG", str(tmp_path / "none.toml"))
    check = check_obs()
    assert not check.ok
    assert check.detail.endswith("only obs:NAME sources and obs[:SCENE] outputs need it"), check.detail


def test_registry_rows_name_only_options_that_exist():
    source_fields = set(sources.SourceOptions.__dataclass_fields__)
    sink_fields = set(sinks.SinkOptions.__dataclass_fields__)
    for kind in SOURCE_KINDS:
        assert set(kind.options) <= source_fields, kind.name
    for kind in SINK_KINDS:
        assert set(kind.options) <= sink_fields, kind.name
