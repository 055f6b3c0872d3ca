"""Profile validation: every error names the file, the field and the reason; CLI exit codes."""

from __future__ import annotations

import textwrap

import pytest

from l2d_obs.errors import ProfileError
from l2d_obs.profiles import available_profiles, load_profile, load_profile_file

VALID = textwrap.dedent("""\
    display_name = "Test"
    prompt = "{trigger_words}, a portrait"
    trigger_words = ["lvngvncnt"]
    t_index_list = [32, 45]
    num_inference_steps = 50
    width = 512
    height = 512
    window = 16
    warmup = 8

    [model]
    kind = "sd15"
    base = "civitai:91@1234"
    clip_skip = 2

    [[model.loras]]
    source = "hf:someone/style-lora/style.safetensors"
    scale = 0.5

    [depth]
    enabled = true
    estimator = "depth-anything-small"

    [engine]
    dtype = "fp16"
    pipelined = true
    """)


def write(tmp_path, text: str, name: str = "style.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_profiles_are_valid_and_carry_the_paper_styles():
    names = set(available_profiles())
    assert {"tiny", "vangogh", "cartoon", "zaum"} <= names
    expected = {"vangogh": ("civitai:91", "Starry Night by Van Gogh, lvngvncnt"),
                "cartoon": ("civitai:35960", "cartoon style"), "zaum": (None, "zaum, elysiumchar")}  # fmt: skip
    for name, (base, trigger) in expected.items():
        profile = load_profile(name)
        assert profile.prompt.startswith(trigger)  # the paper prefixes prompts with the trigger words
        if base:
            assert profile.model.base == base
    assert load_profile("zaum").model.loras[0].source == "civitai:16048"


def test_valid_profile_fills_in_the_template_and_strength(tmp_path):
    profile = load_profile_file(write(tmp_path, VALID))
    assert profile.prompt == "lvngvncnt, a portrait"
    assert profile.prompt_template.startswith("{trigger_words}")
    assert profile.strength == pytest.approx(1 - 32 / 50)
    assert profile.model.loras[0].scale == 0.5
    assert profile.engine.dtype == "fp16" and profile.engine.device is None and profile.engine.pipelined


@pytest.mark.parametrize(
    "old, new, field, reason",
    [
        ('clip_skip = 2', 'clip_skip = 2\ncolour = "red"', "model.colour", "unknown key"),
        ('width = 512', 'widht = 512', "widht", "unknown key"),
        ('width = 512', 'width = "512"', "width", "expected integer"),
        ('window = 16', 'window = 16.0', "window", "expected integer"),
        ('scale = 0.5', 'scale = "strong"', "model.loras[0].scale", "expected integer or number"),
        ('enabled = true', 'enabled = 1', "depth.enabled", "expected true/false"),
        ('warmup = 8', 'warmup = 16', "warmup", "smaller than window"),
        ('t_index_list = [32, 45]', 't_index_list = []', "t_index_list", "empty"),
        ('t_index_list = [32, 45]', 't_index_list = [45, 32]', "t_index_list", "increasing"),
        ('t_index_list = [32, 45]', 't_index_list = [32, 50]', "t_index_list[1]", "outside"),
        ('width = 512', 'width = 500', "width", "multiple of 8"),
        ('height = 512', 'height = 0', "height", "multiple of 8"),
        ('prompt = "{trigger_words}, a portrait"', 'prompt = "a portrait"', "prompt", "trigger word"),
        ('prompt = "{trigger_words}, a portrait"', 'prompt = "{style}, a portrait"', "prompt", "unknown placeholder"),
        ('trigger_words = ["lvngvncnt"]', 'trigger_words = []', "prompt", "trigger_words is empty"),
        ('num_inference_steps = 50', 'num_inference_steps = 50\nstrength = 0.9', "strength", "contradicts"),
        ('base = "civitai:91@1234"', 'base = "civitai:vangogh"', "model.base", "civitai:MODEL_ID"),
        ('base = "civitai:91@1234"', 'base = "https://x/y.safetensors"', "model.base", "URLs are not supported"),
        ('scale = 0.5', 'scale = 0.5\nsha256 = "abc"', "model.loras[0].sha256", "64 hex digits"),
        ('estimator = "depth-anything-small"', 'estimator = "zoedepth"', "depth.estimator", "must be one of"),
        ('kind = "sd15"', 'kind = "sdxl"', "model.kind", "must be one of"),
        ('dtype = "fp16"', 'dtype = "int8"', "engine.dtype", "must be one of"),
        ('dtype = "fp16"', 'device = "gpu0"', "engine.device", "must be cpu, mps, cuda"),
        ('pipelined = true', 'pipelined = "yes"', "engine.pipelined", "expected true/false"),
        ('pipelined = true', 'threads = 4', "engine.threads", "unknown key"),
    ],
)
def test_invalid_profiles_name_file_field_and_reason(tmp_path, old, new, field, reason):
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ProfileError) as exc:
        load_profile_file(path)
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message and f"'{field}'" in message and reason in message, message


def test_a_stated_strength_that_agrees_is_accepted(tmp_path):
    text = VALID.replace("num_inference_steps = 50", "num_inference_steps = 50\nstrength = 0.36")
    assert load_profile_file(write(tmp_path, text)).strength == pytest.approx(0.36)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile_file(write(tmp_path, "prompt = "))
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile_file(tmp_path / "absent.toml")
    with pytest.raises(ProfileError, match="profiles list"):
        load_profile("no-such-style")


def test_user_profiles_override_shipped_ones(isolated_user_profiles):
    isolated_user_profiles.mkdir()
    (isolated_user_profiles / "vangogh.toml").write_text(VALID.replace('"Test"', '"My Van Gogh"'))
    (isolated_user_profiles / "mine.toml").write_text(VALID)
    found = available_profiles()
    assert found["vangogh"].parent == isolated_user_profiles and "mine" in found and "cartoon" in found
    assert load_profile("vangogh").display_name == "My Van Gogh"


def run_cli(args, monkeypatch) -> int:
    import l2d_obs.cli as cli

    def register_only_ours() -> None:
        from l2d_obs.commands import models_cmds, profiles_cmds

        cli.add_commands(models_cmds.app)
        cli.add_commands(profiles_cmds.app)

    monkeypatch.setattr(cli, "_register_commands", register_only_ours)
    return cli.main(args)


def test_profiles_cli(tmp_path, monkeypatch, capsys):
    assert run_cli(["profiles", "list"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "vangogh" in out and "Zaum (Disco Elysium LoRA)" in out
    assert run_cli(["profiles", "show", "zaum"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert 'source = "civitai:16048"\nscale = 0.8' in out and "strength 0.36" in out
    assert run_cli(["profiles", "check"], monkeypatch) == 0
    good = write(tmp_path, VALID, "good.toml")
    bad = write(tmp_path, VALID.replace("warmup = 8", "warmup = 20"), "bad.toml")
    assert run_cli(["profiles", "check", str(good)], monkeypatch) == 0
    capsys.readouterr()
    assert run_cli(["profiles", "check", str(good), str(bad)], monkeypatch) == ProfileError.exit_code
    err = capsys.readouterr().err
    assert f"{bad}: field 'warmup'" in err and "1 of 2 profile file(s) invalid" in err
