#!/usr/bin/env bash
# Set up cadvlm on a fresh Debian/Ubuntu machine with Python 3.10+: the system libraries open3d
# needs, a virtual environment in .venv, a CPU build of torch (no CUDA download on a CPU machine),
# then the package with its dev extras at the versions CI tested (constraints.txt, made by
# scripts/lock.sh; CADVLM_UNPINNED=1 takes the newest instead). Safe to run again: it only
# installs what is missing, and moves a package back to its locked version.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libusb-1.0-0 libgl1 libegl1 libgomp1; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing system libraries: ${need[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip

if ! python -c "import torch" 2>/dev/null; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        # e.g. the CPU wheel index of PyTorch on a machine without a local build
        pip install -q torch --index-url "$TORCH_INDEX_URL"
    elif ! pip install -q "torch==2.13.0"; then
        # GPU machines: the default torch wheel brings CUDA, as it should there.
        pip install -q "torch>=2.2"
    fi
fi
if [ -n "${CADVLM_UNPINNED:-}" ]; then
    pip install -q -e ".[dev]"
else
    pip install -q -c constraints.txt -e ".[dev]"
fi

# cadvlm serve: the page's 3-D viewer (@google/model-viewer) and /docs (swagger-ui) come from npm into
# web/node_modules (git-ignored; pinned by web/package-lock.json, no install scripts run), and the
# browser test drives headless Chromium, both installed only when missing.
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
web_need=()
command -v npm >/dev/null 2>&1 || web_need+=(npm)
for pkg in chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || web_need+=("$pkg")
done
if [ ${#web_need[@]} -gt 0 ]; then
    echo "setup: installing ${web_need[*]} (serve page and its browser test)"
    if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${web_need[@]}"; }; then
        echo "setup: WARNING: could not install ${web_need[*]}; the serve browser test will be skipped" >&2
    fi
fi
if { [ ! -f web/node_modules/@google/model-viewer/dist/model-viewer.min.js ] ||
     [ ! -f web/node_modules/vega-embed/build/vega-embed.min.js ]; } && command -v npm >/dev/null 2>&1; then
    (cd web && npm ci --omit=peer --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# `dvc plots show|diff` pages: DVC's own loads vega from a CDN. scripts/plots_template.py writes a
# template (git-ignored) with vega, vega-lite and vega-embed from web/node_modules inline, so the page
# draws offline; DVC is pointed at it by a machine-local setting, and only while the file exists,
# since a setting that names a missing file makes `dvc plots show` fail.
if python scripts/plots_template.py; then
    dvc config --local plots.html_template ../web/dvc_plots_template.html  # relative to .dvc/
else
    echo "setup: WARNING: no offline plots template; dvc plots pages will load vega from a CDN" >&2
    [ -f web/dvc_plots_template.html ] || dvc config --local --unset plots.html_template 2>/dev/null || true
fi
# Real CadQuery for tests/test_cadquery_real.py, in its own environment .venv-cq (its OCP conflicts
# with the project's); best effort: without it those tests skip, saying why.
if ! bash scripts/setup_cadquery.sh; then
    echo "setup: WARNING: no CadQuery environment (.venv-cq); tests/test_cadquery_real.py will be skipped" >&2
fi
echo "setup: done ($(python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
