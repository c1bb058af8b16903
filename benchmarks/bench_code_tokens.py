"""Tokens per answer in each code language: CadQuery, OpenECAD v2 and compact.

Usage: python benchmarks/bench_code_tokens.py [--models 500] [--seed 0] [--qwen PATH]

For N synthetic models (the pipeline's default data) each language's answer, the chat wrapper
around the code as convert writes it, is tokenised by
- the tiny base's tokenizer (`cadvlm.model.tiny.train_tokenizer`, vocabulary size from params.yaml
  `model.tiny.vocab_size`), trained on that language's N answers, as the train stage trains it on
  its train split's answers (the prompts it adds are the same for every language and left out);
- a Qwen2 tokenizer (the language model under cadrille and Qwen2-VL bases; Qwen2 and Qwen2.5 share
  one vocabulary), when one is on this machine: --qwen (a tokenizer.json or a folder with one),
  else the Hugging Face cache, read offline. The table says when there is none.

Prints, per language and tokenizer: tokens per answer (mean, median, 95th percentile, max) and
characters per answer. Models a writer refuses are counted per language.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _model(args):
    from cadvlm.synth import generate_model

    index, seed = args
    return generate_model(index, seed=seed)


def models(n: int, seed: int) -> list:
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        return list(pool.map(_model, [(i, seed) for i in range(n)], chunksize=8))


def answers(ms: list) -> tuple[dict, dict]:
    """{language: [answer]} and {language: Counter of refusals by reason}."""
    from cadvlm.cad.model import CADError
    from cadvlm.codec.answer import wrap_answer
    from cadvlm.codec.cadquery_writer import write_cadquery
    from cadvlm.codec.compact import write_compact
    from cadvlm.codec.openecad_writer import write_code

    writers = {"cadquery": write_cadquery, "openecad": write_code, "compact": write_compact}
    out, refused = {k: [] for k in writers}, {k: Counter() for k in writers}
    for m in ms:
        for name, write in writers.items():
            try:
                out[name].append(wrap_answer(write(m)))
            except CADError as exc:
                refused[name][exc.reason] += 1
    return out, refused


def tiny_vocab_size() -> int:
    from cadvlm.model.tiny import TINY_DEFAULTS
    from cadvlm.params import load_params

    try:
        return int(load_params(ROOT / "params.yaml")["model"]["tiny"]["vocab_size"])
    except (OSError, KeyError, TypeError):
        return int(TINY_DEFAULTS["vocab_size"])


def find_qwen(path: str | None) -> Path | None:
    """A Qwen2-family tokenizer.json: the one named, else one in the Hugging Face cache."""
    if path:
        p = Path(path)
        return p / "tokenizer.json" if p.is_dir() else p
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hits = sorted(glob.glob(str(home / "hub" / "models--Qwen--Qwen2*" / "snapshots" / "*" / "tokenizer.json")))
    return Path(hits[0]) if hits else None


def lengths(texts: list[str], encode) -> list[int]:
    return [len(encode(t)) for t in texts]


def row(language: str, tokenizer: str, counts: list[int], texts: list[str]) -> str:
    counts_sorted = sorted(counts)
    p95 = counts_sorted[min(len(counts) - 1, int(0.95 * len(counts)))]
    chars = statistics.mean(len(t) for t in texts)
    return (f"{language:<9} {tokenizer:<16} {statistics.mean(counts):>8.1f} {statistics.median(counts):>8.1f} "
            f"{p95:>6} {max(counts):>6} {chars:>9.0f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--qwen", help="a Qwen2 tokenizer.json, or a folder holding one (default: the HF cache)")
    args = p.parse_args(argv)

    from cadvlm.model.tiny import train_tokenizer

    texts, refused = answers(models(args.models, args.seed))
    vocab = tiny_vocab_size()
    qwen_path = find_qwen(args.qwen)
    qwen = None
    if qwen_path is not None and qwen_path.is_file():
        from tokenizers import Tokenizer

        qwen = Tokenizer.from_file(str(qwen_path))

    print(f"{args.models} synthetic models (seed {args.seed}); answers as convert writes them (wrapper + code)")
    print(f"{'language':<9} {'tokenizer':<16} {'mean':>8} {'median':>8} {'p95':>6} {'max':>6} {'chars':>9}")
    for language, answers_ in texts.items():
        tiny = train_tokenizer(answers_, vocab)
        counts = lengths(answers_, lambda t: tiny(t, add_special_tokens=False)["input_ids"])
        print(row(language, f"tiny ({vocab})", counts, answers_))
        if qwen is not None:
            counts = lengths(answers_, lambda t: qwen.encode(t, add_special_tokens=False).ids)
            print(row(language, "Qwen2", counts, answers_))
    if qwen is None:
        print("Qwen2 tokenizer: none on this machine (pass --qwen PATH to a tokenizer.json; "
              f"looked in {qwen_path or 'the Hugging Face cache'})")
    else:
        print(f"Qwen2 tokenizer: {qwen_path}")
    for language, reasons in refused.items():
        if reasons:
            print(f"{language}: {sum(reasons.values())} models not written: {dict(reasons)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
