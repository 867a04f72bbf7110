#!/usr/bin/env bash
# A real BVLC Caffe 1.0 CPU build to measure against, on a Debian 12 machine without building it:
# Debian 11 (bullseye) packaged Caffe (1.0.0+git20180821.99bd997, CPU_ONLY, OpenBLAS 0.3.13
# pthread). Its .debs and their libraries are downloaded and extracted under PREFIX (default
# /opt/caffe), not installed, so nothing of the system changes. libgdal is replaced by a stub
# whose functions do nothing and return 0 (GDALOpen: no dataset): OpenCV's image codecs link it
# for GDAL raster formats only (its decoder calls GDALAllRegister when the codecs load), never
# read PNG/JPEG with it, and the real one would pull some 40 more packages.
#
#   sudo bash benchmarks/peers/install_caffe.sh [PREFIX]
#   PREFIX/bin/caffe, PREFIX/bin/convert_imageset, PREFIX/bin/compute_image_mean
set -euo pipefail
PREFIX="${1:-/opt/caffe}"
if [ -x "$PREFIX/bin/caffe" ] && "$PREFIX/bin/caffe" --version >/dev/null 2>&1; then
  echo "Caffe already at $PREFIX: $("$PREFIX/bin/caffe" --version)"; exit 0
fi
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists" "$WORK/debs" "$PREFIX/lib" "$PREFIX/bin"
SRC="$WORK/bullseye.sources"
cat > "$SRC" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
APT=(-o Dir::Etc::sourcelist="$SRC" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$WORK/lists"
     -o Dir::Cache::archives="$WORK/debs" -o APT::Sandbox::User=root)
apt-get "${APT[@]}" update -qq
PKGS=(caffe libcaffe1 libboost-python1.74.0 libgoogle-glog0v5 libgflags2.2 libprotobuf23
      libhdf5-103-1 libhdf5-hl-100 liblmdb0 libleveldb1d libopenblas0-pthread libpython3.9
      libopencv-core4.5 libopencv-imgproc4.5 libopencv-imgcodecs4.5 libboost-thread1.74.0
      libgfortran5 libsnappy1v5 libaec0 libsz2 libtbb2 libtiff5 libwebp6 libopenexr25
      libilmbase25 libgdcm3.0 libcharls2 libssl1.1)
# Also needed, from Debian 12 itself where absent (the same sonames): libjpeg62-turbo libpng16-16
# libopenjp2-7 libjbig0 libdeflate0 libzstd1 liblzma5 libquadmath0 libboost-filesystem1.74.0.
(cd "$WORK/debs" && apt-get "${APT[@]}" download "${PKGS[@]}")
for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$PREFIX/root"; done
# The stub: every GDAL symbol OpenCV's imgcodecs asks for, each returning 0.
IMGCODECS="$(ls "$PREFIX"/root/usr/lib/x86_64-linux-gnu/libopencv_imgcodecs.so.4.5* | head -1)"
{ i=0
  for s in $(objdump -T "$IMGCODECS" | awk '/\*UND\*/{print $NF}' | grep GDAL | sort -u); do
    i=$((i+1)); echo "long f$i(void) __asm__(\"$s\"); long f$i(void){return 0;}"; done
} > "$WORK/gdalstub.c"
gcc -shared -fPIC -o "$PREFIX/lib/libgdal.so.28" -Wl,-soname,libgdal.so.28 "$WORK/gdalstub.c"
R="$PREFIX/root/usr/lib"
cat > "$PREFIX/env.sh" <<ENV
# BVLC Caffe 1.0 from Debian bullseye, extracted by benchmarks/peers/install_caffe.sh
export LD_LIBRARY_PATH=$R/x86_64-linux-gnu:$R/x86_64-linux-gnu/openblas-pthread:$R:$PREFIX/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
ENV
for tool in caffe convert_imageset compute_image_mean upgrade_net_proto_text; do
  printf '#!/bin/sh\n. %s/env.sh\nexec %s/root/usr/bin/%s "$@"\n' "$PREFIX" "$PREFIX" "$tool" > "$PREFIX/bin/$tool"
  chmod +x "$PREFIX/bin/$tool"
done
missing="$(. "$PREFIX/env.sh"; ldd "$PREFIX/root/usr/bin/caffe" | grep 'not found' || true)"
[ -z "$missing" ] || { echo "error: libraries still missing for caffe:"; echo "$missing"; exit 1; } >&2
"$PREFIX/bin/caffe" --version
