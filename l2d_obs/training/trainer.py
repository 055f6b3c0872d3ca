"""The training loop: stages in order, a progress bar with loss and ETA, checkpoints every N steps,
exact resume, a loss log (CSV) and curve (PNG), and the export of the trained model with its profile.

Output folder:
    checkpoints/step-NNNNNNN.pt   models + optimizer + position + loss log (the last two kept)
    loss.csv, loss.png            every step's loss
    model/                        the trained weights, in layouts the project's loaders read
    <name>.toml                   a profile that points at model/
    train.json                    what was run: config fingerprint, steps, wall time, final losses
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, OutputError
from .config import MOTION_STAGES, TrainConfig
from .models import TrainingModels
from .objective import FullSchedule
from .sizes import size_named
from .stages import StageRunner, make_batch, step_generators
from .stylize import AUTOENCODER_STYLES

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
KEEP_CHECKPOINTS = 2
LOG_FIELDS = ("step", "stage", "stage_step", "loss", "lr", "seconds")


@dataclass
class Position:
    stage_index: int = 0
    stage_step: int = 0  # steps done in the current stage

    def global_step(self, config: TrainConfig) -> int:
        return sum(s.steps for s in config.stages[: self.stage_index]) + self.stage_step


@dataclass
class TrainResult:
    output: Path
    profile_path: Path | None
    steps_done: int
    finished: bool
    seconds: float
    log_rows: list[dict]


def lr_at(base_lr: float, step: int, total: int) -> float:
    """Linear warmup over the first 5% (at least one step), then cosine down to 10% of the base."""
    warm = max(1, total // 20)
    if step < warm:
        return base_lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def check_output_writable(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{output}: cannot write the training output there ({exc.strerror or exc}); choose another --output") from None


def latest_checkpoint(output: Path) -> Path | None:
    found = sorted((output / "checkpoints").glob("step-*.pt"))
    return found[-1] if found else None


class Trainer:
    def __init__(self, config: TrainConfig, output: Path, progress: bool = True) -> None:
        self.config = config
        self.output = Path(output)
        self.progress = progress
        self.position = Position()
        self.log_rows: list[dict] = []
        self.elapsed = 0.0
        self.models: TrainingModels | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.runner: StageRunner | None = None
        self.anchor_vae: torch.nn.Module | None = None
        self._opt_stage = -1

    # -- setup -----------------------------------------------------------------------------------

    def _initial_models(self) -> TrainingModels:
        cfg = self.config
        if cfg.init is None:
            return TrainingModels.fresh(size_named(cfg.size), cfg.seed)
        from .export import load_run_models

        return load_run_models(cfg.init, cfg.source_path)

    def _scheduler_table(self) -> FullSchedule:
        from ..weights.assemble import new_scheduler

        return FullSchedule.from_scheduler(new_scheduler(), self.config.num_inference_steps)

    def _enter_stage(self, index: int) -> None:
        """Bring the models into the shape the stage needs and build its optimizer."""
        cfg, m = self.config, self.models
        assert m is not None
        stage = cfg.stages[index]
        if stage.name not in ("vae", "depth_estimator") and m.latent_scale is None:
            self._calibrate_latent_scale()
        if stage.name in MOTION_STAGES or m.inflated:  # an init'd model has motion modules in every stage
            m.inflate(window=cfg.clip_length, warmup=cfg.warmup, steps=len(cfg.t_index_list), seed=cfg.seed)
        if stage.name == "lora":
            m.add_lora(stage.rank, seed=cfg.seed + index)
        self.runner = StageRunner(m, cfg, stage, self.schedule, anchor_vae=self.anchor_vae)
        params = self.runner.trainable()
        if not params:
            raise ConfigError(f"stage '{stage.name}' has nothing to train in this model")
        self.optimizer = torch.optim.AdamW(params, lr=stage.lr, weight_decay=0.0)
        self._opt_stage = index

    @torch.no_grad()
    def _calibrate_latent_scale(self) -> None:
        from .objective import image_dependent_std
        from .stages import calibration_images

        m = self.models
        assert m is not None
        m.vae.eval()
        latents = m.vae.encode(calibration_images(self.config) * 2 - 1).latents
        m.set_latent_scale(1.0 / max(image_dependent_std(latents), 1e-4))
        log.info("latent scaling factor %.4f", m.latent_scale)

    def _start(self, resume: bool) -> None:
        check_output_writable(self.output)
        existing = latest_checkpoint(self.output)
        if existing is not None and not resume:
            raise ConfigError(
                f"{self.output} already holds a training run ({existing.name}); add --resume to continue it or choose another --output"
            )
        self.schedule = self._scheduler_table()
        self.models = self._initial_models()
        # Taken before any checkpoint is loaded, so a resumed run anchors to the same init weights.
        if any(s.anchor > 0 for s in self.config.stages):
            self.anchor_vae = copy.deepcopy(self.models.vae).eval().requires_grad_(False)
        if resume:
            if existing is None:
                raise ConfigError(f"--resume: no checkpoint in {self.output / 'checkpoints'}; start without --resume")
            self._load_checkpoint(existing)
        else:
            self._enter_stage(0)

    # -- checkpoints -----------------------------------------------------------------------------

    def _save_checkpoint(self) -> Path:
        assert self.models is not None and self.optimizer is not None
        folder = self.output / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        step = self.position.global_step(self.config)
        path = folder / f"step-{step:07d}.pt"
        payload = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.config.fingerprint(),
            "stage_index": self.position.stage_index,
            "stage_step": self.position.stage_step,
            "inflated": self.models.inflated,
            "has_lora": self.models.has_lora,
            "latent_scale": self.models.latent_scale,
            "models": self.models.state(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_stage": self._opt_stage,
            "log": self.log_rows,
            "elapsed": self.elapsed,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)  # a checkpoint is complete or absent, never half-written
        for old in sorted(folder.glob("step-*.pt"))[:-KEEP_CHECKPOINTS]:
            old.unlink()
        self._write_log()
        return path

    def _load_checkpoint(self, path: Path) -> None:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: say which and stop
            raise ConfigError(f"{path}: not a readable l2d-obs training checkpoint ({type(exc).__name__}); delete it to resume from the one before") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"{path}: not an l2d-obs training checkpoint of format {CHECKPOINT_FORMAT}")
        if payload["fingerprint"] != self.config.fingerprint():
            raise ConfigError(
                f"{path}: this checkpoint was made by another training config (fingerprint {payload['fingerprint']}, "
                f"this config {self.config.fingerprint()}); resume with the config that made it or use another --output"
            )
        m = self.models
        assert m is not None
        index = payload["stage_index"]
        if index >= len(self.config.stages):  # a finished run: nothing to train, export again
            index = len(self.config.stages) - 1
        # Re-create the model's shape at the checkpoint (inflated / LoRA), then take its weights.
        for i in range(index + 1):
            stage = self.config.stages[i]
            if stage.name in MOTION_STAGES:
                m.inflate(window=self.config.clip_length, warmup=self.config.warmup, steps=len(self.config.t_index_list), seed=self.config.seed)
            if stage.name == "lora":
                m.add_lora(stage.rank, seed=self.config.seed + i)
        m.load_state(payload["models"])
        if payload["latent_scale"] is not None:
            m.set_latent_scale(payload["latent_scale"])
        self.position = Position(payload["stage_index"], payload["stage_step"])
        self.log_rows = list(payload["log"])
        self.elapsed = float(payload["elapsed"])
        if self.position.stage_index < len(self.config.stages):
            self._enter_stage(self.position.stage_index)
            if payload["optimizer_stage"] == self.position.stage_index:  # else the stage starts afresh
                self.optimizer.load_state_dict(payload["optimizer"])  # type: ignore[union-attr]
        log.info("resumed %s at step %d", path, self.position.global_step(self.config))

    # -- the loop --------------------------------------------------------------------------------

    def run(self, resume: bool = False, stop_after: int | None = None) -> TrainResult:
        """Train to the end (or until ``stop_after`` more steps), then export. Interrupting with Ctrl-C
        saves a checkpoint first, so ``--resume`` loses nothing."""
        from tqdm import tqdm

        self._start(resume)
        cfg = self.config
        total = cfg.total_steps
        done_before = self.position.global_step(cfg)
        budget = total - done_before if stop_after is None else min(stop_after, total - done_before)
        bar = tqdm(total=total, initial=done_before, disable=not self.progress, unit="step", dynamic_ncols=True)
        steps_run = 0
        try:
            while steps_run < budget:
                self._train_step(bar)
                steps_run += 1
                if self.position.global_step(cfg) % cfg.checkpoint_every == 0:
                    self._save_checkpoint()
        except KeyboardInterrupt:
            bar.close()
            path = self._save_checkpoint()
            raise KeyboardInterrupt(f"checkpoint saved: {path}") from None
        bar.close()
        finished = self.position.stage_index >= len(cfg.stages)
        if steps_run or latest_checkpoint(self.output) is None:
            self._save_checkpoint()
        profile_path = None
        if finished:
            from .export import export_run

            profile_path = export_run(self)
            self._write_summary()
        return TrainResult(self.output, profile_path, self.position.global_step(cfg), finished, self.elapsed, self.log_rows)

    def _train_step(self, bar) -> None:
        cfg = self.config
        index = self.position.stage_index
        if self._opt_stage != index:
            self._enter_stage(index)
        stage = cfg.stages[index]
        assert self.runner is not None and self.optimizer is not None
        started = time.perf_counter()
        _, generator = step_generators(cfg.seed, index, self.position.stage_step)
        # the autoencoder learns the run's own style too (the shipped toon.toml's style is among them)
        styles = tuple(dict.fromkeys((*AUTOENCODER_STYLES, cfg.style))) if stage.name == "vae" else (cfg.style,)
        batch = make_batch(cfg, stage, index, self.position.stage_step, styles)
        lr = lr_at(stage.lr, self.position.stage_step, stage.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, info = self.runner.loss(batch, generator)
        if not torch.isfinite(loss):
            raise ConfigError(f"stage '{stage.name}' step {self.position.stage_step}: the loss is {float(loss)}; lower its lr")
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.optimizer.step()
        self.elapsed += time.perf_counter() - started
        self.position.stage_step += 1
        row = {"step": self.position.global_step(cfg), "stage": stage.name, "stage_step": self.position.stage_step,
               "loss": float(loss.detach()), "lr": lr, "seconds": round(self.elapsed, 3)}  # fmt: skip
        self.log_rows.append(row)
        bar.set_postfix_str(f"{stage.name} loss {row['loss']:.4f}", refresh=False)
        bar.update(1)
        if self.position.stage_step >= stage.steps:
            self.position = Position(index + 1, 0)

    # -- logs ------------------------------------------------------------------------------------

    def _write_log(self) -> None:
        path = self.output / "loss.csv"
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
            writer.writeheader()
            writer.writerows(self.log_rows)
        os.replace(tmp, path)
        from .lossplot import plot_losses

        plot_losses(self.log_rows, self.output / "loss.png", title=f"l2d-obs train: {self.config.name}")

    def _write_summary(self) -> None:
        cfg = self.config
        last: dict[str, float] = {}
        for row in self.log_rows:
            last[row["stage"]] = row["loss"]
        summary = {
            "name": cfg.name,
            "config": str(cfg.source_path) if cfg.source_path else None,
            "fingerprint": cfg.fingerprint(),
            "seed": cfg.seed,
            "steps": cfg.total_steps,
            "stages": [{"name": s.name, "steps": s.steps, "lr": s.lr, "batch": s.batch} for s in cfg.stages],
            "wall_seconds": round(self.elapsed, 1),
            "final_loss": last,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
        (self.output / "train.json").write_text(json.dumps(summary, indent=2) + "\n")

