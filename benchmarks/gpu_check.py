"""The first GPU check: what the GPU side of the pipeline does, measured in one command of <= 8 minutes.

    bash benchmarks/gpu_check.sh                    # on the lent GPU machine, in the repo root
    bash benchmarks/gpu_check.sh --cpu --out F      # the same checks at toy sizes on the CPU (CI, < 60 s)

Run it the moment a GPU machine is lent: it needs the virtualenv (`bash scripts/setup.sh` makes it;
on a GPU machine its `pip install torch==2.13.0` from PyPI brings CUDA) and nothing else. It downloads
nothing and needs no data (do not fetch any: the machine is lent for minutes): every model is random
(real sizes) and every input is made here; HF_HUB_OFFLINE=1 is set for every check, so a stray hub
call fails instead of downloading.

The checks, each in its own process with its own time limit (a hang or a crash is one `fail` row, the
rest still run), in this order:
1. `lora tinyllava-phi2-siglip`: benchmarks/bench_train.py --arch tinyllava-phi2-siglip --method lora:
   a TinyLLaVA checkpoint with OpenECAD-3.1B's shapes (Phi-2 + SigLIP-so400m at 384 px) written in
   TinyLLaVA's layout, converted by cadvlm's converter, loaded as the train stage loads it, random
   weights, LoRA steps in bf16: tokens/s, MFU, peak memory, loss.
2. `full tiny (train stage)`: the train stage (cadvlm.train.train) fully fine-tuning params.yaml's tiny
   default for one epoch on fake conversations (benchmarks/gpu_check_steps.py train): samples/s,
   tokens/s, peak memory, losses. Its model folder feeds checks 3 and 4.
3. `generate tiny (evaluate)`: evaluate's greedy batched generation with that model
   (gpu_check_steps.py generate): answers/s, new tokens/s, ms per decoding step.
4. `serve (bench_serve)`: benchmarks/bench_serve.py with a small request count: the real server over
   HTTP, throughput, latency, batching gain, bad input, TTL.
5. `fsdp` / `zero2 (test_distributed)`: `pytest tests/test_distributed.py -k sharded`, one row per
   launcher config; a skipped test (no CUDA GPU, DeepSpeed not installed) is a `skip` row.

It prints one table (check, status ok / skip / fail, seconds, key figures) and writes it to
benchmarks/results/gpu_<card>.txt (the card from torch.cuda.get_device_name), or to --out. The exit
status is 1 when a check failed. `--budget` (default 450 s) bounds the whole run: a check never gets
more than what is left, and one that cannot start is a `fail` row. A failed run keeps its logs (one
per check) and prints where; the last lines of a failing check's log are printed as it fails.

GPU sizes and the expected time on one H100 (estimates from the CPU measurements: no GPU has run it
yet): lora ~60-80 s (6 GB written + converted ~40 s, then batch 8 x 1,024 tokens, 2 + 10 steps;
needs 12 GB free under $TMPDIR), train ~30-40 s (512 fake samples, 128 steps), generate ~20 s (64
answers at eval.batch_size, <= 256 new tokens), serve ~60-80 s (32 requests at concurrency 16, <= 64
new tokens, then the same against a batch-1 server), sharded ~60 s. The time limits per check
(LIMITS) only stop hangs; together with the budget they keep the run under 8 minutes.

`--cpu` is the dry run CI runs (tests/test_gpu_check.py): the same checks, the same code paths (real
LoRA steps on a converted checkpoint, real Trainer steps, real generation, real HTTP requests), with
toy sizes (the Phi-2 + SigLIP layout at 2 layers of width 64), float32, one thread, the GPUs hidden
(so MFU is n/a and the sharded tests skip: `skip (no GPU)`). It writes its table to --out or a
temporary file, never into the repo.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BENCH = ROOT / "benchmarks"

# Per check: time limit (s) on the GPU and in the CPU dry run. The GPU limits add up to more than the
# budget: they stop a hang; the expected total on one H100 is well under it.
LIMITS = {"lora": (180, 120), "train": (100, 120), "generate": (60, 60), "serve": (150, 120), "sharded": (180, 90)}
NAMES = {"lora": "lora tinyllava-phi2-siglip", "train": "full tiny (train stage)",
         "generate": "generate tiny (evaluate)", "serve": "serve (bench_serve)",
         "fsdp": "fsdp (test_distributed)", "zero2": "zero2 (test_distributed)"}


@dataclass
class Row:
    name: str
    status: str  # ok | skip | fail
    seconds: float
    figures: str


@dataclass
class Ran:
    rc: int | None  # None: not run or killed
    seconds: float
    log: Path
    why: str = ""  # why it has no exit status: timed out, not run

    def failure(self) -> str:
        if self.why:
            return self.why
        lines = [ln.strip() for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        return f"exit {self.rc}: {lines[-1][:160] if lines else 'no output'}"


class Runner:
    """Runs check commands one at a time, each in its own process group under a time limit."""

    min_start_s = 10.0  # a check is not started with less time than this left

    def __init__(self, cpu: bool, work: Path, budget_s: float):
        self.cpu, self.work, self.deadline = cpu, work, time.monotonic() + budget_s
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                        DVC_NO_ANALYTICS="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
        self.tmp = work / "tmp"  # the checks' temporary files (bench_train's 12 GB of checkpoints among them)
        self.tmp.mkdir(exist_ok=True)
        self.env["TMPDIR"] = str(self.tmp)
        if cpu:
            self.env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run stays on the CPU even on a GPU machine
            # Toy sizes gain nothing from a second thread, and on a busy 2-core CI machine two threads
            # spinning at each barrier made steps several times slower.
            self.env["OMP_NUM_THREADS"] = "1"

    def run(self, key: str, argv: list[str], limit: float) -> Ran:
        log = self.logs / f"{key}.log"
        limit = min(limit, self.deadline - time.monotonic())
        if limit < self.min_start_s:
            log.write_text("not run: the time budget is spent\n")
            return Ran(None, 0.0, log, "not run: the time budget (--budget) is spent")
        print(f"[gpu_check] {NAMES.get(key, key)}: up to {limit:.0f} s ... ", end="", flush=True)
        t = time.monotonic()
        with open(log, "w") as out:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own group: a kill reaches its servers too
            try:
                rc, why = proc.wait(limit), ""
            except subprocess.TimeoutExpired:
                rc, why = None, f"timed out after {limit:.0f} s (killed)"
            finally:
                _kill_group(proc)
        seconds = time.monotonic() - t
        print(f"{'done' if rc == 0 else why or f'exit {rc}'} in {seconds:.0f} s", flush=True)
        if rc not in (0, None) or why:
            tail = log.read_text(errors="replace").splitlines()[-25:]
            print("\n".join("    | " + ln for ln in tail), file=sys.stderr, flush=True)
        return Ran(rc, seconds, log, why)


def _kill_group(proc: subprocess.Popen) -> None:
    """End the check's process group (servers and workers it started), politely first."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; give the rest of the group a moment
            os.killpg(proc.pid, 0)
            time.sleep(0.5)
        except ProcessLookupError:
            break


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _n(x: float) -> str:
    """A parameter count, short."""
    return f"{x / 1e9:.2f} B" if x >= 1e9 else f"{x / 1e6:.1f} M" if x >= 1e6 else f"{x / 1e3:.0f} K"


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"


