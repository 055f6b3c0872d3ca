"""Writes CLIP tokenizer files (vocab.json, merges.txt) from OpenAI's BPE merge list.

SD1.5's tokenizer is OpenAI CLIP's: its vocabulary is fully determined by the merge list
``bpe_simple_vocab_16e6.txt.gz`` (MIT, shipped in the CLIP and open_clip packages): 256 byte symbols,
the same with an end-of-word marker, one token per merge, then the two special tokens. This is how the
files in ``l2d_obs/data/sd15/tokenizer`` were made, so single-file loading needs no download:

    python -m l2d_obs.weights.tokenizer_files PATH/TO/bpe_simple_vocab_16e6.txt.gz OUT_DIR
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

CLIP_VOCAB_SIZE = 49408
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins GPT-2/CLIP BPE uses for bytes, in byte order of the table."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    order = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:  # bytes without a printable glyph get code points from 256 upwards
            order.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_vocab(merge_lines: list[str], vocab_size: int = CLIP_VOCAB_SIZE) -> tuple[dict[str, int], list[str]]:
    """(token -> id, merges) for a CLIP vocabulary of ``vocab_size`` from the raw merge-list lines."""
    n_merges = vocab_size - 2 * 256 - len(SPECIAL_TOKENS)
    merges = [line for line in merge_lines[1 : 1 + n_merges] if line.strip()]  # line 0 is a header
    if len(merges) != n_merges:
        raise ValueError(f"merge list too short: {len(merges)} merges, need {n_merges}")
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + list(SPECIAL_TOKENS)
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} distinct tokens, expected {vocab_size}")
    return vocab, merges


def write_tokenizer_files(bpe_gz: Path, out_dir: Path, vocab_size: int = CLIP_VOCAB_SIZE) -> None:
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    vocab, merges = build_vocab(lines, vocab_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": SPECIAL_TOKENS[0], "eos_token": SPECIAL_TOKENS[1], "unk_token": SPECIAL_TOKENS[1],
               "pad_token": SPECIAL_TOKENS[1]}  # fmt: skip
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, **special}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    write_tokenizer_files(Path(sys.argv[1]), Path(sys.argv[2]))
