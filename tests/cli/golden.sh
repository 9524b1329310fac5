#!/usr/bin/env bash
# Golden test of the switchsim command: runs it from the source root with the given
# arguments, normalises the output (the source root becomes <root>; the bf16 array
# implementation, which depends on the CPU and gives the same bits on all, becomes <impl>),
# and compares stdout, stderr and the exit status with tests/cli/refs/NAME.out. With
# SWITCHSIM_UPDATE_REFS=1 it writes the reference instead (review the diff before committing).
#   golden.sh NAME ARGS...              compare with refs/NAME.out
#   golden.sh --grep REGEX NAME ARGS... only check that the combined output matches REGEX
#                                       and the exit status is 0 (for machine-dependent output)
set -u
grep_re=""
if [[ "${1:-}" == "--grep" ]]; then
  grep_re=$2
  shift 2
fi
name=$1
shift
root=${SWITCHSIM_SOURCE_ROOT:?}
bin=${SWITCHSIM:?}
ref="$root/tests/cli/refs/$name.out"

out=$(mktemp) err=$(mktemp) got=$(mktemp)
trap 'rm -f "$out" "$err" "$got"' EXIT
cd "$root" || exit 1
"$bin" "$@" >"$out" 2>"$err"
status=$?

if [[ -n "$grep_re" ]]; then
  if [[ $status -ne 0 ]] || ! cat "$out" "$err" | grep -Eq "$grep_re"; then
    echo "switchsim $* exited $status; output does not match /$grep_re/:"
    cat "$out" "$err"
    exit 1
  fi
  exit 0
fi

{
  echo "\$ switchsim $*"
  echo "--- stdout"
  cat "$out"
  echo "--- stderr"
  cat "$err"
  echo "--- exit $status"
} | sed -e "s|$root/|<root>/|g" -e "s|$root|<root>|g" \
        -e 's/"impl": "[a-z0-9]*"/"impl": "<impl>"/' -e 's/^impl\( *\)[a-z0-9]*$/impl\1<impl>/' \
        -e 's/^\(keep\|flush\),[a-z0-9]*$/\1,<impl>/' >"$got"

if [[ "${SWITCHSIM_UPDATE_REFS:-0}" == 1 ]]; then
  cp "$got" "$ref"
  echo "wrote $ref"
  exit 0
fi
if [[ ! -f "$ref" ]]; then
  echo "missing reference $ref; got:"
  cat "$got"
  exit 1
fi
if ! diff -u "$ref" "$got"; then
  echo "output of 'switchsim $*' differs from $ref (SWITCHSIM_UPDATE_REFS=1 rewrites it)"
  exit 1
fi
