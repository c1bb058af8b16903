"""Real CadQuery builds `write_cadquery`'s scripts into the solids cadvlm builds (issue 24).

Each model's script is run by real CadQuery 2.8 (scripts/cadquery_build.py under .venv-cq, made by
scripts/setup_cadquery.sh: the `cadquery` package brings an OCP build that conflicts with the
project's cadquery-ocp-novtk), many scripts per call since importing CadQuery takes seconds. Its
solid is compared with the project's `build_solid` of the model *as the script states it*:
`stated_model` (the numbers rounded to the printed 4 decimals of a millimetre; that rounding alone
moves a part's volume by up to ~1e-4 relative from the unrounded model, so the 1e-6 bound is only
reachable against the rounded one), and of what the project's reader makes of the script,
`parse_cadquery(script)`.

- relative volume difference <= 1e-6, both volumes integrated to a relative 1e-9 (OpenCascade's
  default integration is off by up to ~1e-5 on cylinders, on either side);
- bounding boxes within BBOX_TOL_MM: OpenCascade pads a box by its 1e-7 confusion tolerance in the
  model's units, i.e. 1e-4 mm for the project's metres and 1e-7 mm for CadQuery's millimetres;
- Chamfer distance (cadvlm.metrics, CHAMFER_POINTS points each) within CHAMFER_SLACK times the
  sampling floor (the project's solid against itself, another seed).

Two kernel effects are allowed and counted, both from OpenCascade's tolerance being absolute (1e-7
in the model's units): CadQuery works in millimetres, where it is 1000x tighter for the same part
than in the project's metres.
- Two faces ~1e-5 mm apart (an arc through rounded irrational points against a circle of the same
  nominal radius) fuse into one solid in metres but stay touching solids in millimetres. Such a
  result must become the project's solid once its solids are fused in metres (`fused_in_metres`).
- A boolean that goes differently at the two scales (a near-tangent arc against a face, a skin
  thinner than 1e-7 m): CadQuery's volume must then match the project's own build of the same
  model scaled to millimetres, and the shape checks compare with that build. At most 1% of the
  models (measured: 2 of 1,000 synthetic, none of the real samples).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from cadvlm.cad.model import CADError
from cadvlm.codec.cadquery_reader import parse_cadquery
from cadvlm.codec.cadquery_writer import stated_model, write_cadquery
from cadquery_scripts import SCRIPTS
from conftest import map_on_cores, real_json_files

ROOT = Path(__file__).resolve().parents[1]
CQ_PYTHON = ROOT / ".venv-cq" / "bin" / "python"
RUNNER = ROOT / "scripts" / "cadquery_build.py"
MAX_REL_VOLUME = 1e-6
BBOX_TOL_MM = 2e-4
CHAMFER_SLACK = 1.5
CHAMFER_POINTS = 2048  # the evaluation's 8,192 made the nearest-point queries a fifth of the time
VOLUME_EPS = 1e-9  # as the runner integrates CadQuery's volumes


@lru_cache(maxsize=1)
def _cadquery_missing() -> str | None:
    """Why real CadQuery cannot run here, or None when it can."""
    if not CQ_PYTHON.is_file():
        return f"no CadQuery environment at {CQ_PYTHON} (scripts/setup_cadquery.sh makes it)"
    done = subprocess.run([str(CQ_PYTHON), "-c", "import cadquery"], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error text"])[-1]
        return f"{CQ_PYTHON} cannot import cadquery ({last}); scripts/setup_cadquery.sh installs it"
    return None


def run_cadquery(jobs: list[dict], step_dir: Path | None = None, timeout: float = 60.0) -> list[dict]:
    """The runner's answers for [{id, code}], in order (one subprocess for the whole batch)."""
    cmd = [str(CQ_PYTHON), str(RUNNER), "--jobs", str(os.cpu_count() or 1), "--timeout", str(timeout)]
    if step_dir is not None:
        cmd += ["--step-dir", str(step_dir)]
    done = subprocess.run(cmd, input=json.dumps(jobs), capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["id"] for a in answers] == [j["id"] for j in jobs]
    return answers


# ----------------------------------------------------------------------------- project side


