"""The profile schema is written once, in the dataclasses: parsing, validation, `profiles show` and
`profiles keys` are all read off them."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from l2d_obs.errors import ProfileError
from l2d_obs.profiles import (
    MAX_SEED, EngineSpec, ModelSpec, Profile, available_profiles, load_profile_file, parse_profile, profile_reference,
    profile_toml,
)
from l2d_obs.tomlschema import SchemaProblem, build, keys, reference, setting


@pytest.mark.parametrize("name", sorted(available_profiles()))
def test_show_writes_a_profile_that_loads_back_equal(name, tmp_path):
    original = load_profile_file(available_profiles()[name])
    text = profile_toml(original)
    again = parse_profile(tomllib.loads(text), tmp_path / f"{name}.toml", default_name="other")
    assert again == original
    assert again.prompt_template == original.prompt_template and again.prompt == original.prompt


def test_keys_reference_states_every_field_with_its_rule():
    text = profile_reference()
    for cls, header in ((Profile, None), (ModelSpec, "[model]"), (EngineSpec, "[engine]")):
        section = text.split(header, 1)[1] if header else text
        for key in keys(cls):
            written = f"\n[{header.strip('[]') + '.' if header else ''}{key.name}]" if key.table else f"\n{key.name} ("
            assert written in "\n" + section or f"[{written.strip()}]" in section, key.name
    assert "seed (integer, default 42; in 0..9223372036854775807)" in text
    assert 'noise (string, default "fixed"; one of fixed, fresh)' in text
    assert "width (integer, default 512; a multiple of 8 in 8..2048)" in text
    assert "similarity_threshold (integer or number, default 0.98; in (0, 1])" in text
    assert "[[model.loras]]" in text and "source (string, required)" in text
    assert "prompt_template" not in text and "source_path" not in text  # not read from files


def test_the_keys_command_prints_the_reference(capsys):
    from l2d_obs import cli
    from l2d_obs.commands import profiles_cmds

    cli.add_commands(profiles_cmds.app)
    assert cli.main(["profiles", "keys"]) == 0
    assert capsys.readouterr().out == profile_reference()


@pytest.mark.parametrize("text, where, reason", [
    ("seed = -1", "seed", f"must be in 0..{MAX_SEED} (2**63-1), got -1"),
    ("[engine]\nsimilarity_threshold = 0", "engine.similarity_threshold", "must be in (0, 1], got 0.0"),
    ("[engine]\nmax_skips = 0", "engine.max_skips", "must be >= 1, got 0"),
    ("[model]\nmotion_heads = 0", "model.motion_heads", "must be >= 1, got 0"),
    ("[model]\nweights_seed = 9223372036854775808", "model.weights_seed", f"must be in 0..{MAX_SEED} (2**63-1), got {MAX_SEED + 1}"),
    ("noise = \"warm\"", "noise", "must be one of fixed, fresh, got 'warm'"),
    ("strength = 1.5", "strength", "must be in (0, 1], got 1.5"),
    ("[[model.loras]]\nscale = 1", "model.loras[0].source", "missing"),
    ("model = 3", "model", "expected table, got int 3"),
    ("t_index_list = [32, \"45\"]", "t_index_list[1]", "expected integer, got str '45'"),
    ("trigger_words = [\"\"]", "trigger_words[0]", "must be a non-empty string"),
])
def test_rules_from_field_metadata_name_field_and_range(tmp_path, text, where, reason):
    data = tomllib.loads('prompt = "a portrait"\n' + text)
    with pytest.raises(ProfileError) as exc:
        parse_profile(data, tmp_path / "p.toml", "p")
    assert str(exc.value) == f"{tmp_path / 'p.toml'}: field '{where}': {reason}"


def test_a_new_field_is_parsed_checked_and_documented_from_its_declaration_alone():
    """What adding a profile field costs: the declaration. Here on a stand-in table."""

    @dataclasses.dataclass(frozen=True)
    class Table:
        fps: float = setting(30.0, range=(0.0, 240.0), open_low=True, help="frames per second")
        mode: str = setting("fast", choices=("fast", "slow"))
        tags: tuple[str, ...] = setting(())
        where: Path | None = setting(None, toml=False)

    assert build(Table, {"fps": 60, "tags": ["a"]}) == Table(fps=60.0, tags=("a",))
    assert isinstance(build(Table, {"fps": 60}).fps, float)
    with pytest.raises(SchemaProblem, match=r"field 'fps': must be in \(0, 240\], got 0"):
        build(Table, {"fps": 0})
    with pytest.raises(SchemaProblem, match="field 'mode': must be one of fast, slow"):
        build(Table, {"mode": "medium"})
    with pytest.raises(SchemaProblem, match=r"field 'where': unknown key \(known keys: fps, mode, tags\)"):
        build(Table, {"where": "/tmp"})
    with pytest.raises(SchemaProblem, match="field 'fps': expected integer or number, got true/false"):
        build(Table, {"fps": True})
    assert reference(Table)[0] == "fps (integer or number, default 30.0; in (0, 240]): frames per second"
