"""The train stage under several processes: the shipped launcher configs (configs/accelerate/).

On a CPU, two processes train together over gloo, started by `accelerate launch` with the DDP config
(the command `train.launcher` puts in front of stages/train.py) and by torchrun: the steps are split
between them (half as many optimiser steps per epoch), the loss is finite, and the model folder is
written once, by process 0.

FSDP does not run on a CPU with the locked accelerate (constraints.txt), with either FSDP version, although
torch's own FSDP2 (`fully_shard`) does shard and train over gloo there. Two things stop it, both inside
accelerate:
- fsdp.yaml (FSDP1 with `fsdp_sync_module_states: true`) stops every process in the Trainer's Accelerator:
  FullyShardedDataParallelPlugin.__post_init__ (accelerate/utils/dataclasses.py) raises a RuntimeError when
  no accelerator exists (its wording changes between releases; the test checks that it refuses, not how).
- Without sync_module_states, with fsdp_version 2 (which ignores that setting), or with
  TrainingArguments(fsdp=..., fsdp_config=...) under torchrun, the train stage finishes, but as DDP: a CPU
  process group is DistributedType.MULTI_CPU (AcceleratorState._prepare_backend), and AcceleratorState
  keeps the FSDP plugin (switches to DistributedType.FSDP) only for the GPU-like types (MULTI_GPU,
  MULTI_XPU, ...: accelerate/state.py, the `elif self.distributed_type in [` branch). Nothing is printed;
  the Trainer's `is_fsdp_enabled` is False and the model is wrapped in DistributedDataParallel.
  (`accelerate launch --cpu` with an FSDP or DDP config starts one process only.)
`test_fsdp_config_on_cpu_is_not_fsdp` pins both, so that an accelerate that allows it fails that test and
a real CPU FSDP run can replace it. DeepSpeed ZeRO-2 needs CUDA. The FSDP and ZeRO-2 configs are checked
here for what the pipeline relies on; the runs themselves are GPU tests, skipped without one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_train import REPO, make_project

CONFIGS = REPO / "configs" / "accelerate"
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _launch(launcher: list[str], root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(launcher + [str(REPO / "stages" / "train.py"), "--root", str(root)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return done


def _check_two_process_run(root: Path, done: subprocess.CompletedProcess, n_train: int, batch: int) -> None:
    metrics = json.loads((root / "metrics" / "train.json").read_text())
    assert math.isfinite(metrics["train_loss_first_epoch"]) and math.isfinite(metrics["val_loss_last"])
    steps = (root / "metrics" / "train" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()[1:]
    assert len(steps) == n_train // (batch * 2)  # one epoch, the batches split between the 2 processes
    wrote = [line for line in done.stdout.splitlines() if line.startswith("[train] wrote")]
    assert wrote == [f"[train] wrote {root / 'models_sft'} (process 0 of 2)"]
    manifest = json.loads((root / "models_sft" / "cadvlm_model.json").read_text())
    assert manifest["weights"] == "full"


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["accelerate-ddp", "torchrun"])
def test_two_cpu_processes_train_together(tmp_path, launcher):
    root = make_project(tmp_path, n_train=16, n_val=4, epochs=1, batch_size=2, eval_on_start=False,
                        save_steps=1000, logging_steps=1)
    cmd = (ACCELERATE + ["--config_file", str(CONFIGS / "ddp.yaml"), "--num_processes", "2",
                         "--main_process_port", _port()]
           if launcher == "accelerate-ddp" else TORCHRUN + ["--nproc_per_node", "2", "--master_port", _port()])
    done = _launch(cmd, root)
    _check_two_process_run(root, done, 16, 2)
    from cadvlm.model.load import load_trained

    model, _ = load_trained(root / "models_sft", device="cpu")  # the folder is whole: it loads
    assert not model.training


def test_launcher_configs_say_what_the_pipeline_relies_on():
    from accelerate.commands.config.config_args import load_config_from_file

    for name, kind in (("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero2", "DEEPSPEED")):
        cfg = load_config_from_file(str(CONFIGS / f"{name}.yaml"))  # accelerate's own reader accepts it
        assert str(cfg.distributed_type).endswith(kind) and cfg.mixed_precision == "no", name
    fsdp = yaml.safe_load((CONFIGS / "fsdp.yaml").read_text())["fsdp_config"]
    # frozen and trained weights in one shard unit (frozen tower, LoRA); whole weights when rank 0 saves
    assert fsdp["fsdp_use_orig_params"] is True and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    ds_file = yaml.safe_load((CONFIGS / "zero2.yaml").read_text())["deepspeed_config"]["deepspeed_config_file"]
    ds = json.loads((REPO / ds_file).read_text())
    assert ds["zero_optimization"]["stage"] == 2
    assert {ds[k] for k in ("gradient_accumulation_steps", "gradient_clipping", "train_micro_batch_size_per_gpu")} \
        == {"auto"}  # the Trainer fills them from params.yaml's train section
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]
    assert dvc["cmd"] == "${train.launcher} stages/train.py" and "configs/accelerate" in dvc["deps"]


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# What the Trainer's Accelerator sees on a CPU (train.py's PartialState(cpu=True) first, as in the stage);
# each process writes its own file (two processes printing to one pipe can interleave their lines).
_PROBE = """
import json, sys
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import FullyShardedDataParallelPlugin

