"""One prediction, start to end: picture -> batched generation -> sandboxed build -> result JSON.

The answer says what `cadvlm predict` would: the status is "ok" or the invalid reason exactly as
evaluate names it (`cadvlm.rebuild.INVALID_REASONS`), the raw generation and the code picked out
of it, and for a valid part its size and the URLs of its files. Bad code from the model is a
normal answer (HTTP 200, status != ok), not an error of the server.

A generate() call that reaches its time limit leaves cut answers behind; those that still build
are kept, the others get status "timeout" (the cut, not the model's code, is why they fail).

With candidates=nearest the greedy answer and the answers of the K training pictures closest to
the input (the model folder's bank, `cadvlm.model.retrieval`) are compared by render-and-compare
in a build worker, and the one whose part looks most like the input is built (`answer` is its
text); the result's `candidates` says which won and its kind (greedy / nearest), with every
candidate's answer and silhouette IoU (null otherwise). No sampled answers here: sampling N more
per request would multiply the generation cost that batching shares, so serve compares against
lookup only (`cadvlm predict --samples` samples).
"""

from __future__ import annotations

import asyncio
import time

from cadvlm.cad.model import CADError
from cadvlm.model.manifest import ModelManifest
from cadvlm.model.retrieval import CANDIDATE_MODES, DEFAULT_NEAREST, RetrievalBank, choice_summary, gather_candidates
from cadvlm.serve.batching import Batcher
from cadvlm.serve.builds import BuildRunner
from cadvlm.serve.pictures import BadInput
from cadvlm.serve.store import ResultStore

PART_FILES = ("part.step", "part.stl", "part.glb", "views.png")
ALWAYS_FILES = ("input.png", "part.py", "answer.txt")


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


class Predictor:
    """Holds the model's manifest and the shared machinery; `predict` is one request.

    bank: the model folder's training pictures (None when it has none; `bank_error` says why);
    candidates: the mode of requests that do not name one; nearest_k: training answers tried."""

    def __init__(self, manifest: ModelManifest, store: ResultStore, builds: BuildRunner, metrics=None,
                 generate_timeout_s: float = 120.0, bank: RetrievalBank | None = None, bank_error: str = "",
                 candidates: str = "model", nearest_k: int = DEFAULT_NEAREST):
        self.manifest = manifest
        self.store = store
        self.builds = builds
        self.metrics = metrics
        self.generate_timeout_s = generate_timeout_s
        self.bank, self.bank_error = bank, bank_error
        self.candidates, self.nearest_k = candidates, int(nearest_k)
        self.batcher: Batcher | None = None  # set once the model is loaded

    @property
    def ready(self) -> bool:
        return self.batcher is not None

    def candidates_mode(self, asked: str | None) -> str:
        """The request's candidates mode (the server's default when not given), or BadInput saying why not."""
        mode = self.candidates if asked in (None, "") else asked
        if mode not in CANDIDATE_MODES:
            raise BadInput(f"candidates: must be one of {', '.join(CANDIDATE_MODES)}, not {asked!r}")
        if mode == "nearest" and self.bank is None:  # bank_error: no bank, or no renderer (cadvlm.model.retrieval)
            raise BadInput(f"candidates=nearest: {self.bank_error or 'the model folder has no training pictures'}")
        return mode

    async def _select(self, picture, view: str | None, greedy: str) -> dict:
        """Render-and-compare between the greedy answer and the nearest training answers -> choice_summary."""
        pool = await asyncio.to_thread(gather_candidates, greedy, [], self.bank, picture, self.nearest_k)
        choice = await self.builds.choose(picture, [c.answer for c in pool], self.manifest.code,
                                          self.manifest.render_params(), view)
        return dict(choice_summary(choice, pool), mode="nearest", answer=choice.answer)

    async def predict(self, picture, view: str | None, prompt: str | None, max_new_tokens: int,
                      longest_mm: float, base_url: str = "", bypass_limit: bool = False,
                      candidates: str = "model") -> dict:
        """The result dict of one picture (also stored as the result's result.json); `candidates` is
        a mode checked by candidates_mode."""
        t0 = time.perf_counter()
        code = self.manifest.code
        prompt = prompt or self.manifest.prompt(view)
        gen = await self.batcher.submit(picture, prompt, max_new_tokens, bypass_limit=bypass_limit)
        rid, folder = self.store.create()
        answer, selection, select_s = gen.answer, None, 0.0
        if candidates == "nearest":
            t_select = time.perf_counter()
            selection = await self._select(picture, view, answer)
            answer, select_s = selection.pop("answer"), time.perf_counter() - t_select
        try:
            text = code.code_of(answer)
        except CADError:
            text = None
        await asyncio.to_thread(_write_inputs, folder, picture, answer, text)

        t_build = time.perf_counter()
        task = {"answer": answer, "out_dir": str(folder), "size": self.manifest.view_size, "code": code,
                "longest_mm": longest_mm}
        built = await self.builds.build(task)
        build_s = time.perf_counter() - t_build

        ok = bool(built.get("ok"))
        status = "ok" if ok else built.get("reason", "build_error")
        detail = "" if ok else built.get("detail", "")
        if not ok and gen.timed_out and (selection is None or selection["chosen_kind"] == "greedy"):
            detail = (f"generation stopped at its {self.generate_timeout_s:g} s limit before the answer was "
                      f"complete ({status}: {detail})")
            status = "timeout"
        if not ok:  # never serve files of a part that did not come out valid
            for name in ("part.step", "part.stl", "part.glb", "part_views.png"):
                (folder / name).unlink(missing_ok=True)
        notes = [f"{k.split('_')[0]} not written: {built[k]}" for k in ("views_error", "glb_error") if built.get(k)]
        names = ALWAYS_FILES + (PART_FILES if ok else ())
        files = {n: f"{base_url}/v1/results/{rid}/{n}" for n in names if self.store.file(rid, n) is not None}
        result = {
            "id": rid, "status": status, "detail": detail if not ok else "; ".join(notes),
            "answer": answer, "code": text, "format": code.name,
            "extrudes": built.get("extrudes") if ok else None,
            "volume_mm3": round(float(built["volume_mm3"]), 4) if ok else None,
            "box_mm": [round(v, 4) for v in built["box_mm"]] if ok else None,
            "longest_mm": longest_mm if code.compact else None,
            "files": files,
            "candidates": selection,
            "timings_ms": {"queue": _ms(gen.queue_ms / 1000), "generate": _ms(gen.generate_ms / 1000),
                           "build": _ms(build_s), "total": _ms(time.perf_counter() - t0)},
            "batch_size": gen.batch_size,
        }
        if selection is not None:
            result["timings_ms"]["select"] = _ms(select_s)
        await asyncio.to_thread(self.store.write_json, rid, result)
        if self.metrics is not None:
            self.metrics.observe_prediction(result)
        return result


def _write_inputs(folder, picture, answer: str, text: str | None) -> None:
    """input.png (exactly what the model saw), answer.txt (raw) and part.py (the code, else the answer)."""
    picture.save(folder / "input.png")
    (folder / "answer.txt").write_text(answer, encoding="utf-8")
    body = text if text is not None else answer
    (folder / "part.py").write_text(body if body.endswith("\n") or not body else body + "\n", encoding="utf-8")
