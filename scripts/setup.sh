#!/usr/bin/env bash
# Installs the system packages hscr needs on Debian 12, only those that are missing, and says what it did.
#   libtorch-dev        libtorch (C++ headers, CMake package, c10d with Gloo)
#   libgloo-dev         the Gloo headers c10d's ProcessGroupGloo.hpp includes
#   libopenblas0-openmp the BLAS libtorch's CPU matmuls go through (the default reference BLAS is ~30x slower;
#                       the openmp build, not pthread, so it shares torch's OpenMP threads)
#   cmake               builds the addon (through cmake-js)
#   nlohmann-json3-dev  JSON for safetensors headers (header-only)
#   python3-torch       Debian's PyTorch for the cross-check tests and benches (never used at run time)
#   chromium            the headless browser the run-report test opens report.html in (through playwright-core)
set -euo pipefail

PACKAGES=(libtorch-dev libgloo-dev libopenblas0-openmp cmake nlohmann-json3-dev python3-torch g++ make chromium)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "hscr setup: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "hscr setup: system packages present (${PACKAGES[*]})"
else
  echo "hscr setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "hscr setup: installed ${missing[*]}"
fi

# libtorch calls the system libblas.so.3: make sure it is OpenBLAS (openmp), not the reference BLAS.
openblas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
current=$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu 2>/dev/null || true)
if [ -e "$openblas" ] && [ "$current" != "$(readlink -f $openblas)" ]; then
  as_root update-alternatives --set libblas.so.3-x86_64-linux-gnu "$openblas" >/dev/null
  echo "hscr setup: libblas.so.3 now points to $openblas (was ${current:-unset})"
fi
