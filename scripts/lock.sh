#!/usr/bin/env bash
# Regenerate constraints.txt, the version of every Python package cadvlm installs, from a fresh
# unpinned install (a throwaway venv: the project's own .venv is not touched). scripts/setup.sh
# installs from that file, so every machine gets what CI tested. To upgrade:
#   bash scripts/lock.sh && rm -rf .venv && bash scripts/setup.sh && .venv/bin/python -m pytest
# then commit constraints.txt with whatever the new versions needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
pip="$tmp/venv/bin/python -m pip"
$pip install -q --upgrade pip
$pip install -q "torch==2.13.0"  # the CPU build, as setup.sh installs it
$pip install -q -e ".[dev]"
{
    echo "# Every Python package cadvlm installs, at the version CI tested (pip constraints)."
    echo "# Made by scripts/lock.sh on $("$tmp/venv/bin/python" -c 'import platform; print("CPython", platform.python_version(), platform.machine())'); scripts/setup.sh installs with -c constraints.txt"
    echo "# (CADVLM_UNPINNED=1 skips it). To upgrade: bash scripts/lock.sh, run the tests, commit."
    echo "# torch is not here: setup.sh installs it first (torch==2.13.0, CPU; or TORCH_INDEX_URL's build)."
    $pip freeze --exclude-editable | grep -v '^torch==' | LC_ALL=C sort -f
} > constraints.txt
echo "lock: wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
