"""`l2d-obs switch NAME` for the style already on screen: says so at once, nothing re-warms."""

from __future__ import annotations

import json

from tests.daemon.daemon_helpers import cli_run
from tests.daemon.test_cli_daemon import running_daemon


def test_switch_to_the_active_style_says_so_and_changes_nothing():
    proc = running_daemon()
    try:
        before = json.loads(cli_run("status", "--json").stdout)
        r = cli_run("switch", "tiny")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "tiny is already on screen"
        after = json.loads(cli_run("status", "--json").stdout)
        assert after["profile"] == "tiny" and after["switch"] == before["switch"] == {}
    finally:
        cli_run("stop")
        proc.wait(10)