def precise_volume(shape) -> float:
    from OCP.BRepGProp import BRepGProp
    from OCP.GProp import GProp_GProps

    props = GProp_GProps()
    BRepGProp.VolumeProperties_s(shape, props, VOLUME_EPS, False, False)
    return props.Mass()


def fused_in_metres(shape):
    """The shape's solids fused by the project's kernel settings (metres), as one solid if they touch."""
    from OCP.BRepAlgoAPI import BRepAlgoAPI_Fuse
    from OCP.ShapeUpgrade import ShapeUpgrade_UnifySameDomain
    from OCP.TopAbs import TopAbs_SOLID
    from OCP.TopExp import TopExp_Explorer

    solids, exp = [], TopExp_Explorer(shape, TopAbs_SOLID)
    while exp.More():
        solids.append(exp.Current())
        exp.Next()
    body = solids[0]
    for s in solids[1:]:
        body = BRepAlgoAPI_Fuse(body, s).Shape()
    unify = ShapeUpgrade_UnifySameDomain(body, True, True, False)
    unify.Build()
    return unify.Shape()


def references(model, code: str) -> dict:
    """The models the script states: the writer's `stated_model`, and the reader's reading of it."""
    return {"stated": stated_model(model), "parsed": parse_cadquery(code, model.model_id)}


def in_millimetres(model):
    """The model scaled x1000 (metres -> millimetres), to build it in CadQuery's units."""
    from cadvlm.cad.limits import _map_model

    return _map_model(model, lambda v: np.asarray(v, dtype=np.float64) * 1000.0)


def _our_solid(ref, answer) -> tuple:
    """(the project's solid of ref in metres, its volume in mm^3, built in millimetres?): the build in
    metres, unless CadQuery's volume differs from it by more than the bound and the project's own
    build of the same model in millimetres agrees with CadQuery (OpenCascade's absolute tolerance)."""
    from cadvlm.geometry.solid import build_solid, transformed

    ours = build_solid(ref)
    vol = precise_volume(ours) * 1e9
    if abs(answer["volume"] - vol) <= MAX_REL_VOLUME * vol:
        return ours, vol, False
    try:
        in_mm = build_solid(in_millimetres(ref))
    except CADError:
        return ours, vol, False
    vol_mm = precise_volume(in_mm)
    if abs(answer["volume"] - vol_mm) > MAX_REL_VOLUME * vol_mm:
        return ours, vol, False
    return transformed(in_mm, scale=1e-3), vol_mm, True


def compare(args) -> dict:
    """CadQuery's answer for one script against the project's builds of what the script states."""
    from OCP.TopAbs import TopAbs_SOLID

    from cadvlm import metrics
    from cadvlm.geometry.mesh import read_step
    from cadvlm.geometry.solid import bounding_box, build_solid, count

    model, code, answer = args
    theirs = read_step(answer["step"])  # metres
    n_theirs = count(theirs, TopAbs_SOLID)
    out = {"id": model.model_id, "solids_cadquery": n_theirs, "fused": False, "millimetres": False}
    built = {}
    for name, ref in references(model, code).items():
        same = next((k for k, r in built.items() if r[0] == ref), None)
        built[name] = (ref, built[same][1] if same else _our_solid(ref, answer))
        ours, vol, in_mm = built[name][1]
        out["millimetres"] |= in_mm
        lo, hi = bounding_box(ours)
        box = np.abs(np.array(answer["bbox"]) - np.array([lo, hi]) * 1000.0).max()
        n_ours = count(ours, TopAbs_SOLID)
        compared = theirs
        if n_theirs != n_ours:
            compared = fused_in_metres(theirs)
            out["fused"] = True
        p_ours, p_theirs = (metrics.prepare(s, CHAMFER_POINTS, seed=k) for k, s in enumerate((ours, compared)))
        floor = metrics.chamfer(p_ours, metrics.prepare(ours, CHAMFER_POINTS, seed=1))
        metres_volume = precise_volume(build_solid(ref)) * 1e9 if in_mm else vol
        out[name] = {"rel_volume": abs(answer["volume"] - vol) / vol,
                     "rel_volume_metres": abs(answer["volume"] - metres_volume) / metres_volume,
                     "bbox_mm": float(box), "solids": (count(compared, TopAbs_SOLID), n_ours),
                     "chamfer": metrics.chamfer(p_ours, p_theirs) * 1000, "floor": floor * 1000}
    return out


