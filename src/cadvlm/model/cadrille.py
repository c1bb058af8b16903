"""cadrille checkpoints as `model.base`, in image mode: a plain transformers Qwen2-VL, the point encoder left out.

cadrille (github col14m/cadrille; hub maksimko123/cadrille, maksimko123/cadrille-rl) is Qwen2-VL-2B-Instruct
fine-tuned to write CadQuery code from a point cloud, from pictures or from text. Its class subclasses
`Qwen2VLForConditionalGeneration` and adds one module, `point_encoder` (Fourier features of the points, then
`Linear(51, hidden_size)`: the tensors `point_encoder.projection.weight` and `.bias`). Its checkpoint is what
transformers 4.50 saves for such a class: config.json says `architectures: ["Cadrille"]` and `model_type:
qwen2_vl` (Qwen2-VL's flat config; no key of cadrille's own), and the tensors are Qwen2-VL's under their
pre-4.52 names (`model.*` decoder, `visual.*` tower and merger; no `lm_head`, tied to the embeddings) plus
the point encoder's.

Why the point encoder is left out: cadvlm feeds pictures only, and in cadrille's forward the point
embeddings overwrite a sample's first tokens only when that sample carries a point cloud (`is_pc`). A
picture never reaches the encoder, so the model without it computes what cadrille computes on pictures.
Its tensors are skipped with a note (logged once per process); any other tensor the model does not have,
or one it lacks, fails the load: another checkpoint must not load half random.

Why loaded directly (recognised by `architectures`) and not converted by `cadvlm import-model` first: apart
from those two tensors the checkpoint is a stock Qwen2-VL that transformers reads as it is. The user
downloads the folder and names it as `model.base`; nothing is copied (4.4 GB) and nothing has to be rerun
for cadrille-rl. What loads is a `Qwen2VLForConditionalGeneration`, so LoRA, the Trainer and generate()
treat it like any Qwen2-VL base, and a LoRA adapter trained on it names the same folder as its base.

Image mode as cadrille's code builds it (dataset.py `get_img`, cadrille.py `collate`):
- the picture: four 128 px perspective views (Open3D), each in a 3 px black frame, in a 2x2 sheet of 268 px;
- handed over as a two-frame *video* of that sheet: qwen-vl-utils resizes it to 280 px (a multiple of 28)
  and repeats it to Qwen2-VL's two frames per temporal patch; the processor, built with
  min_pixels=256*28*28 and max_pixels=1280*28*28, scales it to 448 px: 32 x 32 patches, 256 tokens;
- the prompt "Generate cadquery code" in Qwen2-VL-Instruct's chat template (its default system prompt);
- the answer: the bare CadQuery program (CAD-Recode style, the solid bound to `r`), then `<|im_end|>`.
A video of two equal frames is the same patches as one picture (the image processor repeats a picture's
frame to two), Qwen2-VL gives a one-patch-deep video the same rotary positions as a picture, and the
placeholder tokens' own embeddings are overwritten by the tower's: so cadvlm's picture input gives the
logits cadrille's video input gives (tests/test_cadrille_base.py checks it with a forward written from
cadrille's). The processor is loaded with cadrille's pixel bounds whatever the folder's own file says:
cadrille's code always passes them, and Qwen2-VL-2B-Instruct's saved file has others.
"""

from __future__ import annotations

import logging
from pathlib import Path

ARCHITECTURE = "Cadrille"
POINT_ENCODER = "point_encoder."
PROMPT = "Generate cadquery code"  # the instruction of every image-mode sample in cadrille's dataset.py
MIN_PIXELS = 256 * 28 * 28  # the processor bounds cadrille's train.py and test.py pass
MAX_PIXELS = 1280 * 28 * 28
PROCESSOR_SOURCE = "Qwen/Qwen2-VL-2B-Instruct"  # where cadrille's own scripts take the processor from
TRANSFORMERS_LOGGER = "transformers.modeling_utils"  # logs the load report
SHOWN = 8  # tensor names listed per problem in an error

log = logging.getLogger(__name__)
_noted: set[str] = set()


class CadrilleError(ValueError):
    """A cadrille checkpoint that cannot be used as it is; the message names the folder and the way out."""


def is_cadrille(name_or_dir) -> bool:
    """True for a cadrille checkpoint: a local folder or a cached hub id whose config names the class Cadrille."""
    from transformers import PreTrainedConfig

    try:
        config, _ = PreTrainedConfig.get_config_dict(str(name_or_dir), local_files_only=True)
    except (OSError, ValueError):  # not a model folder, not cached: the ordinary path says so
        return False
    return ARCHITECTURE in (config.get("architectures") or [])


def processor_fetch_command(folder) -> str:
    """The command that puts Qwen2-VL-2B-Instruct's processor files beside cadrille's weights (not its
    config.json, which marks the folder as cadrille's, nor its weights)."""
    return (f'hf download {PROCESSOR_SOURCE} --include "*.json" --include "*.txt" --exclude config.json '
            f'--exclude generation_config.json --exclude "model*" --local-dir {folder}')


