#!/bin/sh
# This file regenerates the committed example reports under reports/examples/: estimates of
# Table 9 models on TPU v3 and TPU v4 pods (`switchsim estimate --results`) and their reports
# (`switchsim report`), one directory each with the estimate as results.json, plus one
# multi-result report of Switch-Base scaling (experts 8..256 on 32 TPU v3 cores, and
# Switch-Base-128 on 512 TPU v3 cores and on a 128-core 3-D TPU v4 slice) whose inputs are
# not kept (its summary.csv and scaling.csv hold their figures).
#
# Usage, from anywhere (the estimates run from the source root):
#   reports/examples/regenerate.sh [SWITCHSIM]
# SWITCHSIM defaults to $SWITCHSIM, then build/cli/switchsim. Takes about a minute. Every figure
# is a prediction of the simulator; the reports say so.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
sim=${1:-${SWITCHSIM:-build/cli/switchsim}}
case $sim in /*) ;; *) sim="$root/$sim" ;; esac
if [ ! -x "$sim" ]; then
    echo "regenerate.sh: no switchsim binary at $sim (build it, or pass its path)" >&2
    exit 2
fi
ex=reports/examples
res=$(mktemp -d "${TMPDIR:-/tmp}/switchsim-examples-XXXXXX")
trap 'rm -rf "$res"' EXIT

# One report per run config: the run's estimate and its report.
single() {
    name=$1
    "$sim" estimate --run "configs/runs/$name.yaml" --results "$res/$name.json" >/dev/null
    rm -rf "${ex:?}/$name"
    "$sim" report "$res/$name.json" -o "$ex/$name" --title "$name (estimate)"
    cp "$res/$name.json" "$ex/$name/results.json"
}
single switch-base-128-v3-32
single t5-base-v3-32
single switch-large-128-v3-32
single switch-base-128-v4-128
single t5-large-v3-32
single t5-large-v4-128
single t5-xxl-v3-512
single switch-xxl-128-v3-2048
single switch-c-2048-v3-2048

# Scaling: Switch-Base with 8..256 experts on tpu-v3-32 (the run config's layout), and
# Switch-Base-128 on more cores (tpu-v3-512) and on a 3-D TPU v4 slice.
scaling=""
for e in 8 16 32 64 256; do
    "$sim" estimate --model "configs/models/switch-base-$e.yaml" \
        --pod configs/pods/tpu-v3-32.yaml --data 32 --batch 2048 --microbatches 4 \
        --results "$res/switch-base-$e-v3-32.json" >/dev/null
    scaling="$scaling $res/switch-base-$e-v3-32.json"
done
"$sim" estimate --model configs/models/switch-base-128.yaml --pod configs/pods/tpu-v3-512.yaml \
    --data 512 --batch 2048 --results "$res/switch-base-128-v3-512.json" >/dev/null
rm -rf "${ex:?}/switch-base-scaling"
# shellcheck disable=SC2086 # the list is word-split on purpose (paths without spaces)
"$sim" report $scaling "$res/switch-base-128-v3-32.json" "$res/switch-base-128-v3-512.json" \
    "$res/switch-base-128-v4-128.json" -o "$ex/switch-base-scaling" \
    --title "Switch-Base scaling: experts, cores, link bandwidth (estimates)"
echo "regenerate.sh: example reports written under $ex/"
