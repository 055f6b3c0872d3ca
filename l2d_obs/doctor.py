"""`l2d-obs doctor`: one row per thing a real run needs, each saying what to do when it is missing.

Hints are given once per row (one download command for all of a profile's missing files) and name
only commands and options that exist; the messages other modules write for `start` are reworded
where they would point at an option doctor does not have.
"""

from __future__ import annotations

import glob
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from .config import load_settings
from .errors import L2DError


# Messages written for `start` name its options bare; in doctor's rows they get their command.
_START_OPTIONS = (
    ("or pass --wait", "or let 'l2d-obs start --wait' wait for it"),
    ("with --output obs", "with 'l2d-obs start --output obs'"),
)


def _for_doctor(message: str) -> str:
    for bare, named in _START_OPTIONS:
        message = message.replace(bare, named)
    return message


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_gpu() -> Check:
    try:
        import torch
    except ImportError:
        return Check("GPU", False, "torch is not installed: pip install torch (the CUDA build on a GPU machine)")
    if torch.cuda.is_available():
        return Check("GPU", True, f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return Check("GPU", True, "Apple MPS")
    return Check("GPU", False, "no CUDA GPU visible to torch: real profiles need one (install the CUDA build of torch "
                 "and an NVIDIA driver); the embedded toon and pencil profiles run on a CPU")


def check_virtual_camera(system: str | None = None, sys_root: Path = Path("/sys/class/video4linux")) -> Check:
    from .sinks.virtualcam import install_hint

    system = system or platform.system()
    if system != "Linux":
        return Check("virtual camera", True, "uses OBS's virtual camera (install OBS 26+ and start it once)")
    loopbacks = []
    for dev in sorted(glob.glob(str(sys_root / "video*"))):
        try:
            name = (Path(dev) / "name").read_text().strip()
        except OSError:
            continue
        if "loopback" in name.lower() or "dummy" in name.lower() or "virtual" in name.lower():
            loopbacks.append(f"/dev/{Path(dev).name} ({name})")
    if loopbacks:
        return Check("virtual camera", True, ", ".join(loopbacks))
    return Check("virtual camera", False, _for_doctor(install_hint("Linux")))


def check_obs() -> Check:
    from .obsclient import OBSClient

    try:
        settings = load_settings().obs
    except L2DError as exc:
        return Check("OBS", False, str(exc))
    try:
        with OBSClient(settings.host, settings.port, settings.password.reveal(), timeout=3).connect() as client:
            v = client.request("GetVersion")
        return Check("OBS", True, f"OBS {v.get('obsVersion')} / obs-websocket {v.get('obsWebSocketVersion')} at {settings.address}")
    except L2DError as exc:
        return Check("OBS", False, f"{_for_doctor(str(exc))}; {_who_needs_obs()}")


def _who_needs_obs() -> str:
    """Which sources and outputs need OBS (the registries say), so a camera-only setup can ignore the row."""
    from .sinks import SINK_KINDS
    from .sources import SOURCE_KINDS

    sources = [k.syntax for k in SOURCE_KINDS if k.talks_to_obs]
    outputs = [k.syntax for k in SINK_KINDS if k.talks_to_obs]
    return f"only {', '.join(sources)} sources and {', '.join(outputs)} outputs need it"


# What weights.store says of a file that is not downloaded: "FIELD (SOURCE) is not downloaded: WHERE is
# missing; run 'COMMAND' (needs internet once)".
_NOT_DOWNLOADED = re.compile(r"^(?P<what>\S+ \(.+?\)) is not downloaded: .*; (?P<hint>run '[^']+' \(needs internet once\))$")


def _once(problems: list[str]) -> str:
    """The problems of one profile in one row: the missing downloads listed together with their one
    command, the other problems as they are."""
    missing, hints, others = [], [], []
    for problem in problems:
        found = _NOT_DOWNLOADED.match(problem)
        if found is None:
            others.append(problem)
            continue
        missing.append(found["what"])
        if found["hint"] not in hints:
            hints.append(found["hint"])
    parts = others + ([f"not downloaded: {', '.join(missing)}; {'; '.join(hints)}"] if missing else [])
    return "; ".join(parts)


def check_models(profile_name: str) -> Check | None:
    """None when the weights module has no checker yet (the row is skipped)."""
    from .profiles import load_profile

    try:
        from .weights.assemble import check_profile_files
    except ImportError:
        return None
    try:
        profile = load_profile(profile_name)
        result = check_profile_files(profile)
    except L2DError as exc:
        return Check(f"model files ({profile_name})", False, str(exc))
    problems = [str(p) for p in result] if isinstance(result, (list, tuple)) else []
    if problems:
        return Check(f"model files ({profile_name})", False, _once(problems))
    return Check(f"model files ({profile_name})", True, "all present")


def run_checks(profile_name: str) -> list[Check]:
    checks = [check_gpu(), check_virtual_camera(), check_obs()]
    models = check_models(profile_name)
    if models is not None:
        checks.append(models)
    return checks
