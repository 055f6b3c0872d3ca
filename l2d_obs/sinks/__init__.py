"""Frame sinks, one registry: each kind's spec syntax, one-line help, the options it reads, whether it
talks to OBS, and how its spec is parsed. ``make_sink``, the ``--output`` help and ``doctor`` read it,
so the list of kinds is written here once. Adding a kind: its module and one ``SinkKind`` row.

This module imports no kind's module (nor numpy, OpenCV or pyvirtualcam): each is imported when its
kind is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..config import OBSSettings
from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Sink

__all__ = ["SINK_KINDS", "SinkKind", "SinkOptions", "make_sink", "sink_help", "sink_kind"]


@dataclass(frozen=True)
class SinkOptions:
    obs_scene: str | None = None
    obs_input: str = "l2d-obs output"
    obs_return_port: int = 0
    obs_camera: str | None = None  # the OBS source being styled (--source obs:NAME): replaced where it is shown
    vcam_backend: str | None = None
    wait: bool = False


@dataclass(frozen=True)
class SinkKind:
    name: str  # what a spec starts with: "mjpeg" in "mjpeg:8090"
    syntax: str  # how a spec is written, for help and errors
    help: str  # one line
    talks_to_obs: bool
    options: tuple[str, ...]  # the SinkOptions fields it reads
    make: Callable[[str, OBSSettings, SinkOptions], "Sink"]  # the text after "kind:" -> a Sink, not opened


def _vcam(arg: str, obs: OBSSettings, options: SinkOptions) -> "Sink":
    from .virtualcam import VirtualCamSink

    return VirtualCamSink(device=arg or None, backend=options.vcam_backend)


def _obs(arg: str, obs: OBSSettings, options: SinkOptions) -> "Sink":
    from .obs_return import OBSReturnSink

    return OBSReturnSink(obs, scene=arg or options.obs_scene, input_name=options.obs_input,
                         port=options.obs_return_port, wait=options.wait, camera=options.obs_camera)


def _mjpeg(arg: str, obs: OBSSettings, options: SinkOptions) -> "Sink":
    from .mjpeg import DEFAULT_PORT, MJPEGSink

    if arg and not arg.isdigit():
        raise ConfigError(f"mjpeg:PORT needs a port number, got {arg!r}")
    return MJPEGSink(int(arg) if arg else DEFAULT_PORT)


def _file(arg: str, obs: OBSSettings, options: SinkOptions) -> "Sink":
    from .video import VideoFileSink

    if not arg:
        raise ConfigError("file: needs a path, e.g. file:out.avi or file:frames/")
    return VideoFileSink(arg)


def _null(arg: str, obs: OBSSettings, options: SinkOptions) -> "Sink":
    from .base import NullSink

    return NullSink()


SINK_KINDS: tuple[SinkKind, ...] = (
    SinkKind("vcam", "vcam[:DEVICE]", "a virtual camera (v4l2loopback, OBS's camera elsewhere)", False,
             ("vcam_backend",), _vcam),
    SinkKind("obs", "obs[:SCENE]", "straight into OBS as a Media Source it reads from 127.0.0.1", True,
             ("obs_scene", "obs_input", "obs_return_port", "obs_camera", "wait"), _obs),
    SinkKind("mjpeg", "mjpeg[:PORT]", "an MJPEG stream on 127.0.0.1 (a browser or OBS Browser Source)", False, (),
             _mjpeg),
    SinkKind("file", "file:PATH", "a video file (.avi/.mkv/.mp4/.mov) or a folder of PNG frames", False, (), _file),
    SinkKind("null", "null", "nothing (benchmarks, the status line only)", False, (), _null),
)


def sink_kind(spec: str) -> tuple[SinkKind, str]:
    """The kind an --output value names and the text after ``kind:``; a ConfigError listing the kinds."""
    name, _, arg = spec.partition(":")
    for kind in SINK_KINDS:
        if name == kind.name:
            return kind, arg
    syntaxes = [k.syntax for k in SINK_KINDS]
    raise ConfigError(f"unknown output {spec!r}: use {', '.join(syntaxes[:-1])} or {syntaxes[-1]}")


def make_sink(spec: str, obs: OBSSettings | None = None, options: SinkOptions = SinkOptions()) -> "Sink":
    """Parse an --output value into a Sink (not yet opened; ``with`` closes it)."""
    kind, arg = sink_kind(spec)
    return kind.make(arg, obs or OBSSettings(), options)


def sink_help() -> str:
    """The --output help: every kind with its one line."""
    return "; ".join(f"{k.syntax}: {k.help}" for k in SINK_KINDS) + ". Repeat for several."
