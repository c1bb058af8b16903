"""LoRA for VLMs with peft: adapters on the language model, optionally the vision tower, and an
optionally fully trainable projector.

VLMs name their parts differently (LLaVA: `vision_tower`, `multi_modal_projector`; Qwen2-VL:
`visual`, `merger` inside it; SmolVLM/Idefics3: `vision_model`, `connector`), and the same layer
names (`q_proj`...) occur in both towers. So the target set is a regular expression built from
the params: language-model layers named in `target_modules` outside the vision tower, plus, when
`vision_tower` is on, the tower's layers named in `vision_target_modules`.
"""

from __future__ import annotations

import re

VISION_PREFIXES = ("vision_tower", "visual", "vision_model")
# What each family calls the projector from the vision tower to the decoder: LLaVA (and OneVision),
# Qwen2-VL / Qwen2.5-VL (inside `visual`), Idefics3 / SmolVLM. params.yaml names LLaVA's; the
# model's own name is used for any of them (`projector_names`).
PROJECTORS = ("multi_modal_projector", "merger", "connector")


def projector_names(names: list[str] | None, module_names: list[str]) -> list[str]:
    """`names` with a projector name the model lacks replaced by the model's own projector."""
    leaves = {n.split(".")[-1] for n in module_names}
    own = next((p for p in PROJECTORS if p in leaves), None)
    out = []
    for name in names or []:
        name = own if name in PROJECTORS and name not in leaves and own else name
        if name not in out:
            out.append(name)
    return out


def is_vision_tower_param(name: str) -> bool:
    """A parameter of the vision tower (not of the projector, even where it sits inside `visual`)."""
    parts = name.split(".")
    return any(v in parts for v in VISION_PREFIXES) and not any(p in parts for p in PROJECTORS)


def target_regex(target_modules: list[str], vision_tower: bool = False,
                 vision_target_modules: list[str] | None = None) -> str:
    """peft `target_modules` regex (matched against full module names with re.fullmatch)."""
    vis = "|".join(map(re.escape, VISION_PREFIXES))
    lang = "|".join(map(re.escape, target_modules))
    pattern = rf"(?!(?:.*\.)?(?:{vis})\.).*\.(?:{lang})"
    if vision_tower and vision_target_modules:
        vnames = "|".join(map(re.escape, vision_target_modules))
        pattern = rf"(?:{pattern})|(?:(?:.*\.)?(?:{vis})\..*\.(?:{vnames}))"
    return pattern


def apply_lora(model, cfg: dict):
    """Wrap `model` in a peft LoRA model configured by params.yaml `lora`.

    cfg keys: r, alpha, dropout, target_modules, vision_tower (bool), vision_target_modules,
    modules_to_save (e.g. [multi_modal_projector]: trained fully and saved with the adapter; a
    projector name stands for the model's own projector, `merger` in Qwen2-VL, `connector` in SmolVLM).
    """
    from peft import LoraConfig, get_peft_model

    regex = target_regex(cfg["target_modules"], cfg.get("vision_tower", False), cfg.get("vision_target_modules"))
    names = [n for n, _ in model.named_modules()]
    if not any(re.fullmatch(regex, n) for n in names):
        raise ValueError(f"lora.target_modules {cfg['target_modules']} match no layer of {type(model).__name__}")
    if cfg.get("vision_tower"):
        tower = [n for n in names if is_vision_tower_param(n + ".x") and "." in n]
        if not any(re.fullmatch(regex, n) for n in tower):
            leaves = sorted({n.split(".")[-1] for n in tower if not n.split(".")[-1].isdigit()})
            raise ValueError(f"lora.vision_tower is on but lora.vision_target_modules {cfg.get('vision_target_modules')} "
                             f"match no layer of {type(model).__name__}'s vision tower (its layers: {', '.join(leaves)})")
    wanted = projector_names(cfg.get("modules_to_save"), names)
    to_save = [m for m in wanted if any(n.split(".")[-1] == m for n in names)]
    missing = set(wanted) - set(to_save)
    if missing:
        raise ValueError(f"lora.modules_to_save {sorted(missing)} name no module of {type(model).__name__}")
    config = LoraConfig(
        r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"], target_modules=regex,
        modules_to_save=to_save or None, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def count_parameters(model) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
