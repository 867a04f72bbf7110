#!/usr/bin/env bash
# On the device machine: copy the onnxruntime-gpu part(s) that this call carried in .gpu/ort/
# into /tmp/redigits-ort/ (which survives between calls while the machine stays warm), and say
# which parts it now holds against ort.manifest. run.sh joins them once all are there.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=$REPO/.gpu/ort
DST=${REDIGITS_ORT_DIR:-/tmp/redigits-ort}
mkdir -p "$DST"

if [ -d "$SRC" ]; then
  for f in "$SRC"/ort.*; do
    [ -f "$f" ] || continue
    cp "$f" "$DST/" && echo "received $(basename "$f") ($(stat -c %s "$f") bytes)"
  done
else
  echo "no .gpu/ort in this call (carry .gpu/ort)"
fi

echo "$DST now holds:"
if [ -s "$DST/ort.manifest" ]; then
  missing=0
  while read -r part bytes; do
    if [ -f "$DST/$part" ] && [ "$(stat -c %s "$DST/$part")" = "$bytes" ]; then
      echo "  $part $bytes bytes: ok"
    elif [ -f "$DST/$part" ]; then
      echo "  $part $(stat -c %s "$DST/$part") bytes, expected $bytes: INCOMPLETE"; missing=$((missing + 1))
    else
      echo "  $part: missing"; missing=$((missing + 1))
    fi
  done < "$DST/ort.manifest"
  echo "  $(cat "$DST/ort.wheel" 2>/dev/null): $missing part(s) still missing"
else
  ls -l "$DST" | sed 's/^/  /'
  echo "  (no ort.manifest yet)"
fi
exit 0
