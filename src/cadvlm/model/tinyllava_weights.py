"""Where each TinyLLaVA tensor goes in the LLaVA model, and the streamed writing of the new shards.

Split from cadvlm.model.import_tinyllava (which decides *what* the converted model is) because this
part only moves bytes: it maps names (TinyLLaVA's module paths -> LLaVA's, OpenELM's fused matrices
-> row blocks), checks every shape against the LLaVA model built on the meta device, and writes one
output shard per input shard. A tensor that is only renamed, or a row block of one, is a contiguous
byte range of its file and is copied file to file without entering memory; only the few tensors that
change (the embedding and lm_head growing by a row, Gemma's projector scale, a dtype cast) are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from cadvlm.model.safetensors_stream import DTYPES, StreamWriter, TensorInfo, read_tensor
from cadvlm.model.tinyllava_format import TinyLlavaFormatError

HEAD_DROPPED = "SigLIP pooling head (neither TinyLLaVA nor LLaVA uses it)"
TIED_DROPPED = "lm_head.weight (tied to the input embedding)"
EMBED_NAMES = ("language_model.model.embed_tokens.weight",  # transformers decoders
               "language_model.transformer.token_embeddings.weight")  # OpenELM (tinyllava/model/llm/openelm.py)
GROW = {"model.language_model.embed_tokens.weight", "lm_head.weight", "lm_head.bias"}
SCALED = {"model.multi_modal_projector.linear_2.weight", "model.multi_modal_projector.linear_2.bias"}

Piece = tuple[str, TensorInfo]  # (LLaVA name, the source bytes: a whole tensor or a block of its rows)


def rows_of(info: TensorInfo, start: int, stop: int) -> TensorInfo:
    """Rows [start, stop) of a C-order tensor: a contiguous byte range of the same file."""
    per_row = info.nbytes // info.shape[0]
    return TensorInfo(f"{info.name}[{start}:{stop}]", info.dtype, (stop - start,) + info.shape[1:],
                      info.begin + start * per_row, info.begin + stop * per_row)


def openelm_pieces(name: str, info: TensorInfo, text: dict) -> list[Piece] | None:
    """An OpenELM tensor as HF-style decoder tensors (cadvlm.model.openelm), None when not OpenELM's.

    Names and layouts from tinyllava/model/llm/openelm.py: `qkv_proj` rows are the query heads, then the
    key heads, then the value heads; `proj_1` rows are [y1 | y2] with silu(y1) * y2, i.e. gate then up.
    """
    pre = "language_model.transformer."
    if not name.startswith(pre):
        return None
    rest = name[len(pre):]
    lm = "language_model.model."
    if rest == "token_embeddings.weight":
        return [(lm + "embed_tokens.weight", info)]
    if rest == "norm.weight":
        return [(lm + "norm.weight", info)]
    parts = rest.split(".")
    if parts[0] != "layers" or len(parts) < 4:
        return [(lm + rest, info)]  # unknown: fails later with the name shown
    i, sub = int(parts[1]), ".".join(parts[2:])
    layer = f"{lm}layers.{i}."
    hd = int(text["head_dim"])
    q, kv, ffn = (text["layer_num_attention_heads"][i], text["layer_num_key_value_heads"][i],
                  text["layer_intermediate_sizes"][i])
    simple = {"attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
              "attn.q_norm.weight": "self_attn.q_norm.weight", "attn.k_norm.weight": "self_attn.k_norm.weight",
              "attn.out_proj.weight": "self_attn.o_proj.weight", "ffn.proj_2.weight": "mlp.down_proj.weight"}
    if sub in simple:
        return [(layer + simple[sub], info)]
    if sub == "attn.qkv_proj.weight":
        a, b, c = q * hd, (q + kv) * hd, (q + 2 * kv) * hd
        if info.shape[0] != c:
            raise TinyLlavaFormatError(f"{name}: {info.shape[0]} rows, expected ({q} + 2 x {kv}) heads x {hd}")
        return [(layer + "self_attn.q_proj.weight", rows_of(info, 0, a)),
                (layer + "self_attn.k_proj.weight", rows_of(info, a, b)),
                (layer + "self_attn.v_proj.weight", rows_of(info, b, c))]
    if sub == "ffn.proj_1.weight":
        if info.shape[0] != 2 * ffn:
            raise TinyLlavaFormatError(f"{name}: {info.shape[0]} rows, expected 2 x {ffn}")
        return [(layer + "mlp.gate_proj.weight", rows_of(info, 0, ffn)),
                (layer + "mlp.up_proj.weight", rows_of(info, ffn, 2 * ffn))]
    return [(layer + sub, info)]


def _candidates(name: str) -> list[str]:
    """LLaVA names a (TinyLLaVA-standard) tensor name may take, in order of preference."""
    if name.startswith("language_model.model."):
        return ["model.language_model." + name[len("language_model.model."):]]
    if name.startswith("language_model.lm_head."):
        return [name[len("language_model."):]]
    if name.startswith("vision_tower._vision_tower."):
        rest = name[len("vision_tower._vision_tower."):]
        # transformers 5 keeps the tower's own `vision_model.` level or not, depending on the class
        return ["model.vision_tower." + rest] + (
            ["model.vision_tower." + rest[len("vision_model."):]] if rest.startswith("vision_model.") else [])
    if name.startswith("connector._connector."):
        idx, _, rest = name[len("connector._connector."):].partition(".")
        return [f"model.multi_modal_projector.linear_{ {'0': 1, '2': 2}.get(idx, idx)}.{rest}"]
    return []


def plan(where: dict[str, tuple[Path, TensorInfo]], expected: dict[str, tuple[int, ...]], tied_name: str | None,
         openelm_text: dict | None) -> tuple[dict[str, list[Piece]], dict[str, list[str]]]:
    """Source name -> the LLaVA pieces it becomes; and the source names dropped, by reason.

    Every LLaVA parameter must come from exactly one piece (the tied lm_head from none)."""
    pieces: dict[str, list[Piece]] = {}
    dropped: dict[str, list[str]] = {}
    for name, (_, info) in where.items():
        std = (openelm_pieces(name, info, openelm_text) if openelm_text else None) or [(name, info)]
        out: list[Piece] = []
        for std_name, part in std:
            cands = _candidates(std_name)
            hit = next((c for c in cands if c in expected), None)
            if hit == tied_name and hit is not None:
                dropped.setdefault(TIED_DROPPED, []).append(name)
            elif hit is not None:
                out.append((hit, part))
            elif name.startswith("vision_tower.") and ".head." in name:
                dropped.setdefault(HEAD_DROPPED, []).append(name)
            else:
                raise TinyLlavaFormatError(f"weight {name} has no place in the LLaVA model (tried {cands or 'nothing'})")
        if out:
            pieces[name] = out
    produced = [t for ps in pieces.values() for t, _ in ps]
    twice = sorted({t for t in produced if produced.count(t) > 1})
    missing = sorted(set(expected) - set(produced) - ({tied_name} if tied_name else set()))
    if twice or missing:
        raise TinyLlavaFormatError(
            "the checkpoint does not fill the LLaVA model: " + (f"missing {', '.join(missing[:8])}"
                                                                + (f" and {len(missing) - 8} more" if len(missing) > 8
                                                                   else "") if missing else "")
            + (f"; given twice: {', '.join(twice[:8])}" if twice else ""))
    return pieces, dropped


@dataclass
class Rewrite:
    """How tensors change on the way: rows appended (mean), Gemma's projector scale, the output dtype."""

    expected: dict[str, tuple[int, ...]]
    src_rows: int
    rows: int
    embed_scale: float
    out_dtype: torch.dtype

    def shape(self, target: str, info: TensorInfo) -> tuple[int, ...]:
        shape = info.shape
        if target in GROW and shape[0] == self.src_rows:
            shape = (self.rows,) + tuple(shape[1:])
        if shape != self.expected[target]:
            raise TinyLlavaFormatError(f"{info.name}: shape {info.shape} does not fit {target} {self.expected[target]}")
        return shape

    def unchanged(self, target: str, info: TensorInfo) -> bool:
        return (target not in GROW and not (target in SCALED and self.embed_scale != 1.0)
                and DTYPES[info.dtype] == self.out_dtype)

    def tensor(self, target: str, path: Path, info: TensorInfo) -> torch.Tensor:
        t = read_tensor(path, info)
        if target in SCALED and self.embed_scale != 1.0:
            t = (t.float() * self.embed_scale).to(t.dtype)
        if target in GROW and self.rows > t.shape[0]:
            mean = t.float().mean(dim=0, keepdim=True).to(t.dtype)
            t = torch.cat([t, mean.expand(self.rows - t.shape[0], *t.shape[1:])])
        return t.to(self.out_dtype)


