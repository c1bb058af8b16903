"""The RL reward (cadvlm.rl.reward): the truth earns the most, what does not build earns the penalty,
and hostile text is refused by the parser with nothing run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cadvlm.codec.format import CodeFormat
from cadvlm.rl.reward import GeometricReward, RewardConfig
from cadvlm.synth import generate_model
from cadvlm.synth.generate import model_json_text

CODE = CodeFormat("compact", 8)
RENDER = {"size": 128, "views": ["front", "top", "right", "iso"], "layout": "grid"}


@pytest.fixture(scope="module")
def parts():
    """Three generated parts: (answer, grid picture), drawn as the render stage draws them."""
    from cadvlm.render.pipeline import RenderJob, pictures_of_json

    job = RenderJob.from_params(RENDER)
    out = []
    for i in (0, 3, 7):
        data = json.loads(model_json_text(i, 0))
        pictures, _ = pictures_of_json(data, f"m{i}", job, nthreads=1)
        out.append((CODE.answer(generate_model(i, 0)), Image.fromarray(next(iter(pictures.values())))))
    return out


@pytest.fixture(scope="module")
def rewards():
    made = {kind: GeometricReward(RewardConfig(kind, -1.0, workers=2, timeout_s=60), CODE, RENDER)
            for kind in ("iou", "chamfer", "views")}
    yield made
    for r in made.values():
        r.close()


@pytest.mark.parametrize("kind", ["iou", "chamfer"])
def test_the_truths_own_answer_earns_the_maximum(parts, rewards, kind):
    answers = [a for a, _ in parts]
    truths = [answers[0]] * len(answers)
    got = rewards[kind].score(answers, truths)
    assert got[0] == pytest.approx(1.0, abs=1e-6)  # the same solid: IoU 1, Chamfer 0
    assert all(0.0 <= g < got[0] for g in got[1:]), got
    assert rewards[kind].last_invalid == 0.0


def test_views_reward_prefers_the_part_drawn(parts, rewards):
    answers = [a for a, _ in parts]
    for k, (_, picture) in enumerate(parts):
        got = rewards["views"].score(answers, pictures=[picture] * len(answers))
        assert int(np.argmax(got)) == k, got
        assert got[k] > 0.9


def test_what_does_not_build_earns_the_penalty(parts, rewards):
    truth = parts[0][0]
    no_code = "I cannot draw that."
    code = CODE.code_of(truth)
    truncated = f"Of course, here are the codes:\n```python\n{code[: len(code) // 2]}\n```"
    for kind in ("iou", "chamfer"):
        got = rewards[kind].score([no_code, truncated, truth], [truth] * 3)
        assert got[:2] == [-1.0, -1.0] and got[2] == pytest.approx(1.0)
        assert rewards[kind].last_invalid == pytest.approx(2 / 3)
        assert set(rewards[kind].last_reasons) <= {"no_code", "parse_error", "build_error"}


HOSTILE = [
    "```python\n__import__('os').system('touch {marker}')\n```",
    "```python\nimport os; os.system('touch {marker}')\n```",
    "```python\nopen('{marker}', 'w').write('x')\n```",
    "```python\nexec(\"open('{marker}','w')\")\n```",
    "```python\n(lambda: open('{marker}', 'w'))()\n```",
    "```python\n" + "[" * 5000 + "]" * 5000 + "\n```",
    "```python\nsize 9" + "9" * 400 + "\n```",
]


@pytest.mark.parametrize("kind", ["iou", "views"])
def test_hostile_code_gets_the_penalty_with_nothing_run(parts, rewards, tmp_path, kind):
    marker = tmp_path / "ran"
    answers = [h.replace("{marker}", str(marker)) for h in HOSTILE]
    truth, picture = parts[0]
    got = rewards[kind].score(answers, [truth] * len(answers), [picture] * len(answers))
    assert got == [-1.0] * len(answers)
    assert not marker.exists()


def test_trl_call_reads_chat_completions(parts, rewards):
    truth = parts[0][0]
    completions = [[{"role": "assistant", "content": truth}], [{"role": "assistant", "content": "no"}]]
    got = rewards["iou"](prompts=[None, None], completions=completions, truth=[truth, truth])
    assert got[0] == pytest.approx(1.0) and got[1] == -1.0


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="rl.reward"):
        RewardConfig("likelihood")
    with pytest.raises(ValueError, match="invalid_penalty"):
        RewardConfig("iou", invalid=0.5)
    r = GeometricReward(RewardConfig("iou", workers=1), CODE, RENDER)
    try:
        with pytest.raises(ValueError, match="needs the truth"):
            r.score(["x"], [None])
    finally:
        r.close()
