"""Frame sinks: ``vcam[:DEVICE]``, ``obs``, ``mjpeg[:PORT]``, ``file:PATH``, ``null``."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import OBSSettings
from ..errors import ConfigError
from .base import NullSink, Sink

__all__ = ["NullSink", "Sink", "SinkOptions", "make_sink"]


@dataclass(frozen=True)
class SinkOptions:
    obs_scene: str | None = None
    obs_input: str = "l2d-obs output"
    obs_return_port: int = 0
    vcam_backend: str | None = None
    wait: bool = False


def make_sink(spec: str, obs: OBSSettings | None = None, options: SinkOptions = SinkOptions()) -> Sink:
    kind, _, arg = spec.partition(":")
    if kind == "vcam":
        from .virtualcam import VirtualCamSink

        return VirtualCamSink(device=arg or None, backend=options.vcam_backend)
    if kind == "obs":
        from .obs_return import OBSReturnSink

        return OBSReturnSink(obs or OBSSettings(), scene=arg or options.obs_scene, input_name=options.obs_input,
                             port=options.obs_return_port, wait=options.wait)
    if kind == "mjpeg":
        from .mjpeg import DEFAULT_PORT, MJPEGSink

        if arg and not arg.isdigit():
            raise ConfigError(f"mjpeg:PORT needs a port number, got {arg!r}")
        return MJPEGSink(int(arg) if arg else DEFAULT_PORT)
    if kind == "file":
        from .video import VideoFileSink

        if not arg:
            raise ConfigError("file: needs a path, e.g. file:out.avi or file:frames/")
        return VideoFileSink(arg)
    if kind == "null":
        return NullSink()
    raise ConfigError(f"unknown output {spec!r}: use vcam, obs, mjpeg[:PORT], file:PATH or null")
