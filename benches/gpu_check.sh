#!/usr/bin/env bash
# The GPU check (benches/gpu_check.py): every CUDA path of dltool measured once, written to
# gpu_check.json + gpu_check.md (in benches/, or --out DIR). Runs from any directory.
#
#   benches/gpu_check.sh [--quick] [--out DIR]
#
# On a CPU machine every row reads "not measured (no CUDA device)" and it exits 0 (CI runs
# --quick so). On a GPU the full form takes under 8 minutes on one datacenter GPU.
#
# A GPU machine whose Python lacks some of dltool's dependencies (the device machines here
# have torch and torchvision but not pydantic, optuna, platformdirs or torchinfo): the check
# names the missing packages and exits 2 before measuring anything. Carry them as wheels
# (/work/.library/device/README.md), downloaded once into .whl/ of the checkout, e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic pydantic-core annotated-types typing-inspection platformdirs torchinfo \
#     optuna alembic sqlalchemy mako colorlog greenlet
# and install them there to a folder on PYTHONPATH before running this script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# dltool runs from its source tree: no install step on a borrowed machine.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
# Rows print as they finish, also when the output goes to a file or a pipe.
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$root/benches/gpu_check.py" "$@"
