"""`l2d-obs models download` when the hub cannot be reached or refuses: one error line that says which it
was, no traceback, bounded retries (each reported once), well under 30 s, nothing half-written.

Loopback only: a port that refuses, a server that accepts and never answers, and a small fake hub, all on
127.0.0.1, reached through HF_ENDPOINT; the CLI runs as a separate process, as a user runs it.
"""

from __future__ import annotations

import errno
import http.server
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from l2d_obs.errors import DownloadError
from l2d_obs.weights import network
from l2d_obs.weights.download import download_url

REPO = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


# --- the endpoints -------------------------------------------------------------------------------


@pytest.fixture
def refusing_port():
    """A port bound but not listening: every connection is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


class FakeHub(http.server.BaseHTTPRequestHandler):
    """Just enough of the hub for one file, test/base/model.safetensors.

    mode "ok"; "cut": the first file transfer stops half-way and later ones send nothing, as a dying
    connection does; or an HTTP status ("401", "404", "503") for every request."""

    mode = "ok"
    ranges: list[str] = []

    def log_message(self, *args):
        pass

    def _refuse(self) -> bool:
        if not self.mode.isdigit():
            return False
        self.send_response(int(self.mode))
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def do_GET(self):  # noqa: N802
        if self._refuse():
            return
        if self.path.startswith("/api/models/test/base/revision/main"):
            siblings = [{"rfilename": "model.safetensors", "size": len(PAYLOAD)}, {"rfilename": "README.md", "size": 9}]
            body = json.dumps({"id": "test/base", "sha": COMMIT, "siblings": siblings}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._file(body=True)

    def do_HEAD(self):  # noqa: N802
        if not self._refuse():
            self._file(body=False)

    def _file(self, body: bool) -> None:
        if self.path != "/test/base/resolve/main/model.safetensors":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        header = self.headers.get("Range")
        start = int(header.split("=")[1].split("-")[0]) if header else 0
        if body:
            FakeHub.ranges.append(header or "")
        data = PAYLOAD[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"fake-etag"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        if body:
            cut = self.mode == "cut"
            self.wfile.write(data[: len(data) // 2] if cut and not header else b"" if cut else data)


@pytest.fixture
def fake_hub():
    FakeHub.mode, FakeHub.ranges = "ok", []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


# --- the command ---------------------------------------------------------------------------------


@pytest.fixture
def netprobe(empty_model_cache, tmp_path):
    """A user profile whose only download is one hub file (every other part is a local file)."""
    folder = Path(os.environ["L2D_PROFILES_DIR"])
    (folder / "taesd").mkdir(parents=True)
    (folder / "taesd" / "config.json").write_text("{}")
    (folder / "taesd" / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    (folder / "motion.ckpt").write_bytes(b"x")
    (folder / "netprobe.toml").write_text(
        'prompt = "x"\n[model]\nkind = "sd15"\nbase = "hf:test/base/model.safetensors"\nmotion = "motion.ckpt"\n'
        'lcm_lora = "none"\nvae = "taesd"\n[depth]\nenabled = false\n'
    )
    return empty_model_cache


def download(port: int, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`l2d-obs models download --profile netprobe` against http://127.0.0.1:PORT, with 1 s timeouts."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="1", HF_HUB_DOWNLOAD_TIMEOUT="2",
        L2D_NETWORK_TIMEOUT="1", no_proxy="127.0.0.1", PYTHONPATH=str(REPO),
    )  # fmt: skip
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "l2d_obs", "models", "download", "--profile", "netprobe"],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    return result, time.monotonic() - start


def the_error(result: subprocess.CompletedProcess, seconds: float) -> str:
    """The one error line of a failed run, after the checks every failure must pass."""
    assert result.returncode != 0
    assert seconds < 30
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("l2d-obs: error: ")]
    assert len(errors) == 1, result.stderr
    # Everything else is a log record, one labelled line each: a record printed a second time by another
    # handler (huggingface_hub's own) would come without the label.
    assert all(LOG_LINE.match(line) for line in lines if line not in errors), result.stderr
    assert len(lines) == len(set(lines)), f"a line printed twice:\n{result.stderr}"
    return errors[0]


def final_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if (p.is_file() and p.name == "model.safetensors") or p.suffix == ".incomplete"]


def test_a_refused_connection_is_one_line_after_bounded_retries(netprobe, refusing_port, tmp_path):
    result, seconds = download(refusing_port, tmp_path)
    error = the_error(result, seconds)
    assert "cannot reach the Hugging Face hub" in error and "connection refused" in error
    assert "HF_ENDPOINT" in error and "l2d-obs models download --profile netprobe" in error
    retries = [line for line in result.stderr.splitlines() if "trying again" in line]
    assert len(retries) == len(network.RETRY_WAITS)
    assert "not found" not in error and "thrown while requesting" not in result.stderr
    assert seconds < 10
    assert final_files(netprobe) == []


def test_a_server_that_never_answers_times_out(netprobe, silent_port, tmp_path):
    result, seconds = download(silent_port, tmp_path)
    error = the_error(result, seconds)
    assert "cannot reach the Hugging Face hub" in error and "no answer within 1 s" in error
    assert "L2D_NETWORK_TIMEOUT" in error
    assert sum("trying again" in line for line in result.stderr.splitlines()) == len(network.RETRY_WAITS)
    assert seconds < 15
    assert final_files(netprobe) == []


@pytest.mark.parametrize(
    "status, words",
    [
        ("401", ("refused test/base", "HTTP 401", "HF_TOKEN")),
        ("404", ("test/base is not on the Hugging Face hub", "HTTP 404", "check the repository name")),
        ("503", ("answered HTTP 503", "try again later")),
    ],
)
def test_http_refusals_say_which(netprobe, fake_hub, tmp_path, status, words):
    FakeHub.mode = status
    result, seconds = download(fake_hub, tmp_path)
    error = the_error(result, seconds)
    assert all(w in error for w in words), error
    assert "cannot reach" not in error
    retries = sum("trying again" in line for line in result.stderr.splitlines())
    assert retries == (len(network.RETRY_WAITS) if status == "503" else 0)  # only a failing server is retried
    assert final_files(netprobe) == []


def test_a_broken_off_transfer_leaves_no_file_and_the_next_run_completes(netprobe, fake_hub, tmp_path):
    FakeHub.mode = "cut"
    result, seconds = download(fake_hub, tmp_path)
    error = the_error(result, seconds)
    assert "model.safetensors" in error and "run 'l2d-obs models download --profile netprobe' again" in error
    assert final_files(netprobe) == []  # no final file, no partial one

    FakeHub.mode, FakeHub.ranges = "ok", []
    result, _ = download(fake_hub, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 file to download, 1.0 MiB" in result.stdout  # sizes before the transfer
    assert "ok: " in result.stdout and "(1.0 MiB)" in result.stdout
    [done] = [p for p in netprobe.rglob("model.safetensors")]
    assert done.read_bytes() == PAYLOAD


def test_hub_log_records_print_once(tmp_path):
    """huggingface_hub's own stderr handler plus our root handler printed each of its warnings twice."""
    code = ("from l2d_obs.cli import setup_logging; setup_logging(0); from l2d_obs.weights import hub; hub.endpoint(); "
            "import logging; logging.getLogger('huggingface_hub.utils._http').warning('retry-line')")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stderr.count("retry-line") == 1, result.stderr


