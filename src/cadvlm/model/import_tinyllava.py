"""TinyLLaVA_Factory checkpoint (OpenECAD's format) -> native LLaVA folder, streamed shard by shard.

Why: OpenECAD's models are TinyLLaVA checkpoints, which transformers cannot load without
TinyLLaVA's own code. The pipeline loads everything through `AutoProcessor` /
`AutoModelForImageTextToText` (cadvlm.model.load), so we rewrite the checkpoint once as a
`LlavaForConditionalGeneration` + `LlavaProcessor` folder whose forward pass, prompt and tokens are
TinyLLaVA's, exactly (tests/test_import_tinyllava.py checks logits and greedy tokens per family):

- weights are renamed (`language_model.model.*` -> the LLaVA decoder, `vision_tower._vision_tower.
  vision_model.*` -> the LLaVA tower, `connector._connector.0/2` -> `multi_modal_projector.linear_1/2`,
  lm_head as is or tied), the SigLIP pooling head (unused by both) dropped;
- LLaVA `vision_feature_layer` = TinyLLaVA's (-2) and strategy "default" (drops token 0, TinyLLaVA's
  "patch"); the projector's GELU is the exact one, like TinyLLaVA's `nn.GELU()`;
- Gemma: transformers 4.40 (TinyLLaVA's pin) multiplied *all* input embeddings, image features too, by
  sqrt(hidden) inside GemmaModel.forward; transformers 5 scales inside the embedding layer, so text only.
  The factor is folded into `linear_2` (weight and bias) so image features arrive scaled as before;
- `<image>` becomes a special token; when the embedding has no free row, one row is appended to the
  embedding (and to an untied lm_head) holding the mean of the others: its logit is then the mean of
  the logits, never the argmax (unless all are equal) and at most 1/V of the probability mass, so the
  model's behaviour over the original vocabulary is unchanged (J. Hewitt, "Initializing new word
  embeddings for pretrained language models", 2021, for the mean);
- Phi's lm_head has a bias that LLaVA's lacks: such checkpoints get cadvlm.model.llava_bias's subclass;
- OpenELM (OpenECAD 0.89B / 0.55B) has no transformers class: its decoder becomes cadvlm.model.openelm's
  native one (`qkv_proj` and `proj_1` split into q/k/v and gate/up row blocks, cadvlm.model.tinyllava_weights),
  in that module's LLaVA (model_type `llava_openelm`);
- for these two, the module defining the classes is copied into the folder and named in config.json's
  `auto_map` (cadvlm.model.remote_code), so the folder also loads with plain transformers and
  `trust_remote_code=True`, in a process that never imports cadvlm;
- the chat template writes TinyLLaVA's prompt for the family (system prompt, `USER: <image>\\n...
  ASSISTANT: ...` + EOS); the converter checks on probe conversations that the processor's token ids are
  TinyLLaVA's chunked ids (cadvlm.model.tinyllava_format.tinyllava_input_ids) and refuses otherwise.

Memory: tensors are read one at a time with plain file reads and written straight into the output
shard (cadvlm.model.safetensors_stream), so the peak is near the largest tensor, not the model
(benchmarks/bench_import.py measures it on a real-size synthetic checkpoint).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cadvlm.data.conversations import to_messages
from cadvlm.model.remote_code import write_remote_code
from cadvlm.model.safetensors_stream import DTYPES, TensorInfo, read_header
from cadvlm.model.tinyllava_format import (
    DEFAULT_TEMPLATE,
    IMAGE_TAG,
    IMAGE_TOKEN_INDEX,
    SPACINGS,
    SYSTEM_PROMPTS,
    TEMPLATE_EOS,
    TemplateSpacing,
    TinyLlavaCheckpoint,
    TinyLlavaFormatError,
    adds_bos,
    chat_template,
    openelm_text_config,
    read_checkpoint,
    tinyllava_input_ids,
    tinyllava_prompt,
)
from cadvlm.model.tinyllava_weights import EMBED_NAMES, Rewrite, plan, write_shards

REPORT = "cadvlm_import.json"
# Conversations the converter tokenises both ways (TinyLLaVA's chunks, the processor's whole text).
PROBES = (
    (("This image is a view of a 3D model from a certain angle. Please try to use Python-style APIs to render this "
      "model."),  # OpenECAD's prompt (OpenECAD_TinyLLaVA.patch, eval.py)
     ("Of course, here are the codes:\n```python\nSketchPlane0 = add_sketchplane(\n\torigin= [0., 0., 0.], "
      "normal= [0., 0., 1.], x_axis= [1., 0., 0.])\nLoops0 = []\n```")),
    ("Write OpenECAD-style CAD code that produces the solid drawn in four views.", "size 191 76 116\nend"),
    ("What is shown?", " 12 ok"),
)
OPENAI_CLIP_MEAN, OPENAI_CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


@dataclass
class ImportReport:
    """What the conversion did, written to DST/cadvlm_import.json."""

    source: str
    family: str
    template: str
    system: str
    eos: str
    spacing: dict
    image_token_id: int
    vocab_rows: list  # [source rows, converted rows]
    tied_embeddings: bool
    lm_head_bias: bool
    projector_scale: float
    architecture: str
    dtype: str
    dropped: dict = field(default_factory=dict)  # reason -> source tensor names
    files: list = field(default_factory=list)
    remote_code: list = field(default_factory=list)  # the .py files config.json's auto_map names
    bytes_written: int = 0
    seconds: float = 0.0


# ----------------------------------------------------------------------------- tokenizer and processor
def load_tokenizer(folder: Path, ckpt: TinyLlavaCheckpoint):
    """The checkpoint's tokenizer, offline, with TinyLLaVA's post-load (tinyllava/model/llm/*.py)."""
    from transformers import AutoTokenizer

    files = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
    if not any((folder / f).is_file() for f in files):
        hub = ckpt.raw.get("tokenizer_name_or_path") or ckpt.raw.get("llm_model_name_or_path")
        raise TinyLlavaFormatError(
            f"{folder}: no tokenizer files. TinyLLaVA would load them from '{hub}' on the hub; we never download: "
            "copy that tokenizer's files into the folder, or pass --tokenizer DIR")
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # it reads config.json and warns that "tinyllava" is no known model type
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, padding_side="right",
                                            model_max_length=ckpt.model_max_length)
    except Exception as exc:  # noqa: BLE001  tokenizer loading raises many types; all mean "cannot read it"
        hint = ""
        if (folder / "tokenizer.model").is_file() and not (folder / "tokenizer.json").is_file():
            hint = (" The folder has only a sentencepiece tokenizer.model: reading it needs "
                    "`pip install sentencepiece protobuf`, or pass --tokenizer DIR with a tokenizer.json "
                    "(the base LLM's folder).")
        raise TinyLlavaFormatError(f"{folder}: cannot load the tokenizer offline ({type(exc).__name__}: {exc}).{hint}")
    finally:
        hf_logging.set_verbosity(level)
    if ckpt.family == "qwen2":
        if tok.unk_token is None and tok.pad_token is not None:
            tok.unk_token = tok.pad_token  # tinyllava/model/llm/qwen2.py
    elif tok.pad_token is None and tok.unk_token is not None:
        tok.pad_token = tok.unk_token  # phi.py, gemma.py, tinyllama.py
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def image_processor(ckpt: TinyLlavaCheckpoint):
    """TinyLLaVA's preprocessing: the tower's own processor, no padding for `square` (image_preprocess.py).

    TinyLLaVA loads it from the vision hub id, which we never fetch; its settings are those of the
    published processors: SigLIP resizes to the tower's size with bicubic and normalises with mean = std
    = 0.5; CLIP resizes the shortest edge with bicubic, centre-crops and uses OpenAI's mean/std. The PIL
    backend resizes as transformers 4.40's processors did (through PIL). `pad` pastes the picture on a
    square of the mean colour first, as ImagePreprocess.expand2square does.
    """
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    s = int(ckpt.vision_config.get("image_size", 384))
    if ckpt.vision == "siglip":
        kw = {"size": {"height": s, "width": s}, "do_center_crop": False, "image_mean": [0.5] * 3,
              "image_std": [0.5] * 3}
    else:
        kw = {"size": {"shortest_edge": s}, "crop_size": {"height": s, "width": s}, "do_center_crop": True,
              "image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD}
    return LlavaImageProcessorPil(do_pad=ckpt.image_aspect_ratio == "pad", resample=3, rescale_factor=1 / 255, **kw)


def add_image_token(tok) -> int:
    """`<image>` as a special token (its own id, never split, never merged with text)."""
    from tokenizers import AddedToken

    if IMAGE_TAG not in tok.get_vocab():
        tok.add_tokens([AddedToken(IMAGE_TAG, special=True, normalized=False)], special_tokens=True)
    return tok.convert_tokens_to_ids(IMAGE_TAG)


def _template_ids(tok, template: str, image_id: int, question: str, answer: str | None) -> list[int]:
    text = tok.apply_chat_template(to_messages(question, answer), chat_template=template, tokenize=False,
                                   add_generation_prompt=answer is None)
    ids = tok(text, add_special_tokens=False).input_ids
    return [IMAGE_TOKEN_INDEX if i == image_id else i for i in ids]


def choose_spacing(tok, reference: list[tuple[list[int], list[int]]], system: str, eos: str,
                   image_id: int) -> tuple[TemplateSpacing, str]:
    """The first template spacing whose processor ids equal TinyLLaVA's on every probe (prompt alone and
    with its answer), and whose prompt ids are a prefix of the full ids (the training loss needs that)."""
    bos = tok.bos_token if adds_bos(tok) else None
    first_diff = ""
    for spacing in SPACINGS:
        tpl = chat_template(system, eos, bos, spacing)
        ok = True
        for (q, a), (ref_prompt, ref_full) in zip(PROBES, reference):
            got_prompt = _template_ids(tok, tpl, image_id, q, None)
            got_full = _template_ids(tok, tpl, image_id, q, a)
            if got_prompt != ref_prompt or got_full != ref_full or got_full[:len(got_prompt)] != got_prompt:
                ok = False
                if not first_diff:
                    first_diff = _describe_diff(tok, ref_full, got_full)
                break
        if ok:
            return spacing, tpl
    raise TinyLlavaFormatError(
        "the tokenizer does not give TinyLLaVA's token ids for the prompt with any chat-template spacing, so a "
        f"converted model would not see what it was trained on. First difference: {first_diff}")


def _describe_diff(tok, ref: list[int], got: list[int]) -> str:
    i = next((k for k, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
    def show(ids):
        return [("<image>" if t == IMAGE_TOKEN_INDEX else tok.convert_ids_to_tokens(t)) for t in ids]

    return f"at token {i}: TinyLLaVA {show(ref[max(0, i - 2):i + 3])} vs processor {show(got[max(0, i - 2):i + 3])}"


# ----------------------------------------------------------------------------- config and weight plan
def build_config(ckpt: TinyLlavaCheckpoint, rows: int, image_id: int, tied: bool, bias: bool, dtype: torch.dtype,
                 tok, eos_id: int, openelm_text: dict | None = None):
    """The LLaVA config: TinyLLaVA's text and vision configs (OpenELM's rewritten for cadvlm.model.openelm),
    with hub ids removed and the vocabulary sized."""
    from transformers import LlavaConfig

    from cadvlm.model.llava_bias import LlavaLMBiasConfig
    from cadvlm.model.openelm import LlavaOpenELMConfig  # importing it registers the OpenELM decoder too

    text = {k: v for k, v in (openelm_text or ckpt.text_config).items()
            if k not in ("_name_or_path", "architectures", "torch_dtype")}
    text.update(vocab_size=rows, tie_word_embeddings=tied, pad_token_id=tok.pad_token_id, eos_token_id=eos_id,
                bos_token_id=tok.bos_token_id)
    vision = {k: v for k, v in ckpt.vision_config.items()
              if k not in ("_name_or_path", "architectures", "torch_dtype", "model_name_or_path", "model_name_or_path2")}
    if ckpt.vision == "siglip":
        vision["vision_use_head"] = False  # LLaVA reads hidden states; an unused pooling head breaks DDP
    patches = (int(vision["image_size"]) // int(vision["patch_size"])) ** 2 + (1 if ckpt.vision == "clip" else 0)
    cls = LlavaLMBiasConfig if bias else LlavaOpenELMConfig if openelm_text else LlavaConfig
    cfg = cls(text_config=text, vision_config=vision, image_token_index=image_id,
              image_seq_length=patches - (1 if ckpt.select_strategy == "patch" else 0),
              vision_feature_layer=ckpt.vision_feature_layer,
              vision_feature_select_strategy=ckpt.llava_select_strategy, projector_hidden_act="gelu",
              multimodal_projector_bias=True, tie_word_embeddings=tied)
    cfg.architectures = [model_class(cfg).__name__]
    cfg.dtype = dtype
    return cfg


def model_class(cfg) -> type:
    """The LLaVA class the config names: stock, or one of ours (Phi's lm_head bias, OpenELM)."""
    from transformers import LlavaForConditionalGeneration

    from cadvlm.model.llava_bias import LlavaLMBiasConfig, LlavaLMBiasForConditionalGeneration
    from cadvlm.model.openelm import LlavaOpenELMConfig, LlavaOpenELMForConditionalGeneration

    return {LlavaLMBiasConfig: LlavaLMBiasForConditionalGeneration,
            LlavaOpenELMConfig: LlavaOpenELMForConditionalGeneration}.get(type(cfg), LlavaForConditionalGeneration)


def _expected(cfg) -> tuple[dict[str, tuple[int, ...]], float, str | None]:
    """Parameter names and shapes of the LLaVA model (built on the meta device: no memory), the
    embedding's built-in scale, and the tied lm_head name (None when untied)."""
    with torch.device("meta"):
        model = model_class(cfg)(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    scale = float(getattr(model.get_input_embeddings(), "scalar_embed_scale", 1.0))
    tied = "lm_head.weight" if cfg.tie_word_embeddings else None
    return shapes, scale, tied


# ----------------------------------------------------------------------------- the conversion
def import_tinyllava(src: str | Path, dst: str | Path, system: str = "openecad", template: str | None = None,
                     tokenizer_dir: str | Path | None = None, dtype: str | None = None, force: bool = False,
                     log=print) -> ImportReport:
    """Convert the TinyLLaVA checkpoint folder `src` into a LLaVA folder `dst`; return the report.

    system: "openecad" (OpenECAD's CAD system prompt) or "tinyllava" (TinyLLaVA's chat one); template:
    llama | gemma | phi | qwen2_base | qwen2_instruct (default: the decoder's, as TinyLLaVA trains it);
    dtype: None keeps the checkpoint's, else float32 | bfloat16 | float16.
    """
    t0 = time.time()
    src, dst = Path(src), Path(dst)
    if system not in SYSTEM_PROMPTS:
        raise TinyLlavaFormatError(f"system must be one of {sorted(SYSTEM_PROMPTS)}, not {system!r}")
    ckpt = read_checkpoint(src)
    template = template or DEFAULT_TEMPLATE[ckpt.family]
    if template not in TEMPLATE_EOS:
        raise TinyLlavaFormatError(f"template must be one of {sorted(TEMPLATE_EOS)}, not {template!r}")
    if dst.exists() and any(dst.iterdir()) and not force:
        raise TinyLlavaFormatError(f"{dst} exists and is not empty (--force replaces it)")
    if dst.resolve() == src.resolve():
        raise TinyLlavaFormatError("the destination must differ from the source")

    # Source tensors, from the headers only.
    where: dict[str, tuple[Path, TensorInfo]] = {}
    for path in ckpt.weight_files:
        for name, info in read_header(path)[0].items():
            if name in where:
                raise TinyLlavaFormatError(f"{name} is in both {where[name][0].name} and {path.name}")
            where[name] = (path, info)
    embed_name = next((n for n in EMBED_NAMES if n in where), None)
    if embed_name is None:
        raise TinyLlavaFormatError(f"{src}: no {' or '.join(EMBED_NAMES)}; not TinyLLaVA's weight layout")
    src_rows = where[embed_name][1].shape[0]
    out_dtype = getattr(torch, dtype) if dtype else DTYPES[where[embed_name][1].dtype]
    if out_dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TinyLlavaFormatError(f"dtype must be float32, bfloat16 or float16, not {dtype!r}")
    openelm_text = (openelm_text_config(ckpt.text_config, {n: i.shape for n, (_, i) in where.items()})
                    if ckpt.family == "openelm" else None)

    # Tokenizer: TinyLLaVA's ids for the probes first (the original tokenizer), then the image token.
    tok = load_tokenizer(Path(tokenizer_dir) if tokenizer_dir else src, ckpt)
    eos = TEMPLATE_EOS[template]
    eos_id = tok.convert_tokens_to_ids(eos)
    if eos_id is None or tok.convert_ids_to_tokens(eos_id) != eos:
        raise TinyLlavaFormatError(f"the {template} template ends answers with {eos!r}, which this tokenizer does not "
                                   "have as one token: pick the template the model was trained with (--template)")
    sys_text = SYSTEM_PROMPTS[system]
    reference = [(tinyllava_input_ids(tok, tinyllava_prompt(sys_text, IMAGE_TAG + "\n" + q, None, eos)),
                  tinyllava_input_ids(tok, tinyllava_prompt(sys_text, IMAGE_TAG + "\n" + q, a, eos)))
                 for q, a in PROBES]
    image_id = add_image_token(tok)
    spacing, tpl = choose_spacing(tok, reference, sys_text, eos, image_id)
    rows = max(src_rows, len(tok), image_id + 1)

    # Config, expected parameters, and where every tensor goes.
    lm_bias = "language_model.lm_head.bias" in where
    has_head = "language_model.lm_head.weight" in where
    says_tied = bool((openelm_text or ckpt.text_config).get("tie_word_embeddings", ckpt.family == "gemma"))
    if not has_head and not says_tied:
        log("note: no language_model.lm_head.weight and text_config says untied: tying it to the embedding")
    tied = says_tied or not has_head
    cfg = build_config(ckpt, rows, image_id, tied, lm_bias, out_dtype, tok, eos_id, openelm_text)
    expected, embed_scale, tied_name = _expected(cfg)
    pieces, dropped = plan(where, expected, tied_name, openelm_text)

    # Write into a sibling folder, renamed into place at the end.
    work = dst.with_name(dst.name + ".importing")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        files, total = write_shards(work, ckpt.weight_files, where, pieces,
                                    Rewrite(expected, src_rows, rows, embed_scale, out_dtype), log)
        remote = write_remote_code(work, cfg, model_class(cfg))  # before config.json: it sets cfg.auto_map
        _save_processor_and_config(work, cfg, ckpt, tok, tpl, image_id, eos_id)
        report = ImportReport(
            source=str(src), family=ckpt.family, template=template, system=system, eos=eos, spacing=asdict(spacing),
            image_token_id=image_id, vocab_rows=[int(src_rows), int(rows)], tied_embeddings=tied,
            lm_head_bias=lm_bias, projector_scale=embed_scale, architecture=cfg.architectures[0],
            dtype=str(out_dtype).replace("torch.", ""), dropped=dropped, files=files, remote_code=remote,
            bytes_written=total, seconds=round(time.time() - t0, 2))
        (work / REPORT).write_text(json.dumps(asdict(report), indent=2) + "\n")
        if dst.exists():
            shutil.rmtree(dst)
        work.replace(dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _save_processor_and_config(folder: Path, cfg, ckpt: TinyLlavaCheckpoint, tok, tpl: str, image_id: int,
                               eos_id: int) -> None:
    from transformers import GenerationConfig, LlavaProcessor

    cfg.save_pretrained(folder)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=eos_id, pad_token_id=tok.pad_token_id).save_pretrained(folder)
    processor = LlavaProcessor(
        image_processor=image_processor(ckpt), tokenizer=tok, patch_size=int(ckpt.vision_config["patch_size"]),
        vision_feature_select_strategy=ckpt.llava_select_strategy, chat_template=tpl, image_token=IMAGE_TAG,
        num_additional_image_tokens=1 if ckpt.vision == "clip" else 0)
    if processor.image_token_id != image_id:
        raise TinyLlavaFormatError(f"the processor maps {IMAGE_TAG} to {processor.image_token_id}, not {image_id}")
    processor.save_pretrained(folder)
