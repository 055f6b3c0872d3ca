"""`l2d-obs eval` on the tiny profile: every variant runs, the causal ones are causal, the report is
written, and bad requests fail with one line."""

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from l2d_obs.cli import main
from l2d_obs.factory import build_engine
from l2d_obs.engine.stream import EngineSettings, StreamEngine
from l2d_obs.engine.tiny import TinySizes, build_char_tokenizer, build_tiny_components
from l2d_obs.errors import EngineError, ModelError
from l2d_obs.evaluation.evaluate import (
    CLIP_ENV,
    CLIP_HINT,
    ClipScorer,
    InputVideo,
    evaluate,
    load_videos,
    resolve_variants,
    write_json,
)
from l2d_obs.evaluation.variants import (
    VARIANTS,
    bidirectional_chunks,
    execute_variant,
    positions_known,
    run_variant,
    variant_settings,
)
from l2d_obs.profiles import load_profile

SIZE = 64  # the tiny profile's resolution: no resizing in the engine


def clip_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """A textured background drifting diagonally with a bright square moving across it."""
    rng = np.random.default_rng(seed)
    canvas = cv2.GaussianBlur(rng.random((SIZE + 40, SIZE + 40, 3)).astype(np.float32), (0, 0), 2.0)
    canvas = ((canvas - canvas.min()) / (canvas.max() - canvas.min()) * 200 + 20).astype(np.uint8)
    frames = []
    for i in range(n):
        img = np.ascontiguousarray(canvas[i : i + SIZE, 2 * i % 40 : 2 * i % 40 + SIZE])
        cv2.rectangle(img, (4 + 3 * i, 20), (18 + 3 * i, 34), (250, 250, 250), -1)
        frames.append(img)
    return frames


