#!/usr/bin/env bash
# The first GPU check: run it the moment a GPU machine is lent (one H100, <= 8 minutes, no internet).
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine, from anywhere in the repo
#   bash benchmarks/gpu_check.sh --cpu --out F    # the dry run on the CPU (CI: tests/test_gpu_check.py)
#
# It checks, each under its own time limit: LoRA on a converted TinyLLaVA Phi-2 + SigLIP-so400m-384
# (real sizes, random weights, bf16: tokens/s, MFU, peak memory), the train stage fully fine-tuning
# the tiny default, evaluate's batched generation, the serve benchmark, and the FSDP / ZeRO-2 tests.
# One table (check, ok / skip / fail, seconds, figures) is printed and written to
# benchmarks/results/gpu_<card>.txt (or --out); the exit status is 1 if a check failed.
# Details and options: benchmarks/gpu_check.py (--help).
#
# Needs the virtualenv .venv; make it once with `bash scripts/setup.sh` (on a GPU machine its
# `pip install torch==2.13.0` from PyPI brings CUDA). Nothing else: no data, no model download (do
# not fetch any; every model here is random and every input made on the spot).
# The interpreter: $CADVLM_PYTHON if set, else the active virtualenv's, else .venv's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${CADVLM_PYTHON:-}
if [ -z "$PY" ] && [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then PY=$VIRTUAL_ENV/bin/python; fi
if [ -z "$PY" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
if [ -z "$PY" ]; then
    echo "gpu_check: no virtualenv (.venv); make it with: bash scripts/setup.sh" >&2
    exit 2
fi
exec "$PY" benchmarks/gpu_check.py "$@"
