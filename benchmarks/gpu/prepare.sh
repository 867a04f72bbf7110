#!/usr/bin/env bash
# Prepare, on this machine (it has the package registry), everything the GPU machine lacks,
# in the ignored folder .gpu/:
#
#   .gpu/mnist/       the four MNIST idx .gz files (from $REDIGITS_MNIST_DIR, else ../shared/data/mnist)
#   .gpu/wheels/      cp312 manylinux x86-64 wheels: lmdb, protobuf and isal, the versions of .venv
#   .gpu/ort-parts/   onnxruntime-gpu (cp312) cut into 60,000,000-byte parts ort.part00..,
#                     ort.sha256 (of the whole wheel), ort.wheel (its file name), ort.manifest
#                     (part names and sizes)
#
# One device call carries at most ~64 MiB, so the onnxruntime parts travel one per call:
# `bash benchmarks/gpu/stage.sh K` puts part K (and the small files) into .gpu/ort/, which is
# then carried to the device, where `bash benchmarks/gpu/receive.sh` collects it.
#
#   bash benchmarks/gpu/prepare.sh            # idempotent: what is there and checks out is kept
#
# Environment: REDIGITS_MNIST_DIR, ORT_GPU_VERSION (1.31.1), ORT_WHEEL (a local wheel to reuse,
# default /tmp/whl/onnxruntime_gpu-<version>-cp312-cp312-manylinux_2_28_x86_64.whl),
# PIP_PYTHON (the Python whose pip downloads: python3), VENV_PYTHON (.venv/bin/python).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
GPU=.gpu
PART_BYTES=60000000
ORT_VERSION=${ORT_GPU_VERSION:-1.31.1}
ORT_NAME="onnxruntime_gpu-${ORT_VERSION}-cp312-cp312-manylinux_2_28_x86_64.whl"
ORT_WHEEL=${ORT_WHEEL:-/tmp/whl/$ORT_NAME}
PIP_PYTHON=${PIP_PYTHON:-python3}
VENV_PYTHON=${VENV_PYTHON:-$REPO/.venv/bin/python}
MNIST_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
             t10k-labels-idx1-ubyte.gz)

die() { echo "error: $*" >&2; exit 1; }
size() { stat -c %s "$1"; }
PIP_DOWNLOAD=(-m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp
              --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
              --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
              --abi cp312 --abi abi3 --abi none --disable-pip-version-check -q)

grep -qxF '/.gpu/' .gitignore || die "/.gpu/ is not in .gitignore; add it so that .gpu/ is never committed"
mkdir -p "$GPU/mnist" "$GPU/wheels" "$GPU/ort-parts" "$GPU/ort"

# -- MNIST ---------------------------------------------------------------------------------
MNIST_DIR=${REDIGITS_MNIST_DIR:-$REPO/../shared/data/mnist}
[ -d "$MNIST_DIR" ] || die "MNIST folder $MNIST_DIR does not exist; set REDIGITS_MNIST_DIR to the folder with the four idx .gz files"
for f in "${MNIST_FILES[@]}"; do
  [ -s "$MNIST_DIR/$f" ] || die "$MNIST_DIR/$f is missing; REDIGITS_MNIST_DIR must hold ${MNIST_FILES[*]}"
  if ! cmp -s "$MNIST_DIR/$f" "$GPU/mnist/$f"; then cp "$MNIST_DIR/$f" "$GPU/mnist/$f"; fi
done

# -- lmdb, protobuf and isal wheels, the versions of our venv ------------------------------
[ -x "$VENV_PYTHON" ] || die "$VENV_PYTHON not found; create the venv first (README: python3 -m venv .venv && .venv/bin/pip install -e '.[test]')"
PB_VERSION=$("$VENV_PYTHON" -c "import google.protobuf as p; print(p.__version__)") \
  || die "cannot read protobuf's version from $VENV_PYTHON"
LMDB_VERSION=$("$VENV_PYTHON" -c "import lmdb; print(lmdb.__version__)") \
  || die "cannot read lmdb's version from $VENV_PYTHON"
# isal: lmdb_builder's PNG writer deflates with ISA-L (the device image lacks it)
ISAL_VERSION=$("$VENV_PYTHON" -c "import isal; print(isal.__version__)") \
  || die "cannot read isal's version from $VENV_PYTHON"