state = PartialState(cpu=True)
try:
    FullyShardedDataParallelPlugin(sync_module_states=True)
    refused = None
except RuntimeError as e:
    refused = str(e)
acc = Accelerator()
model = acc.prepare(torch.nn.Linear(4, 4))
fsdp = getattr(acc.state, "fsdp_plugin", None) is not None  # what Trainer.is_fsdp_enabled reads
seen = {"type": str(acc.distributed_type), "fsdp": fsdp, "wrapped": type(model).__name__,
        "world": state.num_processes, "refused": refused}
Path(sys.argv[1], f"rank{state.process_index}.json").write_text(json.dumps(seen))
"""


@pytest.mark.slow
@pytest.mark.skipif(_gpus() > 0, reason="with CUDA GPUs the train stage uses them: test_sharded_launchers_on_gpus")
def test_fsdp_config_on_cpu_is_not_fsdp(tmp_path):
    """Why no CPU FSDP run is tested (module docstring): fsdp.yaml with use_cpu, 2 processes, FSDP1 and FSDP2.

    When this fails after an accelerate upgrade, FSDP may have become possible on a CPU: replace this test
    with a 2-process FSDP training run mirroring test_two_cpu_processes_train_together.
    """
    cfg = yaml.safe_load((CONFIGS / "fsdp.yaml").read_text())
    cfg["use_cpu"] = True
    cfg["fsdp_config"]["fsdp_sync_module_states"] = False  # else FSDP1 stops in the plugin (checked below)
    probe = tmp_path / "probe.py"
    probe.write_text(_PROBE)
    for version in (1, 2):
        cfg["fsdp_config"]["fsdp_version"] = version
        config, out = tmp_path / f"fsdp{version}_cpu.yaml", tmp_path / f"fsdp{version}"
        config.write_text(yaml.safe_dump(cfg))
        out.mkdir()
        done = subprocess.run(ACCELERATE + ["--config_file", str(config), "--num_processes", "2",
                                            "--main_process_port", _port(), str(probe), str(out)],
                              cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
        seen = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
        for s in seen:  # both processes in one group, as DDP: the FSDP plugin was dropped without a word
            assert (s["type"], s["fsdp"], s["wrapped"], s["world"]) == \
                ("DistributedType.MULTI_CPU", False, "DistributedDataParallel", 2), (version, s)
            # FSDP1's plugin refuses sync_module_states (fsdp.yaml's) without an accelerator; FSDP2 ignores it
            assert (s["refused"] is not None) == (version == 1), (version, s)


@pytest.mark.slow
@pytest.mark.skipif(_gpus() == 0, reason="FSDP and ZeRO-2 need CUDA GPUs (accelerate keeps FSDP only on an "
                                           "accelerator; on a CPU it refuses or runs DDP: module docstring)")
@pytest.mark.parametrize("config", ["fsdp", "zero2"])
def test_sharded_launchers_on_gpus(tmp_path, config):
    if config == "zero2" and shutil.which("ds_report") is None:
        pytest.skip("DeepSpeed is not installed (pip install deepspeed)")
    n = min(2, _gpus())
    root = make_project(tmp_path, n_train=16, n_val=4, epochs=1, batch_size=2, eval_on_start=False,
                        save_steps=1000, logging_steps=1)
    done = _launch(ACCELERATE + ["--config_file", str(CONFIGS / f"{config}.yaml"), "--num_processes", str(n),
                                 "--main_process_port", _port()], root)
    assert f"[train] wrote {root / 'models_sft'} (process 0 of {n})" in done.stdout
    from cadvlm.model.load import load_trained

    load_trained(root / "models_sft")
