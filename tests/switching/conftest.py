"""Fixtures for the style-switching tests against a real OBS: one OBS for the folder, with the l2d-obs
hotkey script in its scene collection from the first start, and test profiles A, B, C (distinct tiny
styles), a broken one and one whose weights are missing."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.obs_harness import OBSHarness, obs_fixture_body
from tests.switching.switching_helpers import (
    BROKEN, F7_BINDING, MISSING_WEIGHTS, PLUGIN, STYLES, tiny_variant,
)


@pytest.fixture(scope="session")
def switching_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("switching")
    profiles = root / "profiles"
    profiles.mkdir()
    for i, name in enumerate(STYLES):
        (profiles / f"{name}.toml").write_text(tiny_variant(name, 100 + i))
    (profiles / "broken.toml").write_text(BROKEN)
    (profiles / "missing.toml").write_text(MISSING_WEIGHTS)
    (root / "state").mkdir()
    return root


@pytest.fixture(scope="session")
def obs_session(switching_root, tmp_path_factory) -> Iterator[OBSHarness]:
    """One OBS for the folder. The hotkey script is in the scene collection before the first start, with
    the styles A, B, C, the daemon's control file, and F7 bound to "Live2Diff: B" (as if set in Settings)."""
    root = tmp_path_factory.mktemp("obs")

    def install_script(harness: OBSHarness) -> None:
        harness.add_script(PLUGIN, {
            "profiles": ",".join(STYLES),
            "control_file": str(switching_root / "state" / "control.json"),
            "l2d_obs.style.B": F7_BINDING,
        })

    yield from obs_fixture_body(root, prepare=install_script)


@pytest.fixture
def obs(obs_session: OBSHarness) -> OBSHarness:
    """The folder's OBS, restarted first if a previous test stopped or killed it."""
    return obs_session.ensure_running()


@pytest.fixture(autouse=True)
def _isolated_state(switching_root, monkeypatch):
    """Control file where the OBS script looks for it; only the test profiles' folder; no config file."""
    monkeypatch.setenv("L2D_STATE_DIR", str(switching_root / "state"))
    monkeypatch.setenv("L2D_PROFILES_DIR", str(switching_root / "profiles"))
    monkeypatch.setenv("L2D_CONFIG", str(switching_root / "no-config.toml"))
    for var in ("L2D_OBS_HOST", "L2D_OBS_PORT", "L2D_OBS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