# --- civitai-style downloads (download_url) -------------------------------------------------------


class Flaky(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; the first ``cuts`` transfers stop half-way."""

    cuts = 1
    ranges: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        header = self.headers.get("Range")
        Flaky.ranges.append(header or "")
        start = int(header.split("=")[1].split("-")[0]) if header else 0
        data = PAYLOAD[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if Flaky.cuts > 0:
            Flaky.cuts -= 1
            data = data[: len(data) // 2]
        self.wfile.write(data)


@pytest.fixture
def flaky(monkeypatch):
    monkeypatch.setenv("L2D_NETWORK_TIMEOUT", "2")
    monkeypatch.setattr(network, "RETRY_WAITS", (0.1, 0.1))
    Flaky.ranges = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/file"
    server.shutdown()
    server.server_close()


def test_a_transfer_that_breaks_off_resumes_in_the_next_attempt(flaky, tmp_path, caplog):
    Flaky.cuts = 1
    target = tmp_path / "w.safetensors"
    with caplog.at_level(logging.WARNING, logger="l2d_obs"):
        download_url(flaky, target)
    assert target.read_bytes() == PAYLOAD
    assert Flaky.ranges == ["", f"bytes={len(PAYLOAD) // 2}-"]
    assert [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()] == [
        "w.safetensors: the connection broke off; trying again in 0.1 s (attempt 2 of 3)"
    ]


def test_a_transfer_that_keeps_breaking_off_keeps_only_the_part_file(flaky, tmp_path):
    Flaky.cuts = 3
    target = tmp_path / "w.safetensors"
    with pytest.raises(DownloadError) as exc:
        download_url(flaky, target, command="l2d-obs models download --profile p")
    assert "interrupted: the connection broke off" in str(exc.value) and "--profile p" in str(exc.value)
    assert not target.exists() and (tmp_path / "w.safetensors.part").stat().st_size > 0
    download_url(flaky, target)  # the next run resumes the part file
    assert target.read_bytes() == PAYLOAD and not (tmp_path / "w.safetensors.part").exists()


# --- what each failure is called -----------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, words, reachable_elsewhere, retry",
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "DNS lookup failed", False, False),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), "DNS lookup failed", False, True),
        (urllib.error.URLError(OSError(errno.ENETUNREACH, "Network is unreachable")), "no network", False, True),
        (urllib.error.URLError(ConnectionRefusedError(errno.ECONNREFUSED, "refused")), "connection refused", False, True),
        (TimeoutError("timed out"), "no answer within 3 s", False, True),
        (urllib.error.HTTPError("http://x", 401, "Unauthorized", {}, None), "HTTP 401 not authorised", True, False),
        (urllib.error.HTTPError("http://x", 404, "Not Found", {}, None), "HTTP 404 not found", True, False),
        (urllib.error.HTTPError("http://x", 502, "Bad Gateway", {}, None), "HTTP 502", True, True),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "the connection broke off", True, True),
    ],
)
def test_diagnose_names_each_failure(exc, words, reachable_elsewhere, retry):
    trouble = network.diagnose(exc, timeout=3)
    assert trouble is not None and words in trouble.what
    assert trouble.network is not reachable_elsewhere and trouble.retry is retry


def test_diagnose_reads_the_cause_of_a_wrapped_error():
    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        except OSError as inner:
            raise RuntimeError("LocalEntryNotFoundError: check your connection") from inner
    except RuntimeError as outer:
        assert network.diagnose(outer, timeout=1).what == "connection refused"
    assert network.diagnose(ValueError("not a network thing"), timeout=1) is None
    assert network.diagnose(OSError(errno.ENOSPC, "No space left on device"), timeout=1) is None