def load_cadrille_processor(name_or_dir):
    """The folder's Qwen2-VL processor with cadrille's pixel bounds (256 tokens for its 268 px sheet)."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(str(name_or_dir), local_files_only=True,
                                                  size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS})
    except Exception as exc:  # a missing or broken processor file raises many types
        processor, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = f"it loads as a {type(processor).__name__} without an image processor"
    if processor is None or getattr(processor, "image_processor", None) is None:
        raise CadrilleError(f"cadrille checkpoint '{name_or_dir}' holds no Qwen2-VL processor ({why}). cadrille's own "
                            f"scripts use {PROCESSOR_SOURCE}'s; copy its files into the folder: "
                            f"{processor_fetch_command(name_or_dir)}")
    size = processor.image_processor.size
    bounds = (getattr(size, "shortest_edge", None), getattr(size, "longest_edge", None))
    if bounds != (MIN_PIXELS, MAX_PIXELS):  # a transformers that reads the bounds differently
        raise CadrilleError(f"cadrille checkpoint '{name_or_dir}': the image processor did not take cadrille's pixel "
                            f"bounds ({MIN_PIXELS}, {MAX_PIXELS}), it has {bounds}: pictures would not become the "
                            "256 tokens cadrille was trained on")
    return processor


class _HeldReport(logging.Filter):
    """Holds back transformers' load report while cadrille loads. It would call the point encoder's tensors
    "UNEXPECTED" on every load; `load_cadrille_model` checks the same lists itself, fails naming any other
    tensor, notes the point encoder once, and adds the held report to its error when loading itself fails."""

    def __init__(self):
        super().__init__()
        self.held: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" in message:
            self.held.append(message)
            return False
        return True


def load_cadrille_model(name_or_dir, **kwargs):
    """A cadrille checkpoint as a plain `Qwen2VLForConditionalGeneration`, its point encoder left out.

    `kwargs` go to `from_pretrained` (dtype, attn_implementation, local_files_only). CadrilleError for a
    config that is not Qwen2-VL's, and for any tensor besides the point encoder's that the model does not
    have, lacks, or has in another shape.
    """
    from transformers import PreTrainedConfig, Qwen2VLForConditionalGeneration

    config, _ = PreTrainedConfig.get_config_dict(str(name_or_dir), local_files_only=True)
    if config.get("model_type") != "qwen2_vl":
        raise CadrilleError(f"cadrille checkpoint '{name_or_dir}' has model_type {config.get('model_type')!r}; "
                            "cadrille is a Qwen2-VL (qwen2_vl) model")
    held = _HeldReport()
    logger = logging.getLogger(TRANSFORMERS_LOGGER)
    logger.addFilter(held)
    try:
        model, info = Qwen2VLForConditionalGeneration.from_pretrained(str(name_or_dir), output_loading_info=True,
                                                                       **kwargs)
    except Exception as exc:  # shapes that differ, unreadable files, conversion errors
        raise CadrilleError(f"cadrille checkpoint '{name_or_dir}' does not load as Qwen2-VL "
                            f"({type(exc).__name__}: {exc})" + "".join("\n" + r for r in held.held)) from exc
    finally:
        logger.removeFilter(held)
    unexpected = sorted(info.get("unexpected_keys") or ())
    dropped = [k for k in unexpected if k.startswith(POINT_ENCODER)]
    problems = {"tensors Qwen2-VL does not have": [k for k in unexpected if not k.startswith(POINT_ENCODER)],
                "tensors it lacks (they would stay random)": sorted(info.get("missing_keys") or ()),
                "tensors of another shape": sorted(map(str, info.get("mismatched_keys") or ())),
                "load errors": list(info.get("error_msgs") or ())}
    found = [f"{len(names)} {what}: {', '.join(names[:SHOWN])}{' ...' if len(names) > SHOWN else ''}"
             for what, names in problems.items() if names]
    if found:
        raise CadrilleError(f"cadrille checkpoint '{name_or_dir}' is not Qwen2-VL plus cadrille's point encoder: "
                            + "; ".join(found))
    model.config.architectures = [type(model).__name__]  # what it now is; a full-weight save writes the same
    _note_dropped(name_or_dir, dropped)
    return model


def _note_dropped(name_or_dir, dropped: list[str]) -> None:
    """Say once per process and checkpoint what was left out, and why."""
    key = str(Path(str(name_or_dir)).resolve()) if Path(str(name_or_dir)).exists() else str(name_or_dir)
    if key in _noted:
        return
    _noted.add(key)
    if dropped:
        log.warning("cadrille checkpoint %s: its point-cloud encoder (%s) is left out: cadvlm feeds pictures only, "
                    "and cadrille's image mode never uses it; the rest loads as a plain Qwen2-VL.", name_or_dir,
                    ", ".join(dropped))
    else:
        log.warning("cadrille checkpoint %s has no point-cloud encoder tensors; it loads as a plain Qwen2-VL.",
                    name_or_dir)
