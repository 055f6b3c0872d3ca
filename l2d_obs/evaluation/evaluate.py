"""`l2d-obs eval`: the variants of one profile on the same clips, scored side by side.

Per clip and variant (see ``variants.py``), all at the engine's resolution (inputs are fitted to it
exactly as the engine fits them):

- **warp error** (``metrics.warp_error``): the *input's* DIS flow carries output t+1 back onto t; mean
  absolute difference over forward-backward consistent pixels, in [0, 1]. Lower = less flicker. The
  flows are computed once per clip and shared by every variant. The input scored against itself is
  the floor the flow itself leaves.
- **depth MSE**: the profile's depth estimator on every input and output frame, each map normalised
  to [0, 1] per frame (``engine.depth.normalise_depth``, the rule the engine's depth prior uses), then
  the mean squared difference. Lower = the scene's 3-D layout survived the style.
- **edge correlation** (``metrics.edge_correlation``): structure kept, in [-1, 1]; and PSNR to the
  input (low = strongly restyled).
- **CLIP scores** (with a local CLIP model): cosine of each output frame's image embedding with the
  prompt's text embedding (style/content match), and cosine of consecutive output frames (semantic
  temporal consistency). Both in [-1, 1]; the input's own scores are reported beside them.
- **speed**: wall time of each variant's run (frames pushed and flushed; style switches and an
  untimed first pass excluded), as ms per frame and frames per second, with the device and dtype.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..engine.depth import normalise_depth
from ..engine.stream import StreamEngine
from ..errors import EngineError, InputError, ModelError, OutputError
from ..imageops import centre_crop_to_aspect, fit
from .metrics import edge_correlation, flow_pairs, psnr, warp_error
from .variants import VARIANTS, check_variant, execute_variant, positions_known, variant_settings

CLIP_ENV = "L2D_CLIP_MODEL"
CLIP_HINT = (
    "CLIP scores skipped: no CLIP model given. On a machine with internet run "
    "`hf download openai/clip-vit-base-patch32 --local-dir clip-vit-base-patch32`, copy that folder here "
    f"and pass --clip PATH (or set {CLIP_ENV}=PATH); the other metrics do not need it."
)

# OpenAI CLIP's pixel statistics (what CLIPImageProcessor uses when a folder has no preprocessor config).
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

Progress = Callable[[str], None]


# ------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class InputVideo:
    name: str
    path: Path | None
    frames: list[np.ndarray]  # HxWx3 uint8 RGB, native size


def read_video(path: Path, max_frames: int | None = None) -> list[np.ndarray]:
    """Frames of a video file or a folder of numbered PNGs (the first ``max_frames`` of them)."""
    from ..render import open_input
    from ..sources.base import CorruptFrame

    source, _count = open_input(Path(path), fps=30.0)
    frames: list[np.ndarray] = []
    try:
        while max_frames is None or len(frames) < max_frames:
            try:
                frame = source.read()
            except CorruptFrame as exc:
                raise InputError(str(exc)) from None
            if frame is None:
                break
            if frames and frame.pixels.shape != frames[0].shape:
                raise InputError(
                    f"frame {len(frames)} of {path} is {frame.width}x{frame.height}, the first was "
                    f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames of a clip must have one size"
                )
            frames.append(frame.pixels)
    finally:
        source.close()
    return frames


def load_videos(paths: Sequence[Path], max_frames: int | None = None) -> list[InputVideo]:
    """Read every INPUT; each needs >= 2 frames and all must have the same frame count."""
    if not paths:
        raise InputError("no input clips given")
    if max_frames is not None and max_frames < 2:
        raise InputError(f"--frames {max_frames}: the warp error needs at least 2 frames")
    videos: list[InputVideo] = []
    used: set[str] = set()
    for path in paths:
        path = Path(path)
        frames = read_video(path, max_frames)
        if not frames:
            raise InputError(f"input {path} holds no readable frames")
        if len(frames) < 2:
            raise InputError(f"input {path} holds only 1 frame; the warp error needs at least 2")
        base = path.name if path.is_dir() else path.stem
        name, n = base or str(path), 2
        while name in used:  # two folders called frames/: frames, frames#2
            name, n = f"{base}#{n}", n + 1
        used.add(name)
        videos.append(InputVideo(name, path, frames))
    counts = {v.name: len(v.frames) for v in videos}
    if len(set(counts.values())) > 1:
        shortest = min(counts.values())
        listed = ", ".join(f"{k}: {c}" for k, c in counts.items())
        raise InputError(
            f"the clips have different frame counts ({listed}); every clip must have as many frames as the "
            f"others - pass --frames {shortest} to score the first {shortest} of each"
        )
    return videos


# -------------------------------------------------------------------------------------------- CLIP


@dataclass(frozen=True)
class ClipScores:
    """CLIP cosines of a video: with the prompt, and between consecutive frames. Both in [-1, 1]."""

    prompt: float  # mean over frames of cos(image_t, text)
    consecutive: float  # mean over t of cos(image_t, image_t+1)
    per_frame_prompt: list[float]
    per_pair_consecutive: list[float]


class ClipScorer:
    """A local transformers CLIPModel (and its tokenizer); images preprocessed in torch."""

    def __init__(self, model, tokenizer, image_size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
                 device: torch.device, path: Path | None = None) -> None:
        self.model = model.eval().requires_grad_(False).to(device=device, dtype=torch.float32)
        self.tokenizer = tokenizer
        self.image_size = image_size  # (height, width)
        self.device = device
        self.path = path
        self._mean = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, 3, 1, 1)

    @classmethod
    def load(cls, path: Path | str, device: torch.device | str = "cpu") -> "ClipScorer":
        """Load a CLIP folder offline (``local_files_only``); ModelError with one line if unusable."""
        path = Path(path).expanduser()
        how = "give the folder of a transformers CLIPModel (e.g. `hf download openai/clip-vit-base-patch32 --local-dir DIR`)"
        if not path.exists():
            raise ModelError(f"CLIP model folder {path} does not exist; {how}")
        if not path.is_dir():
            raise ModelError(f"CLIP model {path} is not a folder; {how}")
        config_file = path / "config.json"
        try:
            config = json.loads(config_file.read_text())
        except FileNotFoundError:
            raise ModelError(f"{path} has no config.json, so it is not a transformers model folder; {how}") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {config_file}: {_one_line(exc)}") from None
        if config.get("model_type") != "clip":
            raise ModelError(f"{path} holds a {config.get('model_type')!r} model, not a CLIP model (model_type 'clip'); {how}")
        from transformers import AutoTokenizer, CLIPModel
        from transformers.utils import logging as hf_logging

        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # missing weights are checked below; keep transformers' report quiet
        hf_logging.disable_progress_bar()
        try:
            model, info = CLIPModel.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
        except Exception as exc:  # noqa: BLE001 - any failure here means broken or missing weights
            raise ModelError(f"cannot load the CLIP model in {path}: {_one_line(exc)}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        missing = sorted(k for k in info.get("missing_keys", ()) if not k.endswith("position_ids"))  # ids: buffers
        if missing:
            raise ModelError(f"the CLIP weights in {path} are incomplete ({len(missing)} tensors missing, e.g. {missing[0]}); "
                             "download the model again")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"cannot load the CLIP tokenizer in {path}: {_one_line(exc)}") from None
        size, mean, std = _image_settings(path, model)
        return cls(model, tokenizer, size, mean, std, torch.device(device), path)

    def _pixels(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        h, w = self.image_size
        x = np.stack([centre_crop_to_aspect(f, w, h) if f.shape[:2] != (h, w) else f for f in frames])
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        if t.shape[-2:] != (h, w):
            t = torch.nn.functional.interpolate(t, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        return (t.clamp(0, 1) - self._mean) / self._std

    @torch.no_grad()
    def image_embeddings(self, frames: Sequence[np.ndarray], batch: int = 32) -> torch.Tensor:
        """(N, D) unit-length image embeddings."""
        out = []
        for start in range(0, len(frames), batch):
            feats = _features(self.model.get_image_features(pixel_values=self._pixels(frames[start : start + batch])))
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1))
        return torch.cat(out)

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        """(D,) unit-length text embedding."""
        limit = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
        tokens = self.tokenizer([prompt], padding=True, truncation=True, max_length=limit, return_tensors="pt")
        feats = _features(self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                                       attention_mask=tokens["attention_mask"].to(self.device)))
        return torch.nn.functional.normalize(feats.float(), dim=-1)[0]

    def scores(self, frames: Sequence[np.ndarray], prompt: str | None = None, text: torch.Tensor | None = None) -> ClipScores:
        images = self.image_embeddings(frames)
        if text is None:
            text = self.text_embedding(prompt or "")
        to_prompt = (images @ text).clamp(-1, 1).tolist()
        consecutive = (images[:-1] * images[1:]).sum(-1).clamp(-1, 1).tolist() if len(frames) > 1 else []
        return ClipScores(
            prompt=float(np.mean(to_prompt)),
            consecutive=float(np.mean(consecutive)) if consecutive else math.nan,
            per_frame_prompt=[float(v) for v in to_prompt],
            per_pair_consecutive=[float(v) for v in consecutive],
        )


def _features(out) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output is the projected embedding; 4.x a tensor.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _image_settings(path: Path, model) -> tuple[tuple[int, int], Sequence[float], Sequence[float]]:
    """Input size and normalisation from preprocessor_config.json when present, else CLIP's defaults."""
    side = int(model.config.vision_config.image_size)
    size, mean, std = (side, side), _CLIP_MEAN, _CLIP_STD
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        try:
            cfg = json.loads(pre.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {pre}: {_one_line(exc)}") from None
        crop = cfg.get("crop_size")
        if isinstance(crop, dict) and "height" in crop and "width" in crop:
            size = (int(crop["height"]), int(crop["width"]))
        elif isinstance(crop, (int, float)):
            size = (int(crop), int(crop))
        mean = cfg.get("image_mean", mean)
        std = cfg.get("image_std", std)
        if len(mean) != 3 or len(std) != 3:
            raise ModelError(f"{pre}: image_mean and image_std must have 3 values each")
    return size, mean, std


def resolve_clip_path(given: Path | str | None) -> Path | None:
    """--clip PATH, else $L2D_CLIP_MODEL, else None (CLIP scores are then skipped)."""
    if given is not None and str(given).strip():
        return Path(given)
    env = os.environ.get(CLIP_ENV, "").strip()
    return Path(env) if env else None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ------------------------------------------------------------------------------------------- depth


@torch.no_grad()
def depth_maps(engine: StreamEngine, frames: Sequence[np.ndarray], batch: int = 8) -> torch.Tensor | None:
    """(N, 1, H, W) float32 CPU depth of each frame by the profile's estimator, normalised per frame
    to [0, 1] with the engine's rule; None when the profile has no depth estimator."""
    estimator = engine.components.depth_estimator
    if estimator is None:
        return None
    maps = []
    for start in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(np.stack(frames[start : start + batch]))).to(engine.device)
        x = x.permute(0, 3, 1, 2).to(engine.dtype).div_(255.0)
        maps.append(normalise_depth(estimator.estimate(x).float()).cpu())
    return torch.cat(maps)