def write_shards(work: Path, files: tuple[Path, ...], where: dict[str, tuple[Path, TensorInfo]],
                 pieces: dict[str, list[Piece]], rw: Rewrite, log=print) -> tuple[list[str], int]:
    """One output shard per input shard that keeps anything (+ the index when several); -> (names, bytes)."""
    files = tuple(p for p in files if any(where[n][0] == p for n in pieces))
    weight_map, total = {}, 0
    for i, path in enumerate(files, 1):
        fname = "model.safetensors" if len(files) == 1 else f"model-{i:05d}-of-{len(files):05d}.safetensors"
        names = sorted((n for n in pieces if where[n][0] == path), key=lambda n: where[n][1].begin)
        todo = [(t, part) for n in names for t, part in pieces[n]]
        writer = StreamWriter(work / fname, [(t, rw.out_dtype, rw.shape(t, part)) for t, part in todo])
        try:
            for target, part in todo:
                if rw.unchanged(target, part):
                    writer.copy_from(target, path, part)  # renamed only: copied inside the kernel
                else:
                    writer.write(target, rw.tensor(target, path, part))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        total += writer.total_bytes
        weight_map.update({t: fname for t, _ in todo})
        log(f"wrote {fname}: {len(todo)} tensors, {writer.total_bytes / 2**30:.2f} GiB")
    if len(files) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (work / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return sorted(set(weight_map.values())), total
