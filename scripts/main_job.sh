#!/usr/bin/env bash
# The main job on a fresh machine: install, then MNIST -> DIGITS LMDB -> LeNet from DIGITS' files
# -> ONNX -> classification. Each stage runs when its package provides the command; the script
# says where the project stops while later stages are still being built.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${RUN_DIR:-runs}"
export REDIGITS_MNIST_DIR="${REDIGITS_MNIST_DIR:-$PWD/../shared/data/mnist}"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q -e .
PY=.venv/bin/python

has() {  # has PACKAGE COMMAND: does `python -m PACKAGE` offer COMMAND yet?
  "$PY" -m "$1" --help 2>/dev/null | grep -qE "^ +$2( |$)|[{,]$2[,}]"
}
stop() {
  echo "== the project stops here for now: $1 (see README, 'Status')"
  exit 0
}

echo "== 1. DIGITS' LeNet, as DIGITS ships it"
"$PY" -m prototxt check --summary "$($PY -c 'from prototxt import network_path; print(network_path("lenet"))')"

echo "== 2. MNIST -> DIGITS LMDB dataset (28x28 grayscale, 25% validation)"
has lmdb_builder mnist || stop "lmdb_builder mnist is not built yet"
"$PY" -m lmdb_builder mnist --out "$RUN/mnist" --image-size 28 --channels 1 --force

echo "== 3. LeNet model job from DIGITS' network (DIGITS' model form defaults), then training"
EPOCHS="${EPOCHS:-3}"
"$PY" -m trainer new --dataset "$RUN/mnist" --network lenet --out "$RUN/lenet" --epochs "$EPOCHS" --force
has trainer run || stop "trainer run is not built yet (the model job is in $RUN/lenet)"
"$PY" -m trainer run "$RUN/lenet/solver.prototxt"

echo "== 4. ONNX export"
has converter onnx || stop "converter onnx is not built yet"
"$PY" -m converter onnx --job "$RUN/lenet" --out "$RUN/lenet/model.onnx"

echo "== 5. Classification of the MNIST test set"
has inference classify-many || stop "inference classify-many is not built yet"
"$PY" -m inference classify-many "$RUN/lenet/model.onnx" "$RUN/mnist/test.txt"
