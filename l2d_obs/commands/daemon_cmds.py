"""`l2d-obs start | status | switch | bypass | stop | doctor` — run the daemon and talk to it."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
import time
from typing import Annotated, Optional

import typer

from . import command_set
from ..config import load_settings
from ..dtypes import DTYPE_HELP, parse_dtype
from ..errors import ConfigError, ControlError, L2DError
from ..sinks import sink_help
from ..sources import source_help

app = command_set()  # what cli.py adds to the root

log = logging.getLogger("l2d_obs.daemon")


def _size(value: str | None, option: str) -> tuple[int, int] | None:
    if value is None:
        return None
    w, sep, h = value.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 8 or int(h) < 8:
        raise ConfigError(f"{option} must look like 1280x720, got {value!r}")
    return int(w), int(h)


@app.command()
def start(
    profile: Annotated[str, typer.Option("--profile", "-p", help="Style profile name or .toml path.")] = "toon",
    source: Annotated[str, typer.Option("--source", "-s", help=source_help())] = "device:0",
    output: Annotated[Optional[list[str]], typer.Option("--output", "-o", help=sink_help())] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", help="Stop after this many styled frames (a file output records each once, so it holds this many).")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="Output size WxH (default: the source's size).")] = None,
    fps: Annotated[float, typer.Option("--fps", help="Capture rate for obs: and pattern sources.")] = 30.0,
    wait: Annotated[bool, typer.Option("--wait", help="Wait (with backoff) for OBS or the camera instead of failing.")] = False,
    control_port: Annotated[Optional[int], typer.Option("--control-port", help="Port of the local control API (default 47811; 0 = any free port).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="Torch device for the engine (cuda, mps, cpu).")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help=f"Engine precision: {DTYPE_HELP}; default: fp16 on GPU, fp32 on CPU.")] = None,
    obs_scene: Annotated[Optional[str], typer.Option("--obs-scene", help="Show the obs output as one full-canvas Media Source in this scene (default: in place of the obs: source in every scene showing it; without an obs: source, the current program scene).")] = None,
    obs_input: Annotated[str, typer.Option("--obs-input", help="Name of the Media Source the obs output manages.")] = "l2d-obs output",
    obs_return_port: Annotated[int, typer.Option("--obs-return-port", help="Local TCP port OBS reads the output from (0 = any free port).")] = 0,
    camera_size: Annotated[Optional[str], typer.Option("--camera-size", help="Requested camera resolution WxH.")] = None,
    camera_fps: Annotated[Optional[float], typer.Option("--camera-fps", help="Requested camera frame rate.")] = None,
    camera_fourcc: Annotated[Optional[str], typer.Option("--camera-fourcc", help="Requested camera pixel format, e.g. MJPG.")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Loop a file: source.")] = False,
    pace: Annotated[bool, typer.Option("--pace/--no-pace", help="Play a file: source at its frame rate (or as fast as possible).")] = True,
    vcam_backend: Annotated[Optional[str], typer.Option("--vcam-backend", help="pyvirtualcam backend (default: the first that works).")] = None,
    preload: Annotated[Optional[str], typer.Option("--preload", help="Styles to prepare at start for fast switching, e.g. vangogh,cartoon.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Torch CPU threads (default: 1 on a machine with up to 2 cores, else all cores but one).")] = None,
    compile_unet: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the stream-batch UNet; every variant is compiled at start (default: on with CUDA; profile [engine] compile).")] = None,
    cuda_graphs: Annotated[Optional[bool], typer.Option("--cuda-graphs/--no-cuda-graphs", help="CUDA graphs (torch.compile reduce-overhead; needs --compile and CUDA; default: on with CUDA).")] = None,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="channels-last memory format for UNet and VAE (default: on with CUDA).")] = None,
    overlap: Annotated[Optional[bool], typer.Option("--overlap/--no-overlap", help="Encode the next camera frame on a second CUDA stream while the UNet runs (default: on with CUDA).")] = None,
    obs_events: Annotated[Optional[bool], typer.Option("--obs-events/--no-obs-events", help="Switch styles on OBS events ([switching] in the config file, custom events). Default: on when OBS is a source or output, or rules are configured.")] = None,
) -> None:
    """Start styling: capture, run the engine, publish. Ctrl+C stops it."""
    # Until the daemon runs nothing is open (no OBS connection, no output file), so a signal here just
    # ends the process at once - even in the middle of importing torch, which takes seconds.
    previous = {s: signal.signal(s, _exit_at_once) for s in (signal.SIGINT, signal.SIGTERM)}
    dtype = parse_dtype(dtype)  # a typo fails here, before the lock is taken
    settings = load_settings(control_port=control_port)
    from ..control.instance import InstanceLock

    lock = InstanceLock().acquire()  # before anything slow, before OBS or any output is touched
    daemon = None
    received: list[int] = []
    try:
        daemon = _build_daemon(settings, profile, source, output, frames, size, fps, wait, device, dtype, obs_scene,
                               obs_input, obs_return_port, camera_size, camera_fps, camera_fourcc, loop, pace,
                               vcam_backend, preload, threads, obs_events,
                               dict(compile=compile_unet, cuda_graphs=cuda_graphs, channels_last=channels_last,
                                    overlap=overlap))

        def on_signal(signum: int, _frame: object) -> None:
            received.append(signum)
            daemon.stop()

        for s in previous:
            signal.signal(s, on_signal)
        final = daemon.run()
    except BaseException as exc:
        if daemon is not None and daemon.busy_threads and isinstance(exc, L2DError):
            print(f"l2d-obs: error: {exc}", file=sys.stderr)
            _exit_without_waiting(exc.exit_code)
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if daemon is None or not daemon.busy_threads:
            lock.release()
    log.info("stopped after %d frames (dropped %d input frames)", final["frames_published"], final["dropped_input"])
    code = 130 if signal.SIGINT in received else 0  # Ctrl+C: the shell's convention; SIGTERM, stop: 0
    if daemon.busy_threads:
        # A stage still inside a long native call (a slow fp16 step on a CPU, a hung OBS read):
        # everything that matters is closed and flushed, so leave without waiting for it - waiting
        # would break the 2 s promise, and tearing the interpreter down under it aborts natively.
        _exit_without_waiting(code)
    # Everything is released now. Freezing the heap keeps the interpreter from walking torch's millions of
    # objects at exit, which otherwise takes seconds on a small CPU (Ctrl+C must return within 2 s).
    gc.freeze()
    if code:
        raise typer.Exit(code)


def _exit_at_once(signum: int, _frame: object) -> None:
    print("l2d-obs: interrupted" if signum == signal.SIGINT else "l2d-obs: stopped", file=sys.stderr)
    _exit_without_waiting(130 if signum == signal.SIGINT else 0)


def _exit_without_waiting(code: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _build_daemon(settings, profile, source, output, frames, size, fps, wait, device, dtype, obs_scene, obs_input,
                  obs_return_port, camera_size, camera_fps, camera_fourcc, loop, pace, vcam_backend, preload, threads,
                  obs_events, accel_options):
    from ..daemon import Daemon, DaemonConfig, default_engine_factory
    from ..profiles import load_profile
    from ..progress import ProgressBoard
    from ..sinks import SinkOptions, make_sink, sink_kind
    from ..sources import SourceOptions, make_source, source_kind

    from ..threads import apply_threads

    prof = load_profile(profile)
    apply_threads(threads)
    if frames is not None and frames < 1:
        raise ConfigError("--frames must be at least 1")
    src = make_source(source, settings.obs, SourceOptions(
        fps=fps, camera_size=_size(camera_size, "--camera-size"), camera_fps=camera_fps,
        camera_fourcc=camera_fourcc, file_pace=pace, file_loop=loop,
    ))
    sink_opts = SinkOptions(obs_scene=obs_scene, obs_input=obs_input, obs_return_port=obs_return_port,
                            vcam_backend=vcam_backend, wait=wait,
                            obs_camera=source.partition(":")[2] if source.startswith("obs:") else None)
    sinks = [make_sink(spec, settings.obs, sink_opts) for spec in (output or ["vcam"])]
    uses_obs = source_kind(source)[0].talks_to_obs or any(sink_kind(spec)[0].talks_to_obs for spec in (output or []))
    rules = settings.switching
    if obs_events is None:
        obs_events = uses_obs or bool(rules.scenes or rules.sources)
    board = ProgressBoard()
    daemon = Daemon(prof, src, sinks, default_engine_factory(device, dtype, progress=board.update, accel_options=accel_options), DaemonConfig(
        obs_events=(settings.obs, rules) if obs_events else None,
        max_frames=frames, output_size=_size(size, "--size"), wait=wait, control_port=settings.control_port,
        preload=tuple(name.strip() for name in (preload or "").split(",") if name.strip()), device=device, dtype=dtype,
    ), progress=board)
    logging.getLogger("l2d_obs.daemon").setLevel(min(logging.INFO, logging.getLogger().level or logging.INFO))
    return daemon


def _format_status(st: dict) -> str:
    phase = st.get("phase", st["state"])
    bypass = "  BYPASS (raw camera)" if st.get("bypass") else ""
    lines = [f"pid {st['pid']}  {phase}  profile {st['profile']}{bypass}  up {st['uptime_s']:.0f} s"]
    if st.get("loading"):
        lines.append(f"loading {st['loading']['step']} [{st['loading']['progress']:.0%}]")
    lines += [
        f"source  {st['source']} ({st['source_state']})",
        "outputs " + ", ".join(s["name"] for s in st["sinks"]) + f"  at {st['output_size'][0]}x{st['output_size'][1]}",
        f"fps     in {st['fps_in']:.1f}  out {st['fps_out']:.1f}  (target {st['fps_target']:.1f})",
        f"engine  {st['engine_ms']:.0f} ms (mean {st['engine_ms_mean']:.0f} ms)",
        f"latency {st['latency_ms']:.0f} ms capture->publish",
        f"frames  published {st['frames_published']}  repeated {st['frames_repeated']}  dropped {st['dropped_input']}"
        f"  corrupt {st['corrupt_frames']}  reconnects {st['reconnects']}",
    ]
    if st.get("switch"):
        sw = st["switch"]
        detail = f" ({sw['error']})" if sw.get("error") else f" in {sw['latency_ms']:.0f} ms" if sw.get("latency_ms") else ""
        lines.append(f"switch  {sw.get('profile')}: {sw.get('state')}{detail}")
    if st.get("styles", {}).get("preloaded"):
        lines.append("styles  preloaded " + ", ".join(st["styles"]["preloaded"]))
    return "\n".join(lines)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON status.")] = False,
) -> None:
    """Show what a running daemon is doing."""
    from ..control.client import ControlClient

    st = ControlClient().status()
    typer.echo(json.dumps(st, indent=2) if as_json else _format_status(st))


@app.command()
def switch(
    profile: Annotated[str, typer.Argument(help="Name of the style profile to switch to.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the new style is on screen.")] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait.")] = 120.0,
) -> None:
    """Switch a running daemon to another style; the current one keeps streaming meanwhile."""
    from ..control.client import ControlClient

    client = ControlClient()
    reply = client.switch(profile)
    name = reply["switching_to"]
    if reply.get("already_active"):
        typer.echo(f"{name} is already on screen")
        return
    if not wait:
        typer.echo(f"switching to {name}")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sw = client.status().get("switch", {})
        if sw.get("profile") == name and sw.get("state") == "active":
            typer.echo(f"switched to {name} in {sw.get('latency_ms', 0):.0f} ms")
            return
        if sw.get("profile") == name and sw.get("state") == "failed":
            raise ControlError(f"switching to {name} failed: {sw.get('error')}; the previous style keeps running")
        if sw.get("profile") != name:
            raise ControlError(f"another switch (to {sw.get('profile')}) replaced this one")
        time.sleep(0.1)
    raise ControlError(f"{name} was not active after {timeout:.0f} s; see 'l2d-obs status'")


@app.command()
def bypass(
    state: Annotated[str, typer.Argument(help="on: the raw camera goes out and the engine idles; off: styling resumes.",
                                         metavar="on|off")],
) -> None:
    """Send the raw camera through (no styling, engine idle) or style it again."""
    from ..control.client import ControlClient

    on = {"on": True, "off": False}.get(state.strip().lower())
    if on is None:
        raise ConfigError(f"bypass takes 'on' or 'off', not {state!r}")
    ControlClient().request("POST", "/bypass", {"on": on})
    typer.echo("bypass on: the raw camera goes out, the engine is idle" if on else "bypass off: styling resumes")


@app.command()
def stop(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the daemon to exit.")] = 10.0,
) -> None:
    """Stop a running daemon."""
    from ..control.client import ControlClient, _pid_alive

    try:
        client = ControlClient()
        if not _pid_alive(client.info.pid):
            raise ControlError(f"no daemon is running (the last one, pid {client.info.pid}, has exited); "
                               "start one with 'l2d-obs start'")
    except ControlError:
        if _remove_obs_leftovers():
            return
        raise
    client.stop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(client.info.pid):
            typer.echo(f"stopped daemon (pid {client.info.pid})")
            return
        time.sleep(0.1)
    raise ControlError(f"daemon (pid {client.info.pid}) did not exit within {timeout:.0f} s; kill it with 'kill {client.info.pid}'")


def _remove_obs_leftovers() -> bool:
    """Without a running daemon: take out of OBS the styled camera a killed one left there."""
    from ..obsclient import OBSClient
    from ..sinks.obs_mirror import remove_leftovers

    obs = load_settings().obs
    try:
        scenes = remove_leftovers(lambda: OBSClient(obs.host, obs.port, obs.password.reveal(), timeout=3.0))
    except L2DError as exc:
        raise ControlError(f"no daemon is running, and the styled camera it left in OBS could not be removed: {exc}") from None
    if scenes is None:
        return False
    typer.echo(f"no daemon was running; removed the styled camera it left in OBS ({', '.join(scenes) or 'no scene'})")
    return True


@app.command()
def doctor(
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile whose model files to check.")] = "toon",
) -> None:
    """Check GPU, virtual camera, OBS connection and model files, and say what to fix."""
    from ..doctor import run_checks

    checks = run_checks(profile)
    width = max(len(c.name) for c in checks)
    for c in checks:
        typer.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.detail}")
    failed = [c for c in checks if not c.ok]
    if failed:
        # An L2DError (exit code 1) rather than typer.Exit: cli.main drops the return code of typer.Exit.
        raise L2DError(f"{len(failed)} problem(s) found; fix the FAIL rows above")
