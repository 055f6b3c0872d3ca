from __future__ import annotations

import pytest

# The repository root is on sys.path (pyproject: pythonpath = ["."]), so tests/ imports as a namespace package.
from tests.obs_harness import OBSHarness, obs_fixture_body


@pytest.fixture(scope="session")
def obs_session(tmp_path_factory) -> OBSHarness:
    """One OBS for the daemon tests (starting it takes ~1 s; tests use unique scene/input names)."""
    yield from obs_fixture_body(tmp_path_factory.mktemp("obs"))


@pytest.fixture
def obs(obs_session: OBSHarness) -> OBSHarness:
    """The session OBS, restarted first if a previous test stopped or killed it."""
    return obs_session.ensure_running()


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch):
    """Keep daemons' control files and config lookups out of the real home."""
    monkeypatch.setenv("L2D_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("L2D_CONFIG", str(tmp_path / "no-config.toml"))
    for var in ("L2D_OBS_HOST", "L2D_OBS_PORT", "L2D_OBS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