def depth_mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over frames of the mean squared difference of two normalised depth stacks."""
    return float(((a - b) ** 2).flatten(1).mean(1).mean())


# ----------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Speed:
    device: str
    dtype: str
    frames: int
    seconds: float
    ms_per_frame: float
    fps: float

    @classmethod
    def of(cls, engine: StreamEngine, frames: int, seconds: float) -> "Speed":
        seconds = max(seconds, 1e-9)
        return cls(str(engine.device), str(engine.dtype).removeprefix("torch."), frames, seconds,
                   1000.0 * seconds / frames, frames / seconds)


@dataclass(frozen=True)
class VariantResult:
    """One variant on one clip."""

    variant: str
    frames: int
    warp_error: float  # [0, 1], lower = steadier
    warp_per_frame: list[float]  # one per pair (t, t+1)
    warp_valid_fraction: float
    depth_mse: float | None  # None: the profile has no depth estimator
    edge_correlation: float
    psnr_to_input: float  # dB; inf for identical frames (null in JSON)
    clip: ClipScores | None
    speed: Speed


@dataclass(frozen=True)
class VideoResult:
    """Every variant on one clip, with what the input itself scores."""

    name: str
    path: str | None
    frames: int
    width: int  # native size of the clip; metrics are computed at the engine's resolution
    height: int
    input_warp_error: float  # the input against itself: the floor the flow leaves
    input_warp_per_frame: list[float]
    input_clip: ClipScores | None
    variants: dict[str, VariantResult]


@dataclass(frozen=True)
class VariantSummary:
    """One variant averaged over every clip (speed: all frames over all time)."""

    variant: str
    warp_error: float
    depth_mse: float | None
    edge_correlation: float
    psnr_to_input: float
    clip_prompt: float | None
    clip_consecutive: float | None
    ms_per_frame: float
    fps: float


@dataclass(frozen=True)
class Evaluation:
    profile: str
    device: str
    dtype: str
    width: int  # engine resolution
    height: int
    prompt: str
    window: int
    warmup: int
    steps: int
    positions: int  # the motion modules' positional table length
    variants: list[str]
    skipped: dict[str, str]  # variant -> why it was not run
    clip_model: str | None
    clip_note: str | None  # the how-to-get-CLIP line when CLIP scores were skipped
    videos: list[VideoResult]
    summary: dict[str, VariantSummary] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return _jsonable(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False)

    def table(self) -> str:
        return format_table(self)

    def plot(self, path: Path | str) -> Path:
        return plot_warp_error(self, path)


def _jsonable(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no inf/nan (identical-frame PSNR)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarise(videos: Sequence[VideoResult], variants: Sequence[str]) -> dict[str, VariantSummary]:
    out = {}
    for v in variants:
        rs = [video.variants[v] for video in videos if v in video.variants]
        if not rs:
            continue
        frames = sum(r.speed.frames for r in rs)
        seconds = max(sum(r.speed.seconds for r in rs), 1e-9)
        out[v] = VariantSummary(
            variant=v,
            warp_error=float(np.mean([r.warp_error for r in rs])),
            depth_mse=_mean([r.depth_mse for r in rs]),
            edge_correlation=float(np.mean([r.edge_correlation for r in rs])),
            psnr_to_input=float(np.mean([r.psnr_to_input for r in rs])),
            clip_prompt=_mean([r.clip.prompt if r.clip else None for r in rs]),
            clip_consecutive=_mean([r.clip.consecutive if r.clip else None for r in rs]),
            ms_per_frame=1000.0 * seconds / frames,
            fps=frames / seconds,
        )
    return out


# ---------------------------------------------------------------------------------------- running


def resolve_variants(engine: StreamEngine, requested: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """Variants to run and those skipped (with why). Asked-for variants must all run: a window the
    motion modules cannot take is an EngineError; by default such a variant is skipped instead."""
    if requested:
        chosen = list(dict.fromkeys(check_variant(v) for v in requested))
        for v in chosen:
            variant_settings(engine, v)  # raises EngineError for a window the weights cannot take
        return chosen, {}
    chosen, skipped = [], {}
    for v in VARIANTS:
        try:
            variant_settings(engine, v)
        except EngineError as exc:
            skipped[v] = str(exc)
            continue
        chosen.append(v)
    return chosen, skipped


def evaluate(
    engine: StreamEngine,
    videos: Sequence[InputVideo],
    variants: Sequence[str] | None = None,
    clip_scorer: ClipScorer | None = None,
    progress: Progress | None = None,
    warm: bool = True,
    profile: str = "",
) -> Evaluation:
    """Run each variant over each clip and score it. ``variants=None``: every variant the weights
    can take. ``warm``: one short untimed pass first, so one-time costs (kernel selection, allocator,
    lazy initialisation) land on no variant's timing."""
    if not videos:
        raise InputError("no input clips given")
    chosen, skipped = resolve_variants(engine, variants)
    say = progress or (lambda message: None)
    if warm:
        first = videos[0].frames
        execute_variant(engine, first[: min(len(first), engine.settings.warmup + engine.settings.steps + 1)], "live2diff")
    prompt = engine.settings.prompt
    text = clip_scorer.text_embedding(prompt) if clip_scorer is not None else None
    results: list[VideoResult] = []
    for video in videos:
        inputs = [fit(f, engine.width, engine.height) for f in video.frames]
        say(f"{video.name}: input flow and depth ({len(inputs)} frames)")
        pairs = flow_pairs(inputs)
        floor = warp_error(inputs, inputs, pairs=pairs)
        input_depth = depth_maps(engine, inputs)
        input_clip = clip_scorer.scores(inputs, text=text) if clip_scorer is not None else None
        per_variant: dict[str, VariantResult] = {}
        for i, v in enumerate(chosen, 1):
            say(f"{video.name}: [{i}/{len(chosen)}] {v}")
            run = execute_variant(engine, inputs, v)
            outputs = run.outputs
            warp = warp_error(outputs, inputs, pairs=pairs)
            out_depth = depth_maps(engine, outputs) if input_depth is not None else None
            per_variant[v] = VariantResult(
                variant=v,
                frames=len(outputs),
                warp_error=warp.mean,
                warp_per_frame=warp.per_frame,
                warp_valid_fraction=warp.valid_fraction,
                depth_mse=None if out_depth is None else depth_mse(out_depth, input_depth),
                edge_correlation=float(np.mean([edge_correlation(o, x) for o, x in zip(outputs, inputs)])),
                psnr_to_input=float(np.mean([psnr(o, x) for o, x in zip(outputs, inputs)])),
                clip=clip_scorer.scores(outputs, text=text) if clip_scorer is not None else None,
                speed=Speed.of(engine, len(outputs), run.seconds),
            )
        h, w = video.frames[0].shape[:2]
        results.append(VideoResult(
            name=video.name,
            path=None if video.path is None else str(video.path),
            frames=len(inputs),
            width=int(w),
            height=int(h),
            input_warp_error=floor.mean,
            input_warp_per_frame=floor.per_frame,
            input_clip=input_clip,
            variants=per_variant,
        ))
    s = engine.settings
    return Evaluation(
        profile=profile or engine.style.name,
        device=str(engine.device),
        dtype=str(engine.dtype).removeprefix("torch."),
        width=engine.width,
        height=engine.height,
        prompt=prompt,
        window=s.window,
        warmup=s.warmup,
        steps=s.steps,
        positions=positions_known(engine),
        variants=chosen,
        skipped=skipped,
        clip_model=None if clip_scorer is None or clip_scorer.path is None else str(clip_scorer.path),
        clip_note=None if clip_scorer is not None else CLIP_HINT,
        videos=results,
        summary=summarise(results, chosen),
    )