def write_clip(folder, frames):
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture(scope="module")
def engine():
    e = build_engine(load_profile("tiny"), device="cpu")
    yield e
    e.close()


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("l2d-obs: error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------------- variants


def test_every_variant_returns_one_output_per_frame_and_restores_the_engine(engine):
    frames = clip_frames(12)
    original = engine.style
    for variant in VARIANTS:
        outputs = run_variant(engine, frames, variant)
        assert len(outputs) == len(frames), variant
        assert all(o.shape == (SIZE, SIZE, 3) and o.dtype == np.uint8 for o in outputs), variant
        assert engine.style is original and engine.settings == original.settings, variant
        assert engine.warming_up and not engine.denoiser.in_flight and not engine._warmup_jobs, variant
    with pytest.raises(ValueError, match="unknown variant"):
        run_variant(engine, frames, "sideways")


def test_variant_settings(engine):
    base = engine.settings  # tiny: window 16, warmup 8, 32 positions
    assert positions_known(engine) == 32
    assert variant_settings(engine, "live2diff") is None
    assert variant_settings(engine, "no-warmup") == replace(base, warmup=1)
    assert variant_settings(engine, "per-frame").warmup == 1
    w8 = variant_settings(engine, "window-8")
    assert (w8.window, w8.warmup) == (8, 4)  # the profile's warmup 8 is not < 8: window // 2
    w24 = variant_settings(engine, "window-24")
    assert (w24.window, w24.warmup) == (24, 8)
    # bidirectional: equal chunks of at most positions - 1 frames
    bi = variant_settings(engine, "bidirectional", frames=40)
    assert (bi.window, bi.warmup) == (32, 20)
    assert [len(c) for c in bidirectional_chunks(40, 20)] == [20, 20]
    assert variant_settings(engine, "bidirectional", frames=12).warmup == 12
    assert [list(c) for c in bidirectional_chunks(5, 2)] == [[0, 1], [2, 3], [4]]


def test_bidirectional_is_not_causal_and_live2diff_is_causal_after_warmup(engine):
    frames = clip_frames(14)
    warmup = engine.settings.warmup
    k = warmup + 2  # frames k and k + 1 both come after the warmup
    altered = frames[: k + 1] + [255 - frames[k + 1]] + frames[k + 2 :]

    base = run_variant(engine, frames, "live2diff")
    other = run_variant(engine, altered, "live2diff")
    for i in range(k + 1):
        assert np.array_equal(base[i], other[i]), f"live2diff output {i} saw frame {k + 1}"
    assert not np.array_equal(base[k + 1], other[k + 1])

    late = frames[:-1] + [255 - frames[-1]]
    bi_base = run_variant(engine, frames, "bidirectional")
    bi_late = run_variant(engine, late, "bidirectional")
    assert not np.array_equal(bi_base[0], bi_late[0]), "bidirectional: the first output ignores the last frame"


def test_window_longer_than_the_positional_table_is_a_clear_error():
    profile = load_profile("tiny")
    components = build_tiny_components(0, sizes=TinySizes(motion_max_positions=16))
    short = StreamEngine(components, EngineSettings.from_profile(profile), device="cpu")
    try:
        assert positions_known(short) == 16
        frames = clip_frames(4)
        with pytest.raises(EngineError, match="window-24 needs a window of 24 frames .* only 16 positions"):
            execute_variant(short, frames, "window-24")
        with pytest.raises(EngineError, match="only 16 positions"):
            resolve_variants(short, ["live2diff", "window-24"])
        chosen, skipped = resolve_variants(short, None)  # the default set skips it, saying why
        assert "window-24" not in chosen and "window-16" in chosen and "16 positions" in skipped["window-24"]
        assert variant_settings(short, "bidirectional", frames=40).warmup == 14  # chunks of <= 15
        assert len(run_variant(short, frames, "window-16")) == 4
    finally:
        short.close()


# -------------------------------------------------------------------------------------- evaluation


def test_evaluate_report_json_and_plot(engine, tmp_path):
    videos = [InputVideo("a", None, clip_frames(10, 0)), InputVideo("b", None, clip_frames(10, 1))]
    result = evaluate(engine, videos, ["live2diff", "per-frame"], clip_scorer=None)
    assert result.variants == ["live2diff", "per-frame"] and result.clip_note == CLIP_HINT
    for video in result.videos:
        assert video.frames == 10 and len(video.input_warp_per_frame) == 9
        for r in video.variants.values():
            assert r.frames == 10 and len(r.warp_per_frame) == 9
            assert 0 <= r.warp_error <= 1 and r.depth_mse is not None and 0 <= r.depth_mse <= 1
            assert -1 <= r.edge_correlation <= 1 and r.clip is None
            assert r.speed.device == "cpu" and r.speed.ms_per_frame > 0 and r.speed.fps > 0
    assert set(result.summary) == {"live2diff", "per-frame"}
    table = result.table()
    assert "live2diff" in table and "per-frame" in table and "mean over 2 clips" in table
    data = json.loads(write_json(result, tmp_path / "r.json").read_text())
    assert data["videos"][0]["variants"]["per-frame"]["speed"]["device"] == "cpu"
    png = result.plot(tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _tiny_clip_model(folder):
    from transformers import CLIPConfig, CLIPModel

    tokenizer = build_char_tokenizer()
    n = len(tokenizer)
    config = CLIPConfig(
        text_config=dict(vocab_size=n, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=77, bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2),
        projection_dim=8,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_clip_scores_with_a_tiny_random_clip_model(engine, tmp_path):
    folder = _tiny_clip_model(tmp_path / "clip")
    scorer = ClipScorer.load(folder)
    result = evaluate(engine, [InputVideo("a", None, clip_frames(9))], ["live2diff"], clip_scorer=scorer, warm=False)
    assert result.clip_note is None and result.clip_model == str(folder)
    video = result.videos[0]
    scores = video.variants["live2diff"].clip
    assert len(scores.per_frame_prompt) == 9 and len(scores.per_pair_consecutive) == 8
    for value in [scores.prompt, scores.consecutive, *scores.per_frame_prompt, *scores.per_pair_consecutive,
                  video.input_clip.prompt, video.input_clip.consecutive]:
        assert -1.0 <= value <= 1.0
    assert result.summary["live2diff"].clip_prompt == pytest.approx(scores.prompt)
    # with a preprocessor config (what a downloaded CLIP folder carries), its size and statistics are used
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"crop_size": {"height": 48, "width": 48}, "image_mean": [0.5] * 3, "image_std": [0.25] * 3}))
    assert ClipScorer.load(folder).image_size == (48, 48)


