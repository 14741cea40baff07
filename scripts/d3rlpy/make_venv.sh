#!/usr/bin/env bash
# A throwaway virtual environment with d3rlpy 2.8.1, the peer of benchmarks/bench_train.py.
# It lives apart from .venv because d3rlpy pins its own gymnasium. CI never runs this script.
#
# Usage: bash scripts/d3rlpy/make_venv.sh   (venv at <repo>/.d3rlpy-venv, or $D3RLPY_VENV)
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${D3RLPY_VENV:-.d3rlpy-venv}"
PY="${PYTHON:-python3}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import d3rlpy, sys; sys.exit(d3rlpy.__version__ != '2.8.1')" 2>/dev/null; then
    echo "d3rlpy venv already usable at $VENV" >&2
else
    "$PY" -m venv "$VENV"
    # torch first, pinned: the CPU build on this machine's disk (a looser pin pulls CUDA).
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "d3rlpy==2.8.1"
fi
"$VENV/bin/python" -c 'import sys; print(sys.executable)'
