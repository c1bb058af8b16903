"""A model folder that carries a bank of real training pictures, for the `--candidates nearest` tests.

A few synthetic parts (the synthesize stage's generator) are drawn by the render stage's renderer
as the model folder's manifest says (a 2x2 grid of VIEW_PX views), their code written as the
training answers, and the bank saved into the folder as the train stage does. A test then shows
one of these pictures to a model that answers garbage: only the lookup plus render-and-compare can
give back the right part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VIEW_PX = 128
N_PARTS = 4


@dataclass
class BankFolder:
    models: Path  # manifest + retrieval.npz (no weights: tests pass a fake model)
    pictures: list[Path]  # each training part's grid picture, as the render stage draws it
    answers: list[str]  # each part's answer (the wrapped code a model is trained to write)
    ids: list[str]


def bank_folder(root: Path, n: int = N_PARTS, size: int = VIEW_PX) -> BankFolder:
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.model.manifest import ModelManifest
    from cadvlm.render.pipeline import RenderJob, pictures_of_json
    from cadvlm.render.sheet import encode_png
    from cadvlm.model.retrieval import RetrievalBank
    from cadvlm.synth import model_json_text

    models = root / "models"
    manifest = ModelManifest("full", None, render={"size": size})
    manifest.write(models)
    job = RenderJob.from_params(manifest.render_params())
    pictures, answers, ids = [], [], []
    for i in range(n):
        sid = f"part{i}"
        source = root / f"{sid}.json"
        source.write_text(model_json_text(i, 0))
        drawn, _ = pictures_of_json(str(source), sid, job, nthreads=1)
        pictures.append(root / f"{sid}.png")
        pictures[-1].write_bytes(encode_png(next(iter(drawn.values()))))
        answers.append(manifest.code.answer(read_model(source, sid)))
        ids.append(sid)
    RetrievalBank.build(pictures, answers, ids).save(models)
    return BankFolder(models, pictures, answers, ids)
