#!/usr/bin/env bash
# Create a throwaway virtual environment holding the real OR-Gym 0.5.0, used
# only to (re)generate the reference fixtures in tests/sim/fixtures/ and to run
# scripts/orgym/bench_orgym.py. CI never runs this script.
#
# Usage:
#   bash scripts/orgym/make_venv.sh            # venv at <repo>/.orgym-venv
#   ORGYM_VENV=../orgym-venv bash scripts/orgym/make_venv.sh
#   PYTHON=python3.11 bash scripts/orgym/make_venv.sh
#
# Why these pins:
#   * gym 0.19.0 (the newest gym OR-Gym 0.5.0 accepts) ships only an sdist whose
#     setup.py has an extras_require spec (`opencv-python>=3.`) that current
#     setuptools rejects ("'extras_require' must be a dictionary whose values
#     are ... valid project/version requirement specifiers"). With build
#     isolation pip builds it with the newest setuptools and fails, so it is
#     built with setuptools 65.5.0 and wheel<0.40 in the venv itself
#     (--no-build-isolation).
#   * OR-Gym 0.5.0 uses `np.Inf`, removed in numpy 2, hence numpy<2; the other
#     upper bounds keep scipy/pandas/matplotlib on releases built for numpy 1.x.
#   * or-gym is installed with --no-deps so pip does not try to re-resolve gym.
#
# Idempotent: if the venv already imports or_gym (and can make the
# InvManagement envs), nothing is installed. The venv's python path is printed
# on the last line of output.
set -euo pipefail

cd "$(dirname "$0")/../.."

VENV="${ORGYM_VENV:-.orgym-venv}"
PY="${PYTHON:-python3}"
VPY="$VENV/bin/python"

check() {
    "$VPY" - <<'EOF' >/dev/null 2>&1
import or_gym
assert or_gym.__version__ == "0.5.0", or_gym.__version__
or_gym.make("InvManagement-v0")
or_gym.make("InvManagement-v1")
EOF
}

if [ -x "$VPY" ] && check; then
    echo "OR-Gym venv already usable at $VENV" >&2
else
    echo "Creating OR-Gym venv at $VENV with $("$PY" --version 2>&1)" >&2
    "$PY" -m venv "$VENV"
    PIP=("$VPY" -m pip install --disable-pip-version-check --no-input)
    "${PIP[@]}" "setuptools==65.5.0" "wheel<0.40"
    # numpy<2 here too, so gym's own numpy requirement doesn't pull numpy 2.
    "${PIP[@]}" --no-build-isolation "gym==0.19.0" "numpy<2"
    "${PIP[@]}" "numpy<2" "scipy<1.14" "pandas<2.3" "matplotlib<3.9" "networkx<3.5"
    "${PIP[@]}" --no-deps "or-gym==0.5.0"
    if ! check; then
        echo "error: or_gym still does not import in $VENV" >&2
        "$VPY" -c 'import or_gym; or_gym.make("InvManagement-v1")'
        exit 1
    fi
    echo "OR-Gym venv ready" >&2
fi

"$VPY" -c 'import sys; print(sys.executable)'
