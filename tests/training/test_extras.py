"""Without the `train` extra, training says in one line what to install (no traceback)."""

from __future__ import annotations

import sys

import pytest

from l2d_obs.errors import ConfigError
from l2d_obs.training.extras import require


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # as if not installed: import raises ImportError
    with pytest.raises(ConfigError) as err:
        require("peft")
    assert str(err.value) == "l2d-obs train needs peft to put a LoRA on the UNet (a `lora` stage): pip install 'l2d-obs[train]'"
    assert require("json").dumps({}) == "{}"
