"""`l2d-obs bench --json`: every figure is there, positive and consistent. No timing assertions."""

from __future__ import annotations

import json
import math

import pytest

from l2d_obs.cli import main

ENGINE_FIELDS = (
    "cached_ms_per_frame",
    "recompute_ms_per_frame",
    "sequential_ms_per_frame",
    "pipelined_ms_per_frame",
    "no_temporal_ms_per_frame",
    "unet_cached_ms_per_frame",
    "unet_recompute_ms_per_frame",
    "unet_sequential_ms_per_frame",
    "unet_pipelined_ms_per_frame",
    "unet_no_temporal_ms_per_frame",
    "warmup_ms",
)


def _bench_json(capsys, *args: str) -> dict:
    code = main(["bench", "--json", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)  # exactly one JSON object on stdout


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory) -> dict:
    # Module-scoped: one quick run (about a minute on 2 shared cores) serves every check below.
    path = tmp_path_factory.mktemp("bench") / "report.json"
    code = main(["bench", "--json", "--quick", "--size", "tiny", "--threads", "1", "--output", str(path)])
    assert code == 0
    return json.loads(path.read_text())


def test_config_is_reported(tiny_report):
    c = tiny_report["config"]
    assert (c["size"], c["resolution"], c["T"], c["L"], c["Lw"]) == ("tiny", 64, 2, 16, 8)
    assert (c["device"], c["dtype"], c["torch_threads"]) == ("cpu", "float32", 1)
    assert c["quick"] is True and c["depth"] is True
    m = tiny_report["machine"]
    assert m["cores"] >= 1 and m["cpu"] and len(m["load_avg_start"]) == 3 and m["date_utc"]


def test_engine_figures_are_positive(tiny_report):
    e = tiny_report["engine"]
    for name in ENGINE_FIELDS:
        assert _positive(e[name]), name
    assert _positive(e["cache_bytes"]) and _positive(e["peak_rss_bytes"])
    assert e["peak_gpu_bytes"] is None  # CPU run
    assert e["cached_ms_per_frame"] == e["pipelined_ms_per_frame"]  # the engine's default schedule
    for v in e["variants"].values():
        assert v["frames_timed"] == 2 * 3  # quick: 2 repetitions x 3 timed frames
        assert v["ms_per_frame"] >= v["denoise_ms"]
    for ratio in e["ratios"].values():
        assert _positive(ratio)


def test_cache_bytes_are_the_processors_tensors(tiny_report):
    e = tiny_report["engine"]
    assert e["cache_bytes"] == e["cache_bytes_from_tensors"]
    # tiny UNet: 2 down + 2 up levels, 1+2 motion modules each side -> 6 modules x 2 attentions
    assert e["cache_layers"] == e["model"]["temporal_attentions"] == 12


def test_each_variant_runs_the_mode_it_claims(tiny_report):
    e = tiny_report["engine"]
    calls, reps, T = e["unet_calls"], 2, 2
    after_warmup = (16 - 8) + 3  # window fill + timed frames
    # recompute: only the training-mask clip mode, with the full window of frames once it is full
    assert set(calls["recompute"]) == {"clip"}
    assert calls["recompute"]["clip"] == reps * T * (1 + after_warmup)
    assert e["recompute_clip_frames"] == 16
    # cached schedules: warmup once per step, then the KV-cache stream mode
    assert calls["sequential"] == {"warmup": reps * T, "stream": reps * T * after_warmup}
    assert calls["pipelined"] == {"warmup": reps * T, "stream": reps * (after_warmup + T - 1)}
    # the per-frame baseline never touches the motion UNet
    assert calls["no_temporal"] == {}
    assert e["model"]["no_temporal_unet_params"] < e["model"]["unet_params"]


def test_daemon_and_soak_figures(tiny_report):
    d = tiny_report["daemon"]
    for name in ("engine_only_fps", "end_to_end_fps", "latency_ms_p50", "latency_ms_p95"):
        assert _positive(d[name]), name
    assert d["latency_ms_p95"] >= d["latency_ms_p50"]
    assert d["frames_measured"] >= 2
    s = tiny_report["soak"]
    assert s["frames"] == 200
    assert math.isfinite(s["rss_growth_pct"]) and _positive(s["rss_after_warmup_bytes"])
    assert s["cache_bytes_after_run"] == s["cache_bytes_after_warmup"] == tiny_report["engine"]["cache_bytes"]


def test_graphs_part_reports_one_graph_no_breaks_no_recompiles_and_two_transfers(tiny_report):
    g = tiny_report["graphs"]
    c, t = g["compiled_stream_step"], g["transfers"]
    assert c["graphs_per_stream_call"] == 1 and c["graphs_at_warmup"] == c["variants"] == 4  # T=2: rows 1..2 x mask
    assert c["graph_breaks"] == 0 and c["recompiles_after_warmup"] == 0 and c["frames"] >= 40
    assert t["host_device_transfers_per_push"] == 2
    assert t["uploads_per_push"] == 1 and t["downloads_per_push"] == 1 and t["outputs_per_push"] == 1


def test_human_table_and_bad_options(capsys):
    code = main(["bench", "--size", "tiny", "--device", "cpu", "--compile"])
    assert code == 2
    assert "GPU options" in capsys.readouterr().err
    assert main(["bench", "--size", "huge"]) == 2


def test_full_size_builds_the_real_architecture_and_runs_the_engine(capsys):
    # Real SD1.5 + motion modules + CLIP ViT-L/14 sizes with random weights, at 64px. On 2 shared CPU
    # cores this is the slowest test: one frame per variant, one repetition, T=1, a 4-frame window, and no
    # depth (DPT-hybrid alone takes ~20 s per frame here; its build is checked in test_baselines).
    report = _bench_json(capsys, "--quick", "--size", "full", "--resolution", "64", "--parts", "engine",
                         "--frames", "1", "--repeats", "1", "--window", "4", "--warmup", "2", "--steps", "1", "--no-depth",
                         "--threads", "1")
    e, model = report["engine"], report["engine"]["model"]
    assert report["daemon"] is None and report["soak"] is None
    assert model["temporal_attentions"] == e["cache_layers"] == 40  # 20 motion modules, none in the mid block
    assert model["motion_positions"] == 24
    assert model["text_hidden_size"] == 768
    assert 1.2e9 < model["unet_params"] < 1.35e9  # SD1.5 UNet (~860M) + motion modules (~417M)
    assert 8.5e8 < model["no_temporal_unet_params"] < 8.7e8
    assert e["cache_bytes"] == e["cache_bytes_from_tensors"] > 0
    assert e["recompute_clip_frames"] == 4
    for name in ENGINE_FIELDS:
        assert _positive(e[name]), name
