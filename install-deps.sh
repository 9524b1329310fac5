#!/usr/bin/env bash
# Installs the Debian 12 packages switchsim needs to build and test. This list is the only
# place the packages are named: README.md and .ci/run both call this script.
#   ./install-deps.sh            required packages
#   ./install-deps.sh --optional also Open MPI (distributed sweeps)
set -euo pipefail

packages=(
  meson ninja-build pkg-config gcc g++   # build
  libopenblas-dev                        # fast fp32 GEMM behind the matrix-unit model
  libsystemc-dev                         # discrete-event engine (C++17 shim)
  libcmocka-dev                          # unit tests
  libyaml-dev                            # YAML configs (yaml-0.1)
  libjansson-dev                         # JSON results
  fortunes                               # English text corpus for training (span corruption)
)
optional=(libopenmpi-dev openmpi-bin)

if [[ "${1:-}" == "--optional" ]]; then
  packages+=("${optional[@]}")
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--optional]" >&2
  exit 2
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
