#!/usr/bin/env bash
# The main job on a fresh machine: install, then MNIST -> DIGITS LMDB -> a network trained from
# DIGITS' files -> ONNX -> classification of the 10,000 MNIST test images, and a table beside the
# seed DIGITS job's figures.
#
#   bash scripts/main_job.sh                      # LeNet, 28x28 gray (minutes on 2 CPU cores)
#   bash scripts/main_job.sh --network googlenet  # the seed's configuration (hours on a CPU)
#   options: --epochs N  --device cpu|cuda  --yes (no question before a long run)  --run-dir DIR
#
# MNIST comes from $REDIGITS_MNIST_DIR when set, else it is downloaded once into
# ~/.cache/redigits/mnist with md5 checks.
set -euo pipefail
cd "$(dirname "$0")/.."

NETWORK=lenet EPOCHS="" DEVICE="" YES=0 RUN="${RUN_DIR:-runs}"
while [ $# -gt 0 ]; do
  case "$1" in
    --network) NETWORK="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --run-dir) RUN="$2"; shift 2 ;;
    --yes|-y) YES=1; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "${REDIGITS_MNIST_DIR:-}" ] && [ -d ../shared/data/mnist ]; then
  export REDIGITS_MNIST_DIR="$PWD/../shared/data/mnist"
fi

echo "== 0. install (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e .
PY=.venv/bin/python
DEV=()
[ -n "$DEVICE" ] && DEV=(--device "$DEVICE")

case "$NETWORK" in
  lenet)
    # DIGITS' Getting Started: 28x28 grayscale, MNIST's test folder as the separate validation
    # set (so all 60,000 training images train), LeNet with the model form's defaults; 10 epochs
    # instead of 30 (the accuracy has levelled off by then).
    DATA="$RUN/mnist" JOB="$RUN/lenet" EPOCHS="${EPOCHS:-10}"
    DATASET_ARGS=(--image-size 28 --channels 1 --test-as-val)
    NEW_ARGS=(--seed 1) ;;
  googlenet)
    # The seed job: 256x256 colour squash, DIGITS' 25 % validation split (45,002 / 14,998),
    # GoogLeNet, batch 32, lr 0.01, 2 epochs.
    DATA="$RUN/mnist256" JOB="$RUN/googlenet" EPOCHS="${EPOCHS:-2}"
    DATASET_ARGS=(--image-size 256 --channels 3)
    NEW_ARGS=(--lr 0.01 --seed 1) ;;  # batch 32 / val 16: the network's own, as the seed
  *) echo "--network must be lenet or googlenet" >&2; exit 2 ;;
esac
START=$SECONDS

echo "== 1. MNIST -> DIGITS LMDB dataset ($DATA)"
"$PY" -m lmdb_builder mnist --out "$DATA" "${DATASET_ARGS[@]}" --force
"$PY" -m lmdb_builder mnist-images --out "$RUN/mnist-files" --split test --force

echo "== 2. $NETWORK model job from DIGITS' network and model form ($JOB, $EPOCHS epochs)"
"$PY" -m trainer new --dataset "$DATA" --network "$NETWORK" --out "$JOB" --epochs "$EPOCHS" \
     "${NEW_ARGS[@]}" --force
if [ "$NETWORK" = googlenet ]; then
  "$PY" scripts/main_job.py estimate "$JOB" "${DEV[@]}" | tee "$JOB/estimate.txt"
  if [ "$YES" != 1 ]; then
    if [ -t 0 ]; then
      read -r -p "Train now? [y/N] " answer
      case "$answer" in y|Y|yes) ;; *) echo "stopped before training"; exit 0 ;; esac
    else
      echo "stopped before training: pass --yes to train without asking"; exit 0
    fi
  fi
fi

echo "== 3. training (trainer run $JOB/solver.prototxt)"
TRAIN_START=$SECONDS
"$PY" -m trainer run "$JOB/solver.prototxt" "${DEV[@]}"
TRAIN_SECONDS=$((SECONDS - TRAIN_START))

echo "== 4. ONNX export"
"$PY" -m converter onnx --job "$JOB" --out "$JOB/model.onnx"

echo "== 5. classification of the MNIST test set (DIGITS' Classify Many) and latency"
"$PY" -m inference classify-many "$JOB/model.onnx" "$RUN/mnist-files/test/test.txt" --json \
     > "$JOB/classify_many.json"
"$PY" -m inference bench "$JOB/model.onnx" --batch 1,64 --seconds 3 --json > "$JOB/bench.json"

echo "== 6. summary"
"$PY" scripts/main_job.py summary --dataset "$DATA" --job "$JOB" --train-seconds "$TRAIN_SECONDS" \
     --total-seconds $((SECONDS - START)) | tee "$JOB/summary.md"