def check_output_path(path: Path | None, what: str) -> None:
    """Fail before any work when an output file cannot be written where asked."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{what} folder {parent} does not exist; create it first")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder, not a file")


def run_evaluation(
    inputs: Sequence[Path],
    profile: str,
    variants: Sequence[str] | None = None,
    frames: int | None = None,
    clip_path: Path | str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: Progress | None = None,
) -> Evaluation:
    """Everything `l2d-obs eval` does before writing: check the request, read the clips, load CLIP,
    build the profile's engine, evaluate. Bad requests fail before the engine is built."""
    from ..factory import build_engine
    from ..engine.factory import resolve_device_and_dtype
    from ..profiles import load_profile

    for v in variants or ():
        check_variant(v)
    prof = load_profile(profile)
    videos = load_videos(inputs, frames)
    dev, _ = resolve_device_and_dtype(prof, device, dtype)
    path = resolve_clip_path(clip_path)
    scorer = ClipScorer.load(path, dev) if path is not None else None
    engine = build_engine(prof, device=device, dtype=dtype)
    try:
        return evaluate(engine, videos, variants or None, scorer, progress, profile=prof.name)
    finally:
        engine.close()


# -------------------------------------------------------------------------------------- reporting


def _fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, spec)


_COLUMNS = (
    ("variant", 14, None),
    ("warp err", 9, ".4f"),
    ("depth MSE", 10, ".4f"),
    ("edge corr", 10, ".3f"),
    ("PSNR in", 8, ".2f"),
    ("CLIP txt", 9, ".4f"),
    ("CLIP t,t+1", 11, ".4f"),
    ("ms/frame", 10, ".1f"),
    ("fps", 8, ".2f"),
)