def test_broken_clip_folders_are_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        ClipScorer.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        ClipScorer.load(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "clip"}')
    with pytest.raises(ModelError, match="cannot load the CLIP model"):
        ClipScorer.load(broken)
    (broken / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelError, match="not a CLIP model"):
        ClipScorer.load(broken)


def test_load_videos_trims_and_pairs_clips(tmp_path):
    a = write_clip(tmp_path / "a" / "frames", clip_frames(6))
    b = write_clip(tmp_path / "b" / "frames", clip_frames(8))
    videos = load_videos([a, b], max_frames=5)
    assert [v.name for v in videos] == ["frames", "frames#2"] and [len(v.frames) for v in videos] == [5, 5]
    assert np.array_equal(videos[0].frames[3], clip_frames(6)[3])


# -------------------------------------------------------------------------------------------- CLI


def test_cli_bad_inputs_are_one_line_each(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(CLIP_ENV, raising=False)
    a = write_clip(tmp_path / "a", clip_frames(6))
    b = write_clip(tmp_path / "b", clip_frames(4))
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(a), str(b)], "different frame counts (a: 6, b: 4)"),
        ([str(tmp_path / "empty")], "holds no frames"),
        ([str(a), "--variant", "sideways"], "unknown variant 'sideways'"),
        ([str(a), "--clip", str(tmp_path / "no-clip")], "CLIP model folder"),
        ([str(a), "--json", str(tmp_path / "nodir" / "r.json")], "does not exist"),
    ]
    for args, expected in cases:
        rc = main(["eval", *args, "--profile", "tiny", "--threads", "1"])
        line = _error_line(capsys)
        assert rc != 0 and expected in line, (args, line)
    monkeypatch.setenv(CLIP_ENV, str(tmp_path / "env-clip"))
    assert main(["eval", str(a), "--profile", "tiny"]) == 4
    assert "env-clip" in _error_line(capsys)


def test_cli_without_clip_prints_the_hint_and_the_other_metrics(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(CLIP_ENV, raising=False)
    a = write_clip(tmp_path / "clipA", clip_frames(9, 0))
    b = write_clip(tmp_path / "clipB", clip_frames(9, 1))
    out_json, out_png = tmp_path / "eval.json", tmp_path / "eval.png"
    rc = main(["eval", str(a), str(b), "--profile", "tiny", "--variant", "live2diff", "--variant", "bidirectional",
               "--json", str(out_json), "--plot", str(out_png), "--threads", "1", "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.err.splitlines().count(CLIP_HINT) == 1 and "hf download" in CLIP_HINT
    assert "bidirectional" in captured.out and "mean over 2 clips" in captured.out
    data = json.loads(out_json.read_text())
    assert [v["name"] for v in data["videos"]] == ["clipA", "clipB"] and data["clip_note"] == CLIP_HINT
    r = data["videos"][1]["variants"]["bidirectional"]
    assert r["clip"] is None and r["warp_error"] > 0 and r["depth_mse"] >= 0 and -1 <= r["edge_correlation"] <= 1
    assert r["speed"]["fps"] > 0 and len(r["warp_per_frame"]) == 8
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_cli_with_a_clip_folder_scores_clip(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(CLIP_ENV, raising=False)
    a = write_clip(tmp_path / "clipA", clip_frames(6))
    folder = _tiny_clip_model(tmp_path / "clip")
    out_json = tmp_path / "eval.json"
    rc = main(["eval", str(a), "--profile", "tiny", "--variant", "per-frame", "--clip", str(folder),
               "--json", str(out_json), "--threads", "1", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert CLIP_HINT not in captured.err
    clip = json.loads(out_json.read_text())["videos"][0]["variants"]["per-frame"]["clip"]
    assert -1 <= clip["prompt"] <= 1 and -1 <= clip["consecutive"] <= 1