def _f(x: float | None) -> str:
    return "none" if x is None else f"{x:.3f}"


def _mem(j: dict) -> str:
    return f"peak {j['peak_mem_gib']:.2f} GiB ({'GPU' if j['peak_mem_kind'].startswith('GPU') else 'RSS'})"


# ----------------------------------------------------------------------------- the checks
def check_lora(r: Runner) -> list[Row]:
    out = r.work / "lora.json"
    size = (["--small", "--cpu", "--batch-size", "1", "--seq-len", "800", "--steps", "2", "--warmup", "1"]
            if r.cpu else ["--batch-size", "8", "--seq-len", "1024", "--steps", "10", "--warmup", "2"])
    ran = r.run("lora", [PY, str(BENCH / "bench_train.py"), "--arch", "tinyllava-phi2-siglip", "--method", "lora",
                         *size, "--json", str(out)], LIMITS["lora"][r.cpu])
    j = _read_json(out) if ran.rc == 0 else None
    if j is None:
        return [Row(NAMES["lora"], "fail", ran.seconds, ran.failure())]
    mfu = f"MFU {j['mfu_pct']:.1f}%" if j.get("mfu_pct") is not None else "MFU n/a"
    figures = (f"{_n(j['params_b'] * 1e9)} params, {_n(j['trainable_m'] * 1e6)} trained, {j['mode']}; "
               f"batch {j['batch']}x{j['seq_len']} ({j['image_tokens']} image): {j['tokens_per_s']:,.0f} tokens/s, "
               f"{j['ms_per_step']:.0f} ms/step, {mfu}, {_mem(j)}; loss {j['losses'][0]:.2f} -> {j['losses'][-1]:.2f}; "
               f"checkpoint {_size(j['checkpoint_gib'])} written {j['write_s']:.0f} s, converted "
               f"{j['convert_s']:.0f} s, loaded {j['load_s']:.0f} s")
    return [Row(NAMES["lora"], "ok" if j["loss_finite"] else "fail", ran.seconds, figures)]