for spec in "lmdb==$LMDB_VERSION" "protobuf==$PB_VERSION" "isal==$ISAL_VERSION"; do
  name=${spec%%==*}; version=${spec##*==}
  have=$(ls "$GPU/wheels/$name-$version-"*.whl 2>/dev/null | head -1 || true)
  if [ -z "$have" ]; then
    rm -f "$GPU/wheels/$name-"*.whl          # another version from an older venv
    "$PIP_PYTHON" "${PIP_DOWNLOAD[@]}" -d "$GPU/wheels" "$spec" \
      || die "pip could not download a cp312 manylinux x86-64 wheel of $spec"
  fi
  ls "$GPU/wheels/$name-$version-"*.whl >/dev/null 2>&1 || die "no wheel of $spec in $GPU/wheels after the download"
done

# -- onnxruntime-gpu in parts --------------------------------------------------------------
P=$GPU/ort-parts
parts_ok() {  # the parts there join to the wheel named in ort.wheel with the sha in ort.sha256
  [ -s "$P/ort.sha256" ] && [ -s "$P/ort.wheel" ] && [ -s "$P/ort.manifest" ] || return 1
  [ "$(cat "$P/ort.wheel")" = "$ORT_NAME" ] || return 1
  while read -r part bytes; do
    [ -f "$P/$part" ] && [ "$(size "$P/$part")" = "$bytes" ] || return 1
  done < "$P/ort.manifest"
  local sha
  sha=$(cat $(awk '{print "'"$P"'/" $1}' "$P/ort.manifest") | sha256sum | cut -d' ' -f1)
  [ "$sha" = "$(cut -d' ' -f1 "$P/ort.sha256")" ]
}
if parts_ok; then
  echo "onnxruntime-gpu parts already in $P (sha256 checked)"
else
  rm -f "$P"/ort.*
  if [ ! -s "$ORT_WHEEL" ]; then
    ORT_WHEEL=/tmp/redigits-ort-download/$ORT_NAME
    mkdir -p "$(dirname "$ORT_WHEEL")"
    if [ ! -s "$ORT_WHEEL" ]; then
      echo "downloading onnxruntime-gpu==$ORT_VERSION (about 256 MB)"
      "$PIP_PYTHON" "${PIP_DOWNLOAD[@]}" -d "$(dirname "$ORT_WHEEL")" "onnxruntime-gpu==$ORT_VERSION" \
        || die "pip could not download onnxruntime-gpu==$ORT_VERSION for cp312 manylinux x86-64"
    fi
    [ -s "$ORT_WHEEL" ] || die "the download did not give $ORT_NAME (see $(dirname "$ORT_WHEEL"))"
  fi
  "$PIP_PYTHON" -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).testzip()" "$ORT_WHEEL" \
    || die "$ORT_WHEEL is not a whole wheel (zip check failed); delete it and run again"
  (cd "$P" && split -b "$PART_BYTES" -d "$ORT_WHEEL" ort.part)
  sha256sum "$ORT_WHEEL" | awk -v n="$ORT_NAME" '{print $1 "  " n}' > "$P/ort.sha256"
  echo "$ORT_NAME" > "$P/ort.wheel"
  for f in "$P"/ort.part*; do echo "$(basename "$f") $(size "$f")"; done > "$P/ort.manifest"
  parts_ok || die "the parts in $P do not join to the wheel's sha256"
fi

# -- what was made -------------------------------------------------------------------------
echo
echo "made in $REPO/$GPU:"
for f in "$GPU"/mnist/* "$GPU"/wheels/* "$P"/*; do printf '  %12s  %s\n' "$(size "$f")" "$f"; done
echo
printf '  %-14s %s\n' "mnist" "$(du -sb "$GPU/mnist" | cut -f1) bytes"
printf '  %-14s %s\n' "wheels" "$(du -sb "$GPU/wheels" | cut -f1) bytes"
printf '  %-14s %s\n' "ort-parts" "$(du -sb "$P" | cut -f1) bytes in $(wc -l < "$P/ort.manifest") parts"
echo
echo "next: bash benchmarks/gpu/stage.sh 0, then the device calls in benchmarks/gpu/README.md"
