"""One spelling of engine precision: every --dtype (and a profile's engine.dtype) takes fp16/float16/half,
bf16/bfloat16 and fp32/float32/float, and refuses anything else in one line."""

from __future__ import annotations

import pytest

from l2d_obs import cli
from l2d_obs.dtypes import DTYPES, parse_dtype
from l2d_obs.errors import ConfigError
from l2d_obs.profiles import load_profile_file


@pytest.mark.parametrize(
    "spelling, canonical",
    [("fp16", "fp16"), ("float16", "fp16"), ("half", "fp16"), ("FP16", "fp16"), ("torch.float16", "fp16"),
     ("bf16", "bf16"), ("bfloat16", "bf16"),
     ("fp32", "fp32"), ("float32", "fp32"), ("float", "fp32"), (" Float32 ", "fp32"), (None, None)],
)  # fmt: skip
def test_every_spelling_gives_the_one_name(spelling, canonical):
    assert parse_dtype(spelling) == canonical
    assert canonical is None or canonical in DTYPES


@pytest.mark.parametrize("bad", ["int8", "fp8", "double", "", "16"])
def test_anything_else_is_one_line_naming_the_option(bad):
    with pytest.raises(ConfigError) as exc:
        parse_dtype(bad, "--dtype")
    message = str(exc.value)
    assert "\n" not in message and message.startswith("--dtype: unknown precision")
    assert "fp16" in message and "bf16" in message and "fp32" in message


@pytest.mark.parametrize(
    "args",
    [["render", "in.avi", "out.avi"], ["bench", "--quick"], ["eval", "in.avi"]],
    ids=["render", "bench", "eval"],
)
def test_commands_refuse_an_unknown_dtype_before_any_work(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*args, "--dtype", "int8"]) == ConfigError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.startswith("l2d-obs: error: --dtype: unknown precision 'int8'") and len(err.splitlines()) == 1


def test_the_engine_takes_every_spelling():
    torch = pytest.importorskip("torch")
    from l2d_obs.engine.factory import pick_dtype

    cpu = torch.device("cpu")
    for spelling, expected in (("half", torch.float16), ("bfloat16", torch.bfloat16), ("float", torch.float32)):
        assert pick_dtype(cpu, parse_dtype(spelling)) == expected


def test_a_profile_may_spell_it_either_way(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('prompt = "x"\n[model]\nkind = "tiny"\n[engine]\ndtype = "half"\n')
    assert load_profile_file(path).engine.dtype == "fp16"
    path.write_text('prompt = "x"\n[model]\nkind = "tiny"\n[engine]\ndtype = "int4"\n')
    with pytest.raises(ConfigError) as exc:
        load_profile_file(path)
    assert "engine.dtype" in str(exc.value) and "int4" in str(exc.value)