def check_train(r: Runner) -> list[Row]:
    out = r.work / "train.json"
    ran = r.run("train", [PY, str(BENCH / "gpu_check_steps.py"), "train", "--work", str(r.work), "--json", str(out)]
                + (["--cpu"] if r.cpu else []), LIMITS["train"][r.cpu])
    j = _read_json(out) if ran.rc == 0 else None
    if j is None:
        return [Row(NAMES["train"], "fail", ran.seconds, ran.failure())]
    losses = [j["train_loss"], j["val_loss"]]
    ok = all(v is not None and math.isfinite(v) for v in losses)
    figures = (f"{_n(j['n_params'])} params, {j['n_train']} samples x 1 epoch, batch {j['batch_size']}: "
               f"{j['samples_per_s']:.1f} samples/s, {j['tokens_per_s']:,.0f} tokens/s, {_mem(j)}; "
               f"loss {_f(losses[0])}, val {_f(losses[1])}; Trainer {j['train_runtime_s']:.0f} s")
    return [Row(NAMES["train"], "ok" if ok else "fail", ran.seconds, figures)]


def check_generate(r: Runner) -> list[Row]:
    out = r.work / "generate.json"
    ran = r.run("generate", [PY, str(BENCH / "gpu_check_steps.py"), "generate", "--work", str(r.work), "--json",
                             str(out)] + (["--cpu"] if r.cpu else []), LIMITS["generate"][r.cpu])
    j = _read_json(out) if ran.rc == 0 else None
    if j is None:
        return [Row(NAMES["generate"], "fail", ran.seconds, ran.failure())]
    figures = (f"{j['answers']} answers, batch {j['batch_size']}, <= {j['max_new_tokens']} new tokens: "
               f"{j['answers_per_s']:.2f} answers/s, {j['tokens_per_s']:,.0f} tokens/s "
               f"({j['tokens_per_answer']:.0f} per answer), {j['ms_per_step']:.1f} ms/step, {_mem(j)}; "
               f"model: {j['model']}")
    return [Row(NAMES["generate"], "ok" if j["answers"] > 0 and j["tokens"] > 0 else "fail", ran.seconds, figures)]


