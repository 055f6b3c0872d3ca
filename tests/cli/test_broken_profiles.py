"""A broken .toml in the user profiles folder is named in one line and skipped: `profiles list`,
`models list` and `models verify` still show every other profile."""

from __future__ import annotations

import pytest

from l2d_obs import cli
from l2d_obs.profiles import available_profiles

BROKEN = {
    "bad-toml": 'prompt = "x\n',  # not valid TOML
    "bad-key": 'prompt = "x"\nstrenght = 0.5\n',  # an unknown key
    "bad-source": 'prompt = "x"\n[model]\nkind = "sd15"\nbase = "hf:onlyowner"\n',  # an invalid source string
}


@pytest.fixture(params=sorted(BROKEN))
def user_folder(request, tmp_path, monkeypatch):
    folder = tmp_path / "user-profiles"
    folder.mkdir()
    (folder / f"{request.param}.toml").write_text(BROKEN[request.param])
    (folder / "mine.toml").write_text('display_name = "Mine"\nprompt = "x"\n[model]\nkind = "tiny"\n')
    monkeypatch.setenv("L2D_PROFILES_DIR", str(folder))
    monkeypatch.setenv("L2D_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder / f"{request.param}.toml"


def others() -> list[str]:
    return [name for name, path in available_profiles().items() if "user-profiles" not in str(path) or name == "mine"]


def lines_naming(text: str, broken) -> list[str]:
    return [line for line in text.splitlines() if str(broken) in line]


def test_profiles_list_shows_the_others_and_names_the_broken_file(user_folder, capsys):
    assert cli.main(["profiles", "list"]) == 0
    out, err = capsys.readouterr()
    assert len(lines_naming(out + err, user_folder)) == 1
    for name in others():
        assert any(line.startswith(name) for line in out.splitlines()), name


def test_models_list_shows_the_others_and_names_the_broken_file(user_folder, capsys):
    assert cli.main(["models", "list"]) == 0
    out, err = capsys.readouterr()
    assert len(lines_naming(err, user_folder)) == 1 and not lines_naming(out, user_folder)
    assert "Traceback" not in out + err
    for name in others():
        assert f"\n{name}: " in out, name


def test_models_verify_checks_the_others_and_counts_the_broken_file(user_folder, capsys):
    code = cli.main(["models", "verify"])
    out, err = capsys.readouterr()
    assert code != 0  # the broken profile is a problem (and the shipped sd15 models are not downloaded)
    assert len(lines_naming(err, user_folder)) == 1
    checked = {line.split(":")[0] for line in (out + err).splitlines() if not line.startswith(("l2d-obs", "skipped"))}
    sd15 = [n for n in others() if n not in ("mine", "tiny")]  # the tiny ones need no files
    assert set(sd15) <= checked
