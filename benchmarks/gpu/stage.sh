#!/usr/bin/env bash
# Put onnxruntime-gpu part K into .gpu/ort/ (run here, before a device call that carries .gpu/ort).
#
#   bash benchmarks/gpu/stage.sh K      # K = 0..4 (or 00..04): only that part
#   bash benchmarks/gpu/stage.sh all    # every part (too big for one call; for local checks)
#   bash benchmarks/gpu/stage.sh none   # no part, only ort.sha256 / ort.wheel / ort.manifest
#
# .gpu/ort/ is emptied first; the parts are hard-linked (copied where links fail) from
# .gpu/ort-parts/, which prepare.sh fills, so they stay there for the next call.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=$REPO/.gpu/ort-parts
DST=$REPO/.gpu/ort
die() { echo "error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: bash benchmarks/gpu/stage.sh K|all|none (K = part number, 0..N-1)"
[ -s "$SRC/ort.manifest" ] || die "$SRC/ort.manifest is missing; run bash benchmarks/gpu/prepare.sh first"
case $1 in
  all) parts=$(cut -d' ' -f1 "$SRC/ort.manifest") ;;
  none) parts= ;;
  *[!0-9]*|'') die "K must be a part number, all or none, not '$1'" ;;
  *) parts=$(printf 'ort.part%02d' "$((10#$1))")
     grep -q "^$parts " "$SRC/ort.manifest" \
       || die "there is no $parts; $SRC holds $(cut -d' ' -f1 "$SRC/ort.manifest" | tr '\n' ' ')" ;;
esac

rm -rf "$DST"
mkdir -p "$DST"
for f in ort.sha256 ort.wheel ort.manifest $parts; do
  [ -f "$SRC/$f" ] || die "$SRC/$f is missing; run bash benchmarks/gpu/prepare.sh again"
  ln "$SRC/$f" "$DST/$f" 2>/dev/null || cp "$SRC/$f" "$DST/$f"
done
# the device's copy of .git can be stale: say here which commit (and whether edited) travels
{ git rev-parse --short HEAD; git status --porcelain --untracked-files=no | grep -q . && echo " (with uncommitted changes)"; } \
  2>/dev/null | tr -d '\n' > "$DST/commit" || true
echo "staged in .gpu/ort: $(ls "$DST" | tr '\n' ' ')($(cat "$DST"/* | wc -c) bytes)"