def check_serve(r: Runner) -> list[Row]:
    out = r.work / "serve.json"
    size = (["--requests", "16", "--concurrency", "8", "--max-new-tokens", "16", "--ttl", "1", "--workers", "1",
             "--no-single"] if r.cpu else ["--requests", "32", "--concurrency", "16", "--max-new-tokens", "64",
                                           "--ttl", "3"])
    ran = r.run("serve", [PY, str(BENCH / "bench_serve.py"), "--model", str(r.work / "models"), "--images",
                          str(r.work / "data" / "rendered"), "--leak-requests", "0", *size, "--json", str(out),
                          "--out", str(r.work / "serve.txt")], LIMITS["serve"][r.cpu])
    j = _read_json(out) if ran.rc == 0 else None
    if j is None:
        return [Row(NAMES["serve"], "fail", ran.seconds, ran.failure())]
    b = j["batched"]
    bad_ok = all(400 <= code < 500 for _, code, _ in j["bad_input"])
    ok = b["errors"] == 0 and j["healthy_after_bad_input"] and bad_ok and j["ttl_files_left"] == 0
    gain = f", batching gain {j['batching_gain']:.2f}x" if j["batching_gain"] else ""
    figures = (f"{b['n']} requests at {j['concurrency']}, <= {j['max_new_tokens']} new tokens: "
               f"{b['throughput']:.1f} req/s, p50 {b['p50']:.2f} s, p99 {b['p99']:.2f} s, mean batch "
               f"{b['batch_mean']:.1f}{gain}, errors {b['errors']}; bad input 4xx {'yes' if bad_ok else 'NO'} "
               f"(slowest {max(dt for _, _, dt in j['bad_input']):.2f} s); TTL files left {j['ttl_files_left']}; "
               f"server RSS {j['memory_mb']['server']:.0f} MB; model: "
               f"{'trained by the train check' if j['model'] == str(r.work / 'models') else j['model']}")
    return [Row(NAMES["serve"], "ok" if ok else "fail", ran.seconds, figures)]


def check_sharded(r: Runner) -> list[Row]:
    xml = r.work / "sharded.xml"
    ran = r.run("sharded", [PY, "-m", "pytest", "tests/test_distributed.py", "-k", "sharded", "-q", "-rs",
                            "-p", "no:cacheprovider", f"--junitxml={xml}"], LIMITS["sharded"][r.cpu])
    rows = sharded_rows(xml) if xml.is_file() else []
    if not rows:
        return [Row(NAMES[k], "fail", ran.seconds, ran.failure()) for k in ("fsdp", "zero2")]
    if ran.why:  # killed mid-way: what junit holds is incomplete
        rows = [Row(row.name, "fail", row.seconds, ran.why) for row in rows]
    if r.cpu:  # the GPUs are hidden: the tests skip, as they must
        rows = [Row(row.name, row.status, row.seconds, row.figures.replace("skip: ", "skip (no GPU): ", 1))
                for row in rows]
    return rows


def sharded_rows(xml: Path) -> list[Row]:
    """One row per test of pytest's junit XML: ok, skip (with pytest's reason) or fail (its message)."""
    rows = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        param = re.search(r"\[(\w+)\]", case.get("name", ""))
        key = param.group(1) if param else case.get("name", "?")
        name = NAMES.get(key, f"{key} (test_distributed)")
        seconds = float(case.get("time") or 0)
        skipped, failed = case.find("skipped"), case.find("failure")
        if failed is None:
            failed = case.find("error")
        if failed is not None:
            msg = (failed.get("message") or failed.text or "failed").strip().splitlines()[0][:160]
            rows.append(Row(name, "fail", seconds, msg))
        elif skipped is not None:
            msg = (skipped.get("message") or "skipped").strip().splitlines()[0][:160]
            rows.append(Row(name, "skip", seconds, f"skip: {msg}"))
        else:
            rows.append(Row(name, "ok", seconds, "trained, saved and reloaded under accelerate launch"))
    return rows


CHECKS = (check_lora, check_train, check_generate, check_serve, check_sharded)


