"""Issue 5: bad switch requests through the real control API (and from OBS) are refused with a one-line
reason while the stream keeps flowing in the old style."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from l2d_obs.config import SwitchRules
from tests.daemon.daemon_helpers import wait_until
from tests.switching.switching_helpers import frames_keep_flowing, running_daemon

pytestmark = pytest.mark.obs


def post(port: int, path: str, body: bytes, token: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}",
                                                       "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


REFUSALS = [
    # (what, body, use the right token, expected status, fragment of the reason)
    ("unknown profile", json.dumps({"profile": "no-such-style"}).encode(), True, 400, "unknown profile 'no-such-style'"),
    ("broken profile", json.dumps({"profile": "broken"}).encode(), True, 400, "no_such_key"),
    # MissingWeightsError is not a usage error, so the server answers 409 (any 4xx would do here).
    ("missing weights", json.dumps({"profile": "missing"}).encode(), True, None, "no such file"),
    ("bad token", json.dumps({"profile": "B"}).encode(), False, 401, "token"),
    ("malformed JSON", b'{"profile": "B"', True, 400, "not valid JSON"),
    ("not a profile request", json.dumps({"style": "B"}).encode(), True, 400, '{"profile": "NAME"}'),
]


def test_bad_switch_requests_are_refused_while_the_old_style_streams(obs):
    with running_daemon(obs, SwitchRules()) as (d, rec), obs.conn.client() as c:
        port, token = d.control.port, d.control.token
        assert json.loads(d.control.path.read_text())["port"] == port  # what clients (and the OBS script) read
        t_start = time.monotonic()
        for what, body, good_token, code, fragment in REFUSALS:
            published = d.stats.frames_published
            status, reply = post(port, "/switch", body, token if good_token else "not-the-token")
            assert 400 <= status < 500, (what, status, reply)
            if code is not None:
                assert status == code, (what, status, reply)
            reason = reply.get("error", "")
            assert fragment in reason and "\n" not in reason and reason.strip() == reason, (what, reply)
            assert "Traceback" not in reason
            st = d.status()
            assert st["profile"] == "A" and st["switch"] == {}, (what, st["switch"])
            assert wait_more_frames(d, published), f"stream stalled after refusing: {what}"
        # Broken and missing styles asked for from OBS are refused the same way; the listener lives on.
        for name in ("broken", "missing", "no-such-style"):
            c.request("BroadcastCustomEvent", {"eventData": {"l2d": {"profile": name}}})
        time.sleep(1.0)
        st = d.status()
        assert st["profile"] == "A" and st["switch"] == {} and d.event_switcher.handled == 0
        assert st["state"] == "running" and st["sink_errors"] == 0
        # The output never paused: every gap between published frames (new or repeated) stays short.
        times = [t for t, _ in rec.records if t >= t_start]
        assert len(times) > 10
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert max(gaps) < 1.0, f"the stream paused for {max(gaps):.2f} s"
        assert frames_keep_flowing(d)
        # ...and a good request still works afterwards.
        status, reply = post(port, "/switch", json.dumps({"profile": "B"}).encode(), token)
        assert (status, reply) == (200, {"switching_to": "B"})
        assert d.status()["switch"]["profile"] == "B"


def wait_more_frames(d, published: int, timeout: float = 30) -> bool:
    return wait_until(lambda: d.stats.frames_published > published, timeout)
