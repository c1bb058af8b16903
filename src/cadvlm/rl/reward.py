"""The RL reward: how well a sampled answer's rebuilt part matches the part it should be.

Every answer is untrusted text. It is parsed and built (`cadvlm.rebuild`, never executed) in the
time-limited worker pool (`cadvlm.sandbox`), so a boolean that hangs or a native crash costs one
sample its reward, not the run. An answer with no valid solid (no code, a parse or build error,
an empty solid, a timeout, a crash) gets `invalid` (the penalty, below every valid reward).

`kind` chooses what a valid answer earns, always in [0, 1] with 1 for the truth itself:
- `iou`: the volume IoU of the two solids in the unit cube (cadrille's reward), exact booleans;
- `chamfer`: exp(-Chamfer x1000 / CHAMFER_SCALE) over surface samples in the unit cube, so the
  oracle's ~0.15 earns 0.985, the lookup's ~2 earns 0.82 and an unrelated part (~45) 0.01;
- `views`: the rebuilt part drawn as the model's pictures are, its ink silhouettes against the
  input picture's (`cadvlm.render_compare`, mean IoU over the views). It needs no truth, so it
  also rewards pictures that have no code (`rl.unlabeled_dir`).

The truth is the answer the model is taught to write (its code on the training grid), built once
per worker and kept (an LRU), so the pairwise cost is one build and one comparison.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from cadvlm.codec.format import CodeFormat

KINDS = ("iou", "chamfer", "views")
CHAMFER_SCALE = 10.0  # Chamfer x1000 at which the reward falls to 1/e
REWARD_POINTS = 2048  # surface samples per solid: a quarter of evaluate's 8,192, for speed (seeded alike)
WARMUP = ("cadvlm.rl.reward", "cadvlm.rebuild", "cadvlm.metrics", "cadvlm.geometry.solid", "cadvlm.geometry.mesh",
          "cadvlm.render_compare", "cadvlm.render.views", "OCP.BRepAlgoAPI")


@dataclass(frozen=True)
class RewardConfig:
    kind: str = "iou"
    invalid: float = -1.0  # the reward of an answer that yields no valid solid
    workers: int = 2
    timeout_s: float = 20.0
    n_points: int = REWARD_POINTS
    seed: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"rl.reward must be one of {KINDS}, not {self.kind!r}")
        if not self.invalid < 0.0:
            raise ValueError(f"rl.invalid_penalty must be below every valid reward (0), not {self.invalid}")


_TRUTHS: "OrderedDict[tuple, object]" = OrderedDict()


def _truth(answer: str, code: CodeFormat, n_points: int, seed: int):
    """The truth answer's prepared solid, built once per worker (None when it does not build)."""
    key = (answer, code, n_points, seed)
    if key in _TRUTHS:
        _TRUTHS.move_to_end(key)
        return _TRUTHS[key]
    from cadvlm.metrics import prepare
    from cadvlm.rebuild import rebuild

    built = rebuild(answer, code, "truth")
    value = prepare(built.shape, n_points, seed) if built.ok else None
    _TRUTHS[key] = value
    while len(_TRUTHS) > 256:
        _TRUTHS.popitem(last=False)
    return value


def score_task(task: dict) -> dict:
    """Worker: one answer's reward. -> {"value": float in [0, 1] or None, "reason": why None}."""
    from cadvlm.metrics import compare, prepare
    from cadvlm.rebuild import rebuild

    code, kind = task["code"], task["kind"]
    if kind == "views":
        from cadvlm.render_compare import candidate_task

        value = candidate_task({"answer": task["answer"], "code": code, "job": task["job"], "target": task["target"]})
        return {"value": value, "reason": "" if value is not None else "no_solid"}
    built = rebuild(task["answer"], code, "answer")
    if not built.ok:
        return {"value": None, "reason": built.reason}
    truth = _truth(task["truth"], code, task["n_points"], task["seed"])
    if truth is None:
        return {"value": None, "reason": "truth_error"}
    try:
        pred = prepare(built.shape, task["n_points"], task["seed"])
    except Exception:  # an empty or degenerate solid
        return {"value": None, "reason": "empty_solid"}
    # evaluate's own comparison: Chamfer x1000, and IoU (an occupancy estimate where the boolean fails)
    if kind == "chamfer":
        return {"value": math.exp(-compare(pred, truth, with_iou=False)["chamfer"] / CHAMFER_SCALE), "reason": ""}
    return {"value": float(compare(pred, truth)["iou"]), "reason": ""}


class GeometricReward:
    """A TRL reward function over the pool: `reward(prompts, completions, truth=..., image=...)`.

    Also keeps the last batch's share of invalid answers and their reasons (`last_invalid`), which
    the rl stage logs beside the reward.
    """

    def __init__(self, cfg: RewardConfig, code: CodeFormat, render_params: dict | None = None, pool=None):
        from cadvlm.sandbox import TimeLimitedPool

        self.cfg, self.code = cfg, code
        self.__name__ = f"reward_{cfg.kind}"  # TRL names the logged metric after it
        self.pool = pool or TimeLimitedPool(cfg.workers, cfg.timeout_s, warmup=WARMUP)
        self.job = None
        if cfg.kind == "views":
            from cadvlm.render_compare import compare_job

            self.job = compare_job(render_params or {})
        self.last_invalid: float = 0.0
        self.last_reasons: dict[str, int] = {}

    def tasks(self, answers: list[str], truths: list | None, pictures: list | None,
              views: list | None = None) -> list[dict]:
        out = []
        for k, answer in enumerate(answers):
            task = {"answer": answer, "code": self.code, "kind": self.cfg.kind, "n_points": self.cfg.n_points,
                    "seed": self.cfg.seed}
            if self.cfg.kind == "views":
                from cadvlm.render_compare import target_masks

                task.update(job=self.job, target=target_masks(pictures[k], self.job, views[k] if views else None))
            else:
                if truths is None or truths[k] is None:
                    raise ValueError(f"rl.reward={self.cfg.kind} needs the truth of every prompt; "
                                     "use rl.reward=views for pictures without code")
                task["truth"] = truths[k]
            out.append(task)
        return out

    def score(self, answers: list[str], truths: list | None = None, pictures: list | None = None,
              views: list | None = None) -> list[float]:
        """The reward of each answer, in order (the penalty for the invalid ones). pictures: the inputs
        (PIL or uint8), needed by `views`; views: per picture the view a separate-layout picture shows."""
        tasks = self.tasks(answers, truths, pictures, views)
        values: list[float] = [self.cfg.invalid] * len(tasks)
        reasons: dict[str, int] = {}
        for out in self.pool.run(score_task, tasks) if tasks else ():
            value = out.value["value"] if out.status == "ok" else None
            if value is None:
                why = out.value["reason"] if out.status == "ok" else out.status
                reasons[why] = reasons.get(why, 0) + 1
            else:
                values[out.index] = float(value)
        self.last_invalid = sum(reasons.values()) / max(1, len(tasks))
        self.last_reasons = reasons
        return values

    def __call__(self, prompts=None, completions=None, truth=None, image=None, view=None, **_) -> list[float]:
        """TRL's call: completions are chat messages (the last one the answer) or plain strings."""
        answers = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        answers = ["".join(p.get("text", "") for p in a) if isinstance(a, list) else a for a in answers]
        return self.score(answers, truth, image, view)

    def close(self) -> None:
        self.pool.close()
