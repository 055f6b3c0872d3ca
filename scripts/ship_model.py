#!/usr/bin/env python3
"""Make a finished `l2d-obs train` run the package's embedded model (a maintainer's step).

    python3 scripts/ship_model.py runs/toon            # -> l2d_obs/data/models/toon/ + profiles/toon.toml
    python3 scripts/ship_model.py runs/pencil           # a LoRA run on top of an already shipped model

The run's profile is rewritten to name the shipped files with ``package:`` sources, so it works from a
source checkout and from an installed wheel alike. A LoRA run's base files must already be shipped
(ship its `run.init` first).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "l2d_obs" / "data" / "models"
PROFILES = ROOT / "profiles"
SOURCE_FIELDS = ("base", "motion", "vae", "source")


def shipped_name_of(path: Path) -> str | None:
    """'package:models/NAME/...' for a file inside an already shipped model, else None."""
    for shipped in MODELS.iterdir() if MODELS.is_dir() else ():
        run_json = shipped / "run.json"
        if not run_json.is_file():
            continue
        run_model = Path(json.loads(run_json.read_text())["run_model_dir"])
        try:
            rel = path.resolve().relative_to(run_model)
        except ValueError:
            continue
        return f"package:models/{shipped.name}/{rel.as_posix()}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the --output folder of a finished l2d-obs train run")
    parser.add_argument("--t-index-list", help="ship with these denoising steps instead of the training config's "
                        "(e.g. 43,48: inside the trained range when the run used t_jitter)")
    args = parser.parse_args(argv)
    run: Path = args.run.resolve()
    profiles = sorted(run.glob("*.toml"))
    if len(profiles) != 1 or not (run / "model").is_dir() or not (run / "train.json").is_file():
        print(f"{run}: not a finished training run (needs one profile, model/ and train.json)", file=sys.stderr)
        return 2
    profile = profiles[0]
    name = profile.stem
    target = MODELS / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(run / "model", target)
    for extra in ("train.json", "loss.csv", "loss.png"):
        shutil.copy2(run / extra, target / extra)
    (target / "run.json").write_text(json.dumps({"run_model_dir": str((run / "model").resolve())}, indent=2) + "\n")

    def rewrite(match: re.Match) -> str:
        key, value = match["key"], json.loads(match["value"])
        path = (run / value).resolve()
        try:
            rel = path.relative_to((run / "model").resolve())
            return f'{key} = "package:models/{name}/{rel.as_posix()}"'
        except ValueError:
            shipped = shipped_name_of(path)
            if shipped is None:
                raise SystemExit(f"{profile}: {key} = {value} is not inside a shipped model; ship that run first")
            return f'{key} = "{shipped}"'

    text = re.sub(r'^(?P<key>base|motion|vae|source) = (?P<value>"[^"]*")', rewrite, profile.read_text(), flags=re.M)
    if args.t_index_list:
        steps = [int(x) for x in args.t_index_list.split(",")]
        text = re.sub(r"^t_index_list = .*$", f"t_index_list = {steps}  # chosen at shipping (see the model card)", text, flags=re.M)
    text = text.replace("# Written by", f"# Shipped by scripts/ship_model.py from {run.name}/; written by", 1)
    (PROFILES / f"{name}.toml").write_text(text)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"shipped {name}: {target.relative_to(ROOT)} ({size / 1e6:.1f} MB), profiles/{name}.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
