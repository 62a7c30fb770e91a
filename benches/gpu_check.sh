#!/usr/bin/env bash
# The GPU check (benches/gpu_check.py): every CUDA path of dltool measured once, written to
# gpu_check.json + gpu_check.md (in benches/, or --out DIR). Runs from any directory.
#
#   benches/gpu_check.sh [--quick] [--out DIR]
#
# On a CPU machine every row reads "not measured (no CUDA device)" and it exits 0 (CI runs
# --quick so). On a GPU the full form takes under 8 minutes on one datacenter GPU.
#
# A GPU machine whose Python lacks some of dltool's dependencies: the check names the missing
# (or too old) ones and exits 2 before measuring anything. The device machines here (torch,
# torchvision, timm, pandas, ... but not pydantic, optuna, platformdirs or torchinfo) take
# them as wheels (/work/.library/device/README.md), downloaded once into the checkout's
# .whl/ (listed in .git/info/exclude), 8 MB:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic-core==2.50.5 \
#     annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 \
#     platformdirs==4.14.9 torchinfo==1.8.0 optuna==5.1.0 alembic==1.20.1 colorlog==6.12.0 \
#     sqlalchemy==2.1.9 mako==1.4.3
# then the device command (carry: .whl; timeout 540 s):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; \
#     benches/gpu_check.sh --out $OUT
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# dltool runs from its source tree: no install step on a borrowed machine.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
# Rows print as they finish, also when the output goes to a file or a pipe.
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$root/benches/gpu_check.py" "$@"
