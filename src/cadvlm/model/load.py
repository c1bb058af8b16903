"""Loading VLMs: any base (the built tiny one, a local folder, a Hugging Face id) and trained outputs.

Everything goes through `AutoProcessor` / `AutoModelForImageTextToText`, offline: nothing is
downloaded at run time (DESIGN: "Offline"). A hub id works only when it is already in the local
Hugging Face cache; otherwise `ModelLoadError` names the model and says how to fetch it, before
any training starts.

A trained output folder (the train stage's `models/`) carries `cadvlm_model.json`
(`cadvlm.model.manifest`): full weights or a LoRA adapter and its base, and the conventions the
model was trained on; `load_trained` reads it so evaluate/predict/serve need only the folder.

A cadrille checkpoint (`cadvlm.model.cadrille`: Qwen2-VL plus a point-cloud encoder, recognised by its
config) loads as a plain Qwen2-VL with the encoder left out and its processor at cadrille's pixel bounds.

Classes of our own (the conv tower, Phi's LLaVA with lm_head bias, the LLaVA over OpenELM) are
registered by importing their modules before loading. Folders written by `cadvlm import-model` (and
full-weight saves of those classes) also carry the defining module and an `auto_map` for plain
transformers with `trust_remote_code=True`; we never pass it: with the classes registered,
transformers uses cadvlm's (the same code), so nothing from a model folder is ever executed here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cadvlm.model.cadrille import CadrilleError, is_cadrille, load_cadrille_model, load_cadrille_processor
from cadvlm.model.manifest import ManifestError, ModelManifest


class ModelLoadError(RuntimeError):
    """A model or processor could not be loaded; the message names it and the way out."""


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when present, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU that supports it (half the memory, full speed), float32 elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_processor(name_or_dir: str | Path):
    from transformers import AutoProcessor

    from cadvlm.model import conv_tower, llava_bias, openelm  # noqa: F401  register the conv tower, LLaVA + lm_head bias (Phi), OpenELM
    from cadvlm.model.compat import allow_pictures_without_torchvision

    allow_pictures_without_torchvision()  # Qwen2-VL, OneVision, SmolVLM processors on a torch without torchvision
    if is_cadrille(name_or_dir):
        try:
            return load_cadrille_processor(name_or_dir)
        except CadrilleError as exc:
            raise ModelLoadError(str(exc)) from None
    try:
        return AutoProcessor.from_pretrained(str(name_or_dir), local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(_offline_message(name_or_dir, "processor", exc)) from exc


def load_base(name_or_dir: str | Path, dtype: torch.dtype | None = None, device: str | torch.device | None = None,
              attn_implementation: str | None = None):
    """Load a base VLM and its processor offline -> (model, processor).

    A base the pipeline cannot feed (no chat template, no image placeholder, no vision part...:
    cadvlm.model.base_check) raises ModelLoadError saying why, before its weights are read.

    `dtype` defaults to bf16 on GPU and float32 on CPU. The model is moved to `device` only when
    one is given (the Trainer places it itself).
    """
    from transformers import AutoModelForImageTextToText

    from cadvlm.model import conv_tower, llava_bias, openelm  # noqa: F401  register the conv tower, LLaVA + lm_head bias (Phi), OpenELM

    from cadvlm.model.base_check import BaseCheckError, check_model, check_processor

    dev = pick_device(device)
    processor = load_processor(name_or_dir)
    try:
        check_processor(processor, name_or_dir)  # before reading any weight: a base we cannot feed fails here
    except BaseCheckError as exc:
        raise ModelLoadError(str(exc)) from None
    kwargs = {"local_files_only": True, "dtype": dtype or default_dtype(dev)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        if is_cadrille(name_or_dir):
            model = load_cadrille_model(name_or_dir, **kwargs)  # the point encoder left out, with a note
        else:
            model = AutoModelForImageTextToText.from_pretrained(str(name_or_dir), **kwargs)
    except CadrilleError as exc:
        raise ModelLoadError(str(exc)) from None
    except Exception as exc:
        raise ModelLoadError(_offline_message(name_or_dir, "model", exc)) from exc
    try:
        check_model(model, name_or_dir)
    except BaseCheckError as exc:
        raise ModelLoadError(str(exc)) from None
    if device is not None:
        model.to(dev)
    return model, processor


def _offline_message(name, what: str, exc: Exception) -> str:
    local = Path(str(name)).exists()
    hint = ("the folder exists but does not hold a loadable image-text-to-text model/processor"
            if local else
            f"it is not a local folder and not in the Hugging Face cache (we never download at run time): "
            f"fetch it first with `hf download {name}` or set model.base to a local directory")
    return f"cannot load {what} '{name}' offline: {hint}. ({type(exc).__name__}: {exc})"


def load_trained(model_dir: str | Path, device: str | torch.device | None = None):
    """Load the train stage's output for inference -> (model, processor), in eval mode on `device`.

    `device` defaults to CUDA when present, else CPU; weights are bf16 on GPU, float32 on CPU.
    Works for full weights and for a LoRA adapter (the base is loaded first, then the adapter).
    """
    model_dir = Path(model_dir)
    try:
        info = ModelManifest.read(model_dir)
    except ManifestError as exc:
        raise ModelLoadError(str(exc)) from None
    dev = pick_device(device)
    if info.weights == "full":
        model, _ = load_base(model_dir, device=dev)
    else:
        from peft import PeftModel

        base_path = model_dir / str(info.base)
        model, _ = load_base(base_path if base_path.exists() else info.base, device=dev)
        model = PeftModel.from_pretrained(model, str(model_dir), is_trainable=False).to(dev)
    processor = load_processor(model_dir)
    model.eval()
    return model, processor
