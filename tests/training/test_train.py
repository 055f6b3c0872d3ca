"""`l2d-obs train` smoke tests at tiny size: loss goes down, checkpoints round-trip, resume is exact,
the export loads through the project's own loaders, and bad input fails in one line with nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from l2d_obs.errors import ConfigError, OutputError
from l2d_obs.training.config import load_train_config, parse_train_config
from l2d_obs.training.trainer import Trainer

SMOKE = Path(__file__).resolve().parents[2] / "l2d_obs" / "data" / "train" / "tiny-smoke.toml"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "smoke"
    result = Trainer(load_train_config(SMOKE), out, progress=False).run()
    assert result.finished
    return out


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in ((a[n], b[n]) for n in a)
    )


def _config(tmp_path: Path, stages: list[dict], **run) -> object:
    data = {
        "run": {"name": "t", "style": "toon", "size": "tiny", "seed": 3, **run},
        "data": {"frame_size": 32, "crop": 32, "clip_length": 12, "warmup": 4},
        "stages": stages,
    }
    return parse_train_config(data, tmp_path / "t.toml")


def test_loss_decreases(tmp_path):
    cfg = _config(tmp_path, [{"name": "vae", "steps": 30, "lr": 3e-3, "batch": 2},
                             {"name": "image", "steps": 30, "lr": 3e-3, "batch": 4}])  # fmt: skip
    result = Trainer(cfg, tmp_path / "out", progress=False).run()
    for stage in ("vae", "image"):
        losses = [r["loss"] for r in result.log_rows if r["stage"] == stage]
        first, last = np.mean(losses[:5]), np.mean(losses[-5:])
        print(f"{stage}: first 5 steps {first:.4f}, last 5 steps {last:.4f}")
        assert last < 0.8 * first


def test_run_writes_log_curve_checkpoints_model_and_profile(finished_run):
    cfg = load_train_config(SMOKE)
    lines = (finished_run / "loss.csv").read_text().splitlines()
    assert lines[0] == "step,stage,stage_step,loss,lr,seconds"
    assert len(lines) == 1 + cfg.total_steps
    assert (finished_run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((finished_run / "checkpoints").glob("step-*.pt"))) <= 2
    assert (finished_run / "model" / "live2diff.safetensors").is_file()
    assert (finished_run / "train.json").is_file()
    assert (finished_run / "tiny-smoke.toml").is_file()
    assert not (finished_run / "model.partial").exists()


def test_motion_and_depth_in_official_live2diff_layout(finished_run):
    from safetensors.torch import load_file

    keys = load_file(str(finished_run / "model" / "live2diff.safetensors")).keys()
    assert all(k.startswith("flow_conv_in.") or ".motion_modules." in k for k in keys)
    assert any(".temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe" in k for k in keys)
    assert {"flow_conv_in.conv_in.weight", "flow_conv_in.conv_out.weight"} <= set(keys)


def test_checkpoint_round_trips(finished_run):
    from l2d_obs.training.models import TrainingModels
    from l2d_obs.training.sizes import size_named

    cfg = load_train_config(SMOKE)
    payload = torch.load(sorted((finished_run / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    models = TrainingModels.fresh(size_named(cfg.size), seed=123)  # other initial weights
    models.inflate(cfg.clip_length, cfg.warmup, len(cfg.t_index_list))
    models.load_state(payload["models"])
    assert _states_equal(models.state(), payload["models"])


def test_resume_equals_uninterrupted(tmp_path, finished_run):
    cfg = load_train_config(SMOKE)
    out = tmp_path / "interrupted"
    first = Trainer(cfg, out, progress=False).run(stop_after=7)  # stops inside the image stage
    assert not first.finished and first.steps_done == 7
    resumed = Trainer(cfg, out, progress=False).run(resume=True)
    assert resumed.finished
    reference = torch.load(sorted((finished_run / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    again = torch.load(sorted((out / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    assert _states_equal(again["models"], reference["models"]), "resumed run differs from the uninterrupted one"
    assert [r["loss"] for r in again["log"]] == [r["loss"] for r in reference["log"]]


def test_export_loads_through_the_project_loaders_and_matches_the_trained_models(finished_run):
    from l2d_obs.factory import build_engine
    from l2d_obs.profiles import load_profile

    engine = build_engine(load_profile(str(finished_run / "tiny-smoke.toml")))
    payload = torch.load(sorted((finished_run / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    trained_unet = payload["models"]["unet"]
    loaded = engine.components.unet.state_dict()
    for key, value in trained_unet.items():
        assert torch.equal(loaded[key], value), key
    trained_encoder = payload["models"]["depth_encoder"]
    for key, value in engine.components.depth_encoder.state_dict().items():
        assert torch.equal(value, trained_encoder[key]), key


def test_lora_stage_trains_only_the_lora_and_exports_a_profile_on_top(tmp_path, finished_run):
    cfg = _config(tmp_path, [{"name": "lora", "steps": 2, "lr": 1e-3, "rank": 4}], style="pencil", init=str(finished_run),
                  name="sketchy")  # fmt: skip
    result = Trainer(cfg, tmp_path / "lora", progress=False).run()
    from safetensors.torch import load_file

    lora = load_file(str(tmp_path / "lora" / "model" / "sketchy-lora.safetensors"))
    assert lora and all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in lora)
    assert not any("motion_modules" in k for k in lora)
    text = result.profile_path.read_text()
    assert "[[model.loras]]" in text and "sketchy-lora.safetensors" in text

    from l2d_obs.factory import build_engine
    from l2d_obs.profiles import load_profile

    build_engine(load_profile(str(result.profile_path)))  # the profile loads, base + LoRA fused


# -- bad input: one line, nothing half-written ------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "l2d_obs", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_unknown_key_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(SMOKE.read_text().replace("[data]\n", "[data]\nframe_sise = 64\n"))
    proc = _cli("train", str(bad), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "frame_sise" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_config_and_init_folder(tmp_path):
    proc = _cli("train", str(tmp_path / "nope.toml"), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2 and "no such training config" in proc.stderr
    cfg = _config(tmp_path, [{"name": "lora", "steps": 1, "lr": 1e-3}], init=str(tmp_path / "missing-run"))
    with pytest.raises(ConfigError, match="run.init"):
        Trainer(cfg, tmp_path / "out2", progress=False).run()
    assert not list((tmp_path / "out2").glob("checkpoints/*"))


def test_output_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        Trainer(load_train_config(SMOKE), blocker / "out", progress=False).run()


def test_resume_from_another_config_is_refused(tmp_path):
    out = tmp_path / "out"
    Trainer(load_train_config(SMOKE), out, progress=False).run(stop_after=4)
    other = tmp_path / "other.toml"
    other.write_text(SMOKE.read_text().replace("seed = 7", "seed = 8"))
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    proc = _cli("train", str(other), "--output", str(out), "--resume", cwd=tmp_path)
    assert proc.returncode == 2 and "another training config" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
    # and a second start without --resume does not overwrite the run
    proc = _cli("train", str(SMOKE), "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and "--resume" in proc.stderr


def test_sensor_noise_reaches_the_inputs_only_and_keeps_old_fingerprints(tmp_path):
    from l2d_obs.training.stages import make_batch

    stages = [{"name": "image", "steps": 1, "lr": 1e-3, "batch": 2}, {"name": "vae", "steps": 1, "lr": 1e-3}]
    clean = _config(tmp_path, stages)
    noisy = parse_train_config({"run": {"name": "t", "style": "toon", "size": "tiny", "seed": 3},
                                "data": {"frame_size": 32, "crop": 32, "clip_length": 12, "warmup": 4, "sensor_noise": 6},
                                "stages": stages}, tmp_path / "t.toml")  # fmt: skip
    assert clean.fingerprint() != noisy.fingerprint()
    # A config without the key keeps the fingerprint it had before the key existed (runs resume).
    assert clean.fingerprint() == _config(tmp_path, stages).fingerprint()
    a = make_batch(clean, clean.stages[0], 0, 0, ("toon",))
    b = make_batch(noisy, noisy.stages[0], 0, 0, ("toon",))
    assert torch.equal(a.targets["toon"], b.targets["toon"])  # targets from the clean frames
    diff = (b.frames - a.frames).abs()
    assert 0 < float(diff.mean()) * 255 < 6 and torch.equal(b.frames, (b.frames * 255).round() / 255)
    v = make_batch(noisy, noisy.stages[1], 1, 0, ("toon",))  # the autoencoder learns clean pictures
    assert torch.equal(v.frames, make_batch(clean, clean.stages[1], 1, 0, ("toon",)).frames)
    with pytest.raises(ConfigError, match="sensor_noise"):
        parse_train_config({"run": {"name": "t", "style": "toon"}, "data": {"sensor_noise": 100},
                            "stages": stages}, tmp_path / "t.toml")  # fmt: skip


def _encoder_latents(run_or_models, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return run_or_models.vae.encode(images * 2 - 1).latents


def test_anchored_vae_stage_keeps_the_init_latent_space_and_resumes_exactly(tmp_path, finished_run):
    from l2d_obs.training.export import load_run_models
    from l2d_obs.training.stages import calibration_images

    def config(anchor: float):
        stage = {"name": "vae", "steps": 8, "lr": 1e-2, "batch": 2, **({"anchor": anchor} if anchor else {})}
        return _config(tmp_path, [stage], init=str(finished_run), style="toon-cel")

    anchored, free = config(50.0), config(0.0)
    assert anchored.fingerprint() != free.fingerprint()
    images = calibration_images(anchored, count=8)
    before = _encoder_latents(load_run_models(str(finished_run), None), images)
    drift = {}
    for name, cfg in (("anchored", anchored), ("free", free)):
        trainer = Trainer(cfg, tmp_path / name, progress=False)
        trainer.run()
        drift[name] = float((_encoder_latents(trainer.models, images) - before).pow(2).mean())
    print(f"latent drift from the init encoder after 8 steps: anchored {drift['anchored']:.2e}, free {drift['free']:.2e}")
    assert drift["anchored"] < 0.5 * drift["free"]

    # The anchor is the init's encoder, not the checkpoint's: a resumed run ends where an uninterrupted one does.
    Trainer(anchored, tmp_path / "cut", progress=False).run(stop_after=3)
    Trainer(anchored, tmp_path / "cut", progress=False).run(resume=True)
    last = lambda out: torch.load(sorted((out / "checkpoints").glob("*.pt"))[-1], weights_only=True)  # noqa: E731
    assert _states_equal(last(tmp_path / "cut")["models"], last(tmp_path / "anchored")["models"])


@pytest.mark.parametrize("stage, run", [({"name": "image", "anchor": 1.0}, {"init": "toon"}), ({"name": "vae", "anchor": 1.0}, {})])
def test_anchor_only_on_a_vae_stage_on_top_of_a_model(tmp_path, stage, run):
    with pytest.raises(ConfigError, match="anchor"):
        _config(tmp_path, [{"steps": 1, "lr": 1e-3, **stage}], **run)


def test_opponent_chroma_sees_colour_not_luminance():
    from l2d_obs.training.objective import opponent_chroma

    def pixel(r, g, b):
        return opponent_chroma(torch.tensor([r, g, b], dtype=torch.float32).view(1, 3, 1, 1)).flatten().tolist()

    assert pixel(0.3, 0.3, 0.3) == [0.0, 0.0] and pixel(-1.0, -1.0, -1.0) == [0.0, 0.0]
    green, magenta, blue, yellow = pixel(0, 1, 0), pixel(1, 0, 1), pixel(0, 0, 1), pixel(1, 1, 0)
    assert green[0] > 0 > magenta[0] and blue[1] > 0 > yellow[1]


def test_vae_stage_weighs_l1_mse_and_chroma_as_configured(tmp_path):
    import torch.nn.functional as F

    from l2d_obs.training.models import TrainingModels
    from l2d_obs.training.objective import FullSchedule, latent_regulariser, opponent_chroma
    from l2d_obs.training.sizes import size_named
    from l2d_obs.training.stages import StageRunner, _crop, make_batch
    from l2d_obs.weights.assemble import new_scheduler

    cfg = _config(tmp_path, [{"name": "vae", "steps": 1, "lr": 1e-3, "batch": 2, "l1": 0.5, "mse": 2, "chroma": 3}])
    stage = cfg.stages[0]
    models = TrainingModels.fresh(size_named(cfg.size), cfg.seed)
    runner = StageRunner(models, cfg, stage, FullSchedule.from_scheduler(new_scheduler(), cfg.num_inference_steps))
    batch = make_batch(cfg, stage, 0, 0, ("toon",))
    loss, logged = runner.loss(batch, torch.Generator().manual_seed(0))

    images = torch.cat([batch.frames.flatten(0, 1), batch.targets["toon"].flatten(0, 1)])
    images = _crop(images, batch.crop, cfg.crop) * 2 - 1
    with torch.no_grad():
        latents = models.vae.encode(images).latents
        recon = models.vae.decode(latents).sample
    expected = (0.5 * F.l1_loss(recon, images) + 2 * F.mse_loss(recon, images)
                + 3 * F.mse_loss(opponent_chroma(recon), opponent_chroma(images)) + 0.1 * latent_regulariser(latents))  # fmt: skip
    assert set(logged) == {"l1", "mse", "chroma", "latent_reg"}
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_vae_loss_weights_validated_and_old_fingerprints_kept(tmp_path):
    vae = {"name": "vae", "steps": 1, "lr": 1e-3}
    # Written out at their defaults, the new keys leave the fingerprint as it was before they existed.
    assert _config(tmp_path, [vae]).fingerprint() == _config(tmp_path, [{**vae, "l1": 1, "mse": 0, "chroma": 0}]).fingerprint()
    assert _config(tmp_path, [vae]).fingerprint() != _config(tmp_path, [{**vae, "chroma": 8}]).fingerprint()
    # The shipped smoke config's fingerprint, pinned: checkpoints made before these keys still resume.
    assert load_train_config(SMOKE).fingerprint() == "88bc2a9d31adb96a"
    for bad, match in (({"name": "image", "steps": 1, "lr": 1e-3, "mse": 1.0}, "only for a 'vae' stage"),
                       ({**vae, "chroma": -1}, ">= 0"), ({**vae, "l1": 0}, "not all 0")):  # fmt: skip
        with pytest.raises(ConfigError, match=match) as caught:
            _config(tmp_path, [bad])
        assert "\n" not in str(caught.value)


def test_a_size_s_latent_channels_reach_every_part():
    from l2d_obs.training.models import TrainingModels
    from l2d_obs.training.sizes import size_named

    size = size_named("small")
    assert size.latent_channels == 8  # luminance and both colour axes (docs/model-card.md)
    models = TrainingModels.fresh(size, seed=0)
    with torch.no_grad():
        latents = models.vae.encode(torch.zeros(1, 3, 32, 32)).latents
    assert latents.shape[1] == models.unet.config.in_channels == models.unet.config.out_channels == 8
    assert models.depth_encoder.conv_in.in_channels == 8
