#!/usr/bin/env bash
# Real CadQuery, for the tests only (tests/test_cadquery_real.py builds the scripts that
# cadvlm.codec.cadquery_writer writes): a virtual environment of its own, .venv-cq (git-ignored),
# because the `cadquery` package requires cadquery-ocp (OCP 7.9, with VTK), which ships the same
# `OCP` module as the project's cadquery-ocp-novtk 8: the two cannot share .venv. Nothing of
# cadvlm is installed there; only scripts/cadquery_build.py runs in it, fed by the tests.
# Versions are the ones the tests were run with. Safe to run again. scripts/setup.sh calls this and
# goes on if it fails; the tests that need it then skip, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

CADQUERY_VERSION=2.8.0
OCP_VERSION=7.9.3.1.1
VENV=.venv-cq
PY=${PYTHON:-python3}

if "$VENV/bin/python" -c "import sys, cadquery; sys.exit(cadquery.__version__ != '$CADQUERY_VERSION')" 2>/dev/null; then
    echo "setup_cadquery: cadquery $CADQUERY_VERSION already in $VENV"
    exit 0
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup_cadquery: cadquery $CADQUERY_VERSION needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))" >&2
    exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "cadquery==$CADQUERY_VERSION" "cadquery-ocp==$OCP_VERSION"
echo "setup_cadquery: $("$VENV/bin/python" -c 'import cadquery; print("cadquery", cadquery.__version__)') in $VENV"
