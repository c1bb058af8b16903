"""`cadvlm import-model SRC -o DST`: a TinyLLaVA / OpenECAD checkpoint becomes a LLaVA folder for model.base.

Declaring the arguments imports nothing heavy, so `--help` is instant; the conversion itself lives in
cadvlm.model.import_tinyllava.
"""

from __future__ import annotations

import sys

SYSTEMS = ("openecad", "tinyllava")
TEMPLATES = ("llama", "gemma", "phi", "qwen2_base", "qwen2_instruct")


def add_arguments_import_model(p) -> None:
    p.description = ("Convert a TinyLLaVA_Factory checkpoint folder (OpenECAD's format: config.json with model_type "
                     "tinyllava, safetensors, tokenizer files) into a native transformers LLaVA folder, offline. "
                     "Then train, evaluate and predict with `-S model.base=DST`.")
    p.add_argument("src", help="TinyLLaVA checkpoint folder (e.g. a local copy of Yuki-Kokomi/OpenECADv2-SigLIP-2.4B)")
    p.add_argument("-o", "--output", required=True, help="folder to write (must not exist, or be empty)")
    p.add_argument("--system", choices=SYSTEMS, default="openecad",
                   help="system prompt baked into the chat template: openecad = OpenECAD's CAD prompt, what "
                        "OpenECAD fine-tuned TinyLLaVA with; tinyllava = TinyLLaVA's generic chat prompt "
                        "(default: openecad)")
    p.add_argument("--template", choices=TEMPLATES, default=None,
                   help="TinyLLaVA conversation template, which fixes the end-of-answer token (default: the one "
                        "the decoder is trained with: llama for Llama and OpenELM, gemma, phi, qwen2_base for Qwen2)")
    p.add_argument("--tokenizer", default=None,
                   help="folder to take the tokenizer from when SRC has none (e.g. the base LLM's local folder)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                   help="cast the weights (default: keep the checkpoint's)")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")


def cmd_import_model(args) -> int:
    from cadvlm.model.import_tinyllava import import_tinyllava
    from cadvlm.model.safetensors_stream import SafetensorsError
    from cadvlm.model.tinyllava_format import TinyLlavaFormatError

    try:
        report = import_tinyllava(args.src, args.output, system=args.system, template=args.template,
                                  tokenizer_dir=args.tokenizer, dtype=args.dtype, force=args.force,
                                  log=lambda msg: print(msg, file=sys.stderr))
    except (TinyLlavaFormatError, SafetensorsError) as exc:
        print(f"cadvlm import-model: {exc}", file=sys.stderr)
        return 2
    rows = report.vocab_rows
    print(f"{report.architecture} ({report.family} decoder, {report.template} template, {report.system} system "
          f"prompt) -> {args.output}: {len(report.files)} file(s), {report.bytes_written / 2**30:.2f} GiB "
          f"{report.dtype}, <image> = token {report.image_token_id}"
          + (f", vocabulary {rows[0]} -> {rows[1]} rows" if rows[1] != rows[0] else ", a free row")
          + f", {report.seconds:.1f} s")
    if report.remote_code:
        print(f"it carries its classes' code ({', '.join(report.remote_code)}): plain transformers loads it with "
              f"AutoModelForImageTextToText.from_pretrained('{args.output}', trust_remote_code=True)")
    print(f"train with: dvc exp run -S model.base={args.output} -S convert.format=openecad -S train.method=lora")
    return 0