def _row(cells: Sequence[str]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, (_, w, _s)) in enumerate(zip(cells, _COLUMNS))).rstrip()


def format_table(ev: Evaluation) -> str:
    header = _row([name for name, _, _ in _COLUMNS])
    lines = [
        f"profile {ev.profile}: {ev.width}x{ev.height}, T={ev.steps}, window {ev.window}, warmup {ev.warmup}, "
        f"{ev.positions} positions; {ev.device} ({ev.dtype})",
    ]
    for name, why in ev.skipped.items():
        lines.append(f"skipped {name}: {why}")

    def block(title: str, rows: list[list[str]]) -> None:
        lines.extend(["", title, header, "-" * len(header), *(_row(r) for r in rows)])

    for video in ev.videos:
        rows = []
        ic = video.input_clip
        rows.append(["(input)", _fmt(video.input_warp_error, ".4f"), "-", "-", "-",
                     _fmt(ic.prompt if ic else None, ".4f"), _fmt(ic.consecutive if ic else None, ".4f"), "", ""])
        for r in video.variants.values():
            rows.append([r.variant, _fmt(r.warp_error, ".4f"), _fmt(r.depth_mse, ".4f"), _fmt(r.edge_correlation, ".3f"),
                         _fmt(r.psnr_to_input, ".2f"), _fmt(r.clip.prompt if r.clip else None, ".4f"),
                         _fmt(r.clip.consecutive if r.clip else None, ".4f"), _fmt(r.speed.ms_per_frame, ".1f"),
                         _fmt(r.speed.fps, ".2f")])
        block(f"{video.name} ({video.frames} frames, {video.width}x{video.height})", rows)
    if len(ev.videos) > 1:
        rows = [[s.variant, _fmt(s.warp_error, ".4f"), _fmt(s.depth_mse, ".4f"), _fmt(s.edge_correlation, ".3f"),
                 _fmt(s.psnr_to_input, ".2f"), _fmt(s.clip_prompt, ".4f"), _fmt(s.clip_consecutive, ".4f"),
                 _fmt(s.ms_per_frame, ".1f"), _fmt(s.fps, ".2f")] for s in ev.summary.values()]
        block(f"mean over {len(ev.videos)} clips", rows)
    return "\n".join(lines)


