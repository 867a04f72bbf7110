#!/usr/bin/env bash
# The prepared GPU measurement (see run.py's docstring and README.md in this folder).
#
#   bash benchmarks/gpu/run.sh [--smoke] [--out DIR] [--budget SECONDS] [run.py options]
#
# Runs on the device machine (python3 there is 3.12 with torch+CUDA) and, with --smoke, anywhere
# (PYTHON=.venv/bin/python). run.py installs .gpu/wheels and the joined onnxruntime-gpu wheel into
# /tmp/redigits-site and runs every command with PYTHONPATH=/tmp/redigits-site:REPO.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 2
exec "${PYTHON:-python3}" -u benchmarks/gpu/run.py "$@"