def written_jobs(models: list) -> tuple[list[dict], dict, Counter]:
    """[{id, code}] for the models the project builds, their models by id, and the models the writer
    refused, by reason."""
    from cadvlm.geometry.solid import build_solid

    unwritable, jobs, by_id = Counter(), [], {}
    for m in models:
        try:
            build_solid(m)
        except CADError:
            continue  # only models the project builds
        try:
            jobs.append({"id": m.model_id, "code": write_cadquery(m)})
        except CADError as exc:
            unwritable[exc.reason] += 1
            continue
        by_id[m.model_id] = m
    return jobs, by_id, unwritable


def check_answers(jobs: list[dict], answers: list[dict], by_id: dict, unwritable: Counter) -> dict:
    """Compare CadQuery's answers with the project's builds and assert the bounds; returns the
    figures (volume differences, unwritable models by reason, CadQuery's seconds per script)."""
    failed = [(a["id"], a["error"]) for a in answers if not a["ok"] or not a["valid"]]
    assert not failed, f"real CadQuery failed on {len(failed)} scripts: {failed[:5]}"
    results = map_on_cores(compare, [(by_id[a["id"]], j["code"], a) for a, j in zip(answers, jobs)])
    for r in results:
        for name in ("stated", "parsed"):
            c = r[name]
            where = f"{r['id']} against the {name} model"
            assert c["rel_volume"] <= MAX_REL_VOLUME, f"{where}: relative volume difference {c['rel_volume']:.3g}"
            assert c["bbox_mm"] <= BBOX_TOL_MM, f"{where}: bounding boxes {c['bbox_mm']:.3g} mm apart"
            assert c["solids"][0] == c["solids"][1], f"{where}: {c['solids'][0]} solids, the project {c['solids'][1]}"
            assert c["chamfer"] <= CHAMFER_SLACK * c["floor"], \
                f"{where}: Chamfer x1000 {c['chamfer']:.3g}, sampling floor {c['floor']:.3g}"
    in_mm = [r["id"] for r in results if r["millimetres"]]
    assert len(in_mm) <= max(1, len(results) // 100), f"CadQuery matches only the millimetre build on {in_mm}"
    rel = [r["stated"]["rel_volume_metres"] for r in results]
    seconds = [a["seconds"] for a in answers]
    figures = {
        "models": len(results), "unwritable": dict(unwritable), "fused_in_metres": sum(r["fused"] for r in results),
        "matched_in_millimetres": in_mm,
        "rel_volume_max": max(rel), "rel_volume_median": statistics.median(rel),  # against the build in metres
        "rel_volume_checked_max": max(r["stated"]["rel_volume"] for r in results),
        "chamfer_median": statistics.median(r["stated"]["chamfer"] for r in results),
        "chamfer_over_floor_max": max(r["stated"]["chamfer"] / r["stated"]["floor"] for r in results),
        "cadquery_seconds_median": statistics.median(seconds), "cadquery_seconds_mean": statistics.mean(seconds),
    }
    print(json.dumps(figures))
    return figures


def _synthetic(i: int, seed: int = 0):
    from cadvlm.synth import generate_model

    return generate_model(i, seed=seed)


def _real_models() -> list:
    from cadvlm.cad.deepcad_json import read_model

    models = []
    for path in real_json_files():
        try:
            models.append(read_model(path))
        except CADError:
            continue  # not a model (e.g. no extrude): nothing to write
    return models


# Scripts for the runner itself: three it must answer with an error each, the batch going on after
# them, and a cylinder of radius 1 and height 2 it must describe exactly.
RUNNER_CASES = [
    {"id": "raises", "code": "import cadquery as cq\nr=cq.Workplane('QQ')\n"},
    {"id": "no_result", "code": "x=1\n"},
    {"id": "hangs", "code": "while True:\n    pass\n", "timeout": 2},
    {"id": "cylinder", "code": "import cadquery as cq\nw0=cq.Workplane('XY',origin=(0,0,0))\n"
                               "r=w0.sketch().push([(0,0)]).circle(1).finalize().extrude(2)\n"},
]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One CadQuery run (its start costs seconds) for the quick tests: the real samples when
    present, 12 synthetic models and the runner's own cases."""
    reason = _cadquery_missing()
    if reason:
        pytest.skip(reason)
    groups = {"real": written_jobs(_real_models()), "synthetic": written_jobs([_synthetic(i, 4) for i in range(12)])}
    hand = [{"id": f"hand/{name}", "code": script} for name, (script, _) in sorted(SCRIPTS.items())]
    jobs = RUNNER_CASES + hand + [j for g in groups.values() for j in g[0]]
    answers = dict(zip([j["id"] for j in jobs],
                       run_cadquery(jobs, tmp_path_factory.mktemp("cadquery"))))
    return groups, answers


def _check_group(batch, name: str) -> dict:
    groups, answers = batch
    jobs, by_id, unwritable = groups[name]
    return check_answers(jobs, [answers[j["id"]] for j in jobs], by_id, unwritable)


# ----------------------------------------------------------------------------- tests


def test_real_samples(deepcad_dir, request):
    batch = request.getfixturevalue("batch")  # after deepcad_dir: no CadQuery run when it skips
    figures = _check_group(batch, "real")
    assert figures["models"] >= 20 and not figures["unwritable"]


def test_synthetic_sample(batch):
    figures = _check_group(batch, "synthetic")
    assert figures["models"] == 12 and not figures["unwritable"]


def test_hand_written_scripts_build_as_cadquery_builds_them(batch):
    """Scripts written by hand in both styles (Workplane chains, cq.Sketch; tests/cadquery_scripts.py):
    the reader's solid has CadQuery's volume and box, and both the volume worked out by hand."""
    from cadvlm.geometry.solid import bounding_box, build_solid

    _, answers = batch
    for name, (script, by_hand_mm3) in sorted(SCRIPTS.items()):
        got = answers[f"hand/{name}"]
        assert got["ok"] and got["valid"], (name, got["error"])
        ours = build_solid(parse_cadquery(script, name))
        ours_mm3 = precise_volume(ours) * 1e9
        assert abs(ours_mm3 - got["volume"]) <= MAX_REL_VOLUME * got["volume"], (name, ours_mm3, got["volume"])
        assert got["volume"] == pytest.approx(by_hand_mm3, rel=1e-6), name
        lo, hi = bounding_box(ours)
        assert np.allclose(np.array([lo, hi]) * 1000.0, got["bbox"], atol=BBOX_TOL_MM), name


def test_runner_reports_failures_and_goes_on(batch):
    """A script that raises, one that leaves no result and one that hangs each get their own error,
    and the batch goes on (the synthetic scripts after them in the same run were built)."""
    _, answers = batch
    assert not answers["raises"]["ok"] and answers["raises"]["error"].startswith("ValueError")
    assert not answers["no_result"]["ok"] and "no cq.Workplane in r" in answers["no_result"]["error"]
    assert answers["hangs"]["error"] == "timeout: over 2 s"


def test_runner_describes_a_known_solid(batch):
    """Volume (to 1e-9), exact box and validity of a cylinder of radius 1 and height 2."""
    answer = batch[1]["cylinder"]
    assert answer["ok"] and answer["valid"] and answer["solids"] == 1 and answer["faces"] == 3
    assert answer["volume"] == pytest.approx(2 * np.pi, rel=1e-9)
    assert np.allclose(answer["bbox"], [[-1, -1, 0], [1, 1, 2]], atol=1e-6)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_synthetic_1000(tmp_path):
    reason = _cadquery_missing()
    if reason:
        pytest.skip(reason)
    jobs, by_id, unwritable = written_jobs(map_on_cores(_synthetic, list(range(1000))))
    t = time.perf_counter()
    answers = run_cadquery(jobs, tmp_path)
    print(f"CadQuery batch: {time.perf_counter() - t:.1f} s for {len(jobs)} scripts")
    figures = check_answers(jobs, answers, by_id, unwritable)
    assert figures["models"] == 1000 and not figures["unwritable"]
