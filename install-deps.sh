#!/usr/bin/env bash
# Installs the Debian 12 packages switchsim needs to build and test. This list is the only
# place the packages are named: README.md and .ci/run both call this script.
#   ./install-deps.sh            everything the build and the whole test suite use
#   ./install-deps.sh --minimal  only what the core build needs (optional features and the
#                               tests that need them are then skipped)
set -euo pipefail

core=(
  meson ninja-build pkg-config gcc g++   # build
  libopenblas-dev                        # fast fp32 GEMM behind the matrix-unit model
  libsystemc-dev                         # discrete-event engine (C++17 shim)
  libcmocka-dev                          # unit tests
  libyaml-dev                            # YAML configs (yaml-0.1)
  libjansson-dev                         # JSON results
  fortunes                               # English text corpus for training (span corruption)
)
extras=(
  protobuf-c-compiler libprotobuf-c-dev  # Chakra execution traces (feature 'chakra')
  libopenmpi-dev openmpi-bin             # sweeps across MPI ranks (feature 'mpi')
  libxml2-dev                            # tests: well-formedness of report SVG/HTML
  chromium fonts-dejavu-core             # tests: reports rendered in a headless browser
)

packages=("${core[@]}" "${extras[@]}")
if [[ "${1:-}" == "--minimal" ]]; then
  packages=("${core[@]}")   # builds and tests without Chakra, MPI and the browser checks
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--minimal]" >&2
  exit 2
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
