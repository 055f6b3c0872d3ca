"""The model cache: offline resolution, missing-file messages, sha256, resumable downloads, the CLI."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from l2d_obs.errors import CheckpointError, ConfigError, MissingWeightsError
from l2d_obs.profiles import load_profile, load_profile_file
from l2d_obs.weights.assemble import build_sd15_components, check_profile_files
from l2d_obs.weights.download import download_url, fetch, pick_civitai_file
from l2d_obs.weights.hashing import verify_sha256
from l2d_obs.weights.plan import profile_requirements
from l2d_obs.weights.sources import CivitaiSource, HfSource, LocalSource, parse_source
from l2d_obs.weights.store import civitai_dir, hf_cache_dir, resolve

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def put_in_hf_cache(repo_id: str, files: dict[str, bytes]) -> Path:
    """Lay files out the way huggingface_hub's cache does (refs/main -> snapshots/<commit>/...)."""
    repo_dir = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    for name, data in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(data)
    return snapshot


def test_source_syntax():
    assert parse_source("hf:Leoxing/Live2Diff/live2diff.ckpt") == HfSource("Leoxing/Live2Diff", "live2diff.ckpt")
    assert parse_source("hf:madebyollin/taesd") == HfSource("madebyollin/taesd")
    assert parse_source("hf:a/b@v1.0/sub/x.safetensors") == HfSource("a/b", "sub/x.safetensors", "v1.0")
    assert parse_source("civitai:91") == CivitaiSource(91)
    assert parse_source("civitai:16048@123456") == CivitaiSource(16048, 123456)
    assert parse_source("models/x.safetensors", Path("/p")) == LocalSource(Path("/p/models/x.safetensors"))
    assert parse_source("/abs/x.ckpt", Path("/p")) == LocalSource(Path("/abs/x.ckpt"))
    for bad in ("hf:onlyowner", "civitai:abc", "https://example.com/x.safetensors", "hf:a/b/../x", ""):
        with pytest.raises(ConfigError):
            parse_source(bad)


def test_missing_weights_name_the_file_and_the_command():
    profile = load_profile("zaum")
    problems = check_profile_files(profile)
    assert len(problems) == len(profile_requirements(profile)) == 6
    assert all("l2d-obs models download --profile zaum" in p for p in problems)
    assert any("live2diff.ckpt" in p and "model.motion" in p for p in problems)
    assert any("civitai model 16048" in p for p in problems)
    with pytest.raises(MissingWeightsError) as exc:
        build_sd15_components(profile)
    assert "model.base" in str(exc.value) and "l2d-obs models download --profile zaum" in str(exc.value)


def test_offline_resolution_from_the_hub_cache_and_civitai_dir():
    profile = load_profile("zaum")
    reqs = {r.role: r for r in profile_requirements(profile)}
    snapshot = put_in_hf_cache("Leoxing/Live2Diff", {"live2diff.ckpt": b"x"})
    assert resolve(reqs["motion"]) == snapshot / "live2diff.ckpt"

    taesd = put_in_hf_cache("madebyollin/taesd", {"config.json": b"{}"})
    with pytest.raises(MissingWeightsError) as exc:  # a folder with a file missing is not complete
        resolve(reqs["vae"], "zaum")
    assert "diffusion_pytorch_model.safetensors" in str(exc.value)
    put_in_hf_cache("madebyollin/taesd", {"diffusion_pytorch_model.safetensors": b"x"})
    assert resolve(reqs["vae"]) == taesd

    lora_dir = civitai_dir(CivitaiSource(16048))
    lora_dir.mkdir(parents=True)
    (lora_dir / "discoelysium.safetensors.part").write_bytes(b"partial")  # an unfinished download does not count
    with pytest.raises(MissingWeightsError):
        resolve(reqs["lora:disco-elysium"])
    (lora_dir / "discoelysium.safetensors").write_bytes(b"x")
    assert resolve(reqs["lora:disco-elysium"]) == lora_dir / "discoelysium.safetensors"


def test_fetch_in_offline_mode_refuses_before_any_connection():
    req = {r.role: r for r in profile_requirements(load_profile("vangogh"))}["base"]
    with pytest.raises(MissingWeightsError) as exc:
        fetch(req, "vangogh")
    assert "offline mode" in str(exc.value) and "civitai:91" in str(exc.value)


def test_sha256_mismatch_names_file_and_fix(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"weights")
    verify_sha256(f, hashlib.sha256(b"weights").hexdigest(), "cmd")
    with pytest.raises(CheckpointError) as exc:
        verify_sha256(f, "0" * 64, "l2d-obs models download --profile p")
    assert str(f) in str(exc.value) and "sha256 mismatch" in str(exc.value) and "--profile p" in str(exc.value)


