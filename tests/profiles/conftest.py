import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def isolated_user_profiles(tmp_path, monkeypatch):
    user = tmp_path / "user-profiles"
    monkeypatch.setenv("L2D_PROFILES_DIR", str(user))
    return user