# ----------------------------------------------------------------------------- table and driver
def table(rows: list[Row]) -> str:
    w = max(len(r.name) for r in rows)
    lines = [f"{'check':{w}}  status  seconds  figures", f"{'-' * w}  ------  -------  -------"]
    lines += [f"{r.name:{w}}  {r.status:6}  {r.seconds:7.1f}  {r.figures}" for r in rows]
    return "\n".join(lines)


def slug(card: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia_h100_80gb_hbm3'."""
    return re.sub(r"[^a-z0-9]+", "_", card.lower()).strip("_")


PROBE = ("import json, torch; n = torch.cuda.device_count() if torch.cuda.is_available() else 0; "
         "print(json.dumps({'gpus': n, 'card': torch.cuda.get_device_name(0) if n else None, "
         "'torch': torch.__version__}))")


def device(cpu: bool) -> dict:
    """What the checks will run on. The GPU is probed in a child process, so that this one never holds a
    CUDA context (its memory would be missing from the checks)."""
    if cpu:
        return {"gpus": 0, "card": f"CPU ({platform.machine()}, {os.cpu_count()} cores)"}
    done = subprocess.run([PY, "-c", PROBE], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        sys.exit(f"gpu_check: cannot import torch: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _versions() -> str:
    out = []
    for pkg in ("torch", "transformers", "peft", "accelerate"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} missing")
    return ", ".join(out)


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {sha or '?'}{' + uncommitted changes' if dirty else ''}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--cpu", action="store_true", help="the dry run: toy sizes on the CPU, GPUs hidden")
    ap.add_argument("--out", type=Path, default=None,
                    help="where the table goes (default: benchmarks/results/gpu_<card>.txt; with --cpu a temp file)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all checks (default 450; --cpu 400)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, models, figures)")
    args = ap.parse_args(argv)

    dev = device(args.cpu)
    if not args.cpu and dev["gpus"] == 0:
        print("gpu_check: no CUDA GPU visible (torch " + dev.get("torch", "?") + "). The dry run on the CPU is "
              "`bash benchmarks/gpu_check.sh --cpu`; on a GPU machine, a CPU-only torch needs replacing: "
              "`.venv/bin/pip install torch==2.13.0` (PyPI's wheel brings CUDA).", file=sys.stderr)
        return 2
    budget = args.budget or (400.0 if args.cpu else 450.0)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    if args.out is None:
        args.out = (work.parent / f"gpu_check_cpu_{work.name}.txt" if args.cpu
                    else ROOT / "benchmarks" / "results" / f"gpu_{slug(dev['card'])}.txt")
    mode = "CPU dry run (--cpu)" if args.cpu else f"{dev['gpus']} x {dev['card']}"
    print(f"[gpu_check] {mode}; budget {budget:.0f} s; work folder {work}", flush=True)
    runner = Runner(args.cpu, work, budget)
    t0 = time.monotonic()
    rows: list[Row] = []
    try:
        for check in CHECKS:
            rows += check(runner)
    finally:
        total = time.monotonic() - t0
        failed = [r for r in rows if r.status == "fail"]
        shutil.rmtree(runner.tmp, ignore_errors=True)  # never leave a killed check's 6 GB checkpoint behind
        if rows:
            counts = ", ".join(f"{sum(r.status == s for r in rows)} {s}" for s in ("ok", "skip", "fail"))
            head = [f"# bash benchmarks/gpu_check.sh {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
                    f"# {mode}, python {platform.python_version()}, {_versions()}, {_commit()}, {date.today()}",
                    f"# total {total:.0f} s of a {budget:.0f} s budget: {counts}. Random weights, made-up inputs; "
                    "figures are per check (benchmarks/gpu_check.py says what each runs)."]
            text = "\n".join(head) + "\n" + table(rows) + "\n"
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
            print("\n" + text + f"\n[gpu_check] table written to {args.out}", flush=True)
        if failed or args.keep:
            print(f"[gpu_check] logs and outputs kept in {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