def plot_warp_error(ev: Evaluation, path: Path | str) -> Path:
    """PNG: per-frame warp error of every variant (one line each), one panel per clip, the input's
    own floor dashed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise OutputError("--plot needs matplotlib: pip install matplotlib") from None
    path = Path(path)
    n = max(1, len(ev.videos))
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(6.5 * cols, 3.8 * rows), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, video in zip(axes, ev.videos):
        x = np.arange(video.frames - 1)
        for r in video.variants.values():
            ax.plot(x, r.warp_per_frame, label=f"{r.variant} ({r.warp_error:.4f})", linewidth=1.4)
        ax.plot(x, video.input_warp_per_frame, "k--", linewidth=1.0, label=f"input floor ({video.input_warp_error:.4f})")
        ax.set_title(f"{video.name}: {ev.profile}, {ev.width}x{ev.height}")
        ax.set_xlabel("frame pair (t, t+1)")
        ax.set_ylabel("warp error (lower = steadier)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(ev.videos):]:
        ax.set_visible(False)
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise OutputError(f"cannot write the plot to {path}: {exc}") from None
    return path


def write_json(ev: Evaluation, path: Path | str) -> Path:
    path = Path(path)
    try:
        path.write_text(ev.to_json() + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write the JSON report to {path}: {exc}") from None
    return path
