#!/usr/bin/env bash
# Compile-only check of native/*.cpp against another libtorch's headers (g++ -fsyntax-only; nothing linked).
#   bash scripts/compile-check.sh <include-root>    e.g. the usr/include of a libtorch-dev .deb unpacked with
#   `apt-get download libtorch-dev && dpkg-deb -x libtorch-dev_*.deb x` (Debian trixie: 2.6.0), or <libtorch>/include.
# The definitions are the ones libtorch's CMake target carries (Caffe2Targets.cmake).
set -uo pipefail
inc=${1:?usage: compile-check.sh <include-root>}
cd "$(dirname "$0")/.."
napi=$(node -p "require('node-api-headers').include_dir")
naa=$(node -p "require('path').dirname(require.resolve('node-addon-api/package.json'))")
status=0
for f in native/*.cpp; do
  t0=$SECONDS
  if err=$(g++ -std=c++17 -fsyntax-only -D_GLIBCXX_USE_CXX11_ABI=1 -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS \
      -DNODE_ADDON_API_DISABLE_DEPRECATED -DUSE_DISTRIBUTED -DUSE_C10D_GLOO -DUSE_RPC -DUSE_TENSORPIPE \
      -I"$inc" -I"$inc/torch/csrc/api/include" -I"$napi" -I"$naa" -Inative "$f" 2>&1); then
    echo "OK   $f ($((SECONDS - t0)) s)"
  else
    status=1
    echo "FAIL $f ($((SECONDS - t0)) s): $(grep -m1 'error' <<<"$err")"
  fi
done
exit $status
