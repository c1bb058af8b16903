"""A converted folder's own code: the module that defines its classes, copied verbatim, named in `auto_map`.

Why: Phi's LLaVA with a biased lm_head (cadvlm.model.llava_bias) and the LLaVA over OpenELM
(cadvlm.model.openelm) are classes of ours, registered with the Auto classes only when cadvlm is
imported. The standard Hugging Face way to make such a folder load anywhere is what
`save_pretrained` writes for classes marked with `register_for_auto_class`: the defining `.py` file
next to config.json and `config.auto_map = {"AutoConfig": "file.Class", "AutoModel...": "file.Class"}`,
which plain transformers follows with `trust_remote_code=True`. The converter streams the weights and
never calls the model's `save_pretrained`, so it writes both here. The copy is the very module cadvlm
imports (one source of truth), so it must import nothing but torch and transformers: checked here,
before a folder that could only load where cadvlm is installed gets written.
"""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

ALLOWED_IMPORTS = frozenset({"__future__", "torch", "transformers"})


def imported_packages(path: Path) -> set[str]:
    """Top-level names of the packages a Python file imports ("." for a relative import)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." if node.level else node.module.split(".")[0])
    return found


def write_remote_code(folder: Path, cfg, model_cls: type) -> list[str]:
    """Copy the modules defining type(cfg) and model_cls into `folder` and name the classes in `cfg.auto_map`,
    for the classes marked with `register_for_auto_class`; -> the file names written (none for stock classes)."""
    auto_map = dict(getattr(cfg, "auto_map", None) or {})
    files: list[str] = []
    for cls in (type(cfg), model_cls):
        auto_class = getattr(cls, "_auto_class", None)
        if auto_class is None or cls.__module__.startswith("transformers."):
            continue
        src = Path(sys.modules[cls.__module__].__file__)
        extra = imported_packages(src) - ALLOWED_IMPORTS
        if extra:
            raise RuntimeError(f"{src} imports {sorted(extra)}: a folder's remote code may import only "
                               f"{sorted(ALLOWED_IMPORTS)}")
        shutil.copyfile(src, Path(folder) / src.name)
        auto_map[auto_class] = f"{src.stem}.{cls.__name__}"
        if src.name not in files:
            files.append(src.name)
    if auto_map:
        cfg.auto_map = auto_map
    return files