def test_pick_civitai_file_prefers_safetensors():
    version = {"id": 5, "files": [
        {"name": "a.ckpt", "type": "Model", "primary": True, "metadata": {"format": "PickleTensor"}},
        {"name": "a.safetensors", "type": "Model", "metadata": {"format": "SafeTensor", "fp": "fp16"}},
        {"name": "cfg.yaml", "type": "Config"},
    ]}  # fmt: skip
    assert pick_civitai_file(version)["name"] == "a.safetensors"


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = bytes(range(256)) * 400
    seen_ranges: list[str] = []

    def do_GET(self):  # noqa: N802
        start = 0
        header = self.headers.get("Range")
        _RangeHandler.seen_ranges.append(header or "")
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_download_resumes_a_partial_file(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = tmp_path / "model.safetensors"
        payload = _RangeHandler.payload
        (tmp_path / "model.safetensors.part").write_bytes(payload[:1000])  # what an interrupted run left
        download_url(f"http://127.0.0.1:{server.server_port}/file", target)
        assert target.read_bytes() == payload
        assert _RangeHandler.seen_ranges[-1] == "bytes=1000-"
        assert not (tmp_path / "model.safetensors.part").exists()
    finally:
        server.shutdown()


def run_cli(args: list[str], monkeypatch) -> int:
    import l2d_obs.cli as cli

    def register_only_ours() -> None:
        from l2d_obs.commands import models_cmds, profiles_cmds

        cli.add_commands(models_cmds.app)
        cli.add_commands(profiles_cmds.app)

    monkeypatch.setattr(cli, "_register_commands", register_only_ours)
    return cli.main(args)


def test_models_cli(monkeypatch, capsys):
    assert run_cli(["models", "list", "--profile", "zaum", "--profile", "tiny"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "model.motion" in out and "missing" in out and "nothing to download" in out
    assert run_cli(["models", "verify", "--profile", "zaum"], monkeypatch) == MissingWeightsError.exit_code
    err = capsys.readouterr().err
    assert "l2d-obs models download --profile zaum" in err
    assert run_cli(["models", "download", "--profile", "vangogh"], monkeypatch) == MissingWeightsError.exit_code
    assert "offline mode" in capsys.readouterr().err


def test_models_verify_catches_a_truncated_cached_file(monkeypatch, capsys, tmp_path):
    from safetensors.torch import save_file
    import torch

    good = tmp_path / "lcm.safetensors"
    save_file({"a": torch.zeros(1000)}, str(good))
    data = good.read_bytes()
    profile = tmp_path / "p.toml"
    profile.write_text(
        'prompt = "x"\n[model]\nkind = "sd15"\nbase = "base.safetensors"\nmotion = "m.ckpt"\n'
        f'lcm_lora = "lcm.safetensors"\nlcm_lora_sha256 = "{hashlib.sha256(data).hexdigest()}"\nvae = "taesd"\n'
        "[depth]\nenabled = false\n"
    )
    good.write_bytes(data[: len(data) - 100])
    assert run_cli(["models", "verify", "--profile", str(profile)], monkeypatch) != 0
    err = capsys.readouterr().err
    assert "truncated" in err and "lcm.safetensors" in err
    good.write_bytes(data[:-1] + b"\x01")  # complete but altered: only the sha256 can tell
    assert run_cli(["models", "verify", "--profile", str(profile)], monkeypatch) != 0
    assert "sha256 mismatch" in capsys.readouterr().err


def test_missing_weights_of_a_profile_given_by_path_name_that_path(tmp_path):
    path = tmp_path / "elsewhere" / "mystyle.toml"
    path.parent.mkdir()
    path.write_text('prompt = "x"\n[model]\nkind = "sd15"\n[depth]\nenabled = false\n')
    problems = check_profile_files(load_profile_file(path))
    assert problems and all(f"l2d-obs models download --profile {path}" in p for p in problems)


def test_local_base_folder_is_checked_for_its_files(tmp_path):
    folder = tmp_path / "sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text("{}")
    path = tmp_path / "p.toml"
    path.write_text('prompt = "x"\n[model]\nkind = "sd15"\nbase = "sd"\n[depth]\nenabled = false\n')
    req = profile_requirements(load_profile_file(path))[0]
    assert req.is_folder
    with pytest.raises(MissingWeightsError) as exc:
        resolve(req)
    assert "diffusion_pytorch_model.safetensors" in str(exc.value)
    for name in ("unet/diffusion_pytorch_model.bin", "text_encoder/config.json", "text_encoder/model.safetensors"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"x")
    assert resolve(req) == folder  # .bin stands in for .safetensors; the shipped tokenizer for a missing one


def test_models_list_shows_present_files_and_the_civitai_version(monkeypatch, capsys):
    source = CivitaiSource(16048)
    directory = civitai_dir(source)
    directory.mkdir(parents=True)
    (directory / "disco.safetensors").write_bytes(b"x" * 2048)
    (directory / "source.json").write_text('{"version_id": 17171, "file": "disco.safetensors"}')
    assert run_cli(["models", "list", "--profile", "zaum"], monkeypatch) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "model.loras[0]" in line]
    assert len(lines) == 1 and " ok " in lines[0] and "disco.safetensors" in lines[0] and "17171" in lines[0]
